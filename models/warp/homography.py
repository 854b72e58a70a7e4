"""One learned homography per action: the previous frame moved by the action, and where it is valid.

A Loopcraft turn is a rotation of a pinhole camera about the vertical axis, which moves every pixel by
the same homography whatever the depth (a 10° turn shifts the centre by ~8 px at 64×64); walking
forward is a small zoom about the horizon, exact for far pixels and approximate for near ones. So a
3×3 homography per action, fitted to consecutive true frames (:mod:`models.warp.fit`), explains most
of what changes between two frames. The homography maps *output* pixel coordinates to *source*
coordinates (inverse warping), both normalised to ``[-1, 1]`` as :func:`torch.nn.functional.grid_sample`
with ``align_corners=False`` reads them.

The parameters are the eight free entries of ``H - I``, initialised to zero: an unfitted warp is the
identity, i.e. the previous frame held still.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.checkpoints import load_checkpoint

__all__ = ["ActionWarp", "WarpConfig", "load_warp"]

INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class WarpConfig:
    """Configuration of an :class:`ActionWarp` (saved as ``config.json``).

    Attributes:
        kind: always ``"action-warp"``; tells this checkpoint kind apart from the others.
        resolution: side of the square frames it was fitted on (pixels).
        num_actions: number of discrete actions (one homography each).
        interpolation: how the source frame is resampled (``bicubic`` blurs less when warps chain).
    """

    kind: str = "action-warp"
    resolution: int = 64
    num_actions: int = 3
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.kind != "action-warp":
            raise ValueError(f"kind must be 'action-warp', got {self.kind!r}")
        if self.resolution < 8 or self.num_actions < 1:
            raise ValueError(
                f"resolution must be >= 8 and num_actions >= 1, got {self.resolution}, {self.num_actions}"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")


def pixel_grid(resolution: int, device: torch.device | None = None) -> torch.Tensor:
    """Homogeneous normalised coordinates of the pixel centres: float32 ``(R*R, 3)``, row-major (x, y, 1)."""
    centres = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) * 2.0 / resolution - 1.0
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), torch.ones(resolution * resolution, device=device)], 1)


def apply_homographies(
    frames: torch.Tensor, homographies: torch.Tensor, interpolation: str = "bicubic"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample each frame through its own homography (output coordinates -> source coordinates).

    Args:
        frames: float ``(B, C, R, R)``.
        homographies: float ``(B, 3, 3)``.
        interpolation: ``bilinear`` or ``bicubic``.

    Returns:
        warped: float ``(B, C, R, R)``, zero where the source lies outside the frame.
        valid: float ``(B, 1, R, R)``, 1 where the source pixel lies inside the frame, else 0.
    """
    b, _, r, _ = frames.shape
    grid = pixel_grid(r, frames.device)  # (R*R, 3)
    source = torch.einsum("bij,nj->bni", homographies.to(frames.dtype), grid)  # (B, R*R, 3)
    w = source[..., 2:3]
    if not bool(torch.isfinite(source).all()) or bool((w.abs() < 1e-6).any()):
        raise FloatingPointError("degenerate homography: a pixel maps to infinity or NaN")
    xy = (source[..., :2] / w).reshape(b, r, r, 2)
    warped = F.grid_sample(frames, xy, mode=interpolation, padding_mode="border", align_corners=False)
    inside = (xy.abs() <= 1.0).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(frames.dtype)
    return warped * inside, inside


class ActionWarp(nn.Module, PyTorchModelHubMixin):
    """The previous frame moved by the action: one learned homography per action.

    Args:
        config: a :class:`WarpConfig`.
    """

    def __init__(self, config: WarpConfig) -> None:
        super().__init__()
        self.config = config
        # The eight free entries of H - I per action, row-major (H[2, 2] stays 1): zero = identity.
        self.delta = nn.Parameter(torch.zeros(config.num_actions, 8))
        # What each action does to the camera, (blocks walked along the view, degrees of yaw turned):
        # the odometry that places remembered frames (models.warp.view). Zero: no motion.
        self.motion = nn.Parameter(torch.zeros(config.num_actions, 2), requires_grad=False)

    def homographies(self) -> torch.Tensor:
        """The homography of every action: float ``(num_actions, 3, 3)``."""
        full = torch.cat([self.delta, torch.zeros_like(self.delta[:, :1])], dim=1)
        return torch.eye(3, device=self.delta.device) + full.reshape(-1, 3, 3)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move each frame by its action.

        Args:
            frames: float ``(B, C, R, R)`` (any value range).
            actions: int64 ``(B,)`` in ``[0, num_actions)``.

        Returns:
            warped: float ``(B, C, R, R)``; valid: float ``(B, 1, R, R)`` (see :func:`apply_homographies`).
        """
        if frames.ndim != 4 or frames.shape[-1] != frames.shape[-2]:
            raise ValueError(f"frames must be (B, C, R, R), got {tuple(frames.shape)}")
        actions = torch.as_tensor(actions, dtype=torch.long, device=frames.device)
        if actions.shape != frames.shape[:1]:
            raise ValueError(
                f"need one action per frame: {tuple(actions.shape)} for {frames.shape[0]} frames"
            )
        if bool(((actions < 0) | (actions >= self.config.num_actions)).any()):
            raise ValueError(f"actions must lie in [0, {self.config.num_actions}), got {actions.tolist()}")
        return apply_homographies(frames, self.homographies()[actions], self.config.interpolation)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **kwargs) -> ActionWarp:  # type: ignore[override]
        """Load from a bundled name, local directory or Hub repo id (see :func:`load_warp`)."""
        return load_warp(
            name_or_path, device=kwargs.get("map_location", "cpu"), revision=kwargs.get("revision")
        )


def load_warp(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", revision: str | None = None
) -> ActionWarp:
    """Load an :class:`ActionWarp` in eval mode (bundled name, local directory or Hub repo id)."""
    return load_checkpoint(ActionWarp, WarpConfig, name_or_path, device, revision)
