"""`millivid bench` entries of the open-loop rollout: frames/s per strategy, FLOP utilisation, caching.

Speed does not depend on the weights, so the entries run a randomly initialised DiT of the bundled
env checkpoint's architecture (its ``config.json``: size, context attention, GELU) on the
``loopcraft-64`` CPU preset (latents only: no autoencoder). One torch thread (per-core rates, as
the other entries); wall-clock and CPU-time rates are both reported because the machines are shared.

Model FLOP utilisation = counted model FLOPs (``torch.utils.flop_counter`` through
:func:`models.diffusion.perf.count_sample_flops`) per CPU-second / fp32 matmul GFLOP per CPU-second of
the same thread, measured in the same run. A rollout's FLOPs are counted once per distinct step
structure (all steps with the same context/denoised token counts cost the same) and summed over the
plan, so counting does not double the run time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from evaluation.bench.registry import Results, one_torch_thread, result
from evaluation.protocol import OPEN_LOOP_STEPS

if TYPE_CHECKING:
    import torch

    from models.diffusion import TokenBatch, VideoDiT
    from models.rollout.tokens import StepTokens
    from models.strategies import Strategy

#: Frames generated per measurement: one whole millivid chunk, 16 frames for the per-frame strategies.
FRAMES = {"millivid": 64, "framepack": 16, "full-resolution": 16}
BATCHES = (1, 8)
#: The open-loop protocol's sampler evaluations per rollout step.
SAMPLER_STEPS = OPEN_LOOP_STEPS


def matmul_peak(seconds: float = 1.0) -> float:
    """fp32 GFLOP per CPU-second of ``1024 x 1024 @ 1024 x 1024`` products on the current thread(s)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b  # warm-up
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        a @ b
        count += 1
    return count * 2 * 1024**3 / (time.process_time() - start) / 1e9


def _model() -> VideoDiT:
    """The architecture of the env's bundled diffusion checkpoint (its ``config.json``), random weights."""
    import torch

    from millivid_env.registration import ENV_CHECKPOINT
    from models.checkpoints import read_config, resolve_checkpoint
    from models.diffusion import DiTConfig, VideoDiT

    config = read_config(resolve_checkpoint(ENV_CHECKPOINT), DiTConfig)
    torch.manual_seed(0)
    return VideoDiT(config).eval()


def _inputs(batch: int, name: str) -> tuple[Strategy, torch.Tensor, torch.Tensor, int, int]:
    """``(strategy, latents, actions, start, end)`` of a random rollout of ``FRAMES[name]`` frames."""
    import torch

    from models.strategies import get_strategy

    strategy = get_strategy("loopcraft-64", name)
    start = max(strategy.reach, 1)
    g = torch.Generator().manual_seed(0)
    frames = start + FRAMES[name]
    latents = torch.rand(batch, frames, 85, 32, generator=g) * 2 - 1
    actions = torch.randint(0, 3, (batch, frames), generator=g)
    return strategy, latents, actions, start, frames


def random_step_tokens(table: StepTokens, batch: int, channels: int, num_actions: int = 3) -> TokenBatch:
    """``batch`` token sets of one rollout step's structure (``step_tokens``) with random values.

    Speed does not depend on the values: latents uniform in [-1, 1], random actions, seed 0.
    """
    import torch

    from models.diffusion import TokenBatch

    n = table.num_tokens
    g = torch.Generator().manual_seed(0)
    return TokenBatch(
        x=torch.rand(batch, n, channels, generator=g) * 2 - 1,
        index=table.index.expand(batch, n, 4),
        action=torch.randint(0, num_actions, (batch, n), generator=g),
        role=table.role.expand(batch, n),
    )


def rollout_flops(model: VideoDiT, strategy: Strategy, batch: int, start: int, end: int) -> int:
    """Counted FLOPs of ``rollout_latents`` (cached sampler), one count per distinct step structure."""
    import torch

    from models.diffusion import TokenBatch, count_sample_flops
    from models.rollout import step_tokens
    from models.strategies import plan_rollout
    from models.tokens import get_layout

    layout = get_layout("loopcraft-64")
    per_structure: dict[tuple[int, int], int] = {}
    total = 0
    for step in plan_rollout(strategy, start, end):
        table = step_tokens(strategy, step.step, layout)
        key = (table.num_tokens, len(table.denoised))
        if key not in per_structure:
            n = table.num_tokens
            tokens = TokenBatch(
                x=torch.zeros(batch, n, 32),
                index=table.index.expand(batch, n, 4),
                action=torch.zeros(batch, n, dtype=torch.long),
                role=table.role.expand(batch, n),
            )
            per_structure[key] = count_sample_flops(model, tokens, SAMPLER_STEPS)
        total += per_structure[key]
    return total


def bench_rollout() -> Results:
    """Open-loop rollout frames/s of millivid, framepack and full-resolution at batch 1 and 8."""
    import torch

    from models.rollout import rollout_latents

    out: Results = {}
    with one_torch_thread():
        model = _model()
        peak = matmul_peak()
        out["matmul_peak"] = result(peak, "GFLOP/CPU-s", note="fp32 1024^3 matmul, 1 thread, this run")
        for name in FRAMES:
            for batch in BATCHES:
                strategy, latents, actions, start, end = _inputs(batch, name)
                generator = torch.Generator().manual_seed(0)
                wall, cpu = time.perf_counter(), time.process_time()
                rollout_latents(model, latents, actions, strategy, start, end, SAMPLER_STEPS, generator)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                frames = batch * (end - start)
                flops = rollout_flops(model, strategy, batch, start, end)
                steps = f"{SAMPLER_STEPS} sampler steps"
                note = f"{end - start} frames x {batch} videos, {steps}, bundled DiT architecture, 1 thread"
                key = f"{name}_b{batch}"
                out[key] = result(frames / wall, "frames/s", note=note)
                out[f"{key}_per_cpu_s"] = result(frames / cpu, "frames/CPU-s", note=note)
                out[f"{key}_gflop_per_frame"] = result(flops / frames / 1e9, "GFLOP/frame", note="counted")
                out[f"{key}_flop_util"] = result(
                    flops / cpu / 1e9 / peak, "fraction", at_least=0.4 if batch > 1 else None, note=note
                )
                if name == "millivid" and batch == 1:  # the CPU target: 384 frames after 128 context
                    seconds = 384 / (frames / wall)
                    out["millivid_384_frames_s"] = result(
                        seconds,
                        "s",
                        at_most=180,
                        note="384 frames = 6 chunks, from the 1-chunk wall time, 1 thread",
                    )
    return out


def bench_context_cache() -> Results:
    """Speed-up of the sampler's context cache on one rollout step (interleaved timings, best of 3)."""
    from models.diffusion import time_sampling
    from models.rollout import step_tokens
    from models.tokens import get_layout

    out: Results = {}
    layout = get_layout("loopcraft-64")
    with one_torch_thread():
        model = _model()
        for name, batch in (("millivid", 1), ("millivid", 8), ("framepack", 1), ("full-resolution", 1)):
            strategy, _, _, _, _ = _inputs(1, name)
            table = step_tokens(strategy, 0, layout)
            n = table.num_tokens
            tokens = random_step_tokens(table, batch, 32)
            timing = time_sampling(model, tokens, steps=SAMPLER_STEPS, repeats=3)
            note = (
                f"{name} step 0 ({n - len(table.denoised)} context + {len(table.denoised)} denoised tokens), "
                f"batch {batch}, {SAMPLER_STEPS} evaluations: {timing['cached_ms']:.0f} vs "
                f"{timing['uncached_ms']:.0f} ms, {timing['cached_flops'] / 1e9:.1f} vs "
                f"{timing['uncached_flops'] / 1e9:.1f} GFLOP"
            )
            out[f"{name}_b{batch}_speedup"] = result(timing["speedup"], "x", note=note)
    return out
