"""Tiny randomly initialised checkpoints, for tests and examples that must run in seconds offline.

Their outputs are meaningless (untrained weights); they exercise the real loading, encoding, sampling
and decoding code paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from models.autoencoder import HierarchicalAutoencoder, size_config
from models.checkpoints import save_checkpoint
from models.diffusion.config import dit_config
from models.diffusion.dit import VideoDiT

TINY_CARD = "Randomly initialised tiny checkpoint for tests; not trained, its outputs mean nothing.\n"


def save_tiny_world_model(
    directory: str | os.PathLike[str], seed: int = 0, dit_width: int | None = None
) -> tuple[Path, Path]:
    """Write a tiny random autoencoder and diffusion model for the ``loopcraft-64`` layout.

    Args:
        directory: parent folder; ``autoencoder/`` and ``diffusion/`` are created inside it.
        seed: torch seed of the random initialisation.
        dit_width: DiT width instead of the ``tiny`` size's 48. Tests that compare batched with
            single runs bit for bit use a multiple of 32 (64): CPU elementwise kernels (SiLU, GELU)
            round a row differently depending on where it falls in their 32-float vector blocks, so
            a width of 48 makes a row's bits depend on the batch; every trained size is aligned.

    Returns:
        the autoencoder and diffusion checkpoint directories.
    """
    root = Path(directory)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        autoencoder = HierarchicalAutoencoder(size_config("tiny"))
        dit = VideoDiT(dit_config("tiny", width=dit_width))
        # adaLN-Zero starts as an exact identity with zero output, and the autoencoder's zero output
        # projection decodes every latent to the same grey frame: perturb both so tests see actions,
        # context and latents change the frames, as they do in a trained model.
        with torch.no_grad():
            for parameter in (*dit.parameters(), *autoencoder.parameters()):
                if not parameter.any():
                    parameter.normal_(0.0, 0.02)
    ae_dir = save_checkpoint(autoencoder, root / "autoencoder", model_card=TINY_CARD)
    dit_dir = save_checkpoint(dit, root / "diffusion", model_card=TINY_CARD)
    return Path(ae_dir), Path(dit_dir)


def batch_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """A sample computed alone equals the same sample computed in a batch, as far as the BLAS allows.

    Bitwise where BLAS is batch-invariant (MKL's strict mode on Intel CPUs, which ``import millivid_env``
    sets); equal up to float rounding (1e-5) elsewhere, e.g. on AMD CPUs, where MKL ignores that mode.
    """
    from models.rollout.streaming import blas_is_batch_invariant

    if blas_is_batch_invariant():
        return torch.equal(a, b)
    return torch.allclose(a, b, atol=1e-5)
