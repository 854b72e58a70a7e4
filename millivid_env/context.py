"""How a world-model episode starts: real context frames, from a Loopcraft walk or given by the user.

Numpy only (no torch): the env encodes the frames into its memory afterwards. All randomness comes
from the env's ``np_random`` in a fixed order (world seed, start yaw, walk, then the seed of the
sampler's torch generator), so a reset seed fixes the whole episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from millivid_env.loopcraft.env import LoopcraftEnv, check_reset_options, check_world_seed
from millivid_env.loopcraft.physics import VALID_ACTIONS_TEXT
from millivid_env.loopcraft.task import walk_start
from millivid_env.loopcraft.world import World

__all__ = ["RESET_OPTIONS", "EpisodeStart", "check_context_frames", "start_episode", "validate_context"]

#: Option keys accepted by the world-model envs' ``reset``.
RESET_OPTIONS = ("context_frames", "context_actions", "world_seed")


@dataclass
class EpisodeStart:
    """The real frames an episode starts from.

    Attributes:
        frames: uint8 ``(T, R, R, 3)`` context frames; frame ``i`` is the observation after action ``i``.
        actions: int64 ``(T,)`` their actions.
        world_seed: the Loopcraft world of the walk (None for user-given context).
        torch_seed: seed of the stream's noise generator.
        poses: float32 ``(T, 5)`` the true poses of the context frames (None for user-given context).
    """

    frames: np.ndarray
    actions: np.ndarray
    world_seed: int | None
    torch_seed: int
    poses: np.ndarray | None = None


def check_context_frames(value: Any, minimum: int) -> int:
    """The ``context_frames`` constructor argument: an int of at least the memory's depth."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"context_frames must be an int >= {minimum} (the memory's depth), got {value!r}")
    return int(value)


def validate_context(
    frames: Any, actions: Any, min_frames: int, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check user-given context frames and actions.

    Args:
        frames: expected uint8 ``(T, R, R, 3)`` with ``T >= min_frames``.
        actions: expected integers ``(T,)`` in {0, 1, 2}.
        min_frames: fewest frames the memory needs.
        resolution: frame side ``R``.

    Returns:
        ``(frames, actions)`` as contiguous uint8 and int64 arrays (copies).

    Raises:
        ValueError: naming what was expected and what was given.
    """
    expected = f"uint8 array of shape (T, {resolution}, {resolution}, 3) with T >= {min_frames}"
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"options['context_frames'] must be a numpy {expected}; got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"options['context_frames'] must be a {expected}; got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[1:] != (resolution, resolution, 3) or len(frames) < min_frames:
        raise ValueError(f"options['context_frames'] must be a {expected}; got shape {frames.shape}")
    array = np.asarray(actions)
    if array.shape != (len(frames),):
        raise ValueError(
            f"options['context_actions'] must have shape ({len(frames)},) (one action per context frame); "
            f"got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise ValueError(f"options['context_actions'] must be integers; got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 2):
        raise ValueError(f"options['context_actions'] has values outside {{0, 1, 2}}; {VALID_ACTIONS_TEXT}")
    return np.ascontiguousarray(frames).copy(), array.astype(np.int64)


def _check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = check_reset_options(options, RESET_OPTIONS)
    given = {"context_frames", "context_actions"} & set(options)
    if len(given) == 1:
        raise ValueError("options 'context_frames' and 'context_actions' must be given together")
    if given and "world_seed" in options:
        raise ValueError(
            "options 'world_seed' and 'context_frames' exclude each other: the context either comes from "
            "a walk in the seed's world or is given"
        )
    check_world_seed(options.get("world_seed"))
    return options


def start_episode(
    np_random: np.random.Generator,
    options: dict[str, Any] | None,
    *,
    context_frames: int,
    min_frames: int,
    twin: LoopcraftEnv,
    ground_truth: bool,
    accept: Callable[[World, np.ndarray], bool] | None = None,
) -> EpisodeStart:
    """Draw (or take from ``options``) the context of a new episode.

    Without context options, the world of ``options["world_seed"]`` (or of a seed drawn from
    ``np_random``) is walked from its spawn, facing a random multiple of 10 degrees, along a
    Loopcraft random walk of ``context_frames`` actions; ``twin`` renders the frames and is left at the
    last one, ready to be stepped alongside the model. A task may reject starts (``accept``): the walk
    (and the world, unless given) is then redrawn (:func:`~millivid_env.loopcraft.task.walk_start`).

    Args:
        np_random: the env's generator.
        options: ``reset`` options (see `RESET_OPTIONS`).
        context_frames: length of the walk.
        min_frames: fewest context frames accepted from ``options``.
        twin: the ground-truth env that renders the walk.
        ground_truth: whether the twin will be stepped alongside (needs a walk, not given frames).
        accept: predicate on ``(world, pose at the end of the walk)``; None accepts every walk.

    Returns:
        The `EpisodeStart`.

    Raises:
        ValueError: unknown or inconsistent options, or invalid context.
    """
    options = _check_options(options)
    if "context_frames" in options:
        if ground_truth:
            raise ValueError(
                "ground_truth=True needs a context walked in a Loopcraft world (the twin must know where "
                "it stands); reset with options={'world_seed': s} or none, or make the env with "
                "ground_truth=False to start from given frames"
            )
        frames, actions = validate_context(
            options["context_frames"], options["context_actions"], min_frames, twin.resolution
        )
        return EpisodeStart(frames, actions, None, _torch_seed(np_random))
    start = walk_start(np_random, twin, context_frames, options.get("world_seed"), accept=accept)
    return EpisodeStart(start.frames, start.actions, start.world_seed, _torch_seed(np_random), start.poses)


def _torch_seed(np_random: np.random.Generator) -> int:
    return int(np_random.integers(0, 2**63 - 1))
