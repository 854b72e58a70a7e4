"""Where the landmarks are in a frame: bearing and distance of each landmark in view (DESIGN §7).

In imagination the frames near a landmark are the weakest part of the picture (the copy magnifies
stale pixels, the model draws an average landscape), so a reward read off those frames cannot tell
that a landmark was reached (docs/results/landmark-agents-v4). The context frames an episode starts
from are real, though, and landmarks are tall: they are seen from far away. A
:class:`LandmarkLocator` reads one real frame and says, per bearing bin of the field of view,
whether a landmark's centre lies in that direction and how far away it is.
:mod:`millivid_env.landmark_map` turns those readings of every context frame into a map of the
landmarks in the episode's dead-reckoned coordinates, and judges each imagined step against it.

A small convolutional network over the frame's pixels; saved like every other checkpoint
(``config.json`` + ``model.safetensors`` through :class:`~huggingface_hub.PyTorchModelHubMixin`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.checkpoints import load_checkpoint

__all__ = ["LandmarkLocator", "LocatorConfig", "load_landmark_locator"]


@dataclass(frozen=True)
class LocatorConfig:
    """Architecture and label geometry of a :class:`LandmarkLocator` (saved as ``config.json``).

    Attributes:
        kind: always ``"landmark-locator"``; tells this checkpoint kind apart from the others.
        resolution: side of the square RGB frames it reads.
        bearing_bins: bins the horizontal view is cut into (equal angles, left to right).
        max_bearing_deg: the bins cover bearings in ``[-max_bearing_deg, max_bearing_deg]`` from the
            view direction (positive: to the right, towards a right turn).
        max_distance: landmarks further than this many blocks are not labelled (the fog hides them).
        width: channels of the first convolution (doubled at each of the four stride-2 stages).
    """

    kind: str = "landmark-locator"
    resolution: int = 64
    bearing_bins: int = 16
    max_bearing_deg: float = 40.0
    max_distance: float = 40.0
    width: int = 24

    def __post_init__(self) -> None:
        if self.kind != "landmark-locator":
            raise ValueError(f"kind must be 'landmark-locator', got {self.kind!r}")
        if self.resolution < 16 or self.resolution % 16:
            raise ValueError(f"resolution must be a multiple of 16, got {self.resolution}")
        if self.bearing_bins < 1 or not 0 < self.max_bearing_deg < 90 or self.max_distance <= 0:
            raise ValueError("need bearing_bins >= 1, 0 < max_bearing_deg < 90 and max_distance > 0")

    def bin_centres(self) -> np.ndarray:
        """float64 ``(bearing_bins,)``: the bearing (degrees, right positive) at each bin's centre."""
        edges = np.linspace(-self.max_bearing_deg, self.max_bearing_deg, self.bearing_bins + 1)
        return (edges[:-1] + edges[1:]) / 2.0

    def bin_of(self, bearing_deg: float) -> int | None:
        """The bin a bearing falls in, or None outside the covered bearings."""
        if not -self.max_bearing_deg <= bearing_deg < self.max_bearing_deg:
            return None
        step = 2.0 * self.max_bearing_deg / self.bearing_bins
        return int((bearing_deg + self.max_bearing_deg) // step)


class LandmarkLocator(nn.Module, PyTorchModelHubMixin):
    """Per bearing bin: is a landmark's centre in this direction, and how far (see the module docstring).

    Args:
        config: a :class:`LocatorConfig`.
    """

    def __init__(self, config: LocatorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = []
        channels = 3
        for out in (w, 2 * w, 4 * w, 4 * w):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.SiLU()]
            layers += [nn.Conv2d(out, out, 3, padding=1), nn.GroupNorm(8, out), nn.SiLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        side = config.resolution // 16
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, 256),
            nn.SiLU(),
            nn.Linear(256, 2 * config.bearing_bins),
        )

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read frames.

        Args:
            frames: float ``(B, 3, R, R)`` in ``[0, 1]``.

        Returns:
            logits: float ``(B, bearing_bins)`` of "a landmark's centre lies in this bin";
            log_distance: float ``(B, bearing_bins)``: log of its distance in blocks.
        """
        out = self.head(self.features(frames * 2.0 - 1.0))
        logits, log_distance = out.chunk(2, dim=1)
        return logits, log_distance

    @torch.no_grad()
    def locate(self, frames: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Read uint8 frames ``(T, R, R, 3)``.

        Returns:
            probability float64 ``(T, bearing_bins)`` and distance in blocks float64 ``(T, bearing_bins)``.
        """
        frames = np.asarray(frames)
        size = self.config.resolution
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3):
            raise ValueError(
                f"frames must be uint8 (T, {size}, {size}, 3), got {frames.dtype} {frames.shape}"
            )
        device = next(self.parameters()).device
        probs, distances = [], []
        for start in range(0, len(frames), batch_size):
            chunk = torch.from_numpy(frames[start : start + batch_size]).to(device)
            logits, log_distance = self(chunk.permute(0, 3, 1, 2).float() / 255.0)
            probs.append(torch.sigmoid(logits).double().cpu().numpy())
            distances.append(
                log_distance.clamp(max=math.log(self.config.max_distance)).exp().double().cpu().numpy()
            )
        return np.concatenate(probs), np.concatenate(distances)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **kwargs) -> LandmarkLocator:  # type: ignore[override]
        """Load from a bundled name, local directory or Hub repo id (see :func:`load_landmark_locator`)."""
        return load_landmark_locator(
            name_or_path, device=kwargs.get("map_location", "cpu"), revision=kwargs.get("revision")
        )


def load_landmark_locator(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", revision: str | None = None
) -> LandmarkLocator:
    """Load a :class:`LandmarkLocator` in eval mode (bundled name, local directory or Hub repo id)."""
    return load_checkpoint(LandmarkLocator, LocatorConfig, name_or_path, device, revision)
