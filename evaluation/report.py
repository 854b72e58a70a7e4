"""Write the report of a finished evaluation: ``report.json``, ``report.md``, plots and frame strips.

``report.json`` (format ``millivid-evaluation-report`` v1) holds the protocol, the test set, the
systems with their checkpoints and weight digests, the metric variants, the machine, and per entry
(system or bound) the per-frame curves and the bucket statistics of :mod:`evaluation.aggregate`.
``report.md`` renders one table per metric (rows: systems and bounds; columns: buckets).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.aggregate import aggregate
from evaluation.plots import plot_curves, plot_strips
from evaluation.revisits import RevisitTolerance
from evaluation.runner import GROUND_TRUTH, Evaluation

REPORT_FORMAT = "millivid-evaluation-report"
BUCKET_NAMES = ("short", "medium", "long", "all", "revisits")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _guidance(scale: float) -> str:
    """The report's words for the sampler's classifier-free guidance scale."""
    return "no guidance" if scale == 1.0 else f"classifier-free guidance scale {scale:g}"


def metric_meta(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Label and direction of every reported metric (the LPIPS and Fréchet variants named)."""
    n = len(evaluation.test_set)
    meta = {
        "psnr": {"label": "PSNR (dB)", "higher_is_better": True, "videos": n},
        "ssim": {"label": "SSIM", "higher_is_better": True, "videos": n},
        "lpips": {"label": evaluation.suite.labels["lpips"], "higher_is_better": False, "videos": n},
    }
    if evaluation.features is not None:
        meta["fd"] = {
            "label": evaluation.features.name,
            "higher_is_better": False,
            "videos": n,
            "note": "Fréchet distance of pooled per-frame features of the bucket vs the true frames "
            "(not FID: the feature space is named)",
        }
    return meta


def bucket_descriptions(evaluation: Evaluation) -> dict[str, str]:
    """Human-readable frame ranges of the buckets (1-based rollout frames)."""
    p = evaluation.protocol
    tol: RevisitTolerance = evaluation.settings.strip_tolerance
    out = {name: f"rollout frames {lo + 1}-{hi}" for name, (lo, hi) in p.bucket_edges().items()}
    out["all"] = f"rollout frames 1-{p.horizon}"
    out["revisits"] = (
        f"rollout frames whose true pose is within {tol.max_distance} blocks and {tol.max_yaw} degrees of a "
        f"context pose at least {tol.min_gap} frames earlier"
    )
    return out


def write_report(evaluation: Evaluation, json_path: str | Path | None = None) -> dict[str, Any]:
    """Aggregate the stored results and write every report file into the evaluation folder.

    Args:
        evaluation: a finished :class:`~evaluation.runner.Evaluation` (all results stored).
        json_path: also write ``report.json``'s content here.

    Returns:
        The ``report.json`` document.
    """
    from evaluation.bench.machine import describe_machine

    root = evaluation.store.root
    protocol, numbers = evaluation.protocol, evaluation.test_set.numbers
    results = aggregate(evaluation.store, evaluation.entries, protocol, numbers, evaluation.features)
    revisits = results.pop("_revisits")
    collapse = results.pop("_collapse", None)
    paired = results.pop("_paired", {})
    metrics = metric_meta(evaluation)
    plots = plot_curves(results, metrics, protocol, root / "plots")
    strip = plot_strips(*_strip_rows(evaluation), root / "strips", protocol.context)
    config = evaluation.store.config
    document = {
        "format": REPORT_FORMAT,
        "format_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": evaluation.store.fingerprint,
        "protocol": protocol.to_json(),
        "videos": len(numbers),
        "video_numbers": numbers,
        "test_set": {"root": config["test_set"]["root"], "config": config["test_set"]["config"]},
        "systems": [{"name": spec.name, **config["systems"][spec.name]} for spec in evaluation.systems],
        "sampling": config["sampling"],
        **({"copying": _copying(evaluation, config["copying"])} if "copying" in config else {}),
        "metrics": metrics,
        "buckets": bucket_descriptions(evaluation),
        "revisit_frames_per_video": revisits,
        "results": results,
        **({"paired_lpips": paired} if paired else {}),
        **({"collapse_references": collapse} if collapse else {}),
        "device": str(evaluation.device),
        "machine": describe_machine(),
        "files": {
            "markdown": "report.md",
            "plots": [str(p.relative_to(root)) for p in plots],
            "strips": [str(strip.relative_to(root))] if strip else [],
        },
    }
    document = _clean(document)
    text = json.dumps(document, indent=1) + "\n"
    (root / "report.json").write_text(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text)
    (root / "report.md").write_text(markdown(document))
    return document


def _copying(evaluation: Evaluation, copying: dict[str, Any]) -> dict[str, Any]:
    """The copying config plus the frames each system's view may remember."""
    memory = {spec.name: evaluation.memory_description(spec) for spec in evaluation.systems}
    return {**copying, "view_memory": copying.get("view_memory", "shared"), "view_remembers": memory}


def _copying_line(copying: dict[str, Any]) -> str:
    """The report's sentence on how frames were copied and what each view remembered."""
    frames = ", ".join(f"{name} {n}" for name, n in copying["view_remembers"].items())
    view = copying.get("view", {})
    stored = "context and shown frames" if view.get("remember_shown") else "context frames"
    if copying["view_memory"] == "layout":
        rule = (
            f"**view memory bounded by the token layout**: each system's view keeps only the {stored} "
            "its layout's steps still read for the frame shown"
        )
    else:
        rule = f"view memory shared: each system's view remembers the {stored}, up to its capacity"
    return (
        f"- Frames copied by construction (warp `{copying['warp']}`, the model's level "
        f"{copying['fill_level']} where it is needed); {rule}. Remembered: {frames}."
        f"{_changed_view_settings(view)}"
    )


def _changed_view_settings(view: dict[str, Any]) -> str:
    """The view settings that differ from the defaults, as a sentence (empty when none do).

    A report must say how its frames were made: two runs that differ only in, say, ``draft_t``
    otherwise read the same.
    """
    from dataclasses import fields

    from models.warp.view import ViewSettings

    defaults = {f.name: f.default for f in fields(ViewSettings)}
    changed = [
        f"`{name}` {json.dumps(value)}" for name, value in view.items() if defaults.get(name, value) != value
    ]
    return f" View settings other than the defaults: {', '.join(changed)}." if changed else ""


def _strip_rows(evaluation: Evaluation) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for :func:`evaluation.plots.plot_strips` (one revisit per video, up to 6 videos)."""
    store, entries = evaluation.store, evaluation.entries
    shown = [e for e in entries if e.kind in ("upper-bound", "system")]
    columns = ["context", "ground truth", *[e.label for e in shown]]
    rows: list[dict[str, Any]] = []
    for number in evaluation.test_set.numbers:
        truth = store.load(GROUND_TRUTH, number)
        if truth is None or len(truth["strip_index"]) == 0:
            continue
        j = len(truth["strip_index"]) - 1  # the latest revisit: the longest memory
        frames = {"context": truth["strip_context_frames"][j], "ground truth": truth["strip_frames"][j]}
        for entry in shown:
            arrays = store.load(entry.key, number)
            if arrays is not None:
                frames[entry.label] = arrays["strip_frames"][j]
        index, context_index = int(truth["strip_index"][j]), int(truth["strip_context"][j])
        rows.append({"video": number, "index": index, "context_index": context_index, "frames": frames})
        if len(rows) == 6:
            break
    return rows, columns


#: What the oracle look-up row means (report.md; the same words in docs/evaluation.md).
ORACLE_SENTENCE = (
    "*Context frame nearest to the true pose (oracle look-up)* = for every generated frame, the context "
    "frame whose true pose is nearest to that frame's true pose (distance: blocks apart in x, z plus "
    "degrees of yaw apart / 30); it reads the true poses, which no model is given, so it is not a bound "
    "but a reference: how far a model is from a perfect look-up of what it was shown. A model that "
    "scores worse has not learnt to recall the context where the camera is; one that scores better also "
    "renders what no single context frame shows (views between the context poses, places never seen)."
)

_KIND_NOTE = {"upper-bound": " *(bound)*", "lower-bound": " *(bound)*", "baseline": " *(baseline)*"}


def _cell(stats: dict[str, Any] | float | None, digits: int) -> str:
    if isinstance(stats, dict):
        mean, sem = stats.get("mean"), stats.get("sem")
        if mean is None:
            return "-"
        return f"{mean:.{digits}f}" + (f" ± {sem:.{digits}f}" if sem is not None else "")
    return "-" if stats is None else f"{stats:.{digits}f}"


def markdown(document: dict[str, Any]) -> str:
    """``report.md``: the setting, the checkpoints, one table per metric, the plots and strips."""
    p = document["protocol"]
    lines = [
        f"# Revisit-consistency evaluation: protocol `{p['name']}`",
        "",
        f"- **{document['videos']} test videos** (Loopcraft test loops, numbers "
        f"{', '.join(map(str, document['video_numbers'][:12]))}{' ...' if document['videos'] > 12 else ''}) "
        f"from `{document['test_set']['root']}`; {p['resolution']}x{p['resolution']} frames.",
        f"- {p['context']} ground-truth context frames, then {p['horizon']} frames generated open loop with "
        f"the ground-truth actions; sampling: {document['sampling']['steps']} steps, seed "
        f"{document['sampling']['seed']}, "
        + _guidance(document["sampling"].get("guidance_scale", 1.0))
        + (
            f", context shown at noise time {document['sampling']['context_noise']}."
            if document["sampling"].get("context_noise")
            else "."
        )
        + ("" if p["standard"] else " **Non-standard context/horizon.**"),
        *([_copying_line(document["copying"])] if "copying" in document else []),
        "- Buckets: " + "; ".join(f"**{k}** = {v}" for k, v in document["buckets"].items()) + ".",
        f"- Metrics: PSNR, SSIM, **{document['metrics']['lpips']['label']}**"
        + (
            f", **{document['metrics']['fd']['label']}** Fréchet distance"
            if "fd" in document["metrics"]
            else ""
        )
        + ". Values are mean ± standard error over videos of the per-video mean in the bucket; the Fréchet "
        "distance pools the bucket's frames of all videos (no error bar).",
        "- Bounds: *autoencoded GT* = true frames through the system's autoencoder (best reachable); *random "
        "frames* = the same frame index of a random other test video (unrelated but realistic). Baselines "
        "(no model): *last context frame held* = the trivial predictor that repeats the last true context "
        "frame; a system below it has not learnt how the view moves. " + ORACLE_SENTENCE,
        f"- Device `{document['device']}`; machine: {_machine(document['machine'])}.",
        f"- Created {document['created']}; config fingerprint `{document['fingerprint'][:16]}`.",
        "",
        "## Checkpoints",
        "",
        "| system | diffusion checkpoint | autoencoder | diffusion sha256 | rollout s/video |",
        "|---|---|---|---|---|",
    ]
    for system in document["systems"]:
        seconds = document["results"].get(system["name"], {}).get("rollout_seconds_per_video")
        lines.append(
            f"| {system['name']} | `{system['checkpoint']}` | `{system['autoencoder']}` | "
            f"`{system['files']['diffusion']['sha256'][:12]}` | {_cell(seconds, 1)} |"
        )
    for metric, meta in document["metrics"].items():
        arrow = "higher is better" if meta["higher_is_better"] else "lower is better"
        digits = 2 if metric == "psnr" else 4
        lines += ["", f"## {meta['label']} ({arrow})", "", "| | " + " | ".join(BUCKET_NAMES) + " |"]
        lines.append("|---" * (len(BUCKET_NAMES) + 1) + "|")
        for result in document["results"].values():
            name = result["label"] + _KIND_NOTE.get(result["kind"], "")
            cells = [_cell(result["buckets"][b].get(metric), digits) for b in BUCKET_NAMES]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _paired_lines(document)
    lines += _model_drew_lines(document)
    lines += _collapse_lines(document)
    lines += ["", "## Plots", ""]
    lines += [f"![{Path(path).stem}]({path})" for path in document["files"]["plots"]]
    if document["files"]["strips"]:
        lines += ["", "## Frames at revisits", "", "Each row: the context frame the true pose revisits, the "
                  "true frame, the autoencoded truth and every system's frame.", ""]  # fmt: skip
        lines += [f"![revisits]({path})" for path in document["files"]["strips"]]
    return "\n".join(lines) + "\n"


def _model_drew_lines(document: dict[str, Any]) -> list[str]:
    """Markdown of where the systems' models drew (frames copied by construction only)."""
    rows = [r for r in document["results"].values() if r.get("model_drew")]
    if not rows:
        return []
    label = document["metrics"]["lpips"]["label"]
    lines = [
        "",
        "## Where the model drew",
        "",
        "With frames copied by construction the model's pixels are shown only where the copying view "
        f"explains too little of the frame: how often that was, and the {label} of those frames (mean ± "
        "standard error over the videos of the per-video mean over them).",
        "",
        "| system | frames drawn | of the revisit frames | LPIPS of the frames drawn |",
        "|---|---|---|---|",
    ]
    for r in rows:
        drew = r["model_drew"]
        revisits = drew.get("fraction_of_revisits")
        lines.append(
            f"| {r['label']} | {drew['fraction']:.1%} | "
            + ("-" if revisits is None else f"{revisits:.1%}")
            + f" | {_cell(drew['lpips'], 4)} |"
        )
    return lines


def _paired_lines(document: dict[str, Any]) -> list[str]:
    """Markdown of the paired LPIPS differences of the first system against the other rows."""
    paired = document.get("paired_lpips")
    if not paired:
        return []
    results = document["results"]
    first = next(r["label"] for r in results.values() if r["kind"] == "system")
    lines = [
        "",
        f"## {first} minus each other row, paired over the videos ({document['metrics']['lpips']['label']})",
        "",
        "Mean ± standard error over the videos of the per-video difference (negative: "
        f"{first} is closer to the truth); the revisits column over the videos that have revisits.",
        "",
        "| | " + " | ".join(BUCKET_NAMES) + " |",
        "|---" * (len(BUCKET_NAMES) + 1) + "|",
    ]
    for key, buckets in paired.items():
        cells = [_cell(buckets.get(b), 4) for b in BUCKET_NAMES]
        lines.append(f"| − {results[key]['label']} | " + " | ".join(cells) + " |")
    return lines


def _collapse_lines(document: dict[str, Any]) -> list[str]:
    """Markdown of the collapse references: does any system's Fréchet distance approach them?"""
    collapse = document.get("collapse_references")
    if not collapse:
        return []
    label = document["metrics"]["fd"]["label"]
    buckets = [b for b in BUCKET_NAMES if b != "revisits"]
    lines = [
        "",
        f"## Staying in distribution ({label})",
        "",
        "What a rollout that collapsed would score: the same Fréchet distance for flat frames of random "
        "colours and for uniform pixel noise, next to each system's largest distance over its 16-frame "
        "windows (`curves.fd`).",
        "",
        "| | " + " | ".join(buckets) + " | largest window |",
        "|---" * (len(buckets) + 2) + "|",
    ]
    for name, values in collapse.items():
        lines.append(
            f"| collapse: {name} frames | " + " | ".join(_cell(values[b], 2) for b in buckets) + " | - |"
        )
    for result in document["results"].values():
        if result["kind"] == "system" and result["curves"].get("fd"):
            cells = [_cell(result["buckets"][b].get("fd"), 2) for b in buckets]
            lines.append(
                f"| {result['label']} | " + " | ".join(cells) + f" | {max(result['curves']['fd']):.2f} |"
            )
    return lines


def _machine(machine: dict[str, Any]) -> str:
    from evaluation.bench.machine import machine_line

    try:
        return machine_line(machine)
    except KeyError:
        return str(machine)
