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
    parser.add_argument("--out", required=True, help="JSON report")
    args = parser.parse_args()

    kwargs = dict(MILLIVID_TASK_VARIANTS[args.env_id])
    if args.reward_head:
        kwargs["reward_head"] = args.reward_head
    start = time.perf_counter()
    judgement = judge_in_imagination(
        kwargs, args.episodes, max_steps=args.max_steps, seed=args.seed, epsilon=args.epsilon
    )
    report = {
        **judgement.metrics(),
        "env_id": args.env_id,
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
            }
            for e in sorted(set(judgement.episode.tolist()))
        ],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=2))


def _first(flags) -> int | None:
    hits = flags.nonzero()[0]
    return int(hits[0]) + 1 if len(hits) else None


if __name__ == "__main__":
    main()
