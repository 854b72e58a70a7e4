"""Generate a Loopcraft video dataset: seeds, one video, and the resumable, parallel, sharded loop.

Video ``i`` of a dataset with base seed ``S`` is a pure function of ``(S, split, i)``: its world is
``generate_world((S, split_code, i))`` and its walk is drawn from
``np.random.default_rng((S, split_code, i, 1))``. So train and test worlds are disjoint by
construction (different ``split_code``), and any process, worker count or shard produces
byte-identical files for the same video.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from millivid_env.loopcraft.dataset import SPLITS, DatasetConfig
from millivid_env.loopcraft.dataset_writer import (
    is_finished,
    prepare_folder,
    rebuild_index,
    remove_stale_temp_files,
    write_video,
)
from millivid_env.loopcraft.episodes import render_episode
from millivid_env.loopcraft.physics import TURN_DEG, initial_pose, step_pose
from millivid_env.loopcraft.renderer import render, validate_resolution
from millivid_env.loopcraft.trajectories import chamfer_distance, random_walk, select_test_loop_detailed
from millivid_env.loopcraft.world import WORLD_SIZE, generate_world

#: Seed-tuple code of each split; part of every world seed, so splits never share a world.
SPLIT_CODES = {"train": 0, "test": 1}
#: Last element of the walk's seed tuple (the world uses the 3-tuple itself).
WALK_STREAM = 1
#: Bump when this module changes which actions or start poses a seed gives.
DATA_VERSION = "loopcraft-data-1"


@lru_cache(maxsize=1)
def generator_version() -> str:
    """Version string of everything that shapes a video: this module's data version + a frame digest.

    The digest covers a small world, a short walk and its frames, so any change of the world
    generator, the physics or the renderer changes it, and `prepare_folder` then refuses to mix the
    new videos with old ones.
    """
    digest = hashlib.sha256(generate_world(0, WORLD_SIZE).blocks.tobytes())
    world = generate_world(0, (48, 32, 48))  # small, so rendering its walk is instant
    digest.update(world.blocks.tobytes())
    pose = initial_pose(world, 30)
    for action in [0] * 12 + [2] * 4 + [0] * 6 + [1] * 5:
        pose = step_pose(world, pose, action)
        digest.update(pose.tobytes())
        digest.update(render(world, pose, 16).tobytes())
    return f"{DATA_VERSION}+frames-{digest.hexdigest()[:12]}"


def make_config(
    split: str,
    resolution: int,
    frames: int,
    context: int | None = None,
    seed: int = 0,
    world_size: tuple[int, int, int] = WORLD_SIZE,
) -> DatasetConfig:
    """Check the parameters of a dataset and build its config.

    Args:
        split: ``"train"`` or ``"test"``.
        resolution: frame side, a positive multiple of 8.
        frames: frames per video (>= 2 for test, so a context and a rollout exist).
        context: test only: context frames for loop selection, ``1 <= C < frames``; default
            ``frames // 4`` (128 of 512, as the CPU evaluation protocol). Ignored for train.
        seed: non-negative base seed.
        world_size: ``(X, Y, Z)`` world extent.

    Raises:
        ValueError: naming the bad parameter.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    resolution = validate_resolution(resolution)
    if isinstance(frames, bool) or int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if split == "test":
        context = max(1, int(frames) // 4) if context is None else int(context)
        if not 1 <= context < frames:
            raise ValueError(f"context must be in [1, frames) = [1, {frames}) for test loops, got {context}")
    else:
        context = None  # train walks do not depend on it
    world_size = tuple(int(s) for s in world_size)
    generate_world(0, world_size)  # raises ValueError with the world's own size rule
    return DatasetConfig(
        split=split,
        resolution=resolution,
        frames=int(frames),
        context=context,
        seed=int(seed),
        world_size=world_size,  # type: ignore[arg-type]
        generator_version=generator_version(),
    )


def world_seed(seed: int, split: str, index: int) -> tuple[int, int, int]:
    """Seed tuple of video ``index``'s world: ``(S, split_code, index)``."""
    return (int(seed), SPLIT_CODES[split], int(index))


def _round(values: Any) -> list[float]:
    """Floats rounded for the sidecar (readable; they are summaries, the npz keeps exact poses)."""
    return [round(float(v), 4) for v in np.atleast_1d(values)]


def make_video(config: DatasetConfig, index: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Generate video ``index`` of a dataset.

    Returns:
        arrays: ``frames`` uint8 (T, R, R, 3), ``actions`` int64 (T,), ``poses`` float32 (T, 5).
        meta: sidecar fields: seeds, start pose, pose summary, action counts (and loop scores for test).
    """
    seeds = world_seed(config.seed, config.split, index)
    world = generate_world(seeds, config.world_size)
    rng = np.random.default_rng((*seeds, WALK_STREAM))
    start = initial_pose(world, TURN_DEG * int(rng.integers(360 // TURN_DEG)))
    meta: dict[str, Any] = {"world_seed": list(seeds), "walk_seed": [*seeds, WALK_STREAM]}
    if config.split == "train":
        actions = random_walk(rng, config.frames)
    else:
        selection = select_test_loop_detailed(rng, config.frames, config.context)
        actions = selection.actions
        meta["turtle_chamfer"] = round(float(selection.distances[selection.chosen]), 4)
    episode = render_episode(world, actions, config.resolution, start)
    xyz = episode.poses[:, :3].astype(np.float64)
    path = np.concatenate([start[None, [0, 2]], xyz[:, [0, 2]]])  # (T + 1, 2) horizontal positions
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    meta["poses"] = {
        "start": _round(start),
        "min_xyz": _round(xyz.min(axis=0)),
        "max_xyz": _round(xyz.max(axis=0)),
        "path_length_xz": round(float(steps.sum()), 4),
    }
    meta["action_counts"] = [int(n) for n in np.bincount(actions, minlength=3)]
    if config.split == "test":
        # The same score as the selection, on the real (x, z) path: how well the rollout revisits.
        meta["chamfer_blocks"] = round(chamfer_distance(path[: config.context], path[config.context :]), 4)
    arrays = {"frames": episode.frames, "actions": episode.actions, "poses": episode.poses}
    return arrays, meta


def generate_one(root: Path, config: DatasetConfig, index: int) -> int:
    """Generate and write video ``index`` into ``root``; returns its number of frames."""
    arrays, meta = make_video(config, index)
    write_video(root, config, index, arrays, meta)
    return len(arrays["actions"])


def _start_method() -> str:
    """``"fork"`` where it is safe, else ``"spawn"``.

    Forked workers inherit the imported modules and the renderer already compiled by `make_config`
    (`generator_version` renders), so they start in milliseconds; a spawned worker re-imports numba
    and loads the kernel from numba's on-disk cache, about a second or two. Forking is only safe on
    POSIX (not macOS, whose system libraries are not fork-safe) and while this process runs a single
    Python thread (a lock held by another thread would stay locked forever in the child).
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _worker_init() -> None:
    # Ctrl-C is the parent's to handle (it terminates the pool); workers would only print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One core per worker: the pool itself is the parallelism (numba threads would oversubscribe).
    import numba

    numba.set_num_threads(1)


def _worker_task(task: tuple[str, dict[str, Any], int]) -> tuple[int, int]:
    root, config_json, index = task
    return index, generate_one(Path(root), DatasetConfig.from_json(config_json), index)


@dataclass
class GenerateReport:
    """What a `generate_dataset` run did.

    Attributes:
        root: the dataset folder.
        generated: video numbers written by this run.
        skipped: video numbers that were already finished and verified.
        removed_temp_files: stale temporary files deleted at the start.
        seconds: wall time of the generation loop (excluding the resume checks).
        index: the ``index.json`` document written at the end.
    """

    root: Path
    generated: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    removed_temp_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    index: dict[str, Any] = field(default_factory=dict)


def generate_dataset(
    out: str | Path,
    config: DatasetConfig,
    videos: int,
    *,
    workers: int = 1,
    worker_id: int = 0,
    num_workers: int = 1,
    progress: bool = True,
) -> GenerateReport:
    """Generate (or resume) videos ``0 .. videos-1`` of a dataset, this shard's share only.

    Args:
        out: dataset folder; created if needed, must hold nothing or a dataset of the same config.
        config: from `make_config`.
        videos: number of videos the dataset should have.
        workers: processes rendering in parallel (1 = in this process).
        worker_id: this shard's number, in ``[0, num_workers)``.
        num_workers: number of shards; this run handles the videos with ``i % num_workers == worker_id``.
        progress: show a tqdm progress bar on stderr.

    Returns:
        A `GenerateReport`.

    Raises:
        ValueError: bad counts; `DatasetConfigMismatchError` (a ValueError) for a folder of another config.
    """
    for name, value, low in (("videos", videos, 0), ("workers", workers, 1), ("num_workers", num_workers, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 <= worker_id < num_workers:
        raise ValueError(f"worker_id must be in [0, num_workers) = [0, {num_workers}), got {worker_id}")
    root = Path(out)
    prepare_folder(root, config)
    report = GenerateReport(root=root)
    mine = [i for i in range(videos) if i % num_workers == worker_id]
    report.removed_temp_files = remove_stale_temp_files(
        root, lambda i: i % num_workers == worker_id, include_root=num_workers == 1
    )
    pending = []
    for i in mine:
        (report.skipped if is_finished(root, config, i) else pending).append(i)
    try:
        report.seconds = _run_pending(root, config, pending, len(mine), workers, progress, report.generated)
    finally:
        # Also after an interruption: the index then lists what is finished so far.
        report.index = rebuild_index(root, config, videos)
        report.generated.sort()
    return report


def _run_pending(
    root: Path,
    config: DatasetConfig,
    pending: list[int],
    total: int,
    workers: int,
    progress: bool,
    done: list[int],
) -> float:
    """Generate the ``pending`` videos, appending each finished number to ``done``; returns seconds."""
    start = time.perf_counter()
    if workers == 1 or len(pending) <= 1:
        with _progress_bar(config, total, len(pending), progress, start) as advance:
            for index in pending:
                advance(index, generate_one(root, config, index))
                done.append(index)
        return time.perf_counter() - start
    # The pool starts before the progress bar: tqdm runs a monitor thread, and `_start_method`
    # forks only while this process has a single thread.
    context = multiprocessing.get_context(_start_method())
    tasks = [(str(root), config.to_json(), index) for index in pending]
    with context.Pool(min(workers, len(pending)), initializer=_worker_init) as pool:
        with _progress_bar(config, total, len(pending), progress, start) as advance:
            for index, count in pool.imap_unordered(_worker_task, tasks):
                advance(index, count)
                done.append(index)
    return time.perf_counter() - start


@contextlib.contextmanager
def _progress_bar(
    config: DatasetConfig, total: int, pending: int, enabled: bool, start: float
) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar over this run's videos; yields ``advance(index, frames)`` to call per finished video."""
    from tqdm.auto import tqdm

    # No tqdm monitor thread: it would outlive the bar and make later pools in this process spawn
    # instead of fork (see `_start_method`); it only tunes refresh rates.
    bar_class = type("GenerateBar", (tqdm,), {"monitor_interval": 0})
    frames = 0
    with bar_class(
        total=total,
        initial=total - pending,
        unit="video",
        desc=f"generate {config.split}",
        disable=not enabled,
        dynamic_ncols=True,
    ) as bar:

        def advance(index: int, count: int) -> None:
            nonlocal frames
            frames += count
            rate = frames / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{rate:,.0f} frames/s", refresh=False)
            bar.update(1)

        yield advance
