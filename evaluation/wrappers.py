"""Recall wrappers: measure, live, whether a world-model env remembers a place when the agent returns.

:class:`RecallWrapper` wraps an env that carries a ground-truth shadow in ``info`` (the world-model env
``MilliVid-Loopcraft-v4`` made with ``ground_truth=True``: ``info["ground_truth"] = {"frame": uint8
(R, R, 3), "pose": float32 (5,)}``). At every step it looks for an earlier step of the episode, at
least ``min_gap`` steps back, whose true pose is within ``max_distance`` blocks and ``max_yaw``
degrees of the current one (:mod:`evaluation.revisits`). On such a *revisit* it records

- ``to_truth``: distance between the model's frame and the true frame now (consistency with reality);
- ``to_earlier``: distance between the model's frame now and the model's own frame at the earlier
  step (self-consistency: does it show the same place again?);
- ``truth_to_earlier``: the same between the two true frames (how much the view really changed
  between the two poses: the floor ``to_earlier`` can be compared with).

The distance is LPIPS by default (the standard LPIPS-Alex when its weights are configured, else
ST-LPIPS-Alex; the name is reported), or PSNR / SSIM / any callable. ``info["recall"]`` carries the
current step's result and the running statistics; when the episode ends (``terminated`` or
``truncated``) ``info["recall_summary"]`` has the episode summary, also available as
:meth:`RecallWrapper.summary`. The frame at reset is the last real context frame; when the env's reset
info also has the true ``context_frames`` and ``context_poses`` (the world-model envs with
``ground_truth=True``), the context frames are earlier steps too (context frame ``i`` of ``T`` at step
``i - T + 1``), and ``against="context"`` scores only returns to them: the revisits bucket of
``millivid evaluate`` (true pose within 1 block and 15 degrees of a context pose at least 32 frames
earlier), live.

Example::

    env = RecallWrapper(gym.make("MilliVid-Loopcraft-v4", ground_truth=True), min_gap=32)
    obs, info = env.reset(seed=0)
    ...  # step; info["recall"]["revisit"] tells when a revisit was scored

    # the revisits bucket: returns to the places of the context only
    env = RecallWrapper(gym.make("MilliVid-Loopcraft-v4", ground_truth=True), against="context")
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from evaluation.revisits import RevisitTolerance, match_pose
from millivid_env.registration import DEFAULT_ENV_ID

FrameDistance = Callable[[np.ndarray, np.ndarray], torch.Tensor | np.ndarray | float]
_KEYS = ("to_truth", "to_earlier", "truth_to_earlier")


@dataclass
class _Running:
    """Running mean / min / max of one distance."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def stats(self) -> dict[str, float | None]:
        if not self.values:
            return {"mean": None, "min": None, "max": None}
        v = np.asarray(self.values)
        return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def make_frame_distance(
    metric: str | FrameDistance = "lpips", alexnet_weights: str | None = None
) -> tuple[FrameDistance, str, bool]:
    """``(distance(a, b), name, higher_is_better)`` for uint8 ``(N, R, R, 3)`` frame pairs.

    Args:
        metric: ``"lpips"`` (default), ``"psnr"``, ``"ssim"``, or a callable returning ``(N,)``
            distances (named after its ``name`` attribute or function name; lower is better).
        alexnet_weights: AlexNet trunk for standard LPIPS-Alex (else ``$MILLIVID_ALEXNET_WEIGHTS``,
            else ST-LPIPS-Alex).

    Raises:
        ValueError: an unknown metric name.
    """
    if callable(metric):
        return metric, getattr(metric, "name", getattr(metric, "__name__", "custom")), False
    if metric == "lpips":
        import warnings

        from evaluation.metrics.lpips import make_perceptual_metric

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the variant is reported by name
            network = make_perceptual_metric(alexnet_weights=alexnet_weights)
        return network, network.name, False
    if metric == "psnr":
        from evaluation.metrics.psnr import psnr

        return psnr, "PSNR (dB)", True
    if metric == "ssim":
        from evaluation.metrics.ssim import ssim

        return ssim, "SSIM", True
    raise ValueError(f"metric must be 'lpips', 'psnr', 'ssim' or a callable, got {metric!r}")


class RecallWrapper(gym.Wrapper):
    """Scores the model's frames at revisits of earlier poses against the ground truth and itself.

    Args:
        env: an env whose ``info`` has ``ground_truth.frame`` and ``ground_truth.pose`` after every reset
            and step (e.g. ``gym.make("MilliVid-Loopcraft-v4", ground_truth=True)``).
        max_distance: revisit radius in blocks.
        max_yaw: revisit heading tolerance in degrees.
        min_gap: the earlier step must be at least this many steps back.
        metric: ``"lpips"`` (default), ``"psnr"``, ``"ssim"`` or a callable (see
            :func:`make_frame_distance`).
        history: steps remembered (bounds memory: ``history`` x 2 frames).
        alexnet_weights: AlexNet trunk for standard LPIPS-Alex.
        against: ``"all"`` (every earlier step, the context included when the env reports it) or
            ``"context"`` (only the context frames: the env must report them at reset).

    Raises:
        ValueError: bad tolerances, an unknown metric, a bad ``against``, or (at reset) an env without
            the ground truth (or, with ``against="context"``, without the context).
    """

    def __init__(
        self,
        env: gym.Env,
        max_distance: float = 1.0,
        max_yaw: float = 15.0,
        min_gap: int = 32,
        metric: str | FrameDistance = "lpips",
        history: int = 4096,
        alexnet_weights: str | None = None,
        against: str = "all",
    ) -> None:
        super().__init__(env)
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if against not in ("all", "context"):
            raise ValueError(f"against must be 'all' or 'context', got {against!r}")
        self.against = against
        self.tolerance = RevisitTolerance(float(max_distance), float(max_yaw), int(min_gap))
        self.distance, self.metric_name, self.higher_is_better = make_frame_distance(metric, alexnet_weights)
        self._history: deque[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=int(history))
        self._step = 0
        self._running = {key: _Running() for key in _KEYS}
        self._revisits: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ gym API
    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the recall statistics."""
        obs, info = self.env.reset(**kwargs)
        self._history.clear()
        self._step = 0
        self._running = {key: _Running() for key in _KEYS}
        self._revisits = []
        truth, pose = self._truth(info)
        shadow = info["ground_truth"]
        if "context_poses" in shadow and "context_frames" in shadow:
            # The context frames are what the model was shown (its frames there are the true ones).
            poses = np.asarray(shadow["context_poses"], dtype=np.float64)
            frames = np.asarray(shadow["context_frames"])
            first = 1 - len(poses)
            for i, (p, f) in enumerate(zip(poses[:-1], frames[:-1], strict=True)):
                self._history.append((first + i, p, f, f))
        elif self.against == "context":
            raise ValueError(
                "RecallWrapper(against='context') needs the true context in the reset info "
                "(info['ground_truth']['context_frames'] and ['context_poses']); the world-model envs "
                "give it with ground_truth=True when they walk the context themselves (no context_frames "
                "reset option)"
            )
        self._history.append((0, pose, np.asarray(obs).copy(), truth.copy()))
        info["recall"] = self._record(None)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env; score the frame when the true pose revisits an earlier one."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        truth, pose = self._truth(info)
        frame = np.asarray(obs)
        found = None
        older = [
            h
            for h in self._history
            if h[0] <= self._step - self.tolerance.min_gap and (self.against == "all" or h[0] <= 0)
        ]
        if older:
            match = match_pose(pose, np.stack([h[1] for h in older]), self.tolerance)
            if match is not None:
                step, _, model_then, truth_then = older[match.index]
                a = np.stack([frame, frame, truth])
                b = np.stack([truth, model_then, truth_then])
                values = np.asarray(torch.as_tensor(self.distance(a, b)).detach().cpu(), dtype=np.float64)
                found = {
                    "step": self._step,
                    "matched_step": int(step),
                    "pose_distance": match.distance,
                    "yaw_difference": match.yaw,
                    **{key: float(v) for key, v in zip(_KEYS, values, strict=True)},
                }
                self._revisits.append(found)
                for key in _KEYS:
                    self._running[key].add(found[key])
        self._history.append((self._step, pose, frame.copy(), truth.copy()))
        info["recall"] = self._record(found)
        if terminated or truncated:
            info["recall_summary"] = self.summary()
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, Any]:
        """Episode summary: metric, tolerance, steps, number of revisits and statistics of each distance."""
        return {
            "metric": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "tolerance": {
                "max_distance": self.tolerance.max_distance,
                "max_yaw": self.tolerance.max_yaw,
                "min_gap": self.tolerance.min_gap,
            },
            "against": self.against,
            "steps": self._step,
            "revisits": len(self._revisits),
            **{key: self._running[key].stats() for key in _KEYS},
        }

    @property
    def revisits(self) -> list[dict[str, Any]]:
        """Every scored revisit of the episode (step, matched step, pose distance, yaw, distances)."""
        return list(self._revisits)

    def _record(self, found: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "revisit": found is not None,
            **(found or {}),
            "count": len(self._revisits),
            **{f"mean_{key}": self._running[key].stats()["mean"] for key in _KEYS},
            "metric": self.metric_name,
        }

    @staticmethod
    def _truth(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        shadow = info.get("ground_truth")
        if not isinstance(shadow, dict) or "frame" not in shadow or "pose" not in shadow:
            raise ValueError(
                "RecallWrapper needs the ground-truth shadow in info['ground_truth'] (frame and pose); "
                "create the env with ground_truth=True, e.g. "
                f"gym.make('{DEFAULT_ENV_ID}', ground_truth=True)"
            )
        return np.asarray(shadow["frame"]), np.asarray(shadow["pose"], dtype=np.float64)
