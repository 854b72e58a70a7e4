"""Frame metrics for the revisit-consistency evaluation (method §8.2; DESIGN §8).

Paired per-frame metrics (consistency; prediction vs. true frame): PSNR, SSIM and LPIPS-Alex (or,
when the ImageNet AlexNet trunk is not available, ST-LPIPS-Alex; ``.name`` says which). Unpaired
distribution distance (quality): Fréchet distance per frame index in a named feature space
(``FD-STAlex`` by default, FVD with I3D when its weights are given).

Input convention everywhere: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``.

Example::

    suite = FrameMetricSuite()                     # psnr, ssim, lpips
    values = suite(pred_videos, true_videos)       # {"psnr": (B, T), "ssim": (B, T), "lpips": (B, T)}
    suite.labels["lpips"]                          # "LPIPS-Alex (v0.1)" or "ST-LPIPS-Alex (vST0.0)"
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evaluation.metrics._inputs import ArrayLike, paired_frames, to_frames
from evaluation.metrics.features import FD_ALEX, FD_ST_ALEX, PooledAlexFeatures, make_frechet_features
from evaluation.metrics.frechet import (
    frechet_distance,
    frechet_distance_between,
    frechet_per_frame_index,
    gaussian_fit,
)
from evaluation.metrics.fvd import I3DFeatures, window_features
from evaluation.metrics.lpips import (
    ENV_ALEXNET,
    LPIPS_NAME,
    ST_LPIPS_NAME,
    LpipsAlex,
    StLpipsAlex,
    make_perceptual_metric,
)
from evaluation.metrics.psnr import psnr
from evaluation.metrics.ssim import ssim

FrameMetric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MetricSpec:
    """A paired per-frame metric.

    Attributes:
        key: registry key and report column (``"psnr"``, ...).
        label: display name; for ``lpips`` the variant's name is filled in when it is built.
        higher_is_better: direction of "better".
        build: ``build(**options) -> metric(pred, target) -> (N,)``; options as :class:`FrameMetricSuite`.
    """

    key: str
    label: str
    higher_is_better: bool
    build: Callable[..., FrameMetric]


def _build_lpips(
    prefer: str = "lpips-alex", alexnet_weights: str | Path | None = None, **_: Any
) -> FrameMetric:
    return make_perceptual_metric(prefer=prefer, alexnet_weights=alexnet_weights)


METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("psnr", "PSNR (dB)", True, lambda **_: psnr),
    "ssim": MetricSpec("ssim", "SSIM", True, lambda **_: ssim),
    "lpips": MetricSpec("lpips", "LPIPS", False, _build_lpips),
}


class FrameMetricSuite:
    """Computes several paired metrics per frame for (prediction, target) video tensors, in batches.

    Args:
        names: keys of :data:`METRICS` to compute.
        batch_size: frames per metric call.
        device: where the metrics run (results come back on the CPU).
        prefer: LPIPS variant preference (see :func:`make_perceptual_metric`).
        alexnet_weights: torchvision AlexNet weights for standard LPIPS-Alex (default:
            ``$MILLIVID_ALEXNET_WEIGHTS``).
        perceptual: an already built perceptual metric to reuse instead of building one.
    """

    def __init__(
        self,
        names: Sequence[str] = ("psnr", "ssim", "lpips"),
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        prefer: str = "lpips-alex",
        alexnet_weights: str | Path | None = None,
        perceptual: LpipsAlex | StLpipsAlex | None = None,
    ) -> None:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; available: {sorted(METRICS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.metrics: dict[str, FrameMetric] = {}
        self.labels: dict[str, str] = {}
        for name in names:
            spec = METRICS[name]
            if name == "lpips" and perceptual is not None:
                metric: Any = perceptual
            else:
                metric = spec.build(prefer=prefer, alexnet_weights=alexnet_weights)
            if isinstance(metric, torch.nn.Module):
                metric = metric.to(self.device)
            self.metrics[name] = metric
            self.labels[name] = getattr(metric, "name", spec.label) if name == "lpips" else spec.label

    @torch.inference_mode()
    def __call__(self, pred: ArrayLike, target: ArrayLike) -> dict[str, torch.Tensor]:
        """Per-frame values of every metric.

        Args:
            pred: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``, e.g.
                ``(B, T, 3, H, W)``.
            target: same leading shape and frame size.

        Returns:
            ``{key: float32 tensor of the leading shape}`` on the CPU.
        """
        p, t, lead = paired_frames(pred, target)
        out: dict[str, list[torch.Tensor]] = {name: [] for name in self.metrics}
        for start in range(0, p.shape[0], self.batch_size):
            pb = p[start : start + self.batch_size].to(self.device)
            tb = t[start : start + self.batch_size].to(self.device)
            for name, metric in self.metrics.items():
                out[name].append(metric(pb, tb).float().cpu())
        return {name: torch.cat(values).reshape(lead) for name, values in out.items()}


def compute_frame_metrics(pred: ArrayLike, target: ArrayLike, **options: Any) -> dict[str, torch.Tensor]:
    """One-shot :class:`FrameMetricSuite` (build once and reuse it when evaluating many videos)."""
    return FrameMetricSuite(**options)(pred, target)


__all__ = [
    "ENV_ALEXNET",
    "FD_ALEX",
    "FD_ST_ALEX",
    "LPIPS_NAME",
    "METRICS",
    "ST_LPIPS_NAME",
    "FrameMetricSuite",
    "I3DFeatures",
    "LpipsAlex",
    "MetricSpec",
    "PooledAlexFeatures",
    "StLpipsAlex",
    "compute_frame_metrics",
    "frechet_distance",
    "frechet_distance_between",
    "frechet_per_frame_index",
    "gaussian_fit",
    "make_frechet_features",
    "make_perceptual_metric",
    "psnr",
    "ssim",
    "to_frames",
    "window_features",
]
