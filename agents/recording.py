"""Record played episodes in the Loopcraft video dataset format, so they can be trained on or evaluated.

The format (`millivid_env.loopcraft.dataset`) fixes the number of frames per video in the dataset's
config, while a played episode can have any length. So every episode becomes its own one-video
dataset folder, readable with `open_dataset`::

    DIR/episode-000000/dataset.json
    DIR/episode-000000/videos/000000.npz    frames uint8 (T, R, R, 3), actions (T,), poses (T, 5)
    DIR/episode-000000/videos/000000.json   sidecar: checksum, env id, world seed, poses.start, rewards, ...
    DIR/episode-000000/index.json

As in generated datasets, frame ``i`` is the observation after action ``i`` (the reset observation is
not stored; its pose is the sidecar's ``poses.start``). Each folder is written under a hidden temporary
name and renamed once complete, so ``DIR`` only ever holds complete, checksummed episodes.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from millivid_env.loopcraft.dataset import DatasetConfig
from millivid_env.loopcraft.dataset_writer import prepare_folder, rebuild_index, write_video

__all__ = ["EPISODE_PREFIX", "EpisodeRecorder", "episode_folders"]

#: Name prefix of the episode folders inside a recording folder.
EPISODE_PREFIX = "episode-"
_EPISODE_RE = re.compile(rf"^{EPISODE_PREFIX}(\d+)$")
#: ``source`` field of every recorded sidecar: tells recordings apart from `millivid generate` videos.
SOURCE = "millivid play"


def episode_folders(root: str | os.PathLike[str]) -> list[Path]:
    """The finished episode folders of a recording folder, in episode order."""
    found = []
    if Path(root).is_dir():
        for path in Path(root).iterdir():
            match = _EPISODE_RE.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def _pose_of(info: Mapping[str, Any]) -> np.ndarray | None:
    """The float32 (5,) pose in ``info`` (a model env may only know its ground-truth twin's), or None."""
    pose = info.get("pose")
    if pose is None and isinstance(info.get("ground_truth"), Mapping):
        pose = info["ground_truth"].get("pose")
    return None if pose is None else np.asarray(pose, dtype=np.float32).reshape(5)


def _pose_summary(start: np.ndarray | None, poses: np.ndarray) -> dict[str, Any]:
    """The sidecar's ``poses`` field, as `millivid generate` writes it (only what the env reported)."""
    summary: dict[str, Any] = {"start": None if start is None else [float(v) for v in start]}
    xyz = poses[:, :3].astype(np.float64)
    if start is not None and np.isfinite(xyz).all():
        path = np.concatenate([start[None, [0, 2]], xyz[:, [0, 2]]])  # horizontal positions, T + 1
        summary["min_xyz"] = [round(float(v), 4) for v in xyz.min(axis=0)]
        summary["max_xyz"] = [round(float(v), 4) for v in xyz.max(axis=0)]
        summary["path_length_xz"] = round(float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()), 4)
    return summary


def _plain(value: Any) -> Any:
    """``value`` as a JSON type (numpy scalars and arrays come out of ``info``)."""
    if isinstance(value, np.ndarray):
        return [float(v) for v in value.ravel()]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


class EpisodeRecorder:
    """Buffers the steps of the current episode and writes it as a dataset folder when it ends.

    Use: `begin` after every reset, `add` after every step, `finish` when the episode ends for any
    reason (reset, quit, window closed, Ctrl-C, time limit). `finish` is idempotent and writes
    nothing for an episode without steps.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        env_id: str,
        resolution: int,
        world_size: tuple[int, int, int],
        generator_version: str,
        session: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the recorder (and the folder ``root``).

        Args:
            root: recording folder; episodes are added after those already in it.
            env_id: id of the played env (kept in every sidecar).
            resolution: frame edge ``R``; every frame must be uint8 (R, R, 3).
            world_size: ``(X, Y, Z)`` of the env's worlds (part of the dataset config).
            generator_version: what produced the frames (the Loopcraft generator version for the
                ground-truth env), so recordings never pass as data of another generator.
            session: extra JSON fields for every sidecar (play mode, fps, ...).

        Raises:
            NotADirectoryError: ``root`` exists and is not a folder.
        """
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"--record {self.root} exists and is not a folder; choose a folder path")
        self.root.mkdir(parents=True, exist_ok=True)
        self.env_id = env_id
        self.resolution = int(resolution)
        self.world_size = tuple(int(s) for s in world_size)
        self.generator_version = generator_version
        self.session = dict(session or {})
        #: folders written by this recorder, in order.
        self.written: list[Path] = []
        self._start: dict[str, Any] = {}
        self._start_pose: np.ndarray | None = None
        self._frames: list[np.ndarray] = []
        self._actions: list[int] = []
        self._poses: list[np.ndarray] = []
        self._rewards: list[float] = []

    @property
    def pending_frames(self) -> int:
        """Steps of the current episode not written yet."""
        return len(self._actions)

    def status(self) -> str:
        """A short text for the HUD, e.g. ``"37 frames (2 episodes saved)"``."""
        saved = len(self.written)
        return f"{self.pending_frames} frames ({saved} episode{'' if saved == 1 else 's'} saved)"

    def begin(self, info: Mapping[str, Any], reset_seed: int | None) -> None:
        """Start buffering a new episode from its reset ``info`` (an unfinished one is written first)."""
        self.finish("reset")
        world_seed = _plain(info.get("world_seed"))
        # As in generated sidecars, a list: `generate_world(tuple(world_seed), world_size)` rebuilds
        # the world (numpy seeds an int and the one-element list of it identically).
        if isinstance(world_seed, int):
            world_seed = [world_seed]
        self._start_pose = _pose_of(info)
        self._start = {"reset_seed": reset_seed, "world_seed": world_seed}

    def add(self, frame: np.ndarray, action: int, reward: float, info: Mapping[str, Any]) -> None:
        """Buffer one step: the observation after ``action``, the reward, and the pose from ``info``."""
        frame = np.asarray(frame)
        expected = (self.resolution, self.resolution, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"recorded frames must be uint8{expected}, got {frame.dtype}{frame.shape}")
        self._frames.append(frame.copy())
        self._actions.append(int(action))
        pose = _pose_of(info)
        # The format has no "unknown" marker: NaN poses say "not reported by this env".
        self._poses.append(np.full(5, np.nan, np.float32) if pose is None else pose)
        self._rewards.append(float(reward))

    def finish(self, reason: str) -> Path | None:
        """Write the buffered episode (if it has steps) and clear the buffer.

        Args:
            reason: why the episode ended ("reset", "quit", "truncated", "interrupted", ...); kept in
                the sidecar.

        Returns:
            The episode folder, or None when there was nothing to write.
        """
        if not self._actions:
            return None
        frames, actions, poses, rewards = self._frames, self._actions, self._poses, self._rewards
        # Clear first: if writing fails, a retry from a `finally` must not write the episode twice.
        self._frames, self._actions, self._poses, self._rewards = [], [], [], []
        config = DatasetConfig(
            split="train",  # free walks, like the train split; "test" needs loop selection
            resolution=self.resolution,
            frames=len(actions),
            context=None,
            seed=0,  # no generator seed: the sidecar's world_seed and poses.start describe the walk
            world_size=self.world_size,  # type: ignore[arg-type]
            generator_version=self.generator_version,
        )
        arrays = {
            "frames": np.stack(frames),
            "actions": np.asarray(actions, dtype=np.int64),
            "poses": np.stack(poses).astype(np.float32),
        }
        meta = {
            **self.session,
            **self._start,
            "source": SOURCE,
            "env_id": self.env_id,
            "ended": reason,
            "poses": _pose_summary(self._start_pose, arrays["poses"]),
            "action_counts": [int(n) for n in np.bincount(arrays["actions"], minlength=3)],
            "rewards": rewards,
            "return": float(sum(rewards)),
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        temp = self.root / f".{EPISODE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            prepare_folder(temp, config)
            write_video(temp, config, 0, arrays, meta)
            rebuild_index(temp, config, requested=1)
            folder = self._publish(temp)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        self.written.append(folder)
        return folder

    def _publish(self, temp: Path) -> Path:
        """Rename the finished temporary folder to the next free episode name."""
        existing = episode_folders(self.root)
        number = int(_EPISODE_RE.match(existing[-1].name).group(1)) + 1 if existing else 0  # type: ignore[union-attr]
        while True:
            target = self.root / f"{EPISODE_PREFIX}{number:06d}"
            if not target.exists():
                try:
                    # A rename is atomic; it fails if another process took the name meanwhile.
                    os.rename(temp, target)
                    return target
                except OSError:
                    if not target.exists():
                        raise
            number += 1
