"""``millivid train-diffusion``: train (or resume) the video DiT on a latent dataset.

Runs unchanged under ``torchrun --nproc_per_node N -m models.training.diffusion_cli ...`` (DDP, gloo
on CPU). Re-running the same command with the same ``--out`` resumes from the last checkpoint; the
trained model is ``OUT/checkpoint/model`` (config.json + model.safetensors).
"""

from __future__ import annotations

import argparse
import sys

from models.diffusion.config import CONTEXT_ATTENTION, DIT_SIZES
from models.training.common import add_optimiser_arguments, add_run_arguments, config_options
from models.training.diffusion import STRATEGIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options."""
    parser.add_argument("--latents", required=True, help="latent dataset folder (millivid encode --out)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint/, log.csv; resumes if present")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="millivid",
        help="rollout strategy whose layouts are trained",
    )
    parser.add_argument(
        "--mix-streaming",
        type=float,
        default=0.0,
        metavar="P",
        help="probability of a streaming-layout sample (the env's layout); 0 = off",
    )
    parser.add_argument("--size", choices=sorted(DIT_SIZES), default="cpu", help="DiT size (default cpu)")
    parser.add_argument(
        "--context-attention",
        choices=CONTEXT_ATTENTION,
        default="bidirectional",
        help="attention among context tokens; frame-causal lets the env step encode the past once per "
        "frame instead of once per level (default bidirectional, the paper's)",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="fine-tune: start from this DiT checkpoint's weights (same size; --context-attention may "
        "differ) with a fresh optimiser and schedule",
    )
    parser.add_argument("--steps", type=int, default=20000, help="total optimiser steps (default 20000)")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="samples per step and process (default 16)"
    )
    add_optimiser_arguments(
        parser,
        lr_default=1e-3,
        lr_help="learning rate (default 1e-3, the paper's)",
        warmup_default=200,
        cooldown_help="linear lr decay to 0 over the last N of --steps",
    )
    parser.add_argument(
        "--context-noise",
        type=float,
        default=0.0,
        help="context noise augmentation: context time ~ U[0, X] (0 = clean context, the paper)",
    )
    parser.add_argument("--cfg-dropout", type=float, default=0.1, help="unconditional-sample probability")
    parser.add_argument(
        "--eval-latents", default=None, help="held-out latents (default: last videos of --latents)"
    )
    parser.add_argument(
        "--holdout-videos", type=int, default=1, help="videos of --latents held out (default 1)"
    )
    parser.add_argument("--eval-samples", type=int, default=64, help="fixed held-out samples per evaluation")
    parser.add_argument("--eval-every", type=int, default=250, help="held-out denoising loss every N steps")
    add_run_arguments(parser, data_flag="--latents")


def run(args: argparse.Namespace) -> int:
    """Run the training; prints the final held-out denoising loss."""
    from models.latents import LatentDataError
    from models.training.diffusion import DiffusionTrainConfig, train

    options = config_options(args)
    try:
        result = train(DiffusionTrainConfig(**options))
    except LatentDataError as error:  # a missing or corrupted latent folder: the message says the fix
        print(f"millivid train-diffusion: error: {error}", file=sys.stderr)
        return 2
    if result:
        print("held-out denoising loss: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m`` / ``torchrun -m`` (the ``millivid`` script calls `run`)."""
    parser = argparse.ArgumentParser(prog="millivid train-diffusion", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
