"""``millivid evaluate``: the revisit-consistency protocol for several systems, with bounds and a report.

Example (the CPU protocol on the bundled checkpoints, 32 generated test loops)::

    millivid evaluate --systems millivid framepack full-resolution --videos 32 --out runs/eval

Test loops come from ``--data DIR`` (a ``millivid generate --split test`` folder that fits the
protocol) or are generated into ``OUT/test-data``. Results are written per video as they finish, so
the same command continues a killed run; a different config in the same ``--out`` is refused. At the
end ``OUT/report.json``, ``OUT/report.md``, ``OUT/plots/*.png`` and ``OUT/strips/revisits.png`` are
written (see docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from evaluation.metric_setup import FRECHET_CHOICES, LPIPS_CHOICES
from evaluation.protocol import OPEN_LOOP_STEPS, PROTOCOLS
from evaluation.systems import SHORT_MEMORY, SYSTEM_CHOICES, SYSTEMS, VIEW_MEMORIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `millivid evaluate`."""
    parser.add_argument(
        "--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEM_CHOICES,
        help=f"systems to compare (default: {' '.join(SYSTEMS)}); {SHORT_MEMORY} is the millivid "
        "checkpoint with its memory cut to the level-0/level-1 window (the control of the revisits bucket)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-for", action="append", default=[], metavar="SYSTEM=NAME_OR_DIR",
        help="diffusion checkpoint of a system (default: bundled <layout>-<system>); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--autoencoder",
        default=None,
        help="autoencoder of every system (default for loopcraft-64: loopcraft-64-perceptual)",
    )
    parser.add_argument(
        "--autoencoder-for", action="append", default=[], metavar="SYSTEM=NAME_OR_DIR",
        help="autoencoder of one system; repeatable",
    )  # fmt: skip
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="loopcraft-64")
    parser.add_argument(
        "--context", type=int, default=None, help="override the protocol's context C (non-standard)"
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="override the protocol's horizon T (non-standard)"
    )
    parser.add_argument(
        "--data", default=None, help="test split folder; default: generate test loops into OUT/test-data"
    )
    parser.add_argument("--data-seed", type=int, default=0, help="seed of generated test loops (default 0)")
    parser.add_argument("--videos", type=int, default=32, help="test videos N (default 32)")
    parser.add_argument("--out", required=True, help="output folder (resumes a run of the same config)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write report.json here")
    parser.add_argument("--batch-size", type=int, default=4, help="videos rolled out together (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--steps",
        type=int,
        default=OPEN_LOOP_STEPS,
        help=f"sampler evaluations per rollout step (default {OPEN_LOOP_STEPS}; the paper 50)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0, as the paper)")
    parser.add_argument(
        "--context-noise",
        type=float,
        default=0.0,
        help="noise time in [0, 1) the context latents are shown at (models trained with context noise; "
        "default 0 = clean, the paper)",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="classifier-free guidance scale of the sampler (default 1.0 = none, the paper; > 1 doubles "
        "the model work per step)",
    )
    parser.add_argument(
        "--warp",
        default=None,
        help="copy frames by construction for every system, as MilliVid-Loopcraft-v4 does: an action "
        "warp (bundled loopcraft-64-warp, or a `millivid fit-warp --out` directory); default: none, the "
        "model's frames as generated",
    )
    parser.add_argument(
        "--view",
        default=None,
        metavar="JSON",
        help="with --warp: view settings shared by every system, e.g. '{\"fill_fraction\": 0.05}'",
    )
    parser.add_argument(
        "--view-memory",
        choices=VIEW_MEMORIES,
        default="shared",
        help="with --warp: what each system's view remembers: shared (default: every context frame, "
        "as the env does) or layout (only the context frames the system's token layout still reads "
        "for the frame shown: millivid 85-148 frames back, framepack 64, full-resolution 2-3 at "
        "loopcraft-64)",
    )
    parser.add_argument(
        "--fill-level",
        type=int,
        default=0,
        help="with --warp: level of the generated latents shown where the model's pixels are needed "
        "(default 0, the only level full-resolution makes)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--lpips", choices=LPIPS_CHOICES, default="auto", help="LPIPS variant (default auto)")
    parser.add_argument(
        "--alexnet-weights", default=None, help="torchvision AlexNet weights for standard LPIPS-Alex"
    )
    parser.add_argument("--frechet", choices=FRECHET_CHOICES, default="st-alex", help="Fréchet feature space")
    parser.add_argument("--strips", type=int, default=3, help="revisit frames kept per video for the strips")
    parser.add_argument(
        "--revisit-distance",
        type=float,
        default=1.0,
        help="revisit radius in blocks (strips, revisits bucket)",
    )
    parser.add_argument(
        "--revisit-yaw", type=float, default=15.0, help="revisit heading tolerance in degrees"
    )
    parser.add_argument("--revisit-gap", type=int, default=32, help="revisit: frames between the two poses")
    parser.add_argument(
        "--allow-strategy-mismatch", action="store_true",
        help="evaluate a checkpoint trained for another strategy anyway",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or continue) the evaluation described by parsed options and write its report.

    Raises:
        ValueError subclasses with the fix in the message: bad systems/checkpoints
        (:class:`~evaluation.systems.SystemError_`), a test set that does not fit
        (:class:`~evaluation.testset.TestSetError`), another config in ``--out``
        (:class:`~evaluation.store.ConfigMismatchError`); ``MetricWeightsError`` for missing metric weights.
    """
    from evaluation.protocol import get_protocol
    from evaluation.report import write_report
    from evaluation.revisits import RevisitTolerance
    from evaluation.runner import Evaluation, EvaluationSettings
    from evaluation.systems import parse_assignments, resolve_systems
    from evaluation.testset import generate_test_set, open_test_set

    for name in ("videos", "batch_size", "steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0.0 <= args.context_noise < 1.0:
        raise ValueError(f"--context-noise must lie in [0, 1) (0 = clean context), got {args.context_noise}")
    if not (math.isfinite(args.guidance_scale) and args.guidance_scale > 0):
        raise ValueError(
            f"--guidance-scale must be a finite number > 0 (1 = none), got {args.guidance_scale}"
        )
    view = None
    if args.view is not None:
        try:
            view = json.loads(args.view)
        except ValueError as error:
            raise ValueError(f"--view must be a JSON object of view settings: {error}") from error
        if not isinstance(view, dict):
            raise ValueError(f"--view must be a JSON object of view settings, got {args.view!r}")
    protocol = get_protocol(args.protocol, args.context, args.frames)
    systems = resolve_systems(
        args.systems,
        protocol,
        parse_assignments(args.checkpoint_for, "--checkpoint-for"),
        parse_assignments(args.autoencoder_for, "--autoencoder-for"),
        args.autoencoder,
    )
    data = args.data
    if data is None:
        data = generate_test_set(
            Path(args.out) / "test-data", protocol, args.videos, args.data_seed, not args.no_progress
        )
    test_set = open_test_set(data, protocol, args.videos)
    settings = EvaluationSettings(
        steps=args.steps, seed=args.seed, batch_size=args.batch_size, device=args.device, lpips=args.lpips,
        alexnet_weights=args.alexnet_weights, frechet=args.frechet, strips=args.strips,
        strip_tolerance=RevisitTolerance(args.revisit_distance, args.revisit_yaw, args.revisit_gap),
        allow_strategy_mismatch=args.allow_strategy_mismatch, context_noise=args.context_noise,
        guidance_scale=args.guidance_scale, warp=args.warp, view=view, fill_level=args.fill_level,
        view_memory=args.view_memory,
    )  # fmt: skip
    evaluation = Evaluation(protocol, systems, test_set, args.out, settings, progress=not args.no_progress)
    evaluation.run()
    return write_report(evaluation, args.json)


def summary(document: dict[str, Any]) -> str:
    """A few lines for the terminal: mean LPIPS and PSNR per entry in every bucket."""
    lpips = document["metrics"]["lpips"]["label"]
    lines = [f"{document['videos']} videos, protocol {document['protocol']['name']}; {lpips} / PSNR dB:"]
    width = max([24, *(len(r["label"]) for r in document["results"].values())])
    for result in document["results"].values():
        cells = []
        for bucket in ("short", "medium", "long"):
            stats = result["buckets"][bucket]
            lp, ps = stats["lpips"]["mean"], stats["psnr"]["mean"]
            cells.append(
                f"{bucket} {lp:.3f} / {ps:.2f}" if lp is not None and ps is not None else f"{bucket} -"
            )
        lines.append(f"  {result['label']:<{width}} " + "   ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run `millivid evaluate`."""
    import torch

    from evaluation.metric_setup import MetricWeightsError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        document = evaluate(args)
    except (ValueError, MetricWeightsError, FloatingPointError) as error:
        print(f"millivid evaluate: error: {error}", file=sys.stderr)
        return 2
    print(summary(document))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
