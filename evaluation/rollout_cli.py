"""``millivid rollout``: open-loop rollout of one Loopcraft video, side by side with the ground truth.

The first ``C`` frames of the video are ground-truth context; the model generates the next ``T``
frames from the video's own actions (the paper's open-loop protocol, method.md 8.1) with the chosen
strategy, and the command writes an mp4 (ground truth | model, context frames marked blue and
generated frames orange underneath, 20 fps, upscaled) and optionally a JSON file with the PSNR of
every generated frame, next to the PSNR of the autoencoded ground truth (the best any latent
generator can score with this autoencoder).

``--video`` is a dataset video file (``videos/000012.npz`` of ``millivid generate``; checked against
its sidecar), a dataset folder (with ``--index``), or an integer seed: then test loop 0 of
``millivid generate --split test --seed S`` is rendered with ``C + T`` frames and ``C`` context.
This module lives in ``evaluation`` because it uses the Loopcraft renderer (``models`` may not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from evaluation.protocol import OPEN_LOOP_STEPS
from models.defaults import simulator_autoencoder

STRATEGIES = ("millivid", "framepack", "full-resolution", "streaming")
#: Height of the bar under each frame that tells context (blue) from generated (orange) frames.
BAR = 8  # 64 + 8 = 72 rows: times an even --scale, a multiple of the 16-pixel H.264 macro block


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `millivid rollout`."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="diffusion checkpoint: bundled name, directory, Hub repo id, or a train-diffusion run folder",
    )
    parser.add_argument(
        "--autoencoder",
        default=simulator_autoencoder("loopcraft-64"),
        help=f"autoencoder checkpoint (default {simulator_autoencoder('loopcraft-64')})",
    )
    parser.add_argument(
        "--video", required=True, help="dataset video .npz, dataset folder, or an integer seed"
    )
    parser.add_argument("--index", type=int, default=0, help="video number when --video is a dataset folder")
    parser.add_argument(
        "--context", type=int, default=128, help="ground-truth context frames C (default 128)"
    )
    parser.add_argument("--frames", type=int, default=384, help="frames T to generate (default 384)")
    parser.add_argument("--out", required=True, help="output .mp4 (ground truth | model)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write per-frame PSNR as JSON")
    parser.add_argument("--strategy", choices=STRATEGIES, default="millivid")
    parser.add_argument(
        "--steps",
        type=int,
        default=OPEN_LOOP_STEPS,
        help=f"sampler evaluations per rollout step (default {OPEN_LOOP_STEPS}; the paper 50)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0, as the paper)")
    parser.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscaling of the mp4")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def diffusion_dir(checkpoint: str) -> str:
    """A train-diffusion run folder stands for its ``checkpoint/model``; anything else is unchanged."""
    model = Path(checkpoint) / "checkpoint" / "model"
    return str(model) if (model / "config.json").is_file() else checkpoint


def load_ground_truth(video: str, index: int, context: int, frames: int, resolution: int) -> tuple:
    """``(frames uint8 (N, R, R, 3), actions int64 (N,), description)`` of the requested video.

    Raises:
        ValueError: not a video file, folder or seed; too short for ``context + frames``; wrong size.
    """
    from models.data import load_video

    path = Path(video)
    if path.is_dir():
        arrays = load_video(path, index)
        truth, actions, what = arrays.frames, arrays.actions, f"{path} video {index}"
    elif path.is_file():
        sidecar = path.with_suffix(".json")
        if path.parent.name == "videos" and sidecar.is_file() and path.stem.isdigit():
            arrays = load_video(path.parent.parent, int(path.stem))  # verifies the checksum
            truth, actions = arrays.frames, arrays.actions
        else:
            with np.load(path, allow_pickle=False) as archive:
                truth, actions = archive["frames"], archive["actions"].astype(np.int64)
        what = str(path)
    elif video.lstrip("-").isdigit():
        from millivid_env.loopcraft.generate import make_config, make_video

        config = make_config("test", resolution, context + frames, context=context, seed=int(video))
        arrays, _ = make_video(config, 0)
        truth, actions, what = arrays["frames"], arrays["actions"], f"test loop of seed {video}"
    else:
        raise ValueError(f"--video {video!r} is not a file, a dataset folder or an integer seed")
    if len(truth) < context + frames:
        raise ValueError(
            f"{what} has {len(truth)} frames but --context {context} + --frames {frames} needs "
            f"{context + frames}; lower --frames or use a longer video"
        )
    if truth.shape[1:] != (resolution, resolution, 3):
        raise ValueError(
            f"{what} has frames of shape {truth.shape[1:]}, the model needs ({resolution}, {resolution}, 3)"
        )
    return truth[: context + frames], actions[: context + frames], what


def comparison_video(truth: np.ndarray, model: np.ndarray, context: int, scale: int) -> np.ndarray:
    """uint8 ``(N, S * (R + BAR), S * (2R + gap), 3)``: truth | model over a context/generated bar."""
    from millivid_env.demo import CONTEXT_COLOUR, ROLLOUT_COLOUR, upscale
    from millivid_env.window import side_by_side

    pairs = np.stack([side_by_side([a, b]) for a, b in zip(truth, model, strict=True)])
    bar = np.empty((len(pairs), BAR, pairs.shape[2], 3), dtype=np.uint8)
    bar[:context], bar[context:] = CONTEXT_COLOUR, ROLLOUT_COLOUR
    return upscale(np.concatenate([pairs, bar], axis=1), scale)


def run(args: argparse.Namespace) -> int:
    """Run `millivid rollout`."""
    import torch
    from tqdm import tqdm

    from evaluation.metrics.psnr import psnr
    from millivid_env.demo import write_mp4
    from models.rollout import imagine
    from models.world_model import WorldModel

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.context < 1 or args.frames < 1 or args.steps < 1 or args.scale < 1:
        print(
            "millivid rollout: error: --context, --frames, --steps and --scale must be >= 1", file=sys.stderr
        )
        return 2
    c, t = args.context, args.frames
    try:
        world = WorldModel.load(args.autoencoder, diffusion_dir(args.checkpoint), args.device, cache=False)
        truth, actions, what = load_ground_truth(args.video, args.index, c, t, world.layout.image_size)
        bar = tqdm(desc=f"rollout {args.strategy}", unit="step")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        start = time.perf_counter()
        generated = imagine(
            world, truth[:c], actions[:c], actions[c:], args.strategy, args.steps,
            torch.Generator().manual_seed(args.seed), progress=progress,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        bar.close()
    except (ValueError, FloatingPointError) as error:  # bad input or a diverged model: no traceback
        print(f"millivid rollout: error: {error}", file=sys.stderr)
        return 2
    autoencoded = world.decode_frames(world.encode_frames(truth[c:]), 0)
    model = np.concatenate([truth[:c], generated])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(out, comparison_video(truth, model, c, args.scale))
    scores = psnr(generated, truth[c:]).tolist()
    bound = psnr(autoencoded, truth[c:]).tolist()
    print(f"{what}: {t} frames generated in {seconds:.1f} s ({t / seconds:.2f} frames/s)")
    print(f"PSNR {np.mean(scores):.2f} dB (autoencoded ground truth {np.mean(bound):.2f} dB); video: {out}")
    if args.json:
        document = {
            "video": what, "checkpoint": args.checkpoint, "autoencoder": args.autoencoder,
            "strategy": args.strategy, "steps": args.steps, "seed": args.seed, "context": c, "frames": t,
            "seconds": seconds, "frames_per_second": t / seconds,
            "psnr_mean": float(np.mean(scores)), "psnr_autoencoded_mean": float(np.mean(bound)),
            "psnr": scores, "psnr_autoencoded": bound,
        }  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    return 0
