"""One input convention for every metric: frames become ``(N, 3, H, W)`` float32 in ``[0, 1]``.

Two layouts are accepted, told apart by dtype so that no shape guessing is needed:

- floating point, channels first: ``(..., 3, H, W)`` with values in ``[0, 1]`` (model outputs);
  values outside are clipped, as the protocol clips predictions;
- ``uint8``, channels last: ``(..., H, W, 3)`` (dataset frames, PNGs).

Any leading dimensions (none, frames, videos x frames) are flattened to ``N`` and handed back so that
per-frame results can be reshaped to them.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def to_frames(x: ArrayLike, name: str = "frames") -> tuple[torch.Tensor, tuple[int, ...]]:
    """Normalise a frame tensor to ``(N, 3, H, W)`` float32 in ``[0, 1]``.

    Args:
        x: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``; a numpy array or tensor.
        name: what to call ``x`` in error messages.

    Returns:
        ``(frames, lead)``: frames ``(N, 3, H, W)`` float32 on ``x``'s device, and the leading shape
        ``lead`` with ``prod(lead) == N`` (``()`` for a single frame).

    Raises:
        TypeError: not a tensor/array, or a dtype other than floating point or uint8.
        ValueError: a shape that is not one of the two layouts, or non-finite values.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        if x.ndim < 3 or x.shape[-1] != 3:
            raise ValueError(
                f"{name}: uint8 frames must be channels-last (..., H, W, 3), got {tuple(x.shape)}"
            )
        lead = tuple(x.shape[:-3])
        frames = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    elif x.is_floating_point():
        if x.ndim < 3 or x.shape[-3] != 3:
            raise ValueError(
                f"{name}: float frames must be channels-first (..., 3, H, W) in [0, 1], got {tuple(x.shape)} "
                "(channels-last frames must be uint8)"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or infinite values")
        lead = tuple(x.shape[:-3])
        # Clip like the protocol does for predictions; a no-op for valid frames.
        frames = x.reshape(-1, *x.shape[-3:]).float().clamp(0.0, 1.0)
    else:
        raise TypeError(f"{name}: dtype {x.dtype} not supported; use float in [0, 1] or uint8 in [0, 255]")
    if frames.shape[0] == 0:
        raise ValueError(f"{name}: no frames")
    return frames, lead


def paired_frames(pred: ArrayLike, target: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Normalise a (prediction, target) pair and check that the frames correspond one to one.

    Args:
        pred: predicted frames, either layout of :func:`to_frames`.
        target: ground-truth frames, either layout (need not match ``pred``'s layout).

    Returns:
        ``(pred, target, lead)`` with ``pred`` and ``target`` ``(N, 3, H, W)`` float32 in ``[0, 1]``.

    Raises:
        ValueError: the two do not have the same leading shape and frame size.
    """
    p, lead_p = to_frames(pred, "pred")
    t, lead_t = to_frames(target, "target")
    if lead_p != lead_t or p.shape != t.shape:
        raise ValueError(
            f"pred and target do not match: {lead_p} x {tuple(p.shape[1:])} "
            f"vs {lead_t} x {tuple(t.shape[1:])}"
        )
    if t.device != p.device:
        t = t.to(p.device)
    return p, t, lead_p
