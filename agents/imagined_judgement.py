"""How well a reward head judges *imagined* frames: its success calls against the true pose.

The reward head is trained on latents of real frames (`agents.reward_head_training`), but in
imagination it reads latents that the diffusion model generated. This module measures the second
situation directly: the world-model landmark env runs with its ground-truth twin
(``ground_truth=True``), a policy steers towards a landmark using the twin's true pose (so that
successes happen), and every imagined step's predicted success is compared with the true one.

What is measured is the world model and the head together, which is what an agent trained in
imagination experiences: a frame the model drew without the landmark is a miss even if the head is
perfect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from agents.reward_head_training import classification_metrics
from millivid_env.loopcraft.task import landmark_distance, steer_to_landmark

__all__ = ["ImaginedJudgement", "judge_in_imagination"]


@dataclass
class ImaginedJudgement:
    """Per-step records of imagined episodes.

    Attributes:
        predicted: bool ``(N,)`` the head's success call (probability above the env's threshold).
        probability: float ``(N,)`` the head's success probability.
        truth: bool ``(N,)`` success from the twin's true pose.
        episode: int64 ``(N,)`` episode of each step.
        distance: float ``(N,)`` true distance (blocks) to the nearest landmark after the step.
        frame_error: float ``(N,)`` mean absolute difference of the shown frame from the twin's
            true frame, in grey levels (0-255).
        drawn: bool ``(N,)`` whether the diffusion model ran for the step (its pixels fill what
            nothing seen explains; False: the frame is copied from seen frames alone).
        true_frame_probability: float ``(N,)`` the head's success probability on the twin's *true*
            frame of the step (encoded by the env's autoencoder), with ``true_frames=True``; else None.
    """

    predicted: np.ndarray
    probability: np.ndarray
    truth: np.ndarray
    episode: np.ndarray
    distance: np.ndarray | None = None
    frame_error: np.ndarray | None = None
    drawn: np.ndarray | None = None
    true_frame_probability: np.ndarray | None = None

    def metrics(self) -> dict[str, Any]:
        """Classification metrics over all steps (`classification_metrics`) plus episode counts."""
        out: dict[str, Any] = classification_metrics(self.predicted, self.truth)
        episodes = np.unique(self.episode)
        out["episodes"] = int(len(episodes))
        truly = [bool(self.truth[self.episode == e].any()) for e in episodes]
        called = [bool(self.predicted[self.episode == e].any()) for e in episodes]
        out["episodes_truly_reached"], out["episodes_predicted_reached"] = sum(truly), sum(called)
        true_calls = [bool((self.predicted & self.truth)[self.episode == e].any()) for e in episodes]
        out["episodes_called_rightly"] = sum(true_calls)
        out["episodes_called_wrongly"] = sum(c and not t for c, t in zip(called, true_calls, strict=True))
        if self.frame_error is not None and len(self.frame_error):
            out["frame_error_mean"] = float(self.frame_error.mean())
        if self.drawn is not None and len(self.drawn):
            out["drawn_fraction"] = float(self.drawn.mean())
        if self.true_frame_probability is not None and len(self.true_frame_probability):
            out["true_frames"] = classification_metrics(self.true_frame_probability > 0.5, self.truth)
        return out


def judge_in_imagination(
    env_kwargs: dict[str, Any],
    episodes: int,
    max_steps: int = 200,
    seed: int = 0,
    epsilon: float = 0.25,
    progress: bool = True,
    true_frames: bool = False,
) -> ImaginedJudgement:
    """Run imagined landmark episodes steered by the true pose and record the head's judgements.

    Args:
        env_kwargs: constructor kwargs of `MilliVidEnv` (``reward_head`` required; ``ground_truth``
            is forced on).
        episodes: episodes to run (episode ``e`` resets with seed ``seed + e``).
        max_steps: steps per episode at most.
        seed: first reset seed; also seeds the policy's random actions.
        epsilon: probability of a random action instead of the scripted one.
        progress: show a progress bar.
        true_frames: also judge the twin's true frame of every step (a control: the same head on the
            real view of the same pose).

    Returns:
        The per-step records. An episode stops when the env terminates (the head called success) or
        after ``max_steps`` steps.

    Raises:
        ValueError: no ``reward_head`` in ``env_kwargs``, or ``episodes`` / ``max_steps`` < 1.
    """
    from millivid_env.world_model_env import MilliVidEnv

    if not env_kwargs.get("reward_head"):
        raise ValueError("judge_in_imagination needs env_kwargs['reward_head'] (the head to judge)")
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"episodes and max_steps must be >= 1, got {episodes}, {max_steps}")
    env = MilliVidEnv(**{**env_kwargs, "ground_truth": True})
    task = env.reward_model.task
    rng = np.random.default_rng(seed)
    predicted, probability, truth, episode = [], [], [], []
    distance, frame_error, drawn, true_probability = [], [], [], []
    simulator = getattr(env, "simulator", None)
    for e in tqdm(range(episodes), desc="imagined episodes", unit="episode", disable=not progress):
        _, info = env.reset(seed=seed + e)
        twin = env.ground_truth_env
        for _ in range(max_steps):
            if rng.random() < epsilon:
                action = int(rng.integers(0, 3))
            else:
                action = steer_to_landmark(twin.world, twin.pose)
            filled = getattr(simulator, "frames_filled", 0)
            frame, _, terminated, _, info = env.step(action)
            predicted.append(bool(info["is_success"]))
            probability.append(float(info["success_prob"]))
            d = landmark_distance(twin.world, info["pose"])[0]
            truth.append(task.is_success(d))
            episode.append(e)
            distance.append(float(d))
            true_frame = info["ground_truth"]["frame"].astype(np.float32)
            frame_error.append(float(np.abs(frame.astype(np.float32) - true_frame).mean()))
            drawn.append(getattr(simulator, "frames_filled", 0) > filled)
            if true_frames:
                true_probability.append(_head_probability(env, info["ground_truth"]["frame"]))
            if terminated:
                break
    env.close()
    return ImaginedJudgement(
        predicted=np.array(predicted, dtype=bool),
        probability=np.array(probability, dtype=np.float64),
        truth=np.array(truth, dtype=bool),
        episode=np.array(episode, dtype=np.int64),
        distance=np.array(distance, dtype=np.float64),
        frame_error=np.array(frame_error, dtype=np.float64),
        drawn=np.array(drawn, dtype=bool),
        true_frame_probability=np.array(true_probability, dtype=np.float64) if true_frames else None,
    )


def _head_probability(env: Any, frame: np.ndarray) -> float:
    """The env's reward head's success probability on one frame, encoded as the env encodes its own."""
    import torch

    with torch.no_grad():
        latents = env.world_model.encode_frames(frame[None])
        probability, _ = env.reward_model.head.predict(latents.to(env.world_model.device))
    return float(probability[0])
