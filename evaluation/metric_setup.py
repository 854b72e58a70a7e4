"""Build the evaluation's metrics from command-line choices, with errors that name the option to pass.

- ``--lpips auto`` (default): standard LPIPS-Alex when AlexNet trunk weights are configured
  (``--alexnet-weights PATH`` or ``$MILLIVID_ALEXNET_WEIGHTS``), else the ST-LPIPS-Alex fallback;
  ``lpips-alex`` insists on the standard one; ``st-lpips-alex`` always uses the fallback.
- ``--frechet st-alex`` (default, ``FD-STAlex``), ``alex`` (``FD-Alex``, needs the AlexNet trunk) or
  ``none``: the feature space of the per-bucket Fréchet distance.

No metric is ever computed with random weights: every variant loads trained weights or raises.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from evaluation.metrics import FrameMetricSuite, PooledAlexFeatures, make_perceptual_metric
from evaluation.metrics.features import make_frechet_features
from evaluation.metrics.lpips import LpipsAlex, StLpipsAlex

LPIPS_CHOICES = ("auto", "lpips-alex", "st-lpips-alex")
FRECHET_CHOICES = ("st-alex", "alex", "none")


class MetricWeightsError(FileNotFoundError):
    """Trained weights a metric needs are missing; the message says what to pass or install."""


def build_metrics(
    lpips: str = "auto",
    alexnet_weights: str | Path | None = None,
    frechet: str = "st-alex",
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> tuple[FrameMetricSuite, PooledAlexFeatures | None]:
    """The paired metric suite (PSNR, SSIM, LPIPS variant) and the Fréchet feature extractor.

    Args:
        lpips: one of :data:`LPIPS_CHOICES`.
        alexnet_weights: torchvision ``alexnet-owt-7be5be79.pth`` for standard LPIPS-Alex / FD-Alex.
        frechet: one of :data:`FRECHET_CHOICES`.
        device: where the metric networks run.
        batch_size: frames per metric call.

    Returns:
        ``(suite, features)``; ``suite.labels["lpips"]`` names the LPIPS variant, ``features.name`` the
        Fréchet feature space (``features`` is None for ``frechet="none"``). When the feature space is
        that of the LPIPS network (``st-alex`` with ST-LPIPS-Alex, ``alex`` with LPIPS-Alex) ``features``
        wraps the suite's own network, so that scoring reuses the LPIPS pass for it.

    Raises:
        ValueError: unknown choices.
        MetricWeightsError: weights of the chosen variant are missing.
    """
    if lpips not in LPIPS_CHOICES:
        raise ValueError(f"--lpips must be one of {LPIPS_CHOICES}, got {lpips!r}")
    if frechet not in FRECHET_CHOICES:
        raise ValueError(f"--frechet must be one of {FRECHET_CHOICES}, got {frechet!r}")
    weights_hint = (
        "pass --alexnet-weights PATH (torchvision's alexnet-owt-7be5be79.pth) or set "
        "$MILLIVID_ALEXNET_WEIGHTS"
    )
    try:
        with warnings.catch_warnings():
            # The chosen variant is named in every report; the fallback warning adds nothing here.
            warnings.simplefilter("ignore", UserWarning)
            perceptual = make_perceptual_metric(
                prefer="st-lpips-alex" if lpips == "st-lpips-alex" else "lpips-alex",
                alexnet_weights=alexnet_weights,
                fallback=lpips == "auto",
            )
        features = None
        # The Fréchet features of the LPIPS network itself when the variant matches: one network,
        # and one AlexNet pass per frame gives both (see FrameMetricSuite.score).
        if (frechet == "st-alex" and isinstance(perceptual, StLpipsAlex)) or (
            frechet == "alex" and isinstance(perceptual, LpipsAlex)
        ):
            features = PooledAlexFeatures(perceptual)
        elif frechet != "none":
            features = make_frechet_features(frechet, alexnet_weights)
    except FileNotFoundError as error:
        raise MetricWeightsError(
            f"{error}. {weights_hint}, or choose --lpips st-lpips-alex / --frechet st-alex"
        ) from error
    except ModuleNotFoundError as error:
        raise MetricWeightsError(f"{error}") from error
    suite = FrameMetricSuite(batch_size=batch_size, device=device, perceptual=perceptual)
    if features is not None:
        features = features.to(device)
    return suite, features
