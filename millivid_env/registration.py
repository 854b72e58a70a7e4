"""The table of environment ids. Entry points are strings so that registering imports no torch."""

from __future__ import annotations

import gymnasium as gym

#: Episode length of the ground-truth world env; long enough for the 512-frame evaluation videos.
LOOPCRAFT_MAX_EPISODE_STEPS = 1024


def register_envs() -> None:
    """Register every millivid-env id with Gymnasium (idempotent)."""
    if "Loopcraft-v0" not in gym.registry:
        gym.register(
            id="Loopcraft-v0",
            entry_point="millivid_env.loopcraft.env:LoopcraftEnv",
            max_episode_steps=LOOPCRAFT_MAX_EPISODE_STEPS,
        )
