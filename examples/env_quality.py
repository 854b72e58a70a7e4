"""How close the env's own (streaming) frames stay to the truth: step test loops' true actions.

The env is reset with the first ``--context`` true frames and actions of a test loop (reset option
``context_frames`` / ``context_actions``), then steps the loop's next ``--frames`` true actions; every
generated frame is compared with the true one (ST-LPIPS-Alex, PSNR), averaged per 32-frame bucket
over the loops (mean and standard error over loops). `millivid evaluate` measures the open-loop
rollouts of the paper's protocol; this measures what an env user sees, for any checkpoint and sampler.
The same scores are given for the trivial baseline that holds the last true context frame
(``held_frame``): an env that does not beat it has not learnt how the view moves.


    python examples/env_quality.py --data data/test64 --videos 16 --out env-quality.json \\
        --checkpoint loopcraft-64-millivid-framecausal --sampling-steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import millivid_env  # noqa: F401  (sets MKL_CBWR before torch computes)
from evaluation.metrics import StLpipsAlex, psnr
from millivid_env.world_model_env import (
    DEFAULT_AUTOENCODER,
    DEFAULT_CHECKPOINT,
    DEFAULT_SAMPLING_STEPS,
    MilliVidEnv,
)
from models.data import load_video

BUCKET = 32


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="test split folder (millivid generate --split test)")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--first-video", type=int, default=0, help="index of the first test loop")
    parser.add_argument("--seed-offset", type=int, default=0, help="loop v resets with seed v + this")
    parser.add_argument("--context", type=int, default=128, help="true frames given at reset (>= 85)")
    parser.add_argument("--frames", type=int, default=128, help="frames stepped (a multiple of 32)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--autoencoder", default=DEFAULT_AUTOENCODER)
    parser.add_argument("--sampling-steps", type=int, default=DEFAULT_SAMPLING_STEPS)
    parser.add_argument("--sampler-endpoint", action="store_true", help="also evaluate at t = 0")
    parser.add_argument("--context-noise", type=float, default=0.0, help="env kwarg context_noise")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="env kwarg guidance_scale")
    parser.add_argument("--decode-level", type=int, default=0, help="env kwarg decode_level")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON file of the per-frame scores and the summary")
    args = parser.parse_args()
    if args.frames % BUCKET:
        raise SystemExit(f"--frames must be a multiple of {BUCKET}")
    torch.set_num_threads(args.threads)
    env = MilliVidEnv(
        checkpoint=args.checkpoint,
        autoencoder=args.autoencoder,
        device="cpu",
        sampling_steps=args.sampling_steps,
        sampler_endpoint=args.sampler_endpoint,
        context_noise=args.context_noise,
        guidance_scale=args.guidance_scale,
        decode_level=args.decode_level,
    )
    distance = StLpipsAlex()  # the evaluation's ST-LPIPS-Alex (`millivid evaluate`)
    scores: dict[str, list[list[float]]] = {"lpips": [], "psnr": []}
    held: dict[str, list[list[float]]] = {"lpips": [], "psnr": []}
    start = time.perf_counter()
    for v in range(args.first_video, args.first_video + args.videos):
        video = load_video(args.data, v)
        end = args.context + args.frames
        if len(video.frames) < end:
            raise SystemExit(f"video {v} has {len(video.frames)} frames, fewer than --context + --frames")
        options = {
            "context_frames": video.frames[: args.context],
            "context_actions": video.actions[: args.context],
        }
        env.reset(seed=v + args.seed_offset, options=options)
        generated = np.stack([env.step(int(a))[0] for a in video.actions[args.context : end]])
        truth = video.frames[args.context : end]
        with torch.no_grad():
            lpips = distance(generated, truth).numpy()
        scores["lpips"].append(lpips.tolist())
        scores["psnr"].append(psnr(generated, truth).tolist())
        still = np.repeat(video.frames[args.context - 1 : args.context], len(truth), axis=0)
        with torch.no_grad():
            held["lpips"].append(distance(still, truth).numpy().tolist())
        held["psnr"].append(psnr(still, truth).tolist())
        print(f"loop {v}: LPIPS {lpips.mean():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    summary, held_summary = bucket_summary(scores), bucket_summary(held)
    document = {
        "options": vars(args),
        "bucket_frames": BUCKET,
        "summary": summary,
        "per_frame": scores,
        "held_frame": {"summary": held_summary, "per_frame": held},
    }
    with open(args.out, "w") as handle:
        json.dump(document, handle)
    print(json.dumps(summary))
    print("last context frame held:", json.dumps(held_summary))


def bucket_summary(scores: dict[str, list[list[float]]]) -> dict[str, dict[str, list[float] | None]]:
    """Per metric: mean and standard error over loops of each loop's mean per ``BUCKET`` frames."""
    summary = {}
    for name, rows in scores.items():
        buckets = np.array(rows).reshape(len(rows), -1, BUCKET).mean(axis=2)  # (videos, buckets)
        summary[name] = {
            "mean": buckets.mean(0).round(4).tolist(),
            "se": (buckets.std(0, ddof=1) / np.sqrt(len(rows))).round(4).tolist() if len(rows) > 1 else None,
        }
    return summary


if __name__ == "__main__":
    main()
