"""The *reach the landmark* task: reward and termination from the ground-truth pose (DESIGN §7).

An episode starts where a world-model episode would: at the end of a Loopcraft random walk of
``walk_frames`` actions from the world's spawn (:func:`walk_start`), so the real task env and the
imagined one start from the same states for the same seed. The agent succeeds when its feet come
within ``radius`` blocks (horizontally) of the footprint of *any* landmark: the policy sees only
frames, and every landmark is a tall, distinctive structure it can recognise and walk to.

Numpy only (no torch), so the real env stays cheap to import.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from millivid_env.loopcraft.env import LoopcraftEnv
from millivid_env.loopcraft.landmarks import Landmark
from millivid_env.loopcraft.physics import TURN_DEG, Action, trig
from millivid_env.loopcraft.trajectories import random_walk
from millivid_env.loopcraft.world import World

__all__ = [
    "MAX_START_ATTEMPTS",
    "LandmarkTask",
    "WalkStart",
    "landmark_distance",
    "steer_to_landmark",
    "walk_start",
]

#: Walks drawn before `walk_start` gives up finding an accepted start.
MAX_START_ATTEMPTS = 100


def landmark_distance(world: World, pose: np.ndarray) -> tuple[float, Landmark | None]:
    """Horizontal distance from the feet to the nearest landmark footprint (0 inside it).

    A landmark's footprint is the square of half-width ``radius + 0.5`` blocks around its centre.

    Args:
        world: the world (its ``landmarks``).
        pose: float ``(5,)`` = x, y, z, yaw, pitch.

    Returns:
        ``(distance, landmark)``; ``(inf, None)`` for a world without landmarks.
    """
    x, z = float(pose[0]), float(pose[2])
    best, nearest = math.inf, None
    for landmark in world.landmarks:
        half = landmark.radius + 0.5
        dx = max(abs(x - landmark.x) - half, 0.0)
        dz = max(abs(z - landmark.z) - half, 0.0)
        distance = math.hypot(dx, dz)
        if distance < best:
            best, nearest = distance, landmark
    return best, nearest


@dataclass(frozen=True)
class LandmarkTask:
    """Parameters of the task (shared by the real env, the reward-head labels and the model env).

    Attributes:
        radius: success when the feet are within this many blocks of a landmark footprint.
        min_start_distance: episodes start at least this far from every landmark (walks closer are
            redrawn), so no episode is won before it starts.
        success_reward: reward of the step that reaches a landmark (the episode then terminates).
        shaping: reward per block of progress towards the nearest landmark (potential-based shaping,
            Ng et al. 1999, with the negative distance as potential; 0 disables it: sparse reward).
    """

    radius: float = 2.0
    min_start_distance: float = 4.0
    success_reward: float = 1.0
    shaping: float = 0.0

    def __post_init__(self) -> None:
        for name in ("radius", "min_start_distance", "success_reward", "shaping"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.radius <= 0:
            raise ValueError(f"radius must be > 0 blocks, got {self.radius}")
        if self.min_start_distance <= self.radius:
            raise ValueError(
                f"min_start_distance ({self.min_start_distance}) must exceed radius ({self.radius}), "
                "or episodes could start already solved"
            )
        if self.shaping < 0:
            raise ValueError(f"shaping must be >= 0, got {self.shaping}")

    def is_success(self, distance: float) -> bool:
        """Whether a distance to the nearest landmark counts as reaching it."""
        return bool(distance <= self.radius)

    def accepts_start(self, world: World, pose: np.ndarray) -> bool:
        """Whether an episode may start at ``pose`` (far enough from every landmark)."""
        return landmark_distance(world, pose)[0] >= self.min_start_distance

    def reward(self, previous_distance: float, distance: float, success: bool) -> float:
        """Reward of one step: success bonus plus optional shaping on the distance change."""
        value = self.success_reward if success else 0.0
        if self.shaping and math.isfinite(previous_distance) and math.isfinite(distance):
            value += self.shaping * (previous_distance - distance)
        return float(value)


@dataclass
class WalkStart:
    """Where an episode starts.

    Attributes:
        frames: uint8 ``(T, R, R, 3)`` frames of the walk (None when not rendered).
        actions: int64 ``(T,)`` the walk.
        world_seed: the world walked in.
        poses: float32 ``(T, 5)`` the true pose after each action of the walk.
    """

    frames: np.ndarray | None
    actions: np.ndarray
    world_seed: int
    poses: np.ndarray | None = None


def walk_start(
    np_random: np.random.Generator,
    env: LoopcraftEnv,
    walk_frames: int,
    world_seed: int | None = None,
    accept: Callable[[World, np.ndarray], bool] | None = None,
    render_frames: bool = True,
) -> WalkStart:
    """Walk a Loopcraft random walk from a world's spawn, redrawing it until ``accept`` is satisfied.

    Draws, in this order and from ``np_random`` only: the world seed (unless given), the start yaw (a
    multiple of 10 degrees) and the walk. ``env`` is left at the end of the walk.

    Args:
        np_random: the calling env's generator.
        env: a ground-truth env (not a task env) that walks and renders.
        walk_frames: actions of the walk (>= 1).
        world_seed: a fixed world, or None to draw one per attempt.
        accept: predicate on ``(world, end pose)``; None accepts the first walk.
        render_frames: render every frame of the walk (else only poses are stepped; the env still
            renders its final frame).

    Raises:
        RuntimeError: no accepted start within `MAX_START_ATTEMPTS` walks.
    """
    for _ in range(MAX_START_ATTEMPTS):
        seed = int(np_random.integers(0, 2**31 - 1)) if world_seed is None else int(world_seed)
        yaw = TURN_DEG * int(np_random.integers(0, 360 // TURN_DEG))
        actions = random_walk(np_random, walk_frames)
        env.reset(options={"world_seed": seed, "yaw": yaw})
        frames = env.walk(actions, render_frames=render_frames)
        if accept is None or accept(env.world, env.pose):
            return WalkStart(frames, actions, seed, env.walked_poses.copy())
    raise RuntimeError(
        f"no accepted episode start in {MAX_START_ATTEMPTS} random walks"
        + ("" if world_seed is None else f" in world {world_seed}; try another world_seed")
    )


def steer_to_landmark(world: World, pose: np.ndarray, tolerance: float = 10.0) -> int:
    """A scripted policy: turn towards the nearest landmark's centre, walk when facing it.

    Args:
        world: the ground-truth world.
        pose: float ``(5,)`` current pose.
        tolerance: walk forward when the bearing error is at most this many degrees.

    Returns:
        The action (0 forward, 1 left, 2 right).
    """
    _, landmark = landmark_distance(world, pose)
    if landmark is None:
        return int(Action.forward)
    sin, cos = trig(float(pose[3]))
    fx, fz = -sin, cos  # heading of the forward action (physics.step_pose)
    tx, tz = landmark.x - float(pose[0]), landmark.z - float(pose[2])
    error = math.degrees(math.atan2(fx * tz - fz * tx, fx * tx + fz * tz))
    if abs(error) <= tolerance:
        return int(Action.forward)
    return int(Action.right if error > 0 else Action.left)
