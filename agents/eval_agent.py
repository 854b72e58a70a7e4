"""`millivid eval-agent`: success rate and return of a policy in the *real* world, with 95% intervals.

    millivid eval-agent --policy runs/ppo-imagined --env Loopcraft-Landmark-v0 --episodes 200
    millivid eval-agent --policy random --episodes 200 --out runs/random-eval.json

Episode ``i`` is reset with seed ``first_seed + i`` (or the ``i``-th of ``--seeds``), so every policy
meets the same worlds and starts. The success rate gets a Wilson score interval, the mean return a
percentile-bootstrap interval (10,000 resamples, fixed seed). PPO actions are sampled from the policy
(``--deterministic`` takes the most likely action: a memoryless image policy stuck facing a wall then
stays stuck), with torch seeded per episode, so results are reproducible.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import millivid_env  # noqa: F401  (registers the ids)
from agents.stats import bootstrap_mean_interval, wilson_interval
from agents.train_agent import check_env_id, parse_env_kwargs

__all__ = ["EpisodeResult", "add_arguments", "load_policy", "run", "run_episodes", "summarize"]

#: An episode policy: ``make(seed)`` returns ``act(obs) -> action`` for one episode.
PolicyFactory = Callable[[int], Callable[[np.ndarray], int]]

#: Default first evaluation seed: far from the seeds training runs use (0, 1, ...).
FIRST_SEED = 100_000


@dataclass
class EpisodeResult:
    """One evaluation episode."""

    seed: int
    episode_return: float
    length: int
    success: bool


def random_policy(action_space: gym.Space) -> PolicyFactory:
    """Uniformly random actions, seeded per episode."""

    def make(seed: int) -> Callable[[np.ndarray], int]:
        space = copy.deepcopy(action_space)
        space.seed(seed)
        return lambda obs: space.sample()

    return make


def load_policy(
    path: str | os.PathLike[str], device: str = "cpu", deterministic: bool = False
) -> PolicyFactory:
    """A PPO policy saved by ``millivid train-agent`` (its directory or a ``.zip``).

    Raises:
        FileNotFoundError: no policy at ``path``.
    """
    from agents.deps import require_sb3

    require_sb3()
    import torch
    from stable_baselines3 import PPO

    p = Path(path)
    zip_path = p / "policy.zip" if p.is_dir() else p
    if not zip_path.is_file():
        raise FileNotFoundError(
            f"no policy at {zip_path}; pass a `millivid train-agent --out` directory, a .zip or 'random'"
        )
    model = PPO.load(str(zip_path), device=device)

    def make(seed: int) -> Callable[[np.ndarray], int]:
        torch.manual_seed(seed)  # SB3 samples actions with torch's global generator
        return lambda obs: int(model.predict(obs, deterministic=deterministic)[0])

    make.model = model  # type: ignore[attr-defined]
    return make


def run_episodes(
    env: gym.Env, policy: PolicyFactory, seeds: list[int], progress: bool = True
) -> list[EpisodeResult]:
    """Run one episode per seed; success is ``info["is_success"]`` at the end (else ``terminated``)."""
    results = []
    for seed in tqdm(seeds, desc="episodes", unit="episode", disable=not progress):
        act = policy(seed)
        obs, _ = env.reset(seed=seed)
        total, length, done, success = 0.0, 0, False, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated
            success = bool(info.get("is_success", terminated))
        results.append(EpisodeResult(int(seed), total, length, success))
    return results


def summarize(results: list[EpisodeResult], confidence: float = 0.95) -> dict[str, Any]:
    """Success rate (Wilson interval), mean return (bootstrap interval) and mean length."""
    if not results:
        raise ValueError("no episodes to summarize")
    successes = sum(r.success for r in results)
    returns = np.array([r.episode_return for r in results])
    n = len(results)
    return {
        "episodes": n,
        "successes": int(successes),
        "success_rate": successes / n,
        "success_rate_ci": list(wilson_interval(successes, n, confidence)),
        "mean_return": float(returns.mean()),
        "mean_return_ci": list(bootstrap_mean_interval(returns, confidence)),
        "mean_length": float(np.mean([r.length for r in results])),
        "confidence": confidence,
        "ci_methods": {"success_rate": "wilson", "mean_return": "percentile bootstrap, 10000 resamples"},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``millivid eval-agent``."""
    parser.add_argument(
        "--policy", required=True, help="`millivid train-agent --out` directory, a .zip, or 'random'"
    )
    parser.add_argument(
        "--env", default="Loopcraft-Landmark-v0", help="env id (default Loopcraft-Landmark-v0)"
    )
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    parser.add_argument(
        "--first-seed", type=int, default=FIRST_SEED, help=f"seed of episode 0 (default {FIRST_SEED})"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="explicit reset seeds (one episode each)")
    parser.add_argument("--deterministic", action="store_true", help="most likely action instead of sampling")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="env argument")
    parser.add_argument("--out", help="write the JSON report here (it is printed either way)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print (and write) the JSON report."""
    check_env_id(args.env)
    seeds = list(args.seeds) if args.seeds else list(range(args.first_seed, args.first_seed + args.episodes))
    if not seeds:
        raise SystemExit("--episodes must be >= 1")
    env = gym.make(args.env, **parse_env_kwargs(args.env_kwarg))
    if args.policy == "random":
        policy = random_policy(env.action_space)
    else:
        policy = load_policy(args.policy, args.device, args.deterministic)
        shape = policy.model.observation_space.shape  # type: ignore[attr-defined]
        h, w, c = env.observation_space.shape
        if shape not in ((h, w, c), (c, h, w)):  # SB3 stores image policies channel-first
            raise SystemExit(f"policy observations {shape} do not match the env's {(h, w, c)}")
    start = time.perf_counter()
    results = run_episodes(env, policy, seeds, progress=not args.no_progress)
    env.close()
    report = {
        "env": args.env,
        "policy": args.policy,
        "deterministic": bool(args.deterministic),
        **summarize(results),
        "seeds": seeds,
        "seconds": round(time.perf_counter() - start, 1),
        "per_episode": [asdict(r) for r in results],
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    lo, hi = report["success_rate_ci"]
    rlo, rhi = report["mean_return_ci"]
    print(json.dumps({k: v for k, v in report.items() if k not in ("per_episode", "seeds")}, indent=2))
    print(
        f"success {report['success_rate']:.3f} [{lo:.3f}, {hi:.3f}], return {report['mean_return']:.3f} "
        f"[{rlo:.3f}, {rhi:.3f}] over {len(seeds)} episodes"
    )
    return 0
