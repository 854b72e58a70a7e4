"""SSIM per frame, numerically equal to torchmetrics' ``structural_similarity_index_measure``.

torchmetrics is the implementation the method names (§8.2), but on these machines ``import
torchmetrics`` fails: it imports the installed torchvision wheel, a CUDA build that does not load on
the CPU torch. The same computation is therefore done here and checked against torchmetrics in the
tests (imported there with a stub torchvision). Settings are torchmetrics' defaults with data range 1:
Gaussian window sigma 1.5 (11 taps), K1 = 0.01, K2 = 0.03, reflect padding of the inputs, and the mean
over the whole ``(C, H, W)`` SSIM map (the padded border included, as torchmetrics does).

Note: ``models.metrics.ssim`` (training-time monitoring) averages only over valid positions and so
gives slightly different values; reports use this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evaluation.metrics._inputs import ArrayLike, paired_frames

NAME = "SSIM"
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_taps(sigma: float = SIGMA, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian window, ``(K,)`` with ``K = 2 * int(3.5 * sigma + 0.5) + 1``."""
    size = int(3.5 * sigma + 0.5) * 2 + 1
    offsets = torch.arange(size, dtype=dtype) - (size - 1) / 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def blur_matrix(size: int, taps: torch.Tensor) -> torch.Tensor:
    """``(size, size)`` matrix ``M``: ``M @ v`` = reflect-pad ``v``, then 'valid' correlation with ``taps``.

    Written as a matrix so the separable blur of a whole batch is two matmuls, several times faster on
    CPU than a depthwise convolution, and the reflect padding needs no extra copy of the inputs.
    """
    pad = (taps.numel() - 1) // 2
    if size <= pad:
        raise ValueError(f"SSIM needs frames larger than {pad} px per side, got {size}")
    eye = torch.eye(size, dtype=taps.dtype, device=taps.device)
    padding = F.pad(eye[None, None], (0, 0, pad, pad), mode="reflect")[0, 0]  # (size + 2 pad, size)
    band = torch.zeros(size, size + 2 * pad, dtype=taps.dtype, device=taps.device)
    for i in range(size):
        band[i, i : i + taps.numel()] = taps
    return band @ padding


def ssim(pred: ArrayLike, target: ArrayLike, sigma: float = SIGMA) -> torch.Tensor:
    """Structural similarity per frame (1 for identical frames).

    Args:
        pred: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``.
        target: same leading shape and frame size as ``pred``, either layout.
        sigma: Gaussian window standard deviation.

    Returns:
        float32 tensor of the leading shape (``(N,)`` for ``(N, 3, H, W)`` input).

    Raises:
        ValueError: frames too small for the window's reflect padding.
    """
    p, t, lead = paired_frames(pred, target)
    taps = gaussian_taps(sigma).to(p.device)
    rows, cols = blur_matrix(p.shape[-2], taps), blur_matrix(p.shape[-1], taps)
    stack = torch.stack([p, t, p * p, t * t, p * t])  # (5, N, C, H, W)
    mean_p, mean_t, e_pp, e_tt, e_pt = rows @ stack @ cols.T  # Gaussian-weighted local means
    var_p = (e_pp - mean_p**2).clamp_min(0.0)
    var_t = (e_tt - mean_t**2).clamp_min(0.0)
    cov = e_pt - mean_p * mean_t
    c1, c2 = K1**2, K2**2  # data range 1
    index = ((2 * mean_p * mean_t + c1) * (2 * cov + c2)) / (
        (mean_p**2 + mean_t**2 + c1) * (var_p + var_t + c2)
    )
    return index.flatten(1).mean(1).reshape(lead)
