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

    # many predictions against the same target: its LPIPS features are computed once, and the Fréchet
    # features of the predictions come from their LPIPS pass (same numbers as the calls above)
    truth = suite.prepare(true_frames, frechet=extractor)   # truth.pooled: (T, 256)
    values = suite.score(pred_frames, truth, frechet=extractor)  # ... and values["features"]: (T, 256)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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


@dataclass
class PreparedTarget:
    """Target frames of :meth:`FrameMetricSuite.score`, with their features computed once.

    Attributes:
        frames: the input with its leading dimensions flattened, in its own layout (uint8
            ``(N, H, W, 3)`` or float ``(N, 3, H, W)``; a view, converted per chunk when scoring, so a
            uint8 target is not held as float).
        lead: the input's leading shape (``prod(lead) == N``).
        shape: ``(N, 3, H, W)``, the shape of the converted frames.
        perceptual: per chunk of the suite's ``batch_size`` frames, the LPIPS features of the chunk
            (five ``(b, C_l, h_l, w_l)`` maps on the suite's device), or None where they were not kept
            (over the memory budget, or an LPIPS metric without a feature API): recomputed per call.
        pooled: float32 ``(*lead, 256)`` Fréchet features on the CPU when :meth:`FrameMetricSuite.prepare`
            got an extractor that shares the LPIPS network, else None.
        nbytes: bytes held by ``perceptual``.
    """

    frames: torch.Tensor
    lead: tuple[int, ...]
    shape: tuple[int, ...]
    perceptual: list[list[torch.Tensor] | None] = field(default_factory=list)
    pooled: torch.Tensor | None = None
    nbytes: int = 0

    def chunk(self, start: int, size: int) -> torch.Tensor:
        """Frames ``start`` to ``start + size`` as float32 ``(b, 3, H, W)`` in ``[0, 1]`` (``to_frames``)."""
        return to_frames(self.frames[start : start + size], "target")[0]


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

    def _perceptual_split(self, frechet: PooledAlexFeatures | None) -> tuple[Any, bool, bool]:
        """``(lpips metric, has features + feature_distance, frechet shares its network)``."""
        lpips = self.metrics.get("lpips")
        split = callable(getattr(lpips, "features", None)) and callable(
            getattr(lpips, "feature_distance", None)
        )
        shared = split and frechet is not None and frechet.shares_pass_with(lpips)
        return lpips, split, shared

    @torch.inference_mode()
    def prepare(
        self,
        target: ArrayLike,
        frechet: PooledAlexFeatures | None = None,
        max_bytes: int | None = None,
    ) -> PreparedTarget:
        """Compute what :meth:`score` needs of target frames that several predictions are compared with.

        The LPIPS features of the target (one trunk pass) are kept per chunk of ``batch_size`` frames
        while they fit in ``max_bytes``; chunks beyond it are recomputed by every :meth:`score` call.

        Args:
            target: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``, e.g. ``(T, H, W, 3)``.
            frechet: a Fréchet extractor; when it shares the LPIPS network its features of the target
                come from the same pass (``.pooled``, equal to ``frechet(target)`` with the same batch
                size) and every chunk is computed, kept or not.
            max_bytes: memory budget of the kept features (None: no limit; 0: keep none).

        Returns:
            The prepared target.
        """
        t, lead = to_frames(target, "target")  # checks the input
        raw = torch.from_numpy(np.ascontiguousarray(target)) if isinstance(target, np.ndarray) else target
        flat = raw.reshape(t.shape[0], *raw.shape[len(lead) :])
        prepared = PreparedTarget(frames=flat, lead=lead, shape=tuple(t.shape))
        del t, raw
        lpips, split, shared = self._perceptual_split(frechet)
        pooled: list[torch.Tensor] = []
        for start in range(0, flat.shape[0], self.batch_size):
            room = max_bytes is None or prepared.nbytes < max_bytes
            if not split or not (room or shared):
                prepared.perceptual.append(None)
                continue
            maps = lpips.features(prepared.chunk(start, self.batch_size).to(self.device))
            if shared:
                pooled.append(frechet.pool(maps[-1]).float().cpu())  # type: ignore[union-attr]
            size = sum(m.numel() * m.element_size() for m in maps)
            keep = max_bytes is None or prepared.nbytes + size <= max_bytes
            prepared.perceptual.append(maps if keep else None)
            prepared.nbytes += size if keep else 0
        if shared:
            prepared.pooled = torch.cat(pooled).reshape(*lead, -1)
        return prepared

    @torch.inference_mode()
    def score(
        self,
        pred: ArrayLike,
        target: PreparedTarget,
        frechet: PooledAlexFeatures | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-frame values against a prepared target: the same numbers as ``self(pred, target_frames)``.

        LPIPS is ``feature_distance(features(pred), cached target features)``, bit for bit the one-shot
        distance; the Fréchet features of ``pred`` are pooled from the same LPIPS pass when ``frechet``
        shares the network (equal to ``frechet(pred)`` when the batch sizes match), else computed by it.

        Args:
            pred: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``, the target's leading
                shape and frame size.
            target: from :meth:`prepare` (of this suite).
            frechet: a Fréchet extractor, or None.

        Returns:
            ``{key: float32 tensor of the leading shape}`` on the CPU, plus ``"features"``: float32
            ``(*lead, 256)`` when ``frechet`` is given.
        """
        p, lead = to_frames(pred, "pred")
        if lead != target.lead or tuple(p.shape) != target.shape:
            raise ValueError(
                f"pred and target do not match: {lead} x {tuple(p.shape[1:])} "
                f"vs {target.lead} x {target.shape[1:]}"
            )
        _, split, shared = self._perceptual_split(frechet)
        out: dict[str, list[torch.Tensor]] = {name: [] for name in self.metrics}
        pooled: list[torch.Tensor] = []
        for i, start in enumerate(range(0, p.shape[0], self.batch_size)):
            pb = p[start : start + self.batch_size].to(self.device)
            tb = target.chunk(start, self.batch_size).to(self.device)
            for name, metric in self.metrics.items():
                if name == "lpips" and split:
                    maps = metric.features(pb)  # type: ignore[attr-defined]
                    cached = target.perceptual[i] if i < len(target.perceptual) else None
                    truth = cached if cached is not None else metric.features(tb)  # type: ignore[attr-defined]
                    value = metric.feature_distance(maps, truth)  # type: ignore[attr-defined]
                    if shared:
                        pooled.append(frechet.pool(maps[-1]).float().cpu())  # type: ignore[union-attr]
                else:
                    value = metric(pb, tb)
                out[name].append(value.float().cpu())
        values = {name: torch.cat(v).reshape(lead) for name, v in out.items()}
        if shared:
            values["features"] = torch.cat(pooled).reshape(*lead, -1)
        elif frechet is not None:
            values["features"] = frechet(p).float().cpu()
        return values


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
    "PreparedTarget",
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
