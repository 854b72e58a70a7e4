"""Model-free baselines of the evaluation: frames a predictor could show without any world model.

- the **held frame**: the last true context frame repeated (:func:`held_frames`);
- the **oracle look-up**: for every generated frame, the context frame whose *true* pose is nearest to
  that frame's true pose (:func:`nearest_pose_frames`, :func:`oracle_lookup_frames`). It uses the true
  poses, which no model is given, so it is not a bound: it tells how far a model is from a perfect
  look-up of what it was shown. A model that remembers the context and knows where the camera is can
  reach it; one that also renders what the context never showed can beat it.

Pose distance: ``||Δ(x, z)||`` in blocks plus ``|Δyaw|`` in degrees (wrapped to ``[-180, 180]``)
divided by :data:`DEGREES_PER_BLOCK` (a 30-degree turn counts as far as one block of walking). Height
and pitch are ignored. Ties go to the earlier context frame.
"""

from __future__ import annotations

import numpy as np

#: Degrees of heading difference that count as one block of distance in the oracle look-up.
DEGREES_PER_BLOCK = 30.0


def pose_distances(
    context_poses: np.ndarray, poses: np.ndarray, degrees_per_block: float = DEGREES_PER_BLOCK
) -> np.ndarray:
    """Distance of every pose to every context pose (see the module docstring).

    Args:
        context_poses: float ``(C, 5)`` ``(x, y, z, yaw, pitch)`` of the context frames.
        poses: float ``(N, 5)``.
        degrees_per_block: yaw degrees worth one block.

    Returns:
        float64 ``(N, C)``.
    """
    context = np.asarray(context_poses, dtype=np.float64)
    query = np.asarray(poses, dtype=np.float64)
    for name, array in (("context_poses", context), ("poses", query)):
        if array.ndim != 2 or array.shape[1] < 4:
            raise ValueError(f"{name} must be (N, 5) poses (x, y, z, yaw, pitch); got shape {array.shape}")
    if len(context) == 0:
        raise ValueError("context_poses is empty: there is no context frame to look up")
    offset = np.linalg.norm(query[:, None, [0, 2]] - context[None, :, [0, 2]], axis=-1)
    yaw = np.abs((query[:, None, 3] - context[None, :, 3] + 180.0) % 360.0 - 180.0)
    return offset + yaw / degrees_per_block


def nearest_pose_frames(
    context_poses: np.ndarray, poses: np.ndarray, degrees_per_block: float = DEGREES_PER_BLOCK
) -> np.ndarray:
    """Index of the context pose nearest to each pose (the oracle look-up's choice).

    Args:
        context_poses: float ``(C, 5)`` ``(x, y, z, yaw, pitch)`` of the context frames.
        poses: float ``(N, 5)``.
        degrees_per_block: yaw degrees worth one block.

    Returns:
        int64 ``(N,)`` indices into the context.
    """
    return np.argmin(pose_distances(context_poses, poses, degrees_per_block), axis=1).astype(np.int64)


def held_frames(frames: np.ndarray, context: int) -> np.ndarray:
    """The held-frame baseline of a video: its frame ``context - 1`` repeated for the rest.

    Args:
        frames: uint8 ``(C + T, R, R, 3)`` true frames.
        context: ``C``.

    Returns:
        uint8 ``(T, R, R, 3)``.
    """
    return np.repeat(frames[context - 1 : context], len(frames) - context, axis=0)


def oracle_lookup_frames(
    frames: np.ndarray, poses: np.ndarray, context: int
) -> tuple[np.ndarray, np.ndarray]:
    """The oracle look-up of a video: for each future frame, the context frame of nearest true pose.

    Args:
        frames: uint8 ``(C + T, R, R, 3)`` true frames.
        poses: float ``(C + T, 5)`` true poses (pose ``i`` is the view of frame ``i``).
        context: ``C``.

    Returns:
        ``(looked_up, index)``: uint8 ``(T, R, R, 3)`` frames and int64 ``(T,)`` the context frame
        each one is.
    """
    if len(poses) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(poses)} poses")
    index = nearest_pose_frames(poses[:context], poses[context:])
    return frames[index], index
