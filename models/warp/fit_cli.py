"""`millivid fit-warp`: fit the per-action homographies of an :class:`ActionWarp` to a video dataset.

    millivid fit-warp --data data/train64 --out runs/warp --pairs-per-action 256

Writes a checkpoint folder (``config.json``, ``model.safetensors``, ``README.md`` model card with the
command, data, wall time and the fitted error next to the held frame's) atomically.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time

import torch

from models.checkpoints import save_checkpoint
from models.data import dataset_config, load_video, video_indices
from models.warp.fit import fit_motion, fit_warp, frame_pairs
from models.warp.homography import ActionWarp, WarpConfig

ACTION_NAMES = ("forward", "left", "right")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `millivid fit-warp`."""
    parser.add_argument("--data", required=True, help="train split folder (millivid generate --split train)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--videos", type=int, default=None, help="videos read (default: all)")
    parser.add_argument("--pairs-per-action", type=int, default=256, help="(previous, next) pairs per action")
    parser.add_argument("--steps-per-width", type=int, default=120, help="Adam steps per blur stage")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--interpolation", default="bicubic", choices=("bicubic", "bilinear"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    """Fit and save the warp; print its error next to the held frame's."""
    if args.threads:
        torch.set_num_threads(args.threads)
    config = dataset_config(args.data)
    indices = video_indices(args.data)[: args.videos]
    if not indices:
        raise SystemExit(f"no videos in {args.data!r}: render some with `millivid generate --split train`")
    loaded = [load_video(args.data, i) for i in indices]
    videos = [(v.frames, v.actions) for v in loaded]
    resolution = int(videos[0][0].shape[1])
    num_actions = int(config.get("num_actions", 3))
    warp = ActionWarp(
        WarpConfig(resolution=resolution, num_actions=num_actions, interpolation=args.interpolation)
    )
    pairs = frame_pairs(videos, args.pairs_per_action, num_actions, seed=args.seed)
    start = time.perf_counter()
    report = fit_warp(warp, pairs, steps_per_width=args.steps_per_width, lr=args.lr)
    motion = fit_motion([v.poses for v in loaded], [v.actions for v in loaded], num_actions)
    with torch.no_grad():
        warp.motion.copy_(torch.from_numpy(motion))
    wall = time.perf_counter() - start
    names = ACTION_NAMES if num_actions == len(ACTION_NAMES) else tuple(str(a) for a in range(num_actions))
    rows = "\n".join(
        f"| {name} | {w:.4f} | {h:.4f} |"
        for name, w, h in zip(names, report.warp_error, report.held_error, strict=True)
    )
    command = "millivid fit-warp " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    card = f"""---
library_name: millivid-env
license: mit
tags: [millivid, world-model, loopcraft, warp]
---

# Action warp for Loopcraft {resolution}x{resolution}

One 3x3 homography per action (8 parameters each, {8 * num_actions} in all) that moves the previous
frame by the action: the part of the next frame that copying can explain. Used by the world-model
envs before the diffusion model fills what the move reveals (`models.warp`).

## Fit

- Command: `{command}`
- Data: `{args.data}` ({len(indices)} videos, {args.pairs_per_action} (previous, next) pairs per
  action, seed {args.seed}).
- Coarse-to-fine Adam on the masked mean absolute error (blur widths 16, 8, 4, 2, 1;
  {args.steps_per_width} steps each).
- Wall time {wall:.0f} s on {platform.machine()} CPU ({torch.get_num_threads()} threads), torch
  {torch.__version__}.

## Mean absolute error on the fit pairs (frames in [0, 1])

| action | warped previous frame | previous frame held |
|---|---|---|
{rows}

Homographies (output -> source coordinates, normalised to [-1, 1]):

```json
{json.dumps([[[round(x, 4) for x in row] for row in h] for h in warp.homographies().tolist()])}
```

Motion per action (blocks walked along the view, degrees of yaw turned), the mean over every step
of the data: {json.dumps([[round(x, 4) for x in row] for row in motion.tolist()])}.
"""
    save_checkpoint(warp, args.out, model_card=card)
    print(f"wrote {args.out} in {wall:.0f} s")
    for name, w, h in zip(names, report.warp_error, report.held_error, strict=True):
        print(f"  {name}: warp {w:.4f}  held {h:.4f}")
    return 0
