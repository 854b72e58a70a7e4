"""`millivid train-landmark-locator`: where the landmarks are in a real frame, for the landmark map reward.

    millivid train-landmark-locator --out runs/landmark-locator --walks 400 --steps 2000

Walks the landmark task's episode starts in the real world (the walks the imagined envs take their
context frames from), labels every frame with the bearing bin and distance of each landmark in view,
trains a :class:`models.landmark_locator.LandmarkLocator` and writes it atomically as a checkpoint
directory (``config.json`` + ``model.safetensors`` + ``README.md`` model card + ``metrics.json``):
per-bin precision, recall and distance error on held-out walks, and how well the maps built from
them find the landmarks (:func:`agents.locator_training.evaluate_maps`). Use it with
``landmark_locator=...`` on the world-model envs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time

__all__ = ["add_arguments", "run"]

#: Held-out walks are drawn from this seed offset, so they never share a generator with training.
_TEST_SEED_OFFSET = 1_000_003


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``millivid train-landmark-locator``."""
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.add_argument("--walks", type=int, default=400, help="training walks of 85 frames (default 400)")
    parser.add_argument("--test-walks", type=int, default=60, help="held-out walks (default 60)")
    parser.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=24, help="channels of the first convolution")
    parser.add_argument("--bins", type=int, default=16, help="bearing bins over the view (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _model_card(args: argparse.Namespace, metrics: dict, seconds: float) -> str:
    import torch

    test, maps = metrics["test"], metrics["maps"]
    error = f"{test['distance_median_abs_error']:.2f} blocks ({100 * test['distance_median_rel_error']:.0f}%)"
    return f"""---
library_name: millivid-env
license: mit
tags: [millivid, world-model, loopcraft, landmark-locator]
---

# Landmark locator for Loopcraft 64x64

Reads one real 64x64 frame and says, for each of {args.bins} bearing bins over the view, whether a
landmark's centre lies in that direction and how far away it is. The world-model landmark envs
(`landmark_locator=...`) read the context frames with it, merge the readings into a map of the
landmarks in dead-reckoned coordinates (`millivid_env.landmark_map`) and judge each imagined step
on the distance from the dead-reckoned pose to the nearest mapped landmark.

## Training

- Command: `{metrics["command"]}`
- Data: {args.walks} walks of the landmark task's episode starts (85 frames each, {metrics["data"]["frames"]}
  frames, seed {args.seed}), labelled from the true pose and the world's landmarks; random left-right flips.
- {args.steps} AdamW steps of batch {args.batch_size}, lr {args.lr} (cosine), BCE on the bins plus L1 on the
  log distance of the positive ones.
- Wall time {seconds:.0f} s on {platform.machine()} CPU ({torch.get_num_threads()} threads),
  torch {torch.__version__}.

## Held-out walks ({args.test_walks} walks, {test["frames"]} frames, other seeds)

| per bin | precision | recall | F1 | median distance error |
|---|---|---|---|---|
| threshold 0.5 | {test["precision"]:.3f} | {test["recall"]:.3f} | {test["f1"]:.3f} | {error} |

Maps built from each held-out walk (`MapSettings()` defaults): {maps["found_seen"]} of the
{maps["seen_landmarks"]} landmarks seen found within {maps["within_blocks"]:.0f} blocks (recall
{maps["recall"]:.3f}), {maps["false_landmarks"]} of {maps["mapped"]} mapped centres near no landmark
(precision {maps["precision"]:.3f}), median centre error {maps["centre_median_error"]:.2f} blocks.
"""


def run(args: argparse.Namespace) -> int:
    """Collect, train, evaluate and save; see the module docstring."""
    import torch

    from agents.locator_training import collect_walks, evaluate_locator, evaluate_maps, train_locator
    from models.checkpoints import save_checkpoint
    from models.landmark_locator import LocatorConfig

    if args.walks < 1 or args.test_walks < 1 or args.steps < 1:
        raise SystemExit("--walks, --test-walks and --steps must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    config = LocatorConfig(bearing_bins=args.bins, width=args.width)
    progress = not args.no_progress
    train = collect_walks(args.walks, args.seed, config, progress=progress)
    test = collect_walks(args.test_walks, args.seed + _TEST_SEED_OFFSET, config, progress=progress)
    model, losses = train_locator(
        train, config, args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=progress
    )
    metrics = {
        "command": "millivid train-landmark-locator " + shlex.join(sys.argv[2:])
        if len(sys.argv) > 2 and sys.argv[1] == "train-landmark-locator"
        else f"millivid train-landmark-locator --out {args.out} --walks {args.walks} --steps {args.steps}",
        "data": {"walks": args.walks, "frames": len(train.frames), "seed": args.seed},
        "test": evaluate_locator(model, test),
        "train": evaluate_locator(model, train),
        "maps": evaluate_maps(model, test),
        "losses": losses,
    }
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds, 1)
    card = _model_card(args, metrics, seconds)

    out = save_checkpoint(model, args.out, card, files={"metrics.json": json.dumps(metrics, indent=2) + "\n"})
    t, m = metrics["test"], metrics["maps"]
    print(
        f"held-out bins: precision {t['precision']:.3f}, recall {t['recall']:.3f}, F1 {t['f1']:.3f}, "
        f"median distance error {t['distance_median_abs_error']:.2f} blocks; maps: {m['found_seen']}/"
        f"{m['seen_landmarks']} seen landmarks found, {m['false_landmarks']}/{m['mapped']} false; saved {out}"
    )
    return 0
