"""`millivid bench`: run the registered benchmarks, print a table with the machine, write JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from evaluation.bench.machine import describe_machine, machine_line
from evaluation.bench.registry import BENCHMARKS, BenchSkipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `millivid bench`."""
    names = ", ".join(BENCHMARKS)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these benchmarks ({names})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def _format_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Fixed-width text table: benchmark, metric, value, unit, target (and whether it is met)."""
    rows = [("benchmark", "metric", "value", "unit", "target")]
    for name, metrics in results.items():
        for metric, entry in metrics.items():
            target = entry.get("target", "")
            if target:
                target += "  ok" if entry["meets_target"] else "  MISSED"
            rows.append((name, metric, _format_value(entry["value"]), entry["unit"], target))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if c == 2 else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run `millivid bench`; exit status 2 for unknown names, 1 if a benchmark failed."""
    if args.list:
        for name, entry in BENCHMARKS.items():
            print(f"{name:<12} {entry.summary}")
        return 0
    names = args.only or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"millivid bench: unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    machine = describe_machine()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"millivid bench, {date}\nmachine: {machine_line(machine)}\n")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        print(f"running {name}: {BENCHMARKS[name].summary} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            results[name] = BENCHMARKS[name].load()()
        except BenchSkipped as reason:  # not a failure: this machine cannot run it
            skipped[name] = str(reason)
            print(f"  {name} skipped: {reason}", file=sys.stderr)
            continue
        except Exception as error:  # noqa: BLE001 - one failing benchmark must not hide the others
            failures[name] = f"{type(error).__name__}: {error}"
            print(f"  {name} failed: {failures[name]}", file=sys.stderr)
            continue
        print(f"  done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(format_table(results))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    if args.json:
        document = {
            "date": date,
            "machine": machine,
            "results": results,
            "failures": failures,
            "skipped": skipped,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failures else 0
