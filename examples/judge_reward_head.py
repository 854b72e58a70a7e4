"""Judge a landmark reward head on the frames of a registered imagined landmark env, against the true pose.

Runs `agents.imagined_judgement.judge_in_imagination` with the id's own kwargs (diffusion model,
sampler, warp, decoded level), steering towards a landmark by the ground-truth twin's pose, and
writes the metrics (accuracy, precision, recall, F1, episodes truly reached / called) as JSON:

    python examples/judge_reward_head.py --reward-head loopcraft-64-landmark --episodes 20 \
        --out runs/judge-v4.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import millivid_env  # noqa: F401  (registers the ids)
from agents.imagined_judgement import judge_in_imagination
from millivid_env.registration import LANDMARK_ENV_ID, MILLIVID_TASK_VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env-id", default=LANDMARK_ENV_ID, help="registered imagined landmark id")
    parser.add_argument("--reward-head", default=None, help="head to judge (default: the id's)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=100, help="steps per episode at most")
    parser.add_argument("--epsilon", type=float, default=0.25, help="random actions of the steering policy")
    parser.add_argument("--seed", type=int, default=1_000_001, help="first reset seed (unseen worlds)")
    parser.add_argument(
        "--view", default=None, help="JSON of view settings over the id's, e.g. '{\"fill_fraction\": 1.0}'"
    )
    parser.add_argument("--success-threshold", type=float, default=None, help="the head's threshold (0.5)")
    parser.add_argument(
        "--true-frames", action="store_true", help="also judge the twin's true frames (a control)"
    )
    parser.add_argument("--out", required=True, help="JSON report")
    args = parser.parse_args()

    kwargs = dict(MILLIVID_TASK_VARIANTS[args.env_id])
    if args.reward_head:
        kwargs["reward_head"] = args.reward_head
    if args.success_threshold is not None:
        kwargs["success_threshold"] = args.success_threshold
    if args.view:
        kwargs["view"] = {**dict(kwargs.get("view") or {}), **json.loads(args.view)}
    start = time.perf_counter()
    judgement = judge_in_imagination(
        kwargs,
        args.episodes,
        max_steps=args.max_steps,
        seed=args.seed,
        epsilon=args.epsilon,
        true_frames=args.true_frames,
    )
    report = {
        **judgement.metrics(),
        "by_true_distance": _by_distance(judgement),
        "env_id": args.env_id,
        "view": kwargs.get("view"),
        "success_threshold": kwargs.get("success_threshold", 0.5),
        "reward_head": str(kwargs["reward_head"]),
        "episodes_run": args.episodes,
        "max_steps": args.max_steps,
        "epsilon": args.epsilon,
        "first_seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "per_episode": [
            {
                "episode": int(e),
                "steps": int((judgement.episode == e).sum()),
                "truly_reached": bool(judgement.truth[judgement.episode == e].any()),
                "called": bool(judgement.predicted[judgement.episode == e].any()),
                "first_true_step": _first(judgement.truth[judgement.episode == e]),
                "max_probability": float(judgement.probability[judgement.episode == e].max()),
                "min_distance": float(judgement.distance[judgement.episode == e].min()),
                "frame_error_mean": float(judgement.frame_error[judgement.episode == e].mean()),
                "drawn_fraction": float(judgement.drawn[judgement.episode == e].mean()),
            }
            for e in sorted(set(judgement.episode.tolist()))
        ],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=2))


#: Buckets of true distance (blocks) to the nearest landmark for the breakdown.
_BUCKETS = ((0.0, 2.0), (2.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


def _by_distance(judgement) -> list[dict]:
    """Per bucket of true distance: steps, head calls, frame error, how often the model drew."""
    rows = []
    for low, high in _BUCKETS:
        mask = (judgement.distance > low) & (judgement.distance <= high)
        if low == 0.0:
            mask |= judgement.distance <= 0.0
        if not mask.any():
            continue
        rows.append(
            {
                "distance_blocks": [low, high if high != float("inf") else None],
                "steps": int(mask.sum()),
                "head_calls": int(judgement.predicted[mask].sum()),
                "mean_success_probability": float(judgement.probability[mask].mean()),
                "frame_error_mean": float(judgement.frame_error[mask].mean()),
                "drawn_fraction": float(judgement.drawn[mask].mean()),
                **(
                    {
                        "true_frame_calls": int((judgement.true_frame_probability[mask] > 0.5).sum()),
                        "true_frame_mean_success_probability": float(
                            judgement.true_frame_probability[mask].mean()
                        ),
                    }
                    if judgement.true_frame_probability is not None
                    else {}
                ),
            }
        )
    return rows


def _first(flags) -> int | None:
    hits = flags.nonzero()[0]
    return int(hits[0]) + 1 if len(hits) else None


if __name__ == "__main__":
    main()
