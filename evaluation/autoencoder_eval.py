"""``millivid eval-autoencoder``: reconstruction quality per kept level, checkpoints side by side.

For every checkpoint and every level ``l``, held-out frames are encoded, only level ``l``'s latents are
kept, and the decoded level-0 frame is compared with the original: PSNR, SSIM and LPIPS from
``evaluation.metrics`` (standard LPIPS-Alex when its AlexNet trunk is configured, otherwise
ST-LPIPS-Alex, whose trained weights are available offline; the table names the one used).
Frames come from a test dataset (``--data``) or are rendered fresh (``--videos N`` test loops of the
Loopcraft generator; this is why the command lives in ``evaluation``, which may import
``millivid_env``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def held_out_frames(
    data: str | None, videos: int, frames_per_video: int, max_frames: int, seed: int
) -> np.ndarray:
    """uint8 ``(N, R, R, 3)`` frames evenly spread over a dataset or freshly rendered test loops."""
    if data:
        from models.data import load_frames

        frames, _ = load_frames(data)
    else:
        from millivid_env.loopcraft.generate import make_config, make_video

        config = make_config("test", 64, frames_per_video, seed=seed)
        frames = np.concatenate([make_video(config, i)[0]["frames"] for i in range(videos)])
    pick = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    return frames[pick]


@torch.no_grad()
def evaluate_checkpoint(checkpoint: str, frames: np.ndarray, suite: Any, batch: int = 64) -> dict:
    """Per-level mean PSNR / SSIM / perceptual distance of one checkpoint on ``frames``.

    Args:
        checkpoint: bundled name, directory or repo id.
        frames: uint8 ``(N, H, W, 3)``.
        suite: an ``evaluation.metrics.FrameMetricSuite`` (``psnr``, ``ssim``, optionally ``lpips``).
        batch: frames per autoencoder call.
    """
    from models.checkpoints import load_autoencoder

    model = load_autoencoder(checkpoint)
    target = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "variant": model.config.variant, "levels": []}
    for level in range(model.layout.num_levels):
        recon = torch.cat(
            [model.reconstruct(frames[s : s + batch], level) for s in range(0, len(frames), batch)]
        )
        values = suite(recon, target)
        row = {"level": level, "tokens": model.layout.tokens_per_level[level]}
        row.update({("perceptual" if k == "lpips" else k): float(v.mean()) for k, v in values.items()})
        result["levels"].append(row)
    return result


def markdown_table(results: list[dict], perceptual_name: str | None) -> str:
    """One row per level, one column group per checkpoint."""
    metrics = ["psnr", "ssim"] + (["perceptual"] if perceptual_name else [])
    names = {"psnr": "PSNR dB", "ssim": "SSIM", "perceptual": perceptual_name or ""}
    variants = [r["variant"] for r in results]
    labels = [
        v if variants.count(v) == 1 else f"{v} {Path(r['checkpoint']).name or r['checkpoint']}"
        for v, r in zip(variants, results, strict=True)
    ]
    header = ["level (tokens)"] + [f"{label}: {names[m]}" for label in labels for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, row in enumerate(results[0]["levels"]):
        cells = [f"L{k} ({row['tokens']})"]
        cells += [
            f"{r['levels'][k].get(m, float('nan')):.{2 if m == 'psnr' else 4}f}"
            for r in results
            for m in metrics
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options."""
    parser.add_argument(
        "--checkpoint", action="append", default=None, help="bundled name, directory or repo id (repeatable)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", default=None, help="held-out video dataset folder (or .npy frames)")
    source.add_argument("--videos", type=int, default=4, help="render N fresh test loops (default 4)")
    parser.add_argument("--frames-per-video", type=int, default=128, help="frames per rendered test video")
    parser.add_argument("--max-frames", type=int, default=512, help="frames evaluated (evenly spaced)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the rendered test loops")
    parser.add_argument("--no-perceptual", action="store_true", help="skip the LPIPS distance")
    parser.add_argument(
        "--perceptual",
        choices=("lpips-alex", "st-lpips-alex"),
        default="lpips-alex",
        help="LPIPS variant (lpips-alex falls back to st-lpips-alex without AlexNet weights)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    """Run ``millivid eval-autoencoder``; prints a Markdown table."""
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = args.checkpoint or ["loopcraft-64"]
    frames = held_out_frames(args.data, args.videos, args.frames_per_video, args.max_frames, args.seed)
    from evaluation.metrics import FrameMetricSuite

    names = ("psnr", "ssim") if args.no_perceptual else ("psnr", "ssim", "lpips")
    suite = FrameMetricSuite(names, prefer=args.perceptual)
    results = [evaluate_checkpoint(c, frames, suite) for c in checkpoints]
    name = suite.labels.get("lpips")
    print(f"{len(frames)} held-out frames; each level decoded alone to the level-0 frame\n")
    print(markdown_table(results, name))
    if args.json:
        document = {"frames": len(frames), "perceptual_metric": name, "results": results}
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    return 0
