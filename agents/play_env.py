"""The env side of `millivid play`: making a playable env, checking its spaces, and its recorder."""

from __future__ import annotations

import inspect
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.recording import EpisodeRecorder

__all__ = ["GROUND_TRUTH_ID", "check_spaces", "is_ground_truth_env", "make_env", "make_recorder"]

#: The real world: the only env whose frames *are* the ground truth.
GROUND_TRUTH_ID = "Loopcraft-v0"


def _accepts_ground_truth(env_id: str) -> bool:
    """Whether the env behind ``env_id`` takes a ``ground_truth`` constructor argument."""
    creator = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    try:
        return "ground_truth" in inspect.signature(creator).parameters
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return False


def make_env(env_id: str, ground_truth: bool = False) -> gym.Env:
    """Make a playable env (``render_mode="rgb_array"``).

    Args:
        env_id: a registered id with Loopcraft's spaces (``module:Id`` imports ``module`` first).
        ground_truth: also step the ground-truth twin, for envs whose constructor takes
            ``ground_truth`` (world-model envs); ignored by the others.

    Returns:
        The env, wrapped by `gym.make` (time limit included).
    """
    import millivid_env  # noqa: F401  (registers the ids)

    kwargs: dict[str, Any] = {"render_mode": "rgb_array"}
    if ground_truth and env_id.rpartition(":")[2] != GROUND_TRUTH_ID and _accepts_ground_truth(env_id):
        kwargs["ground_truth"] = True
    return gym.make(env_id, **kwargs)


def check_spaces(env: gym.Env) -> int:
    """Check that ``env`` has Loopcraft's spaces and return the frame edge ``R``.

    Raises:
        ValueError: other spaces (the keymap and the recording format assume Loopcraft's).
    """
    action_space, obs_space = env.action_space, env.observation_space
    is_image = (
        isinstance(obs_space, spaces.Box)
        and obs_space.dtype == np.uint8
        and len(obs_space.shape) == 3
        and obs_space.shape[2] == 3
        and obs_space.shape[0] == obs_space.shape[1]
    )
    if action_space != spaces.Discrete(3) or not is_image:
        raise ValueError(
            "millivid play needs Loopcraft's spaces: Discrete(3) actions (forward, left, right) and "
            f"uint8 (R, R, 3) frames; got actions {action_space} and observations {obs_space}"
        )
    return int(obs_space.shape[0])


def is_ground_truth_env(env: gym.Env) -> bool:
    """Whether ``env`` is the real Loopcraft world (not a model of it)."""
    from millivid_env.loopcraft.env import LoopcraftEnv

    return isinstance(env.unwrapped, LoopcraftEnv)


def make_recorder(
    env: gym.Env, env_id: str, folder: str | os.PathLike[str], *, wait: bool, fps: float
) -> EpisodeRecorder:
    """The recorder that writes the episodes played in ``env`` to ``folder`` in the dataset format."""
    from millivid_env.loopcraft.generate import generator_version
    from millivid_env.loopcraft.world import WORLD_SIZE

    # Real frames carry the generator's version; a model's frames are labelled by the env id, so the
    # two never pass for one another in the dataset config.
    version = generator_version() if is_ground_truth_env(env) else f"env:{env_id}"
    return EpisodeRecorder(
        folder,
        env_id=env_id,
        resolution=check_spaces(env),
        world_size=getattr(env.unwrapped, "world_size", WORLD_SIZE),
        generator_version=version,
        session={"play_mode": "turn-based" if wait else "real time", "fps": fps},
    )
