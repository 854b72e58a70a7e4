"""`Loopcraft-v0`: the ground-truth voxel world as a Gymnasium environment."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from millivid_env.loopcraft.physics import TURN_DEG, initial_pose, step_pose, validate_action
from millivid_env.loopcraft.renderer import render, validate_resolution
from millivid_env.loopcraft.world import WORLD_SIZE, World, generate_world

#: Option keys accepted by `LoopcraftEnv.reset`.
RESET_OPTIONS = ("world_seed", "yaw")
#: Edge of the pygame window in "human" render mode, in pixels.
WINDOW_SIZE = 512


def check_render_mode(render_mode: str | None, render_modes: Sequence[str]) -> str | None:
    """The ``render_mode`` constructor argument: None or one of ``render_modes`` (``metadata``'s)."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be one of {render_modes} or None, got {render_mode!r}")
    return render_mode


def check_reset_options(options: dict[str, Any] | None, valid: Sequence[str]) -> dict[str, Any]:
    """A copy of ``reset``'s ``options`` (None: empty); raises ``ValueError`` on keys not in ``valid``."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; valid keys: {list(valid)}")
    return options


def check_world_seed(world_seed: Any) -> int | None:
    """``options["world_seed"]``: None (the env draws one) or a non-negative int."""
    if world_seed is None:
        return None
    if isinstance(world_seed, bool) or not isinstance(world_seed, (int, np.integer)) or world_seed < 0:
        raise ValueError(f"options['world_seed'] must be a non-negative int, got {world_seed!r}")
    return int(world_seed)


class LoopcraftEnv(gym.Env):
    """First-person walk through a seeded Loopcraft world.

    Actions: ``Discrete(3)`` = 0 forward, 1 turn left 10 deg, 2 turn right 10 deg.
    Observations: uint8 (R, R, 3) RGB frames. Reward is always 0.0 and episodes never terminate
    (tasks add rewards; `gym.make` adds the time limit). ``info`` holds ``pose`` (float32 (5,) =
    x, y, z, yaw, pitch with x, y, z the feet), ``world_seed`` and ``step``.

    Each `reset` builds the world of a world seed drawn from ``self.np_random`` (or given as
    ``options={"world_seed": s}``) and starts at its centre with a random yaw (a multiple of 10, or
    ``options={"yaw": d}``).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        resolution: int = 64,
        world_size: tuple[int, int, int] | None = None,
    ) -> None:
        """Create the env.

        Args:
            render_mode: None, "rgb_array" or "human".
            resolution: square frame edge in pixels, a positive multiple of 8.
            world_size: (X, Y, Z) world extent; defaults to `WORLD_SIZE`.
        """
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.resolution = validate_resolution(resolution)
        self.world_size = tuple(int(s) for s in (world_size or WORLD_SIZE))
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        self.world: World | None = None
        self.world_seed: int | None = None
        self.pose: np.ndarray | None = None
        self.steps = 0
        #: float32 ``(T, 5)`` poses after each action of the last :meth:`walk`.
        self.walked_poses = np.zeros((0, 5), np.float32)
        self._frame: np.ndarray | None = None
        self._window: Any = None
        self._clock: Any = None

    def _info(self) -> dict[str, Any]:
        assert self.pose is not None
        return {"pose": self.pose.astype(np.float32), "world_seed": self.world_seed, "step": self.steps}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode; see the class docstring for the options."""
        super().reset(seed=seed)
        options = check_reset_options(options, RESET_OPTIONS)
        world_seed = check_world_seed(options.get("world_seed"))
        if world_seed is None:
            world_seed = int(self.np_random.integers(0, 2**31 - 1))
        yaw = options.get("yaw")
        if yaw is None:
            yaw = TURN_DEG * int(self.np_random.integers(0, 360 // TURN_DEG))
        elif isinstance(yaw, bool) or not isinstance(yaw, (int, np.integer)) or yaw % TURN_DEG != 0:
            raise ValueError(f"options['yaw'] must be an int multiple of {TURN_DEG} (degrees), got {yaw!r}")
        # Regenerating is cheap but not free; reuse the world when the seed repeats.
        if self.world is None or self.world_seed != world_seed or self.world.size != self.world_size:
            self.world = generate_world(world_seed, self.world_size)
        self.world_seed = world_seed
        self.pose = initial_pose(self.world, int(yaw) % 360)
        self.steps = 0
        self._frame = render(self.world, self.pose, self.resolution)
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), self._info()

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action; returns (frame, 0.0, False, False, info)."""
        act = validate_action(action)
        if self.world is None or self.pose is None:
            raise gym.error.ResetNeeded("call env.reset() before env.step()")
        self.pose = step_pose(self.world, self.pose, act)
        self.steps += 1
        self._frame = render(self.world, self.pose, self.resolution)
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), 0.0, False, False, self._info()

    @property
    def frame(self) -> np.ndarray:
        """A copy of the current observation, uint8 (R, R, 3)."""
        if self._frame is None:
            raise gym.error.ResetNeeded("call env.reset() before reading env.frame")
        return self._frame.copy()

    def walk(self, actions: np.ndarray, render_frames: bool = True) -> np.ndarray | None:
        """Apply a sequence of actions at once (as many `step` calls, without drawing the window).

        Args:
            actions: int ``(T,)`` actions in {0, 1, 2}.
            render_frames: return every frame; False steps the poses only and renders the last frame.

        Returns:
            uint8 ``(T, R, R, 3)`` frames (frame i after action i), or None when not rendered. The
            poses after every action are kept in :attr:`walked_poses` (float32 ``(T, 5)``).
        """
        if self.world is None or self.pose is None:
            raise gym.error.ResetNeeded("call env.reset() before env.walk()")
        acts = [validate_action(a) for a in np.asarray(actions).reshape(-1)]
        frames = (
            np.empty((len(acts), self.resolution, self.resolution, 3), np.uint8) if render_frames else None
        )
        poses = np.empty((len(acts), 5), np.float32)
        for i, act in enumerate(acts):
            self.pose = step_pose(self.world, self.pose, act)
            poses[i] = self.pose
            if frames is not None:
                frames[i] = render(self.world, self.pose, self.resolution)
        self.steps += len(acts)
        self.walked_poses = poses
        if acts:
            last = frames[-1] if frames is not None else render(self.world, self.pose, self.resolution)
            self._frame = last.copy()
        return frames

    def render(self) -> np.ndarray | None:
        """The current frame (uint8 (R, R, 3)) for "rgb_array"; draws the pygame window for "human"."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode to gym.make")
            return None
        if self._frame is None:
            raise gym.error.ResetNeeded("call env.reset() before env.render()")
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        self._draw_window(self._frame)
        return None

    def _draw_window(self, frame: np.ndarray) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep stdout clean
        try:
            import pygame
        except ImportError as exc:
            raise gym.error.DependencyNotInstalled(
                'pygame is not installed; run `pip install "millivid-env[play]"` for render_mode="human"'
            ) from exc
        if self._window is None:
            pygame.display.init()
            pygame.display.set_caption("Loopcraft")
            self._window = pygame.display.set_mode((WINDOW_SIZE, WINDOW_SIZE))
            self._clock = pygame.time.Clock()
        # pygame surfaces are (width, height): transpose the (row, col) frame.
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self._window.blit(pygame.transform.scale(surface, self._window.get_size()), (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])

    def close(self) -> None:
        """Close the window if one is open; safe to call any number of times."""
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None
            self._clock = None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Keys for `gymnasium.utils.play.play`: W / up = forward, A / left = left, D / right = right."""
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame

            keys = {
                "forward": (pygame.K_w, pygame.K_UP),
                "left": (pygame.K_a, pygame.K_LEFT),
                "right": (pygame.K_d, pygame.K_RIGHT),
            }
        except ImportError:  # play() also accepts character codes
            keys = {"forward": (ord("w"),), "left": (ord("a"),), "right": (ord("d"),)}
        mapping: dict[tuple[int, ...], int] = {}
        for action, name in enumerate(("forward", "left", "right")):
            for key in keys[name]:
                mapping[(key,)] = action
        return mapping
