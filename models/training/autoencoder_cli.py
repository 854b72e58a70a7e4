"""``millivid train-autoencoder``: train (or resume) a hierarchical autoencoder on a video dataset.

Runs unchanged under ``torchrun --nproc_per_node N -m models.training.autoencoder_cli ...`` (DDP).
Re-running the same command with the same ``--out`` resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from models.autoencoder import SIZES, VARIANTS
from models.training.autoencoder import LEVEL_SAMPLING
from models.training.common import add_optimiser_arguments, add_run_arguments, config_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options."""
    parser.add_argument(
        "--data", required=True, help="video dataset folder (millivid generate) or .npy frames"
    )
    parser.add_argument("--out", required=True, help="run folder: checkpoint/, log.csv; resumes if present")
    parser.add_argument("--steps", type=int, default=20000, help="total optimiser steps (default 20000)")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per step and process (default 32)")
    add_optimiser_arguments(
        parser, lr_default=2e-3, lr_help="learning rate (default 2e-3)", warmup_default=100
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="cpu", help="architecture preset (default cpu)"
    )
    parser.add_argument("--variant", choices=VARIANTS, default="hierarchical")
    parser.add_argument(
        "--refine-channels", type=int, default=None, help="conv refinement head width (0 = off)"
    )
    parser.add_argument(
        "--decoder-depth", type=int, default=None, help="decoder blocks (default: the --size preset's)"
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="fine-tune: start from this autoencoder's weights with a fresh optimiser and schedule; "
        "same architecture, except that --refine-channels may add a refinement head and --decoder-depth "
        "more decoder blocks (both start as the identity)",
    )
    parser.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="train the decoder only: the encoder, and so the latent space, stays bit-identical, so "
        "diffusion models and reward heads trained on its latents remain valid (needs --init-from)",
    )
    parser.add_argument(
        "--perceptual-weight", type=float, default=0.05, help="ST-LPIPS-Alex weight (0 = off)"
    )
    parser.add_argument(
        "--perceptual-samples", type=int, default=8, help="samples per batch in the perceptual term"
    )
    parser.add_argument(
        "--all-levels", action="store_true", help="decode every frame from all levels (one encoder pass)"
    )
    parser.add_argument(
        "--level-sampling",
        choices=LEVEL_SAMPLING,
        default="random",
        help="levels each frame is decoded from: one random level (default, the paper), all of them "
        "(= --all-levels), or fine-plus-random: level 0 plus one random coarser level (half the decoder "
        "cost of all; for decoder fine-tunes aimed at level 0)",
    )
    parser.add_argument("--eval-data", default=None, help="held-out dataset (default: last videos of --data)")
    parser.add_argument("--holdout-videos", type=int, default=1, help="videos of --data held out (default 1)")
    parser.add_argument("--eval-frames", type=int, default=64, help="held-out frames evaluated")
    parser.add_argument("--eval-every", type=int, default=250, help="held-out PSNR every N steps")
    add_run_arguments(parser, data_flag="--data")


def run(args: argparse.Namespace) -> int:
    """Run the training; prints the final held-out PSNR per level."""
    from models.training.autoencoder import TrainConfig, describe_eval, train

    result = train(TrainConfig(**config_options(args)))
    if result:
        print(f"held-out PSNR decoding from each level: {describe_eval(result)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m`` / ``torchrun -m`` (the ``millivid`` script calls `run`)."""
    parser = argparse.ArgumentParser(prog="millivid train-autoencoder", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
