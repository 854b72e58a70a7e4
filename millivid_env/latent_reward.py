"""Reward and termination of the world-model envs from a reward head on the model's latents.

Shared by :class:`~millivid_env.world_model_env.MilliVidEnv` and the batched vector env: the head
(:class:`models.reward_head.RewardHead`) reads the newest frame's latents straight from each stream's
hierarchical memory, so no extra decoding or encoding is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from millivid_env.landmark_map import LandmarkMapReward
from millivid_env.loopcraft.task import LandmarkTask
from millivid_env.memory import HierarchicalMemory
from millivid_env.registration import LANDMARK_ENV_ID
from models.checkpoints import CheckpointError, require_kind
from models.reward_head import RewardHead, load_reward_head
from models.warp.homography import ActionWarp
from models.world_model import ARGUMENTS, WorldModel

__all__ = ["LatentReward", "latent_reward_or_none", "task_reward_or_none"]


class LatentReward:
    """A loaded reward head plus the task it was trained for.

    Args:
        name_or_path: reward-head checkpoint (bundled name, local directory or Hub repo id).
        world_model: the env's world model (the head must read its latent layout).
        threshold: success probability above which a frame counts as a success.
        shaping: shaping coefficient of the task (reward per block of predicted progress); None: the
            one the head was trained for (its config).

    Raises:
        CheckpointError: the head cannot be loaded or reads another latent layout.
        ValueError: a threshold outside (0, 1) or a negative shaping.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        world_model: WorldModel,
        threshold: float,
        shaping: float | None = None,
    ) -> None:
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"success_threshold must be in (0, 1), got {threshold!r}")
        if shaping is not None and not float(shaping) >= 0.0:
            raise ValueError(f"shaping must be >= 0 (0: sparse reward), got {shaping!r}")
        self.threshold = float(threshold)
        directory = require_kind(name_or_path, "reward-head", ARGUMENTS["reward-head"], ARGUMENTS)
        self.head: RewardHead = load_reward_head(directory, device=world_model.device)
        config, layout = self.head.config, world_model.layout
        if config.layout != layout.name or config.latent_channels != layout.latent_channels:
            raise CheckpointError(
                f"reward head {name_or_path!s} reads layout {config.layout!r} with {config.latent_channels} "
                f"channels, but the world model uses {layout.name!r} with {layout.latent_channels}; train "
                "a head on this autoencoder (`millivid train-reward-head --autoencoder ...`)"
            )
        if config.task != "landmark":
            raise CheckpointError(
                f"reward head {name_or_path!s} is for task {config.task!r}; known: 'landmark'"
            )
        self.task = LandmarkTask(
            config.radius,
            config.min_start_distance,
            config.success_reward,
            config.shaping if shaping is None else float(shaping),
        )

    def start(
        self,
        stream: int,
        frames: np.ndarray,
        actions: np.ndarray,
        world: object = None,
        true_poses: object = None,
    ) -> None:
        """Nothing to prepare at reset: the head reads each new frame."""

    def advance(self, stream: int, action: int) -> None:
        """Nothing to track between frames: the head reads each new frame."""

    def state(self, stream: int) -> None:
        """Nothing kept per stream (for env snapshots)."""

    def restore(self, stream: int, state: None) -> None:
        """Nothing kept per stream (for env snapshots)."""

    def judge(
        self, memories: Sequence[HierarchicalMemory], streams: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`evaluate` on the newest frames of the given streams."""
        return self.evaluate([memories[i] for i in streams])

    def evaluate(self, memories: Sequence[HierarchicalMemory]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Judge the newest frame of every memory in one batch.

        Returns:
            ``(success bool (B,), success probability float64 (B,), distance float64 (B,))``.
        """
        latents = torch.stack(
            [torch.cat([m.level(lv, 1)[0] for lv in range(len(m.depths))]) for m in memories]
        )  # (B, num_tokens, C)
        prob, distance = self.head.predict(latents)
        prob_np = prob.double().cpu().numpy()
        return prob_np > self.threshold, prob_np, distance.double().cpu().numpy()

    def rewards(self, success: np.ndarray, previous: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """float64 ``(B,)`` rewards from predicted successes and distances (see `LandmarkTask.reward`)."""
        return np.array(
            [
                self.task.reward(float(p), float(d), bool(s))
                for s, p, d in zip(success, previous, distance, strict=True)
            ],
            dtype=np.float64,
        )


def latent_reward_or_none(
    reward_head: str | os.PathLike[str] | None,
    world_model: WorldModel,
    threshold: float,
    shaping: float | None,
) -> LatentReward | None:
    """The env's :class:`LatentReward`, or None without a ``reward_head`` (no task: reward 0).

    Raises:
        ValueError: ``shaping`` given without a ``reward_head`` (it would be silently ignored).
    """
    if reward_head is None:
        if shaping is not None:
            raise ValueError(
                "shaping needs a task: pass reward_head=... (e.g. 'loopcraft-64-landmark') or make "
                f"'{LANDMARK_ENV_ID}'"
            )
        return None
    return LatentReward(reward_head, world_model, threshold, shaping)


def task_reward_or_none(
    reward_head: str | os.PathLike[str] | None,
    landmark_locator: str | os.PathLike[str] | None,
    world_model: WorldModel,
    warp: ActionWarp | None,
    threshold: float,
    shaping: float | None,
    num_streams: int,
) -> LatentReward | LandmarkMapReward | None:
    """The env's task reward: a reward head on the frames, a map of the context's landmarks, or None.

    Raises:
        ValueError: both given; ``landmark_locator`` without a ``warp`` (its fitted motion dead-reckons
            the pose); ``shaping`` without a task.
    """
    if landmark_locator is None:
        return latent_reward_or_none(reward_head, world_model, threshold, shaping)
    if reward_head is not None:
        raise ValueError(
            "pass reward_head=... (a head on each frame) or landmark_locator=... (a map of the context), "
            "not both"
        )
    if warp is None:
        raise ValueError(
            "landmark_locator needs warp=... (e.g. 'loopcraft-64-warp'): its fitted motion per action "
            "dead-reckons the pose that the map judges"
        )
    if shaping is not None and not float(shaping) >= 0.0:
        raise ValueError(f"shaping must be >= 0 (0: sparse reward), got {shaping!r}")
    task = LandmarkTask(shaping=0.0 if shaping is None else float(shaping))
    motion = warp.motion.detach().cpu().double().numpy()
    return LandmarkMapReward(landmark_locator, motion, num_streams, task, device=str(world_model.device))
