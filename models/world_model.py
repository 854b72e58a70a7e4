"""A world model = a hierarchical autoencoder + a video DiT trained on its latents.

Both halves are ordinary checkpoints (bundled name, local directory or Hub repo id). This module pairs
them, checks that they speak the same token layout, and caches loaded pairs per process so that many
environments share one copy of the weights.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from models.autoencoder import HierarchicalAutoencoder
from models.checkpoints import CheckpointError, load_autoencoder, require_kind
from models.diffusion.dit import VideoDiT
from models.tokens import TokenLayout, get_layout

#: The argument that takes each kind of checkpoint, as error messages name them: the envs' kwargs
#: (also the CLIs' flags).
ARGUMENTS: dict[str, str] = {
    "autoencoder": "autoencoder",
    "diffusion": "checkpoint",
    "reward-head": "reward_head",
    "action-warp": "warp",
    "landmark-locator": "landmark_locator",
}

_CACHE: dict[tuple[str, str, str], WorldModel] = {}
_CACHE_LOCK = threading.Lock()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` ⇒ CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class WorldModel:
    """An autoencoder and a diffusion model over its latents, on one device, in eval mode.

    Attributes:
        autoencoder: frames ⇄ hierarchical latents.
        dit: the video diffusion transformer.
        layout: the shared token layout.
        device: where both live.
    """

    autoencoder: HierarchicalAutoencoder
    dit: VideoDiT
    layout: TokenLayout
    device: torch.device

    @classmethod
    def load(
        cls,
        autoencoder: str | os.PathLike[str],
        diffusion: str | os.PathLike[str],
        device: str | torch.device = "auto",
        cache: bool = True,
        *,
        arguments: Mapping[str, str] = ARGUMENTS,
    ) -> WorldModel:
        """Load (or take from the per-process cache) an autoencoder + diffusion pair.

        Args:
            autoencoder: autoencoder checkpoint (bundled name, local directory or Hub repo id).
            diffusion: diffusion checkpoint (same forms).
            device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
            cache: reuse a pair already loaded in this process (the weights are never modified).
            arguments: what the caller's user calls the argument of each kind of checkpoint, for
                error messages (default :data:`ARGUMENTS`: the envs' kwargs).

        Raises:
            models.checkpoints.CheckpointError: a checkpoint cannot be loaded, is of the wrong kind
                (e.g. an autoencoder given as the diffusion model), or the two were trained for
                different token layouts.
        """
        dev = resolve_device(device)
        key = (str(autoencoder), str(diffusion), str(dev))
        with _CACHE_LOCK:
            if cache and key in _CACHE:
                return _CACHE[key]
            ae_dir = require_kind(autoencoder, "autoencoder", arguments["autoencoder"], arguments)
            dit_dir = require_kind(diffusion, "diffusion", arguments["diffusion"], arguments)
            ae = load_autoencoder(ae_dir, device=dev)
            dit = VideoDiT.from_pretrained(str(dit_dir), map_location=str(dev))
            if (
                ae.config.layout != dit.config.layout
                or ae.config.latent_channels != dit.config.latent_channels
            ):
                raise CheckpointError(
                    f"mismatched checkpoints: autoencoder {autoencoder!s} uses layout {ae.config.layout!r} "
                    f"with {ae.config.latent_channels} latent channels, diffusion {diffusion!s} uses "
                    f"{dit.config.layout!r} with {dit.config.latent_channels}; pass a diffusion checkpoint "
                    "trained on this autoencoder's latents"
                )
            model = cls(
                ae.requires_grad_(False), dit.requires_grad_(False), get_layout(ae.config.layout), dev
            )
            if cache:
                _CACHE[key] = model
            return model

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` frames ⇒ float32 ``(N, num_tokens, C)`` latents of all levels."""
        return self.autoencoder.encode(frames)

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor, level: int = 0) -> np.ndarray:
        """``(N, tokens_of_level, C)`` latents of one level ⇒ uint8 ``(N, H, W, 3)`` frames."""
        images = self.autoencoder.decode(latents.to(self.device), level)  # (N, 3, H, W) in [0, 1]
        return (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy()


def clear_cache() -> None:
    """Forget every cached world model (frees memory; the next :meth:`WorldModel.load` reloads)."""
    with _CACHE_LOCK:
        _CACHE.clear()
