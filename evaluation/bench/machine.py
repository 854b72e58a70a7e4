"""A description of the machine a benchmark ran on (benchmarks are meaningless without it)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus() -> list[str]:
    # nvidia-smi rather than torch.cuda: describing the machine should not import torch.
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, memory, GPUs, OS and library versions, as a JSON-serialisable dict."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        # Shared machines are noisy: the load when the run started says how much to trust the numbers.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "torch": _version("torch"),
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One-line summary of `describe_machine` output."""
    gpus = ", ".join(machine["gpus"]) or "no GPU"
    return (
        f"{machine['cpu']}, {machine['usable_cores']} usable of {machine['logical_cores']} cores, "
        f"{machine['memory_gib']} GiB, {gpus}; Python {machine['python']}, numpy {machine['numpy']}, "
        f"numba {machine['numba']}, torch {machine['torch']}; load average {machine['load_average_1min']}"
    )
