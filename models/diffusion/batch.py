"""The token set the video DiT reads: latents plus per-token index, action and role.

One :class:`TokenBatch` is what a strategy step presents (method.md section 5.1): for every token its
latent, its ``(frame, level, h, w)`` index (absolute frame; the model makes frames relative itself),
the action id of its frame and its role (``CONTEXT`` = clean, given; ``DENOISED`` = to generate).
Padding (steps of different size in one training batch) is marked by ``pad``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from models.strategies.core import CONTEXT, DENOISED
from models.tokens import TokenLayout


def cell_tokens(
    frames: Sequence[int], levels: Sequence[int], roles: Sequence[int], layout: TokenLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token index and role of every token of a list of ``(frame, level)`` cells, in cell order.

    A cell contributes its level's tokens in raster order (the order of :mod:`models.tokens`).

    Args:
        frames: frame of every cell.
        levels: level of every cell.
        roles: role (``CONTEXT`` / ``DENOISED``) of every cell.
        layout: the token layout.

    Returns:
        ``(index, role)``: int64 ``(N, 4)`` columns ``frame, level, h, w`` and int64 ``(N,)``.
    """
    per_frame = layout.token_index()  # (tokens per frame, 3): level, h, w
    index, role = [], []
    for frame, level, cell_role in zip(frames, levels, roles, strict=True):
        tokens = per_frame[layout.level_slice(int(level))]
        index.append(torch.cat([torch.full((len(tokens), 1), int(frame)), tokens], dim=1))
        role.append(torch.full((len(tokens),), int(cell_role)))
    if not index:
        return torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(index), torch.cat(role)


@dataclass
class TokenBatch:
    """A batch of token sets.

    Attributes:
        x: float ``(B, N, C)`` latents; clean values for CONTEXT tokens, training targets for
            DENOISED tokens (ignored by the sampler, which starts them from noise).
        index: int64 ``(B, N, 4)`` columns ``frame, level, h, w`` (absolute frame, level-local h, w).
        action: int64 ``(B, N)`` action id of each token's frame.
        role: integer ``(B, N)`` with values ``CONTEXT`` (1) or ``DENOISED`` (2).
        pad: optional bool ``(B, N)``, True for padding tokens (ignored everywhere).
    """

    x: torch.Tensor
    index: torch.Tensor
    action: torch.Tensor
    role: torch.Tensor
    pad: torch.Tensor | None = None

    @property
    def denoised(self) -> torch.Tensor:
        """Mask ``(B, N)`` of the real (non-padding) tokens to generate."""
        mask = self.role == DENOISED
        return mask if self.pad is None else mask & ~self.pad

    @property
    def context(self) -> torch.Tensor:
        """Mask ``(B, N)`` of the real (non-padding) clean context tokens."""
        mask = self.role == CONTEXT
        return mask if self.pad is None else mask & ~self.pad

    def to(self, device: torch.device | str) -> TokenBatch:
        """A copy on ``device``."""
        pad = None if self.pad is None else self.pad.to(device)
        return replace(
            self,
            x=self.x.to(device),
            index=self.index.to(device),
            action=self.action.to(device),
            role=self.role.to(device),
            pad=pad,
        )

    def validate(self, channels: int, num_levels: int, num_actions: int) -> None:
        """Check shapes, dtypes and value ranges.

        Raises:
            ValueError: naming the offending field, what it should be and what it is.
        """
        if self.x.ndim != 3 or self.x.shape[-1] != channels or not self.x.is_floating_point():
            raise ValueError(f"x must be float (B, N, {channels}); got {self.x.dtype} {tuple(self.x.shape)}")
        b, n, _ = self.x.shape
        for name, expected in (("index", (b, n, 4)), ("action", (b, n)), ("role", (b, n))):
            value = getattr(self, name)
            if tuple(value.shape) != expected or value.is_floating_point():
                raise ValueError(
                    f"{name} must be an integer tensor of shape {expected} (matching x {(b, n, channels)}); "
                    f"got {value.dtype} {tuple(value.shape)}"
                )
        if self.pad is not None and (tuple(self.pad.shape) != (b, n) or self.pad.dtype != torch.bool):
            raise ValueError(f"pad must be bool {(b, n)}; got {self.pad.dtype} {tuple(self.pad.shape)}")
        real = torch.ones(b, n, dtype=torch.bool, device=self.x.device) if self.pad is None else ~self.pad
        if not torch.isfinite(self.x[real]).all():
            raise ValueError("latents x contain NaN or inf")
        if not bool(((self.role == CONTEXT) | (self.role == DENOISED))[real].all()):
            raise ValueError(f"role values must be CONTEXT={CONTEXT} or DENOISED={DENOISED}")
        action = self.action[real]
        if action.numel() and (int(action.min()) < 0 or int(action.max()) >= num_actions):
            raise ValueError(
                f"action ids must lie in [0, {num_actions - 1}] (0 forward, 1 left, 2 right for Loopcraft); "
                f"got values in [{int(action.min())}, {int(action.max())}]"
            )
        level = self.index[..., 1][real]
        if level.numel() and (int(level.min()) < 0 or int(level.max()) >= num_levels):
            raise ValueError(
                f"levels (index[..., 1]) must lie in [0, {num_levels - 1}]; "
                f"got values in [{int(level.min())}, {int(level.max())}]"
            )
        if bool((self.index[..., 2:][real] < 0).any()):
            raise ValueError("h and w indices (index[..., 2:]) must be non-negative")
