"""Hierarchical autoencoder of MilliVid (DESIGN section 5, method.md section 2).

A transformer encoder maps all pyramid patches of a frame (85 tokens for ``loopcraft-64``) to tanh
latents; a DiT decoder conditioned (adaLN, global) on the level it decodes rebuilds the *whole*
pyramid from the latents of that one level (the others are zeroed). Training keeps one random level
per sample, so every level alone is a code for the whole frame. The *cascaded* variant (ablation)
keeps only the level-0 latents and derives the coarse ones by 2x2 mean pooling, detached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.layers import DiTBlock, TransformerBlock, init_linear_xavier, sincos_embedding
from models.tokens import TokenLayout, frames_to_tokens, get_layout, unpatchify, validate_frames

VARIANTS = ("hierarchical", "cascaded")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of a :class:`HierarchicalAutoencoder` (saved as ``config.json``).

    Attributes:
        layout: token layout preset (``loopcraft-64`` or ``paper-256``).
        width: transformer width.
        encoder_depth: encoder blocks.
        decoder_depth: decoder (DiT) blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden width / width.
        latent_channels: channels per latent token (must equal the layout's).
        variant: ``hierarchical`` (every level encoded) or ``cascaded`` (coarse = pooled level 0).
        refine_channels: hidden channels of a small residual conv head applied to the decoded level-0
            image (removes patch-border artefacts); 0 disables it.
    """

    layout: str = "loopcraft-64"
    width: int = 192
    encoder_depth: int = 4
    decoder_depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0
    latent_channels: int = 32
    variant: str = "hierarchical"
    refine_channels: int = 0

    def __post_init__(self) -> None:
        layout = get_layout(self.layout)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown autoencoder variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.latent_channels != layout.latent_channels:
            raise ValueError(
                f"latent_channels {self.latent_channels} differs from layout {self.layout!r} "
                f"({layout.latent_channels})"
            )
        if self.width % self.heads or self.width % 4:
            raise ValueError(f"width {self.width} must be divisible by 4 and by heads ({self.heads})")


#: Named architecture presets (``--size`` of ``millivid train-autoencoder``).
SIZES: dict[str, AutoencoderConfig] = {
    "tiny": AutoencoderConfig(width=32, encoder_depth=1, decoder_depth=1, heads=2),
    "cpu": AutoencoderConfig(width=192, encoder_depth=4, decoder_depth=4, heads=3),
    "cpu-refine": AutoencoderConfig(width=192, encoder_depth=4, decoder_depth=4, heads=3, refine_channels=32),
    "gpu": AutoencoderConfig(width=384, encoder_depth=8, decoder_depth=8, heads=6, refine_channels=32),
    "paper": AutoencoderConfig(layout="paper-256", width=768, encoder_depth=12, decoder_depth=12, heads=12),
}


def size_config(size: str, **overrides: object) -> AutoencoderConfig:
    """A size preset with some fields replaced (e.g. ``variant``)."""
    if size not in SIZES:
        raise ValueError(f"unknown autoencoder size {size!r}; valid sizes: {', '.join(SIZES)}")
    return replace(SIZES[size], **{k: v for k, v in overrides.items() if v is not None})


class RefineHead(nn.Module):
    """Residual 3-layer conv net on the level-0 image; the last conv starts at zero (identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, 3, H, W)``."""
        h = F.gelu(self.conv2(F.gelu(self.conv1(x))), approximate="tanh")
        return x + self.conv3(h)


class HierarchicalAutoencoder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="millivid-env",
    tags=["millivid", "autoencoder", "world-model"],
    license="mit",
):
    """Hierarchical (or cascaded) image autoencoder over a multi-level token layout.

    Args:
        config: the architecture.
    """

    def __init__(self, config: AutoencoderConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):  # as read back from config.json
            config = AutoencoderConfig(**config)
        self.config = config
        self.layout: TokenLayout = get_layout(config.layout)
        lay, d = self.layout, config.width
        index = lay.token_index()
        self.register_buffer("token_level", index[:, 0].clone(), persistent=False)
        # 2-D sin/cos code of (w, h) in level-local coordinates, shared by encoder and decoder.
        self.register_buffer("pos", sincos_embedding(index[:, [2, 1]], d), persistent=False)

        self.patch_in = nn.Linear(lay.patch_dim, d)
        self.enc_level = nn.Embedding(lay.num_levels, d)
        self.encoder = nn.ModuleList(
            TransformerBlock(d, config.heads, config.mlp_ratio) for _ in range(config.encoder_depth)
        )
        self.to_latent = nn.Linear(d, config.latent_channels)

        self.from_latent = nn.Linear(config.latent_channels, d)
        self.dec_level = nn.Embedding(lay.num_levels, d)
        self.decoder = nn.ModuleList(
            DiTBlock(d, config.heads, config.mlp_ratio) for _ in range(config.decoder_depth)
        )
        self.to_patch = nn.Linear(d, lay.patch_dim)
        init_linear_xavier(self)
        # Zero output projection: training starts from a flat grey image instead of unit-variance noise,
        # which otherwise costs Muon (scale-free updates) many early steps to undo.
        nn.init.zeros_(self.to_patch.weight)
        self.refine = RefineHead(config.refine_channels) if config.refine_channels > 0 else None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        map_location: str = "cpu",
        revision: str | None = None,
        **_: object,
    ) -> HierarchicalAutoencoder:
        """Load from a bundled name, a local directory or a Hub repo id (strict, safetensors only).

        Overrides the mixin's loader so that bundled names work and a config/weights mismatch or a
        corrupted file raises :class:`~models.checkpoints.CheckpointError` naming the file.
        """
        from models.checkpoints import load_autoencoder

        return load_autoencoder(pretrained_model_name_or_path, device=map_location, revision=revision)

    # ------------------------------------------------------------------ encoder
    def encoder_modules(self) -> list[nn.Module]:
        """The modules that map images to latents (their weights define the latent space)."""
        return [self.patch_in, self.enc_level, self.encoder, self.to_latent]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Encode validated images.

        Args:
            images: float ``(B, 3, H, W)`` in ``[0, 1]``.

        Returns:
            ``(B, num_tokens, C)`` latents in ``(-1, 1)``; for the cascaded variant levels >= 1 are
            pooled level-0 latents without gradient.
        """
        tokens = frames_to_tokens(images * 2 - 1, self.layout)  # [-1, 1] inputs: zero-centred
        x = self.patch_in(tokens) + self.pos + self.enc_level(self.token_level)
        for block in self.encoder:
            x = block(x)
        z = torch.tanh(self.to_latent(x))
        if self.config.variant == "cascaded":
            z = self._cascade(z)
        return z

    def _cascade(self, z: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        fine = z[:, lay.level_slice(0)]
        g = lay.grid(0)
        grid = fine.transpose(1, 2).reshape(z.shape[0], -1, g, g)
        parts = [fine]
        # Detached: otherwise encoder and decoder could turn the pooled levels back into adaptive codes.
        pooled = grid.detach()
        for _ in range(1, lay.num_levels):
            pooled = F.avg_pool2d(pooled, 2)
            parts.append(pooled.flatten(2).transpose(1, 2))
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encode frames to latents of all levels.

        Args:
            frames: uint8 ``(B, H, W, 3)`` or float ``(B, 3, H, W)`` in ``[0, 1]``.

        Returns:
            ``(B, num_tokens, C)`` float32 latents (level 0 first, raster order within a level).
        """
        images = validate_frames(frames, self.layout).to(self.pos.device)
        return _check_finite(self.encode_images(images), "latents")

    # ------------------------------------------------------------------ decoder
    def decode_pyramid(self, latents: torch.Tensor, levels: torch.Tensor) -> list[torch.Tensor]:
        """Rebuild the whole pyramid from the latents of one kept level per sample.

        Args:
            latents: ``(B, num_tokens, C)``; tokens of levels other than ``levels[b]`` are ignored
                (zeroed here).
            levels: int64 ``(B,)`` kept level of every sample.

        Returns:
            per pyramid level ``(B, 3, H_l, W_l)`` predictions (unclamped, ``[0, 1]`` scale).
        """
        keep = (self.token_level[None, :] == levels[:, None]).unsqueeze(-1)
        z = latents * keep.to(latents.dtype)
        x = self.from_latent(z) + self.pos + self.dec_level(self.token_level)
        c = self.dec_level(levels)
        for block in self.decoder:
            x = block(x, c)
        images = [(img + 1) / 2 for img in unpatchify(self.to_patch(x), self.layout)]
        if self.refine is not None:
            images[0] = self.refine(images[0])
        return images

    def forward(self, images: torch.Tensor, levels: torch.Tensor) -> list[torch.Tensor]:
        """Training pass: encode, keep one level per sample, decode the whole pyramid.

        Args:
            images: float ``(B, 3, H, W)`` in ``[0, 1]``.
            levels: int64 ``(B,)`` kept levels, or ``(k * B,)``: then every image is decoded ``k`` times
                (sample ``b`` with ``levels[b * k : (b + 1) * k]``) from one encoder pass.

        Returns:
            per pyramid level ``(len(levels), 3, H_l, W_l)`` predictions.
        """
        z = self.encode_images(images)
        if len(levels) != len(images):
            if len(levels) % len(images):
                raise ValueError(f"{len(levels)} levels for {len(images)} images: need a multiple")
            z = z.repeat_interleave(len(levels) // len(images), dim=0)
        return self.decode_pyramid(z, levels)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, level: int) -> torch.Tensor:
        """Decode frames from the latents of one level.

        Args:
            latents: ``(B, tokens_per_level[level], C)`` latents of ``level``, or the full
                ``(B, num_tokens, C)`` array (the other levels are then ignored).
            level: the level the latents belong to.

        Returns:
            ``(B, 3, H, W)`` float level-0 frames in ``[0, 1]``.
        """
        lay = self.layout
        if not 0 <= level < lay.num_levels:
            raise ValueError(f"level must be in [0, {lay.num_levels - 1}], got {level}")
        n, c = lay.tokens_per_level[level], self.config.latent_channels
        if latents.ndim != 3 or latents.shape[2] != c or latents.shape[1] not in (n, lay.num_tokens):
            raise ValueError(
                f"latents of level {level} must have shape (B, {n}, {c}) or (B, {lay.num_tokens}, {c}); "
                f"got {tuple(latents.shape)}"
            )
        if latents.shape[1] == n:
            full = latents.new_zeros(latents.shape[0], lay.num_tokens, c)
            full[:, lay.level_slice(level)] = latents
            latents = full
        latents = latents.to(self.pos.device, torch.float32)
        levels = torch.full((latents.shape[0],), level, dtype=torch.long, device=latents.device)
        if not torch.isfinite(latents).all():
            raise ValueError("latents contain NaN or inf")
        return _check_finite(self.decode_pyramid(latents, levels)[0], "decoded frames").clamp(0, 1)

    @torch.no_grad()
    def reconstruct(self, frames: np.ndarray | torch.Tensor, level: int = 0) -> torch.Tensor:
        """Encode then decode from one level: ``frames -> (B, 3, H, W)`` in ``[0, 1]``."""
        return self.decode(self.encode(frames), level)


def _check_finite(x: torch.Tensor, what: str) -> torch.Tensor:
    # A broken checkpoint must fail loudly rather than hand NaN frames to the simulator.
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"the autoencoder produced non-finite {what}; the checkpoint is corrupted")
    return x


def reconstruction_loss(
    predicted: list[torch.Tensor], target: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on every pyramid level, weighted so that every level counts equally.

    Equals the paper's element mean with weight ``4^level`` per element: ``sum_l mse_l * N_0 / N``
    (``N_0`` level-0 tokens, ``N`` tokens in all), so the perceptual weight keeps its meaning.

    Args:
        predicted: per level ``(B, 3, H_l, W_l)``.
        target: per level ``(B, 3, H_l, W_l)``.

    Returns:
        ``(loss, per_level_mse)``: scalar loss and ``(num_levels,)`` detached per-level MSE.
    """
    per_level = torch.stack([F.mse_loss(p, t) for p, t in zip(predicted, target, strict=True)])
    n0 = predicted[0].shape[-1] ** 2
    total = sum(p.shape[-1] ** 2 for p in predicted)
    return per_level.sum() * (n0 / total), per_level.detach()
