"""``millivid train-autoencoder``: train (or resume) a hierarchical autoencoder on a video dataset.

Runs unchanged under ``torchrun --nproc_per_node N -m models.training.autoencoder_cli ...`` (DDP).
Re-running the same command with the same ``--out`` resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from models.autoencoder import SIZES, VARIANTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options."""
    parser.add_argument(
        "--data", required=True, help="video dataset folder (millivid generate) or .npy frames"
    )
    parser.add_argument("--out", required=True, help="run folder: checkpoint/, log.csv; resumes if present")
    parser.add_argument("--steps", type=int, default=20000, help="total optimiser steps (default 20000)")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per step and process (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    parser.add_argument("--muon-lr", type=float, default=None, help="Muon learning rate (default: --lr)")
    parser.add_argument("--optimizer", choices=("muon", "adamw"), default="muon", help="muon = Muon + AdamW")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up steps (default 100)")
    parser.add_argument(
        "--cooldown-steps",
        type=int,
        default=0,
        help="linear lr decay to 0 over the last N of --steps (0 = off)",
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="cpu", help="architecture preset (default cpu)"
    )
    parser.add_argument("--variant", choices=VARIANTS, default="hierarchical")
    parser.add_argument(
        "--refine-channels", type=int, default=None, help="conv refinement head width (0 = off)"
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
    parser.add_argument("--eval-data", default=None, help="held-out dataset (default: last videos of --data)")
    parser.add_argument("--holdout-videos", type=int, default=1, help="videos of --data held out (default 1)")
    parser.add_argument("--eval-frames", type=int, default=64, help="held-out frames evaluated")
    parser.add_argument("--eval-every", type=int, default=250, help="held-out PSNR every N steps")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every-minutes", type=float, default=10.0)
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and checkpoint) after this wall time"
    )
    parser.add_argument("--max-videos", type=int, default=None, help="use only the first N videos of --data")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def run(args: argparse.Namespace) -> int:
    """Run the training; prints the final held-out PSNR per level."""
    import torch

    from models.training.autoencoder import TrainConfig, describe_eval, train

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {k: v for k, v in vars(args).items() if k != "threads"}
    result = train(TrainConfig(**options))
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
