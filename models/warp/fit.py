"""Fit an :class:`~models.warp.homography.ActionWarp` to consecutive true frames of a video dataset.

Each action's homography minimises the mean absolute difference between the warped previous frame
and the next frame over the pixels the warp can see. The loss is non-convex in the homography (a
turn moves the view by ~8 px, beyond the reach of pixel gradients), so it is minimised coarse to
fine: first on frames blurred by a wide box filter, where a shift of 8 px is a small change, then on
sharper ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.warp.homography import ActionWarp

__all__ = ["FitReport", "fit_motion", "fit_warp", "frame_pairs"]


def frame_pairs(
    videos: Sequence[tuple[np.ndarray, np.ndarray]], per_action: int, num_actions: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Draw ``per_action`` (previous, next) frame pairs of every action.

    Args:
        videos: ``(frames uint8 (T, R, R, 3), actions int (T,))`` per video; frame ``i`` is the view
            after action ``i``.
        per_action: pairs drawn per action (fewer if the videos hold fewer).
        num_actions: number of actions.
        seed: seed of the draw.

    Returns:
        Per action: float ``(N, 3, R, R)`` previous and next frames in ``[0, 1]``.
    """
    rng = np.random.default_rng(seed)
    where: list[list[tuple[int, int]]] = [[] for _ in range(num_actions)]
    for v, (_, actions) in enumerate(videos):
        for i in range(1, len(actions)):
            where[int(actions[i])].append((v, i))
    pairs = []
    for action in range(num_actions):
        if not where[action]:
            raise ValueError(f"the videos hold no step of action {action}: cannot fit its warp")
        pick = rng.choice(len(where[action]), size=min(per_action, len(where[action])), replace=False)
        prev = np.stack([videos[where[action][k][0]][0][where[action][k][1] - 1] for k in pick])
        nxt = np.stack([videos[where[action][k][0]][0][where[action][k][1]] for k in pick])
        pairs.append(tuple(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 for x in (prev, nxt)))
    return pairs


def _blur(x: torch.Tensor, width: int) -> torch.Tensor:
    """Box blur of ``(N, C, R, R)`` frames by ``width`` pixels (1: unchanged), same size."""
    if width <= 1:
        return x
    return F.interpolate(F.avg_pool2d(x, width), size=x.shape[-2:], mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class FitReport:
    """Per action, the mean absolute error of the fitted warp and of the held frame on the fit pairs."""

    warp_error: tuple[float, ...]
    held_error: tuple[float, ...]


def masked_l1(warped: torch.Tensor, valid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the valid pixels (a scalar)."""
    return ((warped - target).abs() * valid).sum() / (valid.sum() * target.shape[1]).clamp_min(1.0)


def fit_warp(
    warp: ActionWarp,
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    blur_widths: Sequence[int] = (16, 8, 4, 2, 1),
    steps_per_width: int = 150,
    lr: float = 3e-3,
    progress: bool = True,
) -> FitReport:
    """Fit every action's homography to its (previous, next) pairs, coarse to fine (in place).

    Args:
        warp: the warp to fit (its current homographies are the starting point).
        pairs: per action, float ``(N, 3, R, R)`` previous and next frames (:func:`frame_pairs`).
        blur_widths: box-blur widths of the stages, widest first.
        steps_per_width: Adam steps per stage.
        lr: Adam learning rate.
        progress: show a progress bar.

    Returns:
        The final errors, next to those of the held frame.
    """
    if len(pairs) != warp.config.num_actions:
        raise ValueError(f"need pairs for {warp.config.num_actions} actions, got {len(pairs)}")
    optimiser = torch.optim.Adam(warp.parameters(), lr=lr)
    # All actions in one batch: one resampling call per step instead of one per action.
    actions = torch.cat([torch.full((len(p),), a, dtype=torch.long) for a, (p, _) in enumerate(pairs)])
    bar = tqdm(
        total=len(blur_widths) * steps_per_width, desc="fit warp", disable=not progress, mininterval=2.0
    )
    for width in blur_widths:
        prev = torch.cat([_blur(p, width) for p, _ in pairs])
        nxt = torch.cat([_blur(n, width) for _, n in pairs])
        for _ in range(steps_per_width):
            optimiser.zero_grad()
            loss = masked_l1(*warp(prev, actions), nxt)
            loss.backward()
            optimiser.step()
            bar.update()
            bar.set_postfix(blur=width, loss=f"{loss.item():.4f}", refresh=False)
    bar.close()
    with torch.no_grad():
        warp_error = tuple(
            float(masked_l1(*warp(p, torch.full((len(p),), a)), n)) for a, (p, n) in enumerate(pairs)
        )
        held_error = tuple(float((p - n).abs().mean()) for p, n in pairs)
    return FitReport(warp_error, held_error)


def fit_motion(poses: Sequence[np.ndarray], actions: Sequence[np.ndarray], num_actions: int) -> np.ndarray:
    """Mean camera motion per action: blocks walked along the view and degrees of yaw turned.

    Args:
        poses: per video, float ``(T, 5)`` (x, y, z, yaw, pitch); frame ``i`` is after action ``i``.
        actions: per video, int ``(T,)``.
        num_actions: number of actions.

    Returns:
        float64 ``(num_actions, 2)``.
    """
    sums = np.zeros((num_actions, 2))
    counts = np.zeros(num_actions)
    for pose, action in zip(poses, actions, strict=True):
        yaw = np.deg2rad(pose[:-1, 3])
        delta = pose[1:, [0, 2]] - pose[:-1, [0, 2]]
        along = -np.sin(yaw) * delta[:, 0] + np.cos(yaw) * delta[:, 1]
        turn = (pose[1:, 3] - pose[:-1, 3] + 180.0) % 360.0 - 180.0
        np.add.at(sums, action[1:], np.stack([along, turn], 1))
        np.add.at(counts, action[1:], 1)
    if (counts == 0).any():
        raise ValueError(f"the videos hold no step of actions {np.flatnonzero(counts == 0).tolist()}")
    return sums / counts[:, None]
