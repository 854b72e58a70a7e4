"""PSNR per frame (method §8.2): clip both to ``[0, 1]``, MSE over (c, h, w), ``-10 log10(MSE)``."""

from __future__ import annotations

import torch

from evaluation.metrics._inputs import ArrayLike, paired_frames

NAME = "PSNR"
# MSE floor: identical frames score 100 dB instead of +inf, so means over frames stay finite.
MSE_FLOOR = 1e-10
MAX_DB = 100.0


def psnr(pred: ArrayLike, target: ArrayLike) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per frame, data range 1.

    Args:
        pred: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``.
        target: same leading shape and frame size as ``pred``, either layout.

    Returns:
        float32 tensor of the leading shape (``(N,)`` for ``(N, 3, H, W)`` input); identical frames
        give :data:`MAX_DB`.
    """
    p, t, lead = paired_frames(pred, target)
    # float64 accumulation: 8-bit differences over thousands of pixels lose digits in float32.
    mse = (p.double() - t.double()).pow(2).flatten(1).mean(1)
    return (-10.0 * torch.log10(mse.clamp_min(MSE_FLOOR))).float().reshape(lead)
