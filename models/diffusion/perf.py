"""FLOP counts and timings of the video DiT (for the bench: model FLOP utilisation, caching speed-up).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2). Its
registry has no formula for the CPU flash-attention kernel that ``scaled_dot_product_attention``
dispatches to on CPU, so one is supplied here (the same count as for the CUDA kernels: two batched
matmuls, masked entries included, as the kernel computes them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from models.diffusion.batch import TokenBatch
from models.diffusion.dit import VideoDiT
from models.diffusion.sampler import sample

_aten = torch.ops.aten
_CPU_ATTENTION = {
    _aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)
    ),
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda grad, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(grad, q, k, v)
    ),
}


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention."""
    return FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)


@torch.no_grad()
def count_flops(model: VideoDiT, batch: TokenBatch, t: float = 0.5) -> int:
    """FLOPs of one uncached forward pass over all tokens of ``batch``.

    Args:
        model: the model.
        batch: the token sets (DENOISED tokens at time ``t``, context at 0).
        t: noise time of the denoised tokens (does not change the count).

    Returns:
        Total FLOPs of matmuls and attention.
    """
    batch = batch.to(model.device)
    times = torch.where(batch.denoised, float(t), 0.0)
    with flop_counter() as counter:
        model(batch.x.float(), batch.index, times, batch.action, batch.role, pad=batch.pad)
    return int(counter.get_total_flops())


def count_sample_flops(
    model: VideoDiT, batch: TokenBatch, steps: int, guidance_scale: float = 1.0, use_cache: bool = True
) -> int:
    """FLOPs of a whole :func:`~models.diffusion.sampler.sample` call (one rollout step).

    Args:
        model: the model.
        batch: ``B`` token sets with the same structure.
        steps: model evaluations.
        guidance_scale: classifier-free guidance scale (not 1.0 doubles the batch).
        use_cache: count the cached (context once) or the uncached sampler.

    Returns:
        Total FLOPs.
    """
    generator = torch.Generator().manual_seed(0)
    with flop_counter() as counter:
        sample(
            model, batch, steps=steps, guidance_scale=guidance_scale, generator=generator, use_cache=use_cache
        )
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA runs asynchronously; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_sample(model: VideoDiT, batch: TokenBatch, steps: int, use_cache: bool, repeats: int = 3) -> float:
    """Seconds of one :func:`~models.diffusion.sampler.sample` call, best of ``repeats`` after a warm-up.

    Timed on the wall clock with the model's device synchronised around each call.
    """
    generator = torch.Generator()

    def run() -> None:
        sample(model, batch, steps=steps, generator=generator.manual_seed(0), use_cache=use_cache)

    run()  # warm-up: kernels, allocator
    return min(_seconds(run, model.device) for _ in range(repeats))


def time_sampling(model: VideoDiT, batch: TokenBatch, steps: int = 8, repeats: int = 3) -> dict[str, float]:
    """Time one rollout step with and without the context cache (interleaved runs, best of ``repeats``).

    Args:
        model: the model (eval mode).
        batch: ``B`` token sets with the same structure.
        steps: model evaluations per step.
        repeats: timed runs of each variant; the minimum is kept (shared machines are noisy, and
            interleaving exposes both variants to the same load).

    Returns:
        ``cached_ms``, ``uncached_ms``, ``speedup`` (uncached / cached), and the FLOPs of both variants
        (``cached_flops``, ``uncached_flops``).
    """
    generator = torch.Generator()
    runs = {
        name: (
            lambda cached=cached: sample(
                model, batch, steps=steps, generator=generator.manual_seed(0), use_cache=cached
            )
        )
        for name, cached in (("cached", True), ("uncached", False))
    }
    best = {name: float("inf") for name in runs}
    for fn in runs.values():  # warm-up (allocator, lazy initialisation)
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], _seconds(fn, model.device))
    results = {f"{name}_ms": 1e3 * seconds for name, seconds in best.items()}
    for name, cached in (("cached", True), ("uncached", False)):
        results[f"{name}_flops"] = float(count_sample_flops(model, batch, steps, use_cache=cached))
    results["speedup"] = results["uncached_ms"] / results["cached_ms"]
    return results
