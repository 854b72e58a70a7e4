r"""`millivid train-agent`: PPO (stable-baselines3, ``CnnPolicy``) on a real or an imagined env.

    millivid train-agent --env Loopcraft-Landmark-v0 --steps 100000 --num-envs 4 --out runs/ppo-real
    millivid train-agent --env MilliVid-Loopcraft-Landmark-v4 --steps 100000 --num-envs 8 \\
        --out runs/ppo-imagined --env-kwarg reward_head=runs/landmark-head

Ids with a Gymnasium ``vector_entry_point`` (the world-model ids) are trained through their batched
vector env (every sub-env in one model call) behind :class:`agents.sb3_vec_env.SB3VecEnv`; other ids
through SB3's ``make_vec_env`` (a ``DummyVecEnv`` of single envs). ``OUT`` receives:

- ``policy.zip``: the final policy, in stable-baselines3's own zip format (``PPO.load``; SB3 stores
  parameters as ``torch.save`` archives inside it, so load policies only from sources you trust);
- ``checkpoints/ppo_<steps>_steps.zip``: periodic checkpoints; ``--resume`` continues from the
  newest one;
- ``logs/``: ``progress.csv`` (with ``rollout/success_rate`` for envs that report ``is_success``) and,
  when ``tensorboard`` is installed, TensorBoard event files (``tensorboard --logdir OUT/logs``);
- ``monitor/``: per-episode return and length (SB3 ``Monitor`` CSV files);
- ``agent.json``: the env id, env kwargs, hyperparameters and wall time of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import millivid_env  # noqa: F401  (registers the ids)
from agents.deps import has_tensorboard, require_sb3
from millivid_env.registration import LANDMARK_ENV_ID

__all__ = ["add_arguments", "latest_checkpoint", "make_training_env", "parse_env_kwargs", "run"]

_CHECKPOINT = re.compile(r"ppo_(\d+)_steps\.zip$")


def parse_env_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` ⇒ kwargs; values are JSON when they parse (``4``, ``true``), else strings."""
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--env-kwarg expects KEY=VALUE with KEY an identifier, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of a registered id; ``ValueError`` listing this package's ids otherwise."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as error:
        ours = sorted(k for k in gym.registry if "Loopcraft" in k)
        raise ValueError(f"unknown env id {env_id!r}; this package registers: {', '.join(ours)}") from error


def make_training_env(env_id: str, num_envs: int, seed: int, env_kwargs: dict[str, Any], monitor_dir: Path):
    """An SB3 ``VecEnv`` of ``num_envs`` episodes of ``env_id``, with episode statistics.

    Returns:
        ``VecMonitor(SB3VecEnv(batched env))`` for ids with a vector entry point, else
        ``make_vec_env`` (``DummyVecEnv`` of ``Monitor``-wrapped envs).
    """
    require_sb3()
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecMonitor

    spec = check_env_id(env_id)
    monitor_dir.mkdir(parents=True, exist_ok=True)
    if spec.vector_entry_point is not None:
        from agents.sb3_vec_env import SB3VecEnv

        batched = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs
        )
        venv = VecMonitor(SB3VecEnv(batched), str(monitor_dir / "monitor.csv"))
    else:
        venv = make_vec_env(
            env_id,
            n_envs=num_envs,
            seed=seed,
            env_kwargs=env_kwargs,
            monitor_dir=str(monitor_dir),
        )
    venv.seed(seed)
    return venv


def latest_checkpoint(out: Path) -> Path | None:
    """The checkpoint with the most steps in ``out/checkpoints`` (None when there is none)."""
    found = [
        (int(m.group(1)), p)
        for p in (out / "checkpoints").glob("ppo_*_steps.zip")
        if (m := _CHECKPOINT.search(p.name))
    ]
    return max(found)[1] if found else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``millivid train-agent``."""
    parser.add_argument(
        "--env", required=True, help=f"env id, e.g. Loopcraft-Landmark-v0 or {LANDMARK_ENV_ID}"
    )
    parser.add_argument("--steps", type=int, required=True, help="total env steps (all sub-envs together)")
    parser.add_argument("--num-envs", type=int, default=4, help="parallel episodes (default 4)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env constructor argument (repeatable), e.g. reward_head=DIR checkpoint=DIR sampling_steps=2",
    )
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per sub-env")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument(
        "--coarse-input",
        type=int,
        default=None,
        metavar="POOL",
        help="the policy sees the frame average-pooled by POOL (agents.coarse_cnn.CoarseCNN) instead of "
        "through SB3's NatureCNN",
    )
    parser.add_argument("--device", default="cpu", help="torch device of the policy (default cpu)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1))


def _policy_kwargs(coarse_input: int | None) -> dict[str, Any] | None:
    """PPO's ``policy_kwargs`` for ``--coarse-input`` (None: SB3's default CnnPolicy)."""
    if coarse_input is None:
        return None
    from agents.coarse_cnn import CoarseCNN

    return {"features_extractor_class": CoarseCNN, "features_extractor_kwargs": {"pool": int(coarse_input)}}


def _save_atomic(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.zip")
    model.save(str(tmp))
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    """Train and save; see the module docstring for what ``--out`` receives."""
    require_sb3()
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure

    if args.steps < 1 or args.num_envs < 1:
        raise SystemExit("--steps and --num-envs must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = parse_env_kwargs(args.env_kwarg)
    venv = make_training_env(args.env, args.num_envs, args.seed, env_kwargs, out / "monitor")
    formats = ["stdout", "csv"] if args.verbose else ["csv"]
    if has_tensorboard():
        formats.append("tensorboard")
    else:
        print(
            "tensorboard is not installed: logging to CSV only "
            '(pip install "millivid-env[agents]" for TensorBoard)'
        )
    resume_from = latest_checkpoint(out) if args.resume else None
    if resume_from is not None:
        model = PPO.load(str(resume_from), env=venv, device=args.device)
        print(f"resuming from {resume_from} ({model.num_timesteps} steps done)")
    else:
        model = PPO(
            "CnnPolicy",
            venv,
            learning_rate=args.lr,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            n_epochs=args.n_epochs,
            gamma=args.gamma,
            ent_coef=args.ent_coef,
            policy_kwargs=_policy_kwargs(args.coarse_input),
            seed=args.seed,
            device=args.device,
            verbose=args.verbose,
        )
    model.set_logger(configure(str(out / "logs"), formats))
    checkpoints = CheckpointCallback(
        save_freq=max(args.checkpoint_every // args.num_envs, 1),
        save_path=str(out / "checkpoints"),
        name_prefix="ppo",
    )
    start = time.perf_counter()
    remaining = max(args.steps - model.num_timesteps, 0)
    if remaining:
        model.learn(remaining, callback=checkpoints, reset_num_timesteps=resume_from is None)
    seconds = time.perf_counter() - start
    _save_atomic(model, out / "policy.zip")
    venv.close()
    record = {
        "env": args.env,
        "env_kwargs": env_kwargs,
        "steps": int(model.num_timesteps),
        "num_envs": args.num_envs,
        "seed": args.seed,
        "algorithm": "PPO",
        "policy": "CnnPolicy"
        if args.coarse_input is None
        else f"CnnPolicy + CoarseCNN(pool={args.coarse_input})",
        "hyperparameters": {
            "n_steps": args.n_steps,
            "batch_size": args.batch_size,
            "n_epochs": args.n_epochs,
            "learning_rate": args.lr,
            "gamma": args.gamma,
            "ent_coef": args.ent_coef,
        },
        "resumed_from": None if resume_from is None else str(resume_from),
        "seconds": round(seconds, 1),
        "stable_baselines3": require_sb3().__version__,
        "tensorboard": has_tensorboard(),
    }
    (out / "agent.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"trained {model.num_timesteps} steps in {seconds:.0f} s; policy saved to {out / 'policy.zip'}")
    return 0
