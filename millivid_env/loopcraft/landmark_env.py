"""`Loopcraft-Landmark-v0`: walk to a landmark in the ground-truth world (the *reach the landmark* task)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from millivid_env.loopcraft.env import LoopcraftEnv, check_reset_options, check_world_seed
from millivid_env.loopcraft.task import LandmarkTask, landmark_distance, walk_start

#: Option keys accepted by `LoopcraftLandmarkEnv.reset`.
RESET_OPTIONS = ("world_seed",)


class LoopcraftLandmarkEnv(gym.Env):
    """Reach any landmark of a Loopcraft world; reward and termination come from the true pose.

    ## Description

    The world of `Loopcraft-v0`, with a goal: walk until your feet are within `radius` blocks of the
    footprint of one of the world's 3-5 landmarks (tall towers, obelisks, arches, ... of unusual blocks).
    Episodes start where the world-model env `MilliVid-Loopcraft-Landmark-v4` starts for the same
    seed: at the end of a `walk_frames`-action Loopcraft random walk from the world's spawn, redrawn
    until it ends at least `min_start_distance` blocks from every landmark. A typical start is 5-15
    blocks from the nearest landmark (25-70 forward steps when walking straight at it).

    ## Action Space

    `Discrete(3)`: 0 walk forward (~0.22 blocks), 1 turn left 10 degrees, 2 turn right 10 degrees.

    ## Observation Space

    `Box(0, 255, (R, R, 3), uint8)`: the first-person RGB frame (R = `resolution`, 64 by default).

    ## Rewards

    `success_reward` (1.0) on the step that reaches a landmark, else 0.0 (sparse). With `shaping > 0`
    every step also earns `shaping * (d_before - d_after)`, d being the distance to the nearest
    landmark footprint in blocks (potential-based, so the optimal policy is unchanged).

    ## Starting State

    See Description; `options={"world_seed": s}` fixes the world (the walk is still drawn from the
    reset seed).

    ## Episode End

    Terminates when a landmark is reached; truncated at `max_episode_steps` (200 when registered).

    ## Info

    `pose` (float32 x, y, z, yaw, pitch), `world_seed`, `step`, `landmark_distance` (blocks to the
    nearest landmark footprint), `landmark` (its name, e.g. "gold tower") and `is_success` (read by
    stable-baselines3's success-rate logging).

    ## Arguments

    `render_mode` (None, "rgb_array", "human"), `resolution`, `world_size`, `walk_frames` (85: the
    world-model env's context length), `radius` (2.0), `min_start_distance` (4.0), `success_reward`
    (1.0), `shaping` (0.0); see :class:`~millivid_env.loopcraft.task.LandmarkTask`.

    ## Registered Configurations

    | id | max episode steps | random policy success |
    |---|---|---|
    | `Loopcraft-Landmark-v0` | 200 | about 20% (see docs/agents.md) |

    ## Version History

    - v0: initial release.
    """

    # render() is the inner `Loopcraft-v0` env's: same render modes and fps.
    metadata = {**LoopcraftEnv.metadata}

    def __init__(
        self,
        render_mode: str | None = None,
        resolution: int = 64,
        world_size: tuple[int, int, int] | None = None,
        walk_frames: int = 85,
        radius: float = 2.0,
        min_start_distance: float = 4.0,
        success_reward: float = 1.0,
        shaping: float = 0.0,
    ) -> None:
        """Create the env; see the class docstring for the arguments."""
        if isinstance(walk_frames, bool) or not isinstance(walk_frames, (int, np.integer)) or walk_frames < 1:
            raise ValueError(f"walk_frames must be a positive int, got {walk_frames!r}")
        self.world_env = LoopcraftEnv(render_mode=render_mode, resolution=resolution, world_size=world_size)
        self.render_mode = render_mode
        self.task = LandmarkTask(radius, min_start_distance, success_reward, shaping)
        self.walk_frames = int(walk_frames)
        # Actions and frames pass through the inner env unchanged.
        self.action_space = self.world_env.action_space
        self.observation_space = self.world_env.observation_space
        self._distance = float("inf")
        self._steps = 0
        self._started = False

    def _info(self) -> dict[str, Any]:
        env = self.world_env
        distance, landmark = landmark_distance(env.world, env.pose)
        return {
            "pose": env.pose.astype(np.float32),
            "world_seed": env.world_seed,
            "step": self._steps,
            "landmark_distance": float(distance),
            "landmark": "" if landmark is None else landmark.name,
            "is_success": self.task.is_success(distance),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode at the end of an accepted random walk; see the class docstring."""
        super().reset(seed=seed)
        options = check_reset_options(options, RESET_OPTIONS)
        walk_start(
            self.np_random,
            self.world_env,
            self.walk_frames,
            check_world_seed(options.get("world_seed")),
            accept=self.task.accepts_start,
            render_frames=False,
        )
        self._steps = 0
        self._started = True
        info = self._info()
        self._distance = info["landmark_distance"]
        if self.render_mode == "human":
            self.world_env.render()
        return self.world_env.frame, info

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take one action; reward and termination come from the distance to the nearest landmark."""
        if not self._started:
            raise gym.error.ResetNeeded("call env.reset() before env.step()")
        frame = self.world_env.step(action)[0]
        self._steps += 1
        info = self._info()
        success = info["is_success"]
        reward = self.task.reward(self._distance, info["landmark_distance"], success)
        self._distance = info["landmark_distance"]
        return frame, reward, success, False, info

    def render(self) -> np.ndarray | None:
        """The current frame for "rgb_array"; draws the pygame window for "human"."""
        return self.world_env.render()

    def close(self) -> None:
        """Close the window if one is open; safe to call any number of times."""
        self.world_env.close()

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Keys for `gymnasium.utils.play.play` (as `Loopcraft-v0`)."""
        return self.world_env.get_keys_to_action()
