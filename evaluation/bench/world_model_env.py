"""`millivid bench` entries of the world-model env: step and imagine frames/s, FLOP utilisation, memory.

Speed does not depend on the weights, so until the bundled checkpoints exist the env runs on random
weights of the bundled architecture (``cpu`` autoencoder, ``cpu`` DiT); every result says which.
Timings use one torch thread (per-core rates, comparable with the other entries) and report the rate
per CPU-second next to the wall-clock rate, since the development machines are shared; the single-env
step is also timed on all cores (the speed targets are for the whole machine, so it needs to be idle).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluation.bench.registry import Results, one_torch_thread, result, torch_threads

#: Batch sizes of the batched-step benchmark.
BATCHES = (8, 32)
#: The weights note of the bundled checkpoints (each env id then runs its own).
BUNDLED = "bundled checkpoints"
#: Step counts after which the memory benchmark reads the resident set size.
MEMORY_MILESTONES = (100, 1_000, 10_000)


@contextmanager
def _checkpoints() -> Iterator[tuple[str, str, str]]:
    """``(autoencoder, diffusion, note)``: the bundled pair, else random weights of its architecture."""
    from millivid_env.world_model_env import DEFAULT_AUTOENCODER, DEFAULT_CHECKPOINT
    from models.checkpoints import bundled_names

    if {DEFAULT_AUTOENCODER, DEFAULT_CHECKPOINT} <= set(bundled_names()):
        yield DEFAULT_AUTOENCODER, DEFAULT_CHECKPOINT, BUNDLED
        return
    from models.autoencoder import HierarchicalAutoencoder, size_config
    from models.checkpoints import save_checkpoint
    from models.diffusion import VideoDiT, dit_config

    with tempfile.TemporaryDirectory() as tmp:
        ae = save_checkpoint(HierarchicalAutoencoder(size_config("cpu")), Path(tmp) / "ae")
        dit = save_checkpoint(VideoDiT(dit_config("cpu")), Path(tmp) / "dit")
        yield str(ae), str(dit), "random weights, cpu AE + cpu DiT"


def _timed(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``calls`` calls, after one warm-up call."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def matmul_peak_gflops(seconds: float = 1.0) -> float:
    """fp32 matmul GFLOP per CPU-second of one thread (1024^3 products): the utilisation denominator."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    count, start = 0, time.process_time()  # CPU time, like the utilisation numerators
    while time.process_time() - start < seconds:
        a @ b
        count += 1
    return count * 2 * 1024**3 / (time.process_time() - start) / 1e9


def _step_flops(step: Callable[[], object], calls: int = 1) -> int:
    """FLOPs counted over ``calls`` calls of ``step`` after one uncounted call (as :func:`_timed` runs)."""
    from models.diffusion.perf import flop_counter

    step()
    with flop_counter() as counter:
        for _ in range(calls):
            step()
    return int(counter.get_total_flops())


def _reset_variant(env_id: str, kwargs: dict[str, str], bundled: bool) -> tuple[object, int]:
    """A `MilliVidEnv` as registered ``env_id`` (its own checkpoint and warp when ``bundled``), seed 0.

    Returns:
        The env and its sampler evaluations per sub-step.
    """
    from millivid_env.registration import MILLIVID_VARIANTS, sampler_options
    from millivid_env.world_model_env import MilliVidEnv

    options = sampler_options(env_id)
    if bundled:  # e.g. -Fast- runs another checkpoint than the default id
        variant = MILLIVID_VARIANTS[env_id]
        kwargs = {
            **kwargs,
            "checkpoint": str(variant["checkpoint"]),
            "warp": variant.get("warp"),
            "decode_level": int(variant.get("decode_level", 0)),
        }
    env = MilliVidEnv(**kwargs, **options)
    env.reset(seed=0)
    return env, int(options["sampling_steps"])


class _Walk:
    """A fixed, seeded walk of actions (60% forward, 20% each turn, in runs as the test loops have)."""

    def __init__(self, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        runs = [np.full(int(rng.integers(3, 12)), rng.choice(3, p=[0.6, 0.2, 0.2])) for _ in range(400)]
        self.actions = np.concatenate(runs)
        self.position = 0

    def next(self) -> int:
        action = int(self.actions[self.position % len(self.actions)])
        self.position += 1
        return action


def _cost_split(simulator: object, out: Results, name: str, note: str) -> None:
    """Add where the timed steps' wall time went (view, diffusion, decoder, encoder) and the model's share."""
    seconds = dict(simulator.seconds)
    total = sum(seconds.values()) or 1.0
    for part in ("view", "diffusion", "decoder", "encoder"):
        if part in seconds:
            out[f"{name}_share_{part}"] = result(seconds[part] / total, "fraction", note=note)
    if simulator.views is not None:
        filled = simulator.frames_filled / max(simulator.frames_stepped, 1)
        out[f"{name}_frames_drawn_by_model"] = result(filled, "fraction", note=note)


def bench_env_step(single_steps: int = 32, batched_steps: int = 12) -> Results:
    """Env ``step`` frames/s: single env (default and ``-Fast``) and batched N = 8, 32, with cost split.

    The steps follow one fixed walk (:class:`_Walk`): with a warp the model runs only on steps whose
    pixels nothing seen explains, so the rate depends on where the walk goes.
    """
    import numpy as np

    from millivid_env.registration import DEFAULT_ENV_ID, FAST_ENV_ID, sampler_options
    from millivid_env.world_model_vector_env import MilliVidVectorEnv

    out: Results = {}
    with one_torch_thread(), _checkpoints() as (ae, dit, weights):
        kwargs = {"checkpoint": dit, "autoencoder": ae, "device": "cpu"}
        peak = matmul_peak_gflops()
        out["matmul_peak"] = result(peak, "GFLOP/s", note="fp32 1024^3, 1 thread, per CPU-second")
        variants = (("single", DEFAULT_ENV_ID), ("single_fast", FAST_ENV_ID))
        for name, env_id in variants:
            env, steps = _reset_variant(env_id, kwargs, weights == BUNDLED)
            walk = _Walk()
            env.simulator.seconds.clear()
            wall, cpu = _timed(lambda env=env, walk=walk: env.step(walk.next()), single_steps)
            note = f"{env_id}, {steps} sampler evaluations x 4 sub-steps, 1 thread, {weights}, fixed walk"
            out[name] = result(single_steps / wall, "frames/s", note=note)
            out[f"{name}_per_cpu_s"] = result(single_steps / cpu, "frames/CPU-s", note=note)
            _cost_split(env.simulator, out, name, note)
            # The same steps again (same seed, same walk), counted: with a warp the model runs on some.
            env.reset(seed=0)
            walk = _Walk()
            flops = _step_flops(lambda env=env, walk=walk: env.step(walk.next()), single_steps)
            out[f"{name}_gflop_per_frame"] = result(
                flops / single_steps / 1e9, "GFLOP/frame", note="DiT + decoder + encoder, counted, mean"
            )
            out[f"{name}_flop_util"] = result(flops / cpu / 1e9 / peak, "fraction", note=note)
        cores = os.cpu_count() or 1
        with torch_threads(cores):
            for name, env_id, target in (
                ("single_all_cores", DEFAULT_ENV_ID, 8.0),
                ("single_fast_all_cores", FAST_ENV_ID, 15.0),
            ):
                env, _ = _reset_variant(env_id, kwargs, weights == BUNDLED)
                walk = _Walk()
                wall, _ = _timed(lambda env=env, walk=walk: env.step(walk.next()), single_steps)
                note = f"{env_id}, {cores} torch threads (all cores; needs an idle machine), {weights}"
                out[name] = result(single_steps / wall, "frames/s", at_least=target, note=note)
        from millivid_env.registration import MILLIVID_VARIANTS

        variant = MILLIVID_VARIANTS[DEFAULT_ENV_ID]
        copying = {"warp": variant.get("warp"), "decode_level": int(variant.get("decode_level", 0))}
        copying = copying if weights == BUNDLED else {}
        for n in BATCHES:
            envs = MilliVidVectorEnv(num_envs=n, **kwargs, **copying, **sampler_options(DEFAULT_ENV_ID))
            envs.reset(seed=0)
            walks = [_Walk(seed) for seed in range(n)]

            def batched(envs=envs, walks=walks) -> object:
                return envs.step(np.array([w.next() for w in walks], dtype=np.int64))

            envs.simulator.seconds.clear()
            wall, cpu = _timed(batched, batched_steps)
            note = f"N = {n}, {DEFAULT_ENV_ID} sampler, one batched call per evaluation, 1 thread, {weights}"
            out[f"batched_{n}"] = result(n * batched_steps / wall, "frames/s", note=note)
            out[f"batched_{n}_per_cpu_s"] = result(n * batched_steps / cpu, "frames/CPU-s", note=note)
            _cost_split(envs.simulator, out, f"batched_{n}", note)
            envs.reset(seed=0)
            walks[:] = [_Walk(seed) for seed in range(n)]
            flops = _step_flops(batched, batched_steps)
            out[f"batched_{n}_flop_util"] = result(
                flops / cpu / 1e9 / peak, "fraction", at_least=0.5, note=note
            )
    return out


def bench_imagine(frames: int = 64) -> Results:
    """``env.imagine`` (open-loop millivid rollout) frames/s, one thread."""
    from millivid_env.registration import DEFAULT_ENV_ID, sampler_options
    from millivid_env.world_model_env import MilliVidEnv

    with one_torch_thread(), _checkpoints() as (ae, dit, weights):
        env = MilliVidEnv(checkpoint=dit, autoencoder=ae, device="cpu", **sampler_options(DEFAULT_ENV_ID))
        env.reset(seed=0)
        actions = [0] * frames
        wall, cpu = _timed(lambda: env.imagine(actions), 1)
    note = f"{frames} frames, {DEFAULT_ENV_ID} sampler, 1 thread, {weights}"
    return {
        "imagine": result(frames / wall, "frames/s", note=note),
        "imagine_per_cpu_s": result(frames / cpu, "frames/CPU-s", note=note),
    }


_MEMORY_PROBE = """
import gc, json, sys, tempfile
import millivid_env, torch
torch.set_num_threads(1)
from models.testing import save_tiny_world_model
from millivid_env.world_model_env import MilliVidEnv
ae, dit = save_tiny_world_model(tempfile.mkdtemp(), dit_width=64)
env = MilliVidEnv(checkpoint=str(dit), autoencoder=str(ae), device="cpu", sampling_steps=1)
env.reset(seed=0)
def rss():
    gc.collect()
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))
marks, out, t = sorted(int(s) for s in sys.argv[1:]), {}, 0
for mark in marks:
    while t < mark:
        env.step(t % 3)
        t += 1
    out[mark] = {"rss": rss(), "memory_bytes": env.memory.nbytes, "memory_tokens": env.memory.tokens}
print(json.dumps(out))
"""


def bench_env_memory(milestones: tuple[int, ...] = MEMORY_MILESTONES) -> Results:
    """Resident memory of a fresh process after 100 / 1,000 / 10,000 steps (tiny model; ~5 minutes)."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, *map(str, milestones)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    marks = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    note = "tiny random model (width-64 DiT), 1 sampler step, fresh process, VmRSS after gc"
    out: Results = {}
    for mark, entry in marks.items():
        out[f"rss_after_{mark}"] = result(entry["rss"] / 2**20, "MiB", note=note)
    out["latent_memory"] = result(
        marks[max(marks)]["memory_bytes"] / 1024, "KiB", note="HierarchicalMemory.nbytes"
    )
    if len(marks) >= 2:
        first, last = sorted(marks)[-2:]
        growth = marks[last]["rss"] / marks[first]["rss"] - 1
        out[f"rss_growth_{first}_to_{last}"] = result(100 * growth, "%", at_most=5.0, note=note)
    return out
