"""The table of `millivid bench` entries: a name -> the function that measures it.

Adding a benchmark is one line here plus a function returning ``{metric name: result(...)}``.
Targets are strings so that heavy modules (torch, numba) load only when their entry runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

Results = dict[str, dict[str, Any]]


class BenchSkipped(RuntimeError):
    """A benchmark that cannot run on this machine (e.g. it needs a GPU); the message says why."""


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body on ``count`` torch threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def one_torch_thread() -> AbstractContextManager[None]:
    """Run the body on one torch thread (per-core rates, comparable between entries), then restore."""
    return torch_threads(1)


@dataclass(frozen=True)
class Entry:
    """One benchmark: ``target`` is ``"module:function"``, the function takes no argument."""

    target: str
    summary: str

    def load(self) -> Callable[[], Results]:
        """Import and return the benchmark function."""
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


BENCHMARKS: dict[str, Entry] = {
    "renderer": Entry(
        "evaluation.bench.loopcraft:bench_renderer", "Loopcraft ray caster, frames/s on one core"
    ),
    "generate": Entry(
        "evaluation.bench.loopcraft:bench_generate", "dataset generation frames/s, --workers 2"
    ),
    "autoencoder": Entry(
        "evaluation.autoencoder_bench:bench_autoencoder", "autoencoder encode/decode frames/s, batch 1 and 64"
    ),
    "autoencoder-train": Entry(
        "evaluation.autoencoder_bench:bench_autoencoder_training", "autoencoder training frames/s, 1 thread"
    ),
    "env-step": Entry(
        "evaluation.bench.world_model_env:bench_env_step",
        "world-model env step frames/s (single, -Fast, batched N=8/32) and FLOP utilisation, 1 thread",
    ),
    "env-imagine": Entry(
        "evaluation.bench.world_model_env:bench_imagine",
        "world-model env imagine (open loop) frames/s, 1 thread",
    ),
    "env-memory": Entry(
        "evaluation.bench.world_model_env:bench_env_memory",
        "resident memory after 100/1,000/10,000 env steps (tiny model, ~5 min)",
    ),
    "rollout": Entry(
        "evaluation.bench.rollout_bench:bench_rollout",
        "open-loop rollout frames/s per strategy (batch 1, 8) and FLOP utilisation, random cpu DiT, 1 thread",
    ),
    "rollout-cache": Entry(
        "evaluation.bench.rollout_bench:bench_context_cache",
        "sampler speed-up from caching the context keys/values, one rollout step, 1 thread",
    ),
    "rollout-gpu": Entry(
        "evaluation.bench.gpu_rollout:bench_paper_rollout_gpu",
        "paper preset (DiT-B) on a CUDA GPU: frames/s per stream vs the original's 50-step uncached method",
    ),
}


def result(
    value: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One measured number, with its target if it has one.

    Args:
        value: the measurement.
        unit: its unit, e.g. ``"frames/s"``.
        at_least: target lower bound (higher is better).
        at_most: target upper bound (lower is better).
        note: how it was measured, in a few words.

    Returns:
        A JSON-serialisable dict: ``value``, ``unit``, and when given ``target``, ``meets_target``, ``note``.
    """
    entry: dict[str, Any] = {"value": float(value), "unit": unit}
    if at_least is not None:
        entry["target"] = f">= {at_least:g}"
        entry["meets_target"] = bool(value >= at_least)
    if at_most is not None:
        entry["target"] = f"<= {at_most:g}"
        entry["meets_target"] = bool(value <= at_most)
    if note:
        entry["note"] = note
    return entry
