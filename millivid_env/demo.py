"""`millivid demo`: show a Loopcraft test loop, and the world model imagining it, as an mp4 and a PNG.

The loop is test video 0 of ``millivid generate --split test --seed S`` (a walk chosen to come back to
what its first quarter showed). When a world model is available (the envs' bundled
``loopcraft-64-perceptual`` + ``loopcraft-64-millivid`` checkpoints, or ``--autoencoder`` /
``--checkpoint``), the demo rolls the loop out with it and writes ground truth | model side by side
(`millivid_env.demo_model`); without one it writes the ground-truth loop alone, with a note saying
why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from millivid_env.registration import ENV_CHECKPOINT, WARP_CHECKPOINT
from models.defaults import simulator_autoencoder

#: Playback rate of the mp4 (the original Loopcraft videos are 20 fps).
FPS = 20
#: Nearest-neighbour upscaling of the mp4 frames, so 64-pixel frames are watchable.
VIDEO_SCALE = 4
#: Montage layout and upscaling.
MONTAGE_COLUMNS = 8
MONTAGE_ROWS = 4
MONTAGE_SCALE = 2
#: Border colours marking context frames and the frames after the context (RGB).
CONTEXT_COLOUR = (40, 110, 230)
ROLLOUT_COLOUR = (240, 150, 30)
BORDER = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `millivid demo`."""
    parser.add_argument("--out", default="millivid-demo", help="output folder (default ./millivid-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and walk (default 0)")
    parser.add_argument("--frames", type=int, default=256, help="frames of the loop (default 256)")
    parser.add_argument("--resolution", type=int, default=64, help="frame side, a multiple of 8 (default 64)")
    parser.add_argument(
        "--autoencoder",
        help=f"autoencoder checkpoint (default: the bundled {simulator_autoencoder('loopcraft-64')})",
    )
    parser.add_argument("--checkpoint", help=f"diffusion checkpoint (default: the bundled {ENV_CHECKPOINT})")
    parser.add_argument(
        "--sampling-steps", type=int, default=8, help="sampler steps per sub-step (default 8)"
    )
    parser.add_argument(
        "--warp",
        default=WARP_CHECKPOINT,
        help=f"action-warp checkpoint: frames copied by construction as the envs do (default: the bundled "
        f"{WARP_CHECKPOINT}); 'none': every frame is the diffusion model's",
    )
    parser.add_argument("--device", default="auto", help="torch device of the model (default auto)")
    parser.add_argument("--ground-truth-only", action="store_true", help="skip the model even if available")


def model_checkpoints(args: argparse.Namespace) -> tuple[str, str] | None:
    """The (autoencoder, diffusion) checkpoints of the model mode, or None (with the reason printed)."""
    from millivid_env.world_model_env import DEFAULT_AUTOENCODER, DEFAULT_CHECKPOINT
    from models.checkpoints import bundled_names

    if args.ground_truth_only:
        return None
    autoencoder = args.autoencoder or DEFAULT_AUTOENCODER
    checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
    missing = [
        name for name, given in ((autoencoder, args.autoencoder), (checkpoint, args.checkpoint))
        if given is None and name not in bundled_names()
    ]  # fmt: skip
    if missing:
        print(
            f"note: the bundled world model ({', '.join(missing)}) is not part of this install yet, so the "
            "demo shows the ground-truth loop only; pass --autoencoder DIR --checkpoint DIR to use other "
            "checkpoints"
        )
        return None
    return autoencoder, checkpoint


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of uint8 ``(..., H, W, 3)`` to ``(..., H*f, W*f, 3)``."""
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def montage(
    frames: np.ndarray, context: int, rows: int = MONTAGE_ROWS, columns: int = MONTAGE_COLUMNS
) -> np.ndarray:
    """A grid of frames evenly spaced along the video, context frames framed blue, later ones orange.

    Args:
        frames: uint8 ``(T, R, R, 3)``.
        context: number of context frames ``C``.
        rows: grid rows.
        columns: grid columns.

    Returns:
        uint8 ``(rows * (S + 2b), columns * (S + 2b), 3)`` with ``S = R * MONTAGE_SCALE``, ``b = BORDER``.
    """
    count = min(rows * columns, len(frames))
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    tiles = upscale(frames[picks], MONTAGE_SCALE)
    size = tiles.shape[1] + 2 * BORDER
    grid = np.full((rows * size, columns * size, 3), 255, dtype=np.uint8)
    for n, (index, tile) in enumerate(zip(picks, tiles, strict=True)):
        top, left = (n // columns) * size, (n % columns) * size
        grid[top : top + size, left : left + size] = CONTEXT_COLOUR if index < context else ROLLOUT_COLOUR
        grid[top + BORDER : top + size - BORDER, left + BORDER : left + size - BORDER] = tile
    return grid


def write_mp4(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode uint8 ``(T, H, W, 3)`` frames as H.264 (yuv420p, plays everywhere)."""
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, pixelformat="yuv420p") as writer:
        for frame in frames:
            writer.append_data(frame)


def render_demo(out: Path, seed: int = 0, frames: int = 256, resolution: int = 64) -> tuple[Path, Path]:
    """Render the demo loop and write ``out/demo.mp4`` and ``out/montage.png``.

    Returns:
        The two paths.
    """
    import imageio.v2 as imageio

    from millivid_env.loopcraft.generate import make_config, make_video

    config = make_config("test", resolution, frames, seed=seed)
    arrays, _ = make_video(config, 0)
    out.mkdir(parents=True, exist_ok=True)
    video_path, montage_path = out / "demo.mp4", out / "montage.png"
    write_mp4(video_path, upscale(arrays["frames"], VIDEO_SCALE))
    imageio.imwrite(montage_path, montage(arrays["frames"], config.context or 0))
    return video_path, montage_path


def run(args: argparse.Namespace) -> int:
    """Run `millivid demo`."""
    start = time.perf_counter()
    checkpoints = model_checkpoints(args)
    try:
        if checkpoints is not None:
            from millivid_env.demo_model import LoopTooShortError, render_model_demo

            try:
                video, strip = render_model_demo(
                    Path(args.out), args.seed, args.frames, *checkpoints, args.sampling_steps, args.device,
                    warp=None if args.warp.lower() == "none" else args.warp,
                )  # fmt: skip
            except LoopTooShortError as error:
                print(f"note: {error}; showing the ground-truth loop only")
            else:
                print(
                    f"Loopcraft test loop (seed {args.seed}, {args.frames} frames) and the model's rollout:"
                )
                print(f"  video: {video}  (left: ground truth, right: model)")
                print(
                    f"  strip: {strip}  (top: ground truth, bottom: model; blue: context, orange: generated)"
                )
                print(f"done in {time.perf_counter() - start:.1f} s")
                return 0
        video, grid = render_demo(Path(args.out), args.seed, args.frames, args.resolution)
    except ValueError as error:
        print(f"millivid demo: error: {error}", file=sys.stderr)
        return 2
    print(f"Loopcraft test loop (seed {args.seed}, {args.frames} frames, {args.resolution} px):")
    print(f"  video:   {video}")
    print(f"  montage: {grid}  (blue: context frames, orange: the walk coming back)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
