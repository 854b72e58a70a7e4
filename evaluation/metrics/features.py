"""Per-frame features for the Fréchet distance, from a trained AlexNet (works offline).

The paper's per-frame FID uses InceptionV3 features, whose weights cannot be fetched here. This uses
the conv5 ReLU map of a perceptual AlexNet trunk, unit-normalised over channels at every position (as
LPIPS compares them: the LPIPS objective constrains feature directions, not magnitudes) and then
mean-pooled over positions (256-d per frame, norm <= 1). The result is named after the trunk so a
report cannot pass it off as FID:

- ``FD-STAlex``: the shift-tolerant AlexNet of ST-LPIPS (trained weights of ``stlpips-pytorch``,
  always available; the default, so that curves are comparable across machines);
- ``FD-Alex``: the ImageNet AlexNet of standard LPIPS (needs the torchvision weight file).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from evaluation.metrics._inputs import ArrayLike, to_frames
from evaluation.metrics.lpips import LpipsAlex, StLpipsAlex, resolve_alexnet_weights, unit_normalise

FD_ST_ALEX = "FD-STAlex"
FD_ALEX = "FD-Alex"
DIM = 256


class PooledAlexFeatures(nn.Module):
    """Mean-pooled, unit-normalised conv5 features of a perceptual AlexNet: frames -> ``(N, 256)``.

    Args:
        network: the perceptual network whose trunk is used (:class:`StLpipsAlex` or :class:`LpipsAlex`).
    """

    def __init__(self, network: StLpipsAlex | LpipsAlex) -> None:
        super().__init__()
        self.network = network
        self.name = FD_ST_ALEX if isinstance(network, StLpipsAlex) else FD_ALEX
        self.eval()

    @torch.no_grad()
    def forward(self, frames: ArrayLike, batch_size: int = 64) -> torch.Tensor:
        """Features per frame.

        Args:
            frames: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``.
            batch_size: frames per trunk call (bounds memory).

        Returns:
            float32 ``(*lead, 256)`` on the input's device.
        """
        x, lead = to_frames(frames)
        device = next(self.network.parameters()).device
        out = []
        for chunk in x.split(batch_size):
            conv5 = self.network.feature_maps(chunk.to(device))[-1]  # (B, 256, h, w), after ReLU
            out.append(self.pool(unit_normalise(conv5)).to(x.device))
        return torch.cat(out).reshape(*lead, DIM)

    def shares_pass_with(self, metric: object) -> bool:
        """Whether ``metric`` is this extractor's network, so its LPIPS features give :meth:`pool`'s input."""
        return metric is self.network

    @staticmethod
    def pool(unit_conv5: torch.Tensor) -> torch.Tensor:
        """Features from a unit-normalised conv5 map (the last of ``network.features(x)``).

        ``pool(network.features(x)[-1])`` equals ``forward(x)`` bit for bit (same batches), so the
        LPIPS pass over a frame also gives its Fréchet features.

        Args:
            unit_conv5: ``(B, 256, h, w)``.

        Returns:
            ``(B, 256)``.
        """
        return unit_conv5.mean(dim=(2, 3))


def make_frechet_features(
    prefer: str = "st-alex", alexnet_weights: str | Path | None = None
) -> PooledAlexFeatures:
    """Build the frame feature extractor for per-frame Fréchet distances.

    Args:
        prefer: ``"st-alex"`` (``FD-STAlex``, default) or ``"alex"`` (``FD-Alex``; needs the AlexNet
            trunk file from ``alexnet_weights`` or ``$MILLIVID_ALEXNET_WEIGHTS``).
        alexnet_weights: torchvision AlexNet ImageNet weights for ``prefer="alex"``.

    Raises:
        ValueError: unknown ``prefer``.
        FileNotFoundError: ``prefer="alex"`` without an AlexNet trunk file.
    """
    if prefer == "st-alex":
        return PooledAlexFeatures(StLpipsAlex())
    if prefer == "alex":
        trunk = resolve_alexnet_weights(alexnet_weights)
        if trunk is None:
            raise FileNotFoundError(
                f"{FD_ALEX} needs torchvision's AlexNet weights (alexnet-owt-7be5be79.pth): pass "
                "alexnet_weights=PATH or set $MILLIVID_ALEXNET_WEIGHTS, or use prefer='st-alex'"
            )
        return PooledAlexFeatures(LpipsAlex(trunk))
    raise ValueError(f"prefer must be 'st-alex' or 'alex', got {prefer!r}")
