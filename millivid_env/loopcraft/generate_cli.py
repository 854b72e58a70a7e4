"""`millivid generate`: render a Loopcraft video dataset (resumable, parallel, shardable)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
Re-running the same command resumes: finished videos are verified (sha256) and skipped, missing or
corrupted ones are regenerated. On a cluster, run one array job per shard with
--worker-id $TASK_ID --num-workers $NUM_TASKS into the same --out folder; the shards together give
exactly the videos (byte for byte) of a single run. Format: docs/dataset-format.md.

examples:
  millivid generate --split train --videos 100 --frames 512 --resolution 64 --out data/train --workers 2
  millivid generate --split test --videos 20 --frames 512 --resolution 64 --context 128 --out data/test
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `millivid generate`."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--split", choices=("train", "test"), required=True, help="random walks or test loops"
    )
    parser.add_argument("--videos", type=int, required=True, help="number of videos in the dataset")
    parser.add_argument("--frames", type=int, default=512, help="frames per video (default 512)")
    parser.add_argument(
        "--resolution",
        type=int,
        default=64,
        help="frame side in pixels, a positive multiple of 8 (default 64)",
    )
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help="test only: context frames the test loops revisit (default frames // 4)",
    )
    parser.add_argument("--out", required=True, help="dataset folder (created; resumed if it exists)")
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel processes, one core each (default 1)"
    )
    parser.add_argument("--worker-id", type=int, default=0, help="this shard's number in [0, --num-workers)")
    parser.add_argument("--num-workers", type=int, default=1, help="number of shards (cluster array jobs)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--world-size",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=None,
        help="world extent in blocks (default: the standard Loopcraft world)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run `millivid generate`; returns the exit status (2 for bad options or a mismatched folder)."""
    from millivid_env.loopcraft.dataset import DatasetConfigMismatchError
    from millivid_env.loopcraft.generate import generate_dataset, make_config
    from millivid_env.loopcraft.world import WORLD_SIZE

    try:
        config = make_config(
            args.split,
            args.resolution,
            args.frames,
            context=args.context,
            seed=args.seed,
            world_size=tuple(args.world_size) if args.world_size else WORLD_SIZE,
        )
        report = generate_dataset(
            args.out,
            config,
            args.videos,
            workers=args.workers,
            worker_id=args.worker_id,
            num_workers=args.num_workers,
            progress=not args.no_progress,
        )
    except DatasetConfigMismatchError as error:
        print(f"millivid generate: refusing to write into {args.out}: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"millivid generate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nmillivid generate: interrupted; finished videos are kept in {args.out}. Re-run the same "
            "command to resume.",
            file=sys.stderr,
        )
        return 130
    index = report.index
    shard = f" (shard {args.worker_id} of {args.num_workers})" if args.num_workers > 1 else ""
    frames = len(report.generated) * config.frames
    speed = f", {frames / report.seconds:,.0f} frames/s" if report.generated and report.seconds > 0 else ""
    print(
        f"{report.root}: generated {len(report.generated)}, already finished {len(report.skipped)}{shard}"
        f"{speed}; dataset has {index['num_videos']} of {index['videos_requested']} videos"
        + ("" if index["complete"] else f" ({index['num_missing']} missing)")
    )
    return 0
