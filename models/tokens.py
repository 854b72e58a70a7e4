"""Token layout of one frame: a 4-level image pyramid cut into equal-size patches.

Every frame becomes a pyramid (level 0 = the image, level l+1 = 2x2 box average of level l); every
pyramid image is cut into ``P x P`` patches of the *same* size, so coarse levels have fewer tokens.
Tokens of one frame are ordered level 0 (raster order) first, then level 1, and so on. Each token
carries a ``(level, h, w)`` index in its own level's grid coordinates (not rescaled to level 0).

Frames enter as either ``uint8 (B, H, W, 3)`` (the dataset / Gymnasium layout) or ``float (B, 3, H, W)``
in ``[0, 1]`` (the PyTorch layout); :func:`validate_frames` converts both to the latter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange


@dataclass(frozen=True)
class TokenLayout:
    """Geometry of the token hierarchy of one frame.

    Attributes:
        name: preset name.
        image_size: side of the square RGB frame in pixels.
        patch_size: side of one square patch (the same at every level).
        num_levels: number of pyramid levels.
        latent_channels: channels of one latent token.
    """

    name: str
    image_size: int
    patch_size: int
    num_levels: int = 4
    latent_channels: int = 32

    def __post_init__(self) -> None:
        coarsest = self.image_size // 2 ** (self.num_levels - 1)
        if self.image_size % 2 ** (self.num_levels - 1) or coarsest % self.patch_size:
            raise ValueError(
                f"layout {self.name!r}: image size {self.image_size} must halve {self.num_levels - 1} times "
                f"into a multiple of the patch size {self.patch_size}"
            )

    def grid(self, level: int) -> int:
        """Side of the token grid of ``level`` (8, 4, 2, 1 for ``loopcraft-64``)."""
        return self.image_size // 2**level // self.patch_size

    def level_size(self, level: int) -> int:
        """Side in pixels of the pyramid image of ``level``."""
        return self.image_size // 2**level

    @cached_property
    def tokens_per_level(self) -> tuple[int, ...]:
        """Token count of every level, finest first."""
        return tuple(self.grid(level) ** 2 for level in range(self.num_levels))

    @property
    def num_tokens(self) -> int:
        """Tokens of one frame over all levels (85 for ``loopcraft-64``)."""
        return sum(self.tokens_per_level)

    @property
    def patch_dim(self) -> int:
        """Values in one flattened RGB patch."""
        return 3 * self.patch_size**2

    def level_slice(self, level: int) -> slice:
        """Positions of ``level``'s tokens in the frame's token sequence."""
        start = sum(self.tokens_per_level[:level])
        return slice(start, start + self.tokens_per_level[level])

    def token_index(self) -> torch.Tensor:
        """Index triple of every token of a frame.

        Returns:
            int64 ``(num_tokens, 3)``: columns ``level, h, w`` (level-local grid coordinates).
        """
        rows = []
        for level in range(self.num_levels):
            g = self.grid(level)
            h, w = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
            rows.append(torch.stack([torch.full_like(h, level), h, w], dim=-1).reshape(-1, 3))
        return torch.cat(rows)


LAYOUTS: dict[str, TokenLayout] = {
    "loopcraft-64": TokenLayout("loopcraft-64", image_size=64, patch_size=8),
    "paper-256": TokenLayout("paper-256", image_size=256, patch_size=16),
}


def get_layout(name: str) -> TokenLayout:
    """Look up a layout preset by name, with the valid names in the error."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown token layout {name!r}; valid layouts: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def build_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Image pyramid by repeated 2x2 box averaging.

    Args:
        images: ``(B, 3, H, W)`` float.
        num_levels: number of levels including the image itself.

    Returns:
        ``num_levels`` tensors, level ``l`` of shape ``(B, 3, H / 2^l, W / 2^l)``.
    """
    levels = [images]
    for _ in range(num_levels - 1):
        levels.append(F.avg_pool2d(levels[-1], kernel_size=2))
    return levels


def patchify(pyramid: list[torch.Tensor], layout: TokenLayout) -> torch.Tensor:
    """Cut every pyramid level into patches and concatenate them into one token sequence.

    Args:
        pyramid: per level ``(B, 3, H_l, W_l)``.
        layout: the token layout.

    Returns:
        ``(B, num_tokens, 3 * P * P)``; level 0 raster order first.
    """
    p = layout.patch_size
    parts = [rearrange(img, "b c (h p) (w q) -> b (h w) (c p q)", p=p, q=p) for img in pyramid]
    return torch.cat(parts, dim=1)


def unpatchify(tokens: torch.Tensor, layout: TokenLayout) -> list[torch.Tensor]:
    """Inverse of :func:`patchify`.

    Args:
        tokens: ``(B, num_tokens, 3 * P * P)``.
        layout: the token layout.

    Returns:
        per level ``(B, 3, H_l, W_l)``.
    """
    p = layout.patch_size
    images = []
    for level in range(layout.num_levels):
        part = tokens[:, layout.level_slice(level)]
        g = layout.grid(level)
        images.append(rearrange(part, "b (h w) (c p q) -> b c (h p) (w q)", h=g, w=g, p=p, q=p))
    return images


def frames_to_tokens(images: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """``(B, 3, H, W)`` float frames -> ``(B, num_tokens, patch_dim)`` pyramid patches."""
    return patchify(build_pyramid(images, layout.num_levels), layout)


def validate_frames(frames: np.ndarray | torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Check a batch of frames and convert it to float ``(B, 3, H, W)`` in ``[0, 1]``.

    Accepted inputs:
        * ``uint8 (B, H, W, 3)`` numpy array or tensor (dataset / Gymnasium layout), scaled by 1/255;
        * floating ``(B, 3, H, W)`` tensor or array with values in ``[0, 1]`` (returned as float32).

    Raises:
        ValueError: wrong rank, shape, dtype, value range, or non-finite values; the message gives the
            expected and the received form.
    """
    size = layout.image_size
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
    shape = tuple(tensor.shape)
    if tensor.dtype == torch.uint8:
        if tensor.ndim != 4 or shape[1:] != (size, size, 3):
            raise ValueError(
                f"uint8 frames must have shape (B, {size}, {size}, 3) for layout {layout.name!r}; got {shape}"
                + (" (add a batch dimension)" if shape == (size, size, 3) else "")
            )
        return tensor.permute(0, 3, 1, 2).float().div_(255.0)
    if not tensor.is_floating_point():
        raise ValueError(
            f"frames must be uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1]; got dtype {tensor.dtype}"
        )
    if tensor.ndim != 4 or shape[1:] != (3, size, size):
        raise ValueError(
            f"float frames must have shape (B, 3, {size}, {size}) for layout {layout.name!r}; got {shape}"
        )
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError("float frames contain NaN or inf")
    lo, hi = float(tensor.min()), float(tensor.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"float frames must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return tensor
