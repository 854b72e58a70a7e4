"""Fréchet distance between Gaussian fits of two feature sets, overall and per frame index.

``FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` in float64, with the matrix
square root from ``scipy.linalg.sqrtm`` as in the FID/FVD reference code (method §8.2 uses clean-fid's
implementation). Handling of the numerical corner cases:

- ``sqrtm`` of a product of (near-)singular covariances, which is the normal case here (fewer test
  videos than feature dimensions), may come back complex with a small imaginary part: the real part
  is used when the imaginary part of the diagonal is below ``1e-3``;
- when the square root is not finite, or its imaginary part is larger than that, both covariances are
  regularised with ``eps * v * I`` (``v``: mean variance of the two sets, so the offset is small at any
  feature scale) and it is computed again; a ``RuntimeWarning`` says so (``ValueError`` if even that
  fails);
- tiny negative results from round-off are clipped to 0.

The feature spaces in use are named in ``evaluation.metrics.features`` and ``evaluation.metrics.fvd``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

_IMAG_TOL = 1e-3


def _as_array(x: torch.Tensor | np.ndarray, name: str, ndim: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name}: dtype {x.dtype} is not numeric")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def gaussian_fit(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of a feature set, float64.

    Args:
        features: ``(N, D)`` with ``N >= 2``.

    Returns:
        ``(mu (D,), sigma (D, D))``.
    """
    x = _as_array(features, "features", 2)
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrtm_trace(a: np.ndarray, b: np.ndarray) -> float | None:
    """``tr((a b)^(1/2))``, or None when the square root is not usable."""
    with warnings.catch_warnings():
        # scipy warns for every singular product; usability is judged below instead.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(a @ b)
    if not np.isfinite(root).all():
        return None
    if np.iscomplexobj(root):
        if np.abs(np.diagonal(root).imag).max() > _IMAG_TOL:
            return None
        root = root.real
    return float(np.trace(root))


def frechet_distance(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between ``N(mu_a, sigma_a)`` and ``N(mu_b, sigma_b)``.

    Args:
        mu_a: ``(D,)`` mean.
        sigma_a: ``(D, D)`` covariance.
        mu_b: ``(D,)`` mean.
        sigma_b: ``(D, D)`` covariance.
        eps: relative diagonal regularisation, used only when the plain square root fails (with a
            warning).

    Returns:
        The distance (>= 0).

    Raises:
        ValueError: mismatched shapes, or no usable square root even after regularisation.
    """
    mu_a, mu_b = _as_array(mu_a, "mu_a", 1), _as_array(mu_b, "mu_b", 1)
    sigma_a, sigma_b = _as_array(sigma_a, "sigma_a", 2), _as_array(sigma_b, "sigma_b", 2)
    d = mu_a.shape[0]
    if mu_b.shape != (d,) or sigma_a.shape != (d, d) or sigma_b.shape != (d, d):
        raise ValueError(
            f"shapes do not match: mu {mu_a.shape} / {mu_b.shape}, sigma {sigma_a.shape} / {sigma_b.shape}"
        )
    trace_root = _sqrtm_trace(sigma_a, sigma_b)
    if trace_root is None:
        scale = (np.trace(sigma_a) + np.trace(sigma_b)) / (2 * d)
        offset = eps * (scale if scale > 0 else 1.0)
        warnings.warn(
            f"Fréchet distance: matrix square root of the covariance product is not usable (singular "
            f"covariances); regularising both with {offset:.3g} * I",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = offset * np.eye(d)
        trace_root = _sqrtm_trace(sigma_a + offset, sigma_b + offset)
        if trace_root is None:
            raise ValueError("Fréchet distance: no usable matrix square root even after regularisation")
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_root)
    return max(value, 0.0)  # round-off can leave a tiny negative number for identical statistics


def frechet_distance_between(
    features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray
) -> float:
    """Fréchet distance between the Gaussian fits of two ``(N_a, D)`` and ``(N_b, D)`` feature sets."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


def frechet_per_frame_index(
    features: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Fréchet distance per frame (or window) index, across videos (method §8.2, FID/FVD curves).

    For every index ``t``, the features of frame ``t`` of all videos are fitted with a Gaussian and
    compared with the fit of frame ``t`` of all reference videos (e.g. the ground-truth frames).

    Args:
        features: ``(V, T, D)``: ``V >= 2`` videos, ``T`` frame indices, ``D`` feature dimensions.
        reference: ``(V_ref, T, D)`` with ``V_ref >= 2``.

    Returns:
        ``(T,)`` float64 distances.

    Raises:
        ValueError: bad shapes, fewer than 2 videos on either side.
    """
    x = _as_array(features, "features", 3)
    r = _as_array(reference, "reference", 3)
    if x.shape[1:] != r.shape[1:]:
        raise ValueError(f"features {x.shape} and reference {r.shape} differ in (T, D)")
    if min(x.shape[0], r.shape[0]) < 2:
        raise ValueError(f"need at least 2 videos on each side, got {x.shape[0]} and {r.shape[0]}")
    return np.array([frechet_distance_between(x[:, t], r[:, t]) for t in range(x.shape[1])], dtype=np.float64)
