"""How close the env's own (streaming) frames stay to the truth: step test loops' true actions.

The env is reset with the first ``--context`` true frames and actions of a test loop (reset option
``context_frames`` / ``context_actions``), then steps the loop's next ``--frames`` true actions; every
generated frame is compared with the true one (ST-LPIPS-Alex, PSNR), averaged per 32-frame bucket
over the loops (mean and standard error over loops). `millivid evaluate` measures the open-loop
rollouts of the paper's protocol; this measures what an env user sees, for any checkpoint and sampler.
The same scores are given for two baselines that need no model: the last true context frame held
(``held_frame``; an env that does not beat it has not learnt how the view moves) and, for every step,
the context frame whose pose is nearest to the true pose (``oracle_lookup``; a perfect look-up of what
the env was shown, distance = blocks moved + degrees turned / 30: ``evaluation.baselines``, as
`millivid evaluate` uses). ``--one-step`` also scores single
steps from true context (reset with the true frames up to ``t``, step action ``t``), split into forward
and turn steps, next to the true previous frame held. With a ``--warp`` the copied view alone
(``view_only``: the env's copying with no diffusion model, :class:`models.warp.view.CopyingView`) is
scored too; ``--no-model`` scores the baselines and that view only (a minute, no env).

    python examples/env_quality.py --data data/test64 --videos 16 --env-id MilliVid-Loopcraft-v4 \\
        --one-step 8 --out env-quality.json
    python examples/env_quality.py --data data/test64 --videos 16 --no-model --warp loopcraft-64-warp \\
        --view '{"decay": 0.9}' --out view.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import millivid_env  # noqa: F401  (sets MKL_CBWR before torch computes)
from evaluation.baselines import held_frames, oracle_lookup_frames
from evaluation.metrics import StLpipsAlex, psnr
from evaluation.revisits import RevisitTolerance, context_revisits
from millivid_env.registration import MILLIVID_VARIANTS
from millivid_env.world_model_env import (
    DEFAULT_AUTOENCODER,
    DEFAULT_CHECKPOINT,
    DEFAULT_SAMPLING_STEPS,
    MilliVidEnv,
)
from models.data import load_video
from models.warp import ActionWarp, load_warp
from models.warp.view import CopyingView, ViewSettings, to_frames

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
    parser.add_argument(
        "--env-id",
        default=None,
        help="score a registered id as registered (its checkpoints, sampler and warp)",
    )
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--autoencoder", default=DEFAULT_AUTOENCODER)
    parser.add_argument("--sampling-steps", type=int, default=DEFAULT_SAMPLING_STEPS)
    parser.add_argument("--sampler-endpoint", action="store_true", help="also evaluate at t = 0")
    parser.add_argument("--context-noise", type=float, default=0.0, help="env kwarg context_noise")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="env kwarg guidance_scale")
    parser.add_argument("--decode-level", type=int, default=0, help="env kwarg decode_level")
    parser.add_argument("--warp", default=None, help="env kwarg warp (an action-warp checkpoint)")
    parser.add_argument(
        "--view", type=json.loads, default=None, help="env kwarg view, JSON: '{\"decay\": 0.9}'"
    )
    parser.add_argument(
        "--one-step", type=int, default=0, help="single steps from true context scored per loop (0: none)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-model", action="store_true", help="score the baselines only (no env)")
    parser.add_argument("--out", required=True, help="JSON file of the per-frame scores and the summary")
    args = parser.parse_args()
    if args.frames % BUCKET:
        raise SystemExit(f"--frames must be a multiple of {BUCKET}")
    torch.set_num_threads(args.threads)
    if args.env_id is not None:
        if args.env_id not in MILLIVID_VARIANTS:
            raise SystemExit(f"--env-id must be one of {sorted(MILLIVID_VARIANTS)}, got {args.env_id!r}")
        variant = MILLIVID_VARIANTS[args.env_id]
        for key in (
            "checkpoint",
            "autoencoder",
            "sampling_steps",
            "sampler_endpoint",
            "context_noise",
            "warp",
        ):
            setattr(args, key, variant.get(key))
        args.decode_level = int(variant.get("decode_level", 0))
    env = None
    if not args.no_model:
        env = MilliVidEnv(
            checkpoint=args.checkpoint,
            autoencoder=args.autoencoder,
            device="cpu",
            sampling_steps=args.sampling_steps,
            sampler_endpoint=args.sampler_endpoint,
            context_noise=args.context_noise,
            guidance_scale=args.guidance_scale,
            decode_level=args.decode_level,
            warp=args.warp,
            view=args.view,
        )
    warp = None if args.warp is None else load_warp(args.warp)
    settings = ViewSettings(**(args.view or {}))
    distance = StLpipsAlex()  # the evaluation's ST-LPIPS-Alex (`millivid evaluate`)
    systems = ["held_frame", "oracle_lookup"] + (["view_only"] if warp is not None else [])
    systems += [] if env is None else ["model"]
    scores: dict[str, dict[str, list[list[float]]]] = {name: {"lpips": [], "psnr": []} for name in systems}
    one_step: dict[str, dict[str, list[float]]] = {
        kind: {"model": [], "held": []} for kind in ("forward", "turn")
    }
    start = time.perf_counter()
    end = args.context + args.frames
    revisit_masks: list[np.ndarray] = []
    tolerance = RevisitTolerance()  # as `millivid evaluate`: 1 block, 15 degrees, >= 32 frames earlier
    for v in range(args.first_video, args.first_video + args.videos):
        video = load_video(args.data, v)
        if len(video.frames) < end:
            raise SystemExit(f"video {v} has {len(video.frames)} frames, fewer than --context + --frames")
        context, actions = video.frames[: args.context], video.actions[: args.context]
        mask = np.zeros(args.frames, dtype=bool)
        mask[[i for i, _ in context_revisits(video.poses[:end], args.context, tolerance)]] = True
        revisit_masks.append(mask)
        future, truth = video.actions[args.context : end], video.frames[args.context : end]
        shown = {
            "held_frame": held_frames(video.frames[:end], args.context),
            "oracle_lookup": oracle_lookup_frames(video.frames[:end], video.poses[:end], args.context)[0],
        }
        if warp is not None:
            shown["view_only"] = view_only_frames(warp, settings, context, actions, future)
        if env is not None:
            env.reset(
                seed=v + args.seed_offset, options={"context_frames": context, "context_actions": actions}
            )
            shown["model"] = np.stack([env.step(int(a))[0] for a in future])
            one_step_scores(env, video, args, distance, one_step, v)
        for name, frames in shown.items():
            with torch.no_grad():
                scores[name]["lpips"].append(distance(frames, truth).numpy().tolist())
            scores[name]["psnr"].append(psnr(frames, truth).tolist())
        means = ", ".join(f"{name} {np.mean(scores[name]['lpips'][-1]):.3f}" for name in shown)
        print(f"loop {v}: LPIPS {means} ({time.perf_counter() - start:.0f} s)", flush=True)
    document: dict[str, object] = {"options": vars(args), "bucket_frames": BUCKET}
    if env is not None:
        document |= {
            "summary": bucket_summary(scores["model"]),
            "per_frame": scores["model"],
            "frames_filled_by_the_model": env.simulator.frames_filled / max(env.simulator.frames_stepped, 1),
        }
        if args.one_step:
            document["one_step"] = {
                kind: {name: mean_se(values) for name, values in rows.items()} | {"count": len(rows["model"])}
                for kind, rows in one_step.items()
            }
    for name in systems:
        if name != "model":
            document[name] = {"summary": bucket_summary(scores[name]), "per_frame": scores[name]}
    for name in ("model", "view_only"):
        if name in scores:
            prefix = "" if name == "model" else "view_only_"
            lpips, held = scores[name]["lpips"], scores["held_frame"]["lpips"]
            document[f"{prefix}loops_below_held"] = loops_below(lpips, held)
            document[f"{prefix}minus_held"] = paired_difference(lpips, held)
    document["revisits"] = revisit_summary(scores, revisit_masks)
    with open(args.out, "w") as handle:
        json.dump(document, handle)
    for name in systems:
        print(f"{name}:", json.dumps(bucket_summary(scores[name])["lpips"]))
    keys = ("loops_below_held", "minus_held", "view_only_loops_below_held", "view_only_minus_held")
    for key in (*keys, "revisits", "one_step", "frames_filled_by_the_model"):
        if key in document:
            print(f"{key}:", json.dumps(document[key]))


def one_step_scores(
    env: MilliVidEnv,
    video: object,
    args: argparse.Namespace,
    distance: StLpipsAlex,
    out: dict[str, dict[str, list[float]]],
    v: int,
) -> None:
    """Score ``args.one_step`` single steps from true context (reset with the true frames up to ``t``)."""
    end = args.context + args.frames
    positions = np.linspace(args.context, end - 1, args.one_step).round().astype(int) if args.one_step else []
    for t in positions:
        env.reset(seed=v + args.seed_offset, options={
            "context_frames": video.frames[:t], "context_actions": video.actions[:t],
        })  # fmt: skip
        frame = env.step(int(video.actions[t]))[0]
        kind = "forward" if int(video.actions[t]) == 0 else "turn"
        with torch.no_grad():
            out[kind]["model"].append(float(distance(frame[None], video.frames[t : t + 1])[0]))
            out[kind]["held"].append(float(distance(video.frames[t - 1 : t], video.frames[t : t + 1])[0]))


@torch.no_grad()
def view_only_frames(
    warp: ActionWarp, view: ViewSettings, frames: np.ndarray, actions: np.ndarray, future: np.ndarray
) -> np.ndarray:
    """The env's copied view with no diffusion model: moved and remembered frames only.

    Args:
        warp: the action warp.
        view: how the sources are weighed (the env kwarg ``view``).
        frames: uint8 ``(T, R, R, 3)`` true context frames; actions: int ``(T,)`` their actions.
        future: int ``(N,)`` the actions stepped.

    Returns:
        uint8 ``(N, R, R, 3)``.
    """
    copying = CopyingView(warp, view)
    copying.reset(frames, actions)
    out = [copying.commit(copying.propose(int(a)), None) for a in future]
    return to_frames(torch.stack(out))


def revisit_summary(
    scores: dict[str, dict[str, list[list[float]]]], masks: list[np.ndarray]
) -> dict[str, object]:
    """LPIPS over the revisit frames (true pose within 1 block and 15 degrees of a context pose at
    least 32 frames earlier): per system the mean and standard error over the loops that have any,
    and each system's paired difference to the held frame over those loops."""
    loops = [k for k, m in enumerate(masks) if m.any()]
    out: dict[str, object] = {"loops": len(loops), "frames": int(sum(m.sum() for m in masks))}
    if not loops:
        return out
    per_loop = {
        name: np.array([np.asarray(rows["lpips"][k])[masks[k]].mean() for k in loops])
        for name, rows in scores.items()
    }
    for name, values in per_loop.items():
        out[name] = mean_se(values.tolist())
        if name != "held_frame":
            out[f"{name}_minus_held"] = mean_se((values - per_loop["held_frame"]).tolist())
    return out


def loops_below(model: list[list[float]], baseline: list[list[float]]) -> list[int]:
    """Per bucket, on how many loops the model's mean score is below the baseline's (paired)."""
    m = np.array(model).reshape(len(model), -1, BUCKET).mean(axis=2)
    b = np.array(baseline).reshape(len(baseline), -1, BUCKET).mean(axis=2)
    return (m < b).sum(axis=0).tolist()


def paired_difference(model: list[list[float]], baseline: list[list[float]]) -> dict[str, list[float]]:
    """Per bucket, mean and standard error over loops of (model - baseline) LPIPS, paired by loop."""
    m = np.array(model).reshape(len(model), -1, BUCKET).mean(axis=2)
    b = np.array(baseline).reshape(len(baseline), -1, BUCKET).mean(axis=2)
    d = m - b
    se = d.std(0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(d.shape[1])
    return {"mean": d.mean(0).round(4).tolist(), "se": se.round(4).tolist()}


def mean_se(values: list[float]) -> list[float | None]:
    """[mean, standard error] of a list (None where undefined)."""
    if not values:
        return [None, None]
    a = np.asarray(values)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else None
    return [round(float(a.mean()), 4), None if se is None else round(se, 4)]


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
