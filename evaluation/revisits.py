"""Revisits: frames whose camera pose is close to a pose seen earlier.

A pose is float ``(5,)`` = ``(x, y, z, yaw, pitch)`` with positions in blocks and yaw in degrees
(Loopcraft's convention). Frame ``t`` *revisits* frame ``s`` when ``t - s >= min_gap``, the camera
positions are within ``max_distance`` blocks (3-D Euclidean) and the headings within ``max_yaw``
degrees. Among several candidates the one with the smallest ``distance / max_distance + yaw / max_yaw``
wins. Used by the recall wrappers (live) and by the report's frame strips (test loops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RevisitTolerance:
    """How close a pose must be to count as a revisit.

    Attributes:
        max_distance: camera position distance in blocks (a forward step is ~0.22 blocks).
        max_yaw: heading difference in degrees (a turn step is 10 degrees).
        min_gap: the earlier frame must be at least this many frames older.
    """

    max_distance: float = 1.0
    max_yaw: float = 15.0
    min_gap: int = 32

    def __post_init__(self) -> None:
        if self.max_distance < 0 or not 0 <= self.max_yaw <= 180 or self.min_gap < 1:
            raise ValueError(
                f"need max_distance >= 0, 0 <= max_yaw <= 180 and min_gap >= 1; got {self.max_distance}, "
                f"{self.max_yaw}, {self.min_gap}"
            )


@dataclass(frozen=True)
class Match:
    """The earlier pose a frame revisits.

    Attributes:
        index: position of the earlier pose in the array searched.
        distance: position distance in blocks.
        yaw: heading difference in degrees (0..180).
    """

    index: int
    distance: float
    yaw: float


def yaw_difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Absolute heading difference in degrees, in ``[0, 180]`` (broadcasts)."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % 360.0
    return np.minimum(d, 360.0 - d)


def _check_poses(poses: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(poses, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 4:
        raise ValueError(f"{name} must be (N, 5) poses (x, y, z, yaw, pitch); got shape {array.shape}")
    return array


def match_pose(pose: np.ndarray, earlier: np.ndarray, tolerance: RevisitTolerance) -> Match | None:
    """The best earlier pose within the tolerance (``min_gap`` is the caller's job here).

    Args:
        pose: float ``(5,)`` current pose.
        earlier: float ``(N, 5)`` candidate poses (may be empty).
        tolerance: distance and yaw limits.

    Returns:
        The best :class:`Match`, or None.
    """
    candidates = _check_poses(np.reshape(earlier, (-1, np.shape(pose)[-1])), "earlier")
    if len(candidates) == 0:
        return None
    p = np.asarray(pose, dtype=np.float64)
    dist = np.linalg.norm(candidates[:, :3] - p[:3], axis=1)
    yaw = yaw_difference(candidates[:, 3], p[3])
    ok = (dist <= tolerance.max_distance) & (yaw <= tolerance.max_yaw)
    if not ok.any():
        return None
    score = dist / max(tolerance.max_distance, 1e-9) + yaw / max(tolerance.max_yaw, 1e-9)
    best = int(np.flatnonzero(ok)[np.argmin(score[ok])])
    return Match(best, float(dist[best]), float(yaw[best]))


def context_revisits(poses: np.ndarray, context: int, tolerance: RevisitTolerance) -> list[tuple[int, Match]]:
    """Rollout frames of a test video that revisit a context pose.

    Args:
        poses: float ``(C + T, 5)`` poses of the whole video.
        context: ``C``; rollout frame ``i`` is video frame ``C + i``.
        tolerance: distance/yaw limits; ``min_gap`` applies between video frame numbers.

    Returns:
        ``[(i, match), ...]`` in order of ``i``; ``match.index`` is a context frame number.
    """
    array = _check_poses(poses, "poses")
    out = []
    for i in range(len(array) - context):
        t = context + i
        last = min(context, t - tolerance.min_gap + 1)
        if last <= 0:
            continue
        match = match_pose(array[t], array[:last], tolerance)
        if match is not None:
            out.append((i, match))
    return out


def spread(items: list, count: int) -> list:
    """Up to ``count`` items evenly spaced over the list (first and last included)."""
    if count <= 0 or not items:
        return []
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[k] for k in picks]
