"""Reach the landmark: a random policy vs PPO trained in the real world vs PPO trained in imagination.

All three are evaluated in the *real* world (`Loopcraft-Landmark-v0`) on the same seeds; the two PPO
agents get the same number of env steps and the same training reward (sparse success + a small
distance shaping, `--shaping`; from the true pose in the real env, in imagination from the reward
head's predicted distance or, with ``--landmark-locator`` or a ``-LandmarkMap-`` id, from the landmark
map of the context and the dead-reckoned pose). Prints (and writes) a Markdown table with 95% intervals.

    # the bundled checkpoints (autoencoder, diffusion model, reward head), small CPU budgets:
    python examples/landmark_agents.py --steps 20480 --num-envs 8 --episodes 200
    # what transfers (docs/results/landmark-map): the landmark map reward and a coarse-input policy
    python examples/landmark_agents.py --env-id MilliVid-Loopcraft-LandmarkMap-v4 --coarse-input 4 \
        --steps 20480 --num-envs 8 --episodes 200
    # another world model: pass a reward head trained on its autoencoder A, or train one:
    python examples/landmark_agents.py --autoencoder A --diffusion D --reward-head runs/landmark-head
    python examples/landmark_agents.py --autoencoder A --diffusion D --train-head
    # plumbing check in a minute with tiny random checkpoints (the numbers mean nothing):
    python examples/landmark_agents.py --tiny --steps 512 --episodes 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from millivid_env import cli
from millivid_env.registration import LANDMARK_ENV_ID, MILLIVID_TASK_VARIANTS


def millivid(*argv: object) -> None:
    """Run a `millivid` sub-command in this process."""
    code = cli.main([str(a) for a in argv])
    if code:
        raise SystemExit(f"millivid {argv[0]} failed with exit code {code}")


def evaluate(policy: str, out: Path, args: argparse.Namespace) -> dict:
    report = out / f"eval-{Path(policy).name}.json"
    millivid(
        "eval-agent", "--policy", policy, "--env", "Loopcraft-Landmark-v0",
        "--episodes", args.episodes, "--first-seed", args.first_seed, "--out", report, "--no-progress",
    )  # fmt: skip
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--autoencoder",
        default=None,
        help="imagination's autoencoder (default: the id's)",
    )
    parser.add_argument("--diffusion", default=None, help="diffusion checkpoint (default: the id's)")
    parser.add_argument("--env-id", default=LANDMARK_ENV_ID, help="imagined landmark id to train in")
    parser.add_argument(
        "--reward-head",
        help="reward-head checkpoint (default: the bundled loopcraft-64-landmark; with --tiny or "
        "--train-head, one is trained on --autoencoder)",
    )
    parser.add_argument(
        "--landmark-locator",
        help="judge imagination on a map of the context's landmarks read by this locator checkpoint "
        "(e.g. the bundled loopcraft-64-locator) instead of a reward head; 'truth': the true landmarks "
        "(a diagnostic upper bound)",
    )
    parser.add_argument("--train-head", action="store_true", help="train a reward head on --autoencoder")
    parser.add_argument("--head-episodes", type=int, default=200, help="episodes to train the head on")
    parser.add_argument("--tiny", action="store_true", help="tiny random checkpoints (smoke run)")
    parser.add_argument("--steps", type=int, default=20480, help="PPO env steps, same for both agents")
    parser.add_argument(
        "--shaping", type=float, default=0.1, help="training reward per block of progress (0: sparse)"
    )
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument(
        "--coarse-input", type=int, default=None, metavar="POOL",
        help="both PPO policies see the frame average-pooled by POOL (millivid train-agent --coarse-input)",
    )  # fmt: skip
    parser.add_argument(
        "--sampling-steps", type=int, default=None, help="sampler steps in imagination (default: the id's)"
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=10_000, help="env steps between PPO checkpoints (resumable)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue both PPO runs from their newest checkpoints in --out"
    )
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per policy")
    parser.add_argument("--first-seed", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/landmark-agents")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.tiny:
        from models.testing import save_tiny_world_model

        ae, dit = save_tiny_world_model(out / "tiny-model", dit_width=64)
        args.autoencoder, args.diffusion = str(ae), str(dit)
    map_reward = args.landmark_locator is not None or "landmark_locator" in MILLIVID_TASK_VARIANTS.get(
        args.env_id, {}
    )
    if map_reward:
        pass  # imagination is judged on the landmark map: no reward head
    elif args.reward_head is None and not (args.tiny or args.train_head):
        args.reward_head = "loopcraft-64-landmark"  # trained on the bundled loopcraft-64 autoencoder
    elif args.reward_head is None:
        args.reward_head = str(out / "reward-head")
        millivid(
            "train-reward-head", "--autoencoder", args.autoencoder or "loopcraft-64",
            "--out", args.reward_head,
            "--episodes", 20 if args.tiny else args.head_episodes, "--seed", args.seed,
        )  # fmt: skip

    ppo = ["--steps", args.steps, "--num-envs", args.num_envs, "--seed", args.seed, "--verbose", 0]
    ppo += ["--checkpoint-every", args.checkpoint_every, *(["--resume"] if args.resume else [])]
    ppo += [] if args.coarse_input is None else ["--coarse-input", args.coarse_input]
    # Shaping only changes the training reward; evaluation counts successes in the sparse task. In
    # imagination it acts on the reward head's predicted distance instead of the true one.
    real = ["--env-kwarg", f"shaping={args.shaping}"]
    millivid("train-agent", "--env", "Loopcraft-Landmark-v0", "--out", out / "ppo-real", *ppo, *real)
    # Only what is given overrides the id's registered kwargs (its decoder, sampler, warp, ...).
    imagination = {
        "checkpoint": args.diffusion,
        "autoencoder": args.autoencoder,
        "reward_head": args.reward_head,
        "landmark_locator": args.landmark_locator,
        "sampling_steps": args.sampling_steps,
        "shaping": args.shaping,
    }
    if map_reward:
        kwargs = ["--env-kwarg", "reward_head=null"]  # the id's head gives way to the map
    else:
        kwargs = []
    kwargs += [
        x
        for key, value in imagination.items()
        if value is not None
        for x in ("--env-kwarg", f"{key}={value}")
    ]
    millivid("train-agent", "--env", args.env_id, "--out", out / "ppo-imagined", *ppo, *kwargs)

    rows = [
        ("random", "-", 0, evaluate("random", out, args)),
        ("PPO", "real env", args.steps, evaluate(str(out / "ppo-real"), out, args)),
        ("PPO", f"imagination ({args.env_id})", args.steps, evaluate(str(out / "ppo-imagined"), out, args)),
    ]
    lines = [
        f"Real `Loopcraft-Landmark-v0`, {args.episodes} episodes (seeds {args.first_seed}+), 95% CIs",
        "",
        "| policy | trained in | env steps | success rate | mean return |",
        "|---|---|---|---|---|",
    ]
    for name, where, steps, r in rows:
        (slo, shi), (rlo, rhi) = r["success_rate_ci"], r["mean_return_ci"]
        lines.append(
            f"| {name} | {where} | {steps} | {r['success_rate']:.2f} [{slo:.2f}, {shi:.2f}] | "
            f"{r['mean_return']:.2f} [{rlo:.2f}, {rhi:.2f}] |"
        )
    random_rate, real_rate, imagined_rate = (r["success_rate"] for *_, r in rows)
    lines += [
        "",
        f"imagined / random success: {imagined_rate / max(random_rate, 1e-9):.2f}x (target >= 2x); "
        f"imagined / real-env PPO: {imagined_rate / max(real_rate, 1e-9):.0%} (target >= 70%)",
    ]
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(
        json.dumps({"rows": [r for *_, r in rows], "args": vars(args)}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
