"""Ground-truth rollouts of the landmark task, labelled from the true pose (training data of a reward head).

A random policy rarely reaches a landmark, so a share of the episodes follow a scripted policy that
steers towards the nearest landmark (with random actions mixed in); after the first success every
episode lingers a few random steps near the landmark, so that successes are seen from many angles.
Episodes start exactly like the task envs' (`millivid_env.loopcraft.task.walk_start`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from millivid_env.loopcraft.env import LoopcraftEnv
from millivid_env.loopcraft.task import LandmarkTask, landmark_distance, steer_to_landmark, walk_start

__all__ = ["LabelledFrames", "collect_imagined_landmark_frames", "collect_landmark_frames"]


@dataclass
class LabelledFrames:
    """Frames of several episodes with their labels.

    Attributes:
        frames: uint8 ``(N, R, R, 3)``.
        success: bool ``(N,)``: within the task's radius of a landmark.
        distance: float32 ``(N,)``: blocks to the nearest landmark footprint.
        episode: int64 ``(N,)``: index of the episode of each frame.
        scripted: bool ``(E,)``: which episodes followed the scripted policy.
        reached: bool ``(E,)``: which episodes reached a landmark.
    """

    frames: np.ndarray
    success: np.ndarray
    distance: np.ndarray
    episode: np.ndarray
    scripted: np.ndarray
    reached: np.ndarray


def collect_landmark_frames(
    episodes: int,
    max_steps: int = 200,
    seed: int = 0,
    task: LandmarkTask | None = None,
    scripted_fraction: float = 0.5,
    epsilon: float = 0.25,
    linger: int = 16,
    walk_frames: int = 85,
    resolution: int = 64,
    world_size: tuple[int, int, int] | None = None,
    progress: bool = True,
) -> LabelledFrames:
    """Roll out the landmark task in the real world and label every frame.

    Args:
        episodes: number of episodes ``E``.
        max_steps: steps per episode at most.
        seed: episode ``e`` draws everything from ``np.random.default_rng([seed, e])``.
        task: the task (labels and starts); default `LandmarkTask()`.
        scripted_fraction: probability that an episode follows the scripted policy.
        epsilon: probability of a random action in a scripted episode.
        linger: random steps taken after the first success before the episode stops.
        walk_frames: length of the start walk (the world-model env's context length).
        resolution: frame side.
        world_size: world extent (None: the default).
        progress: show a progress bar.

    Returns:
        The `LabelledFrames` (the start frame of each episode included).
    """
    if episodes < 1 or max_steps < 1 or linger < 0 or not 0.0 <= scripted_fraction <= 1.0:
        raise ValueError("episodes and max_steps must be >= 1, linger >= 0, scripted_fraction in [0, 1]")
    task = task or LandmarkTask()
    env = LoopcraftEnv(resolution=resolution, world_size=world_size)
    rows = _Rows()
    scripted = np.zeros(episodes, dtype=bool)
    reached = np.zeros(episodes, dtype=bool)
    for e in tqdm(range(episodes), desc="rollouts", unit="episode", disable=not progress):
        rng = np.random.default_rng([seed, e])
        walk_start(rng, env, walk_frames, accept=task.accepts_start, render_frames=False)
        scripted[e] = rng.random() < scripted_fraction
        reached[e] = _labelled_episode(
            rng, env.frame, env, lambda a: (env.step(a)[0], False), task, bool(scripted[e]),
            max_steps, epsilon, linger, rows, e,
        )  # fmt: skip
    env.close()
    return rows.finish(scripted, reached)


def collect_imagined_landmark_frames(
    env_kwargs: dict[str, Any],
    episodes: int,
    max_steps: int = 200,
    seed: int = 2_000_000,
    scripted_fraction: float = 0.5,
    epsilon: float = 0.25,
    linger: int = 16,
    progress: bool = True,
) -> LabelledFrames:
    """Roll out an imagined landmark env with its ground-truth twin and label every *shown* frame.

    The frames are the world model's (what an agent trained in imagination sees, and what the env's
    reward head reads once encoded); the labels come from the twin's true pose, so a head trained on
    them learns to judge imagined frames. The policies are those of `collect_landmark_frames`
    (scripted steering by the true pose with ``epsilon`` random actions, or uniformly random), and the
    head of ``env_kwargs`` does not end episodes (its threshold is set out of reach).

    Args:
        env_kwargs: constructor kwargs of `MilliVidEnv` with a ``reward_head`` (it sets the task);
            ``ground_truth`` is forced on.
        episodes: number of episodes ``E``.
        max_steps: steps per episode at most.
        seed: episode ``e`` resets with seed ``seed + e`` (the task envs' start of that seed) and draws
            its actions from ``np.random.default_rng([seed, e])``.
        scripted_fraction: probability that an episode follows the scripted policy.
        epsilon: probability of a random action in a scripted episode.
        linger: random steps taken after the first true success before the episode stops.
        progress: show a progress bar.

    Returns:
        The `LabelledFrames` (the start frame of each episode, the last context frame, included).
    """
    from millivid_env.world_model_env import MilliVidEnv

    if episodes < 1 or max_steps < 1 or linger < 0 or not 0.0 <= scripted_fraction <= 1.0:
        raise ValueError("episodes and max_steps must be >= 1, linger >= 0, scripted_fraction in [0, 1]")
    if not env_kwargs.get("reward_head"):
        raise ValueError("collect_imagined_landmark_frames needs env_kwargs['reward_head'] (the task)")
    env = MilliVidEnv(**{**env_kwargs, "ground_truth": True})
    env.reward_model.threshold = float("inf")  # the head's calls never end an episode here
    task = env.reward_model.task
    rows = _Rows()
    scripted = np.zeros(episodes, dtype=bool)
    reached = np.zeros(episodes, dtype=bool)

    def step(action: int) -> tuple[np.ndarray, bool]:
        frame, _, terminated, truncated, _ = env.step(action)
        return frame, terminated or truncated

    for e in tqdm(range(episodes), desc="imagined rollouts", unit="episode", disable=not progress):
        rng = np.random.default_rng([seed, e])
        frame, _ = env.reset(seed=seed + e)
        scripted[e] = rng.random() < scripted_fraction
        reached[e] = _labelled_episode(
            rng, frame, env.ground_truth_env, step, task, bool(scripted[e]), max_steps, epsilon,
            linger, rows, e,
        )  # fmt: skip
    env.close()
    return rows.finish(scripted, reached)


class _Rows:
    """The labelled frames of the episodes collected so far."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.success: list[bool] = []
        self.distance: list[float] = []
        self.episode: list[int] = []

    def add(self, frame: np.ndarray, success: bool, distance: float, episode: int) -> None:
        self.frames.append(frame)
        self.success.append(success)
        self.distance.append(distance)
        self.episode.append(episode)

    def finish(self, scripted: np.ndarray, reached: np.ndarray) -> LabelledFrames:
        return LabelledFrames(
            frames=np.stack(self.frames),
            success=np.array(self.success, dtype=bool),
            distance=np.array(self.distance, dtype=np.float32),
            episode=np.array(self.episode, dtype=np.int64),
            scripted=scripted,
            reached=reached,
        )


def _labelled_episode(
    rng: np.random.Generator,
    frame: np.ndarray,
    truth: Any,
    step: Callable[[int], tuple[np.ndarray, bool]],
    task: LandmarkTask,
    scripted: bool,
    max_steps: int,
    epsilon: float,
    linger: int,
    rows: _Rows,
    episode: int,
) -> bool:
    """One episode: label each shown frame by the true pose, act, and say whether a landmark was reached.

    Args:
        rng: the episode's generator (actions).
        frame: uint8 ``(R, R, 3)`` the first shown frame.
        truth: the env whose ``world`` and ``pose`` are the truth (the real env, or the twin).
        step: ``step(action) -> (next shown frame, episode over)``.
        task: labels (success within its radius).
        scripted: steer by the true pose (with ``epsilon`` random actions) instead of acting randomly.
        max_steps: steps at most.
        epsilon: probability of a random action in a scripted episode.
        linger: random steps taken after the first success before the episode stops.
        rows: where the labelled frames go.
        episode: the episode's number (stored with each frame).
    """
    left, reached = None, False
    for _ in range(max_steps + 1):
        d = landmark_distance(truth.world, truth.pose)[0]
        ok = task.is_success(d)
        rows.add(frame, ok, d, episode)
        if ok and left is None:
            reached, left = True, linger
        if left is not None:
            if left == 0:
                break
            left -= 1
        if scripted and left is None and rng.random() >= epsilon:
            action = steer_to_landmark(truth.world, truth.pose)
        else:
            action = int(rng.integers(0, 3))
        frame, done = step(action)
        if done:
            break
    return reached
