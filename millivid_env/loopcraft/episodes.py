"""Render a whole action sequence in a world: the frames, actions and poses of one video."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from millivid_env.loopcraft.physics import VALID_ACTIONS_TEXT, initial_pose, step_pose, validate_action
from millivid_env.loopcraft.renderer import render, validate_resolution
from millivid_env.loopcraft.world import World


@dataclass
class Episode:
    """One rendered walk.

    Attributes:
        frames: uint8 ``(T, R, R, 3)``; frame ``i`` is the observation *after* action ``i``.
        actions: int64 ``(T,)`` (0 forward, 1 left, 2 right).
        poses: float32 ``(T, 5)``; pose ``(x, y, z, yaw, pitch)`` after action ``i`` (feet position).
        start_pose: float64 ``(5,)`` pose before the first action (its frame is not part of the video,
            as in the original data where the reset observation is discarded).
    """

    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    start_pose: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def _check_actions(actions: np.ndarray) -> np.ndarray:
    """int64 ``(T,)`` copy of ``actions``; ``ValueError`` naming the valid actions otherwise."""
    array = np.asarray(actions)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"actions must be a non-empty 1-D sequence, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise ValueError(f"actions must be integers, got dtype {array.dtype}; {VALID_ACTIONS_TEXT}")
    bad = np.flatnonzero((array < 0) | (array > 2))
    if bad.size:
        validate_action(int(array[bad[0]]))  # raises ValueError naming the valid actions
    return array.astype(np.int64)


def render_episode(
    world: World, actions: np.ndarray, resolution: int = 64, start_pose: np.ndarray | None = None
) -> Episode:
    """Walk ``actions`` through ``world`` and render the observation after each one.

    Args:
        world: the world.
        actions: int ``(T,)`` action ids.
        resolution: frame side ``R``, a positive multiple of 8.
        start_pose: float ``(5,)`` pose before the first action; default: the world's spawn facing
            yaw 0 (`physics.initial_pose`).

    Returns:
        The `Episode` with ``T`` frames and poses.
    """
    actions = _check_actions(actions)
    resolution = validate_resolution(resolution)
    pose = initial_pose(world) if start_pose is None else np.asarray(start_pose, dtype=np.float64).copy()
    if pose.shape != (5,):
        raise ValueError(f"start_pose must have shape (5,) = (x, y, z, yaw, pitch), got {pose.shape}")
    start = pose.copy()
    frames = np.empty((len(actions), resolution, resolution, 3), dtype=np.uint8)
    poses = np.empty((len(actions), 5), dtype=np.float32)
    for i, action in enumerate(actions):
        pose = step_pose(world, pose, int(action))
        frames[i] = render(world, pose, resolution)
        poses[i] = pose  # physics keeps float64; the stored copy is float32 like the original data
    return Episode(frames=frames, actions=actions, poses=poses, start_pose=start)
