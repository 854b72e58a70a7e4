"""Benchmarks of the Loopcraft ground truth: the ray caster and dataset generation.

The renderer is measured in a child process pinned to one CPU with numba limited to one thread, so
the number is a true single-core rate whatever else the parent has loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.bench.registry import Results, result

#: Renderer resolutions and the minimum timed duration per resolution (seconds).
RENDER_RESOLUTIONS = (64, 128, 256)
RENDER_SECONDS = 1.5
#: Dataset generation benchmark: videos x frames at this resolution with this many workers.
GEN_VIDEOS, GEN_FRAMES, GEN_RESOLUTION, GEN_WORKERS = 16, 512, 64, 2
#: The target run the generation benchmark extrapolates to (100 train videos x 512 frames, 2 minutes).
TARGET_VIDEOS, TARGET_SECONDS = 100, 120.0


def _probe_renderer(seconds: float = RENDER_SECONDS) -> dict[str, float]:
    """Frames/s per resolution, in this process; poses follow a train walk so views are typical."""
    import numpy as np

    from millivid_env.loopcraft.physics import initial_pose, step_pose
    from millivid_env.loopcraft.renderer import render
    from millivid_env.loopcraft.trajectories import random_walk
    from millivid_env.loopcraft.world import generate_world

    world = generate_world((0, 0, 0))
    poses = [initial_pose(world, 0)]
    for action in random_walk(np.random.default_rng(0), 512):
        poses.append(step_pose(world, poses[-1], int(action)))
    rates = {}
    for resolution in RENDER_RESOLUTIONS:
        for pose in poses[:20]:  # warm-up: JIT/cache load, camera ray tables, caches
            render(world, pose, resolution)
        count, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            for pose in poses:
                render(world, pose, resolution)
            count += len(poses)
        rates[f"{resolution}"] = count / (time.perf_counter() - start)
        # Per CPU-second: what a core does when it is not shared (other jobs on a busy machine lower
        # the wall-clock rate, not this one).
        rates[f"{resolution}-cpu"] = count / (time.process_time() - cpu_start)
    return rates


def _child_env() -> dict[str, str]:
    """Environment of the probe process: one numba thread, and this repository importable."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}


def bench_renderer() -> Results:
    """Ray-caster frames/s at 64, 128 and 256 pixels on one core (a pinned child process)."""
    completed = subprocess.run(
        [sys.executable, "-m", "evaluation.bench.loopcraft", "renderer-probe"],
        capture_output=True,
        text=True,
        env=_child_env(),
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"renderer probe failed:\n{completed.stderr[-2000:]}")
    rates = json.loads(completed.stdout.strip().splitlines()[-1])
    note = "one pinned core, 512-frame train walk, after warm-up"
    out: Results = {}
    for resolution in RENDER_RESOLUTIONS:
        target = 1000.0 if resolution == 64 else None
        size = f"{resolution}x{resolution}"
        out[size] = result(rates[f"{resolution}"], "frames/s", at_least=target, note=f"wall clock, {note}")
        out[f"{size} per CPU-second"] = result(
            rates[f"{resolution}-cpu"], "frames/s", at_least=target, note=f"CPU time, {note}"
        )
    return out


def bench_generate() -> Results:
    """Dataset generation with a process pool: frames/s and the time of a 100-video train set."""
    from millivid_env.loopcraft.generate import generate_dataset, make_config

    config = make_config("train", GEN_RESOLUTION, GEN_FRAMES, seed=12345)
    with tempfile.TemporaryDirectory(prefix="millivid-bench-") as folder:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        report = generate_dataset(
            Path(folder) / "train", config, GEN_VIDEOS, workers=GEN_WORKERS, progress=False
        )
        seconds = time.perf_counter() - start  # includes pool start-up, index and checksums
        cpu = _cpu_seconds() - cpu_start  # this process + its (joined) workers
    frames = len(report.generated) * GEN_FRAMES
    size = f"{GEN_RESOLUTION}x{GEN_RESOLUTION}"
    what = f"{GEN_VIDEOS} videos x {GEN_FRAMES} frames at {size}, {GEN_WORKERS} workers"
    scale = TARGET_VIDEOS / GEN_VIDEOS
    return {
        "frames/s": result(frames / seconds, "frames/s", note=what),
        "wall time": result(seconds, "s", note=what),
        "CPU time": result(cpu, "s", note="all processes; CPU time / wall time / workers = core share"),
        f"{TARGET_VIDEOS} videos x {GEN_FRAMES} (extrapolated)": result(
            seconds * scale, "s", at_most=TARGET_SECONDS, note="wall time, linear in videos"
        ),
        f"{TARGET_VIDEOS} videos x {GEN_FRAMES} on idle cores": result(
            cpu * scale / GEN_WORKERS, "s", at_most=TARGET_SECONDS, note="CPU time / workers"
        ),
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its terminated, waited-for children."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _main(argv: list[str]) -> int:
    if argv != ["renderer-probe"]:
        print("usage: python -m evaluation.bench.loopcraft renderer-probe", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        # One core: the lowest-numbered CPU this process may use.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps(_probe_renderer()))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
