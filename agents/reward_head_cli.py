"""`millivid train-reward-head`: a reward/termination head for the landmark task, on an autoencoder's latents.

    millivid train-reward-head --autoencoder loopcraft-64 --out runs/landmark-head --episodes 300

Rolls out the landmark task in the real world (a mix of random and scripted-towards-the-landmark
episodes), labels every frame from the true pose, encodes the frames with the autoencoder, trains a
:class:`models.reward_head.RewardHead` and writes it atomically as a checkpoint directory
(``config.json`` + ``model.safetensors`` + ``README.md`` model card) with ``metrics.json``: accuracy,
precision, recall and F1 of the success prediction on held-out episodes. With
``--imagined-episodes N`` it also trains on the *shown* frames of N episodes of an imagined landmark
env (``--imagined-env``), labelled by its ground-truth twin's true pose, and reports the held-out
imagined episodes apart (``metrics["test_imagined"]``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from typing import Any

from millivid_env.loopcraft.task import LandmarkTask
from millivid_env.registration import ENV_CHECKPOINT, LANDMARK_ENV_ID

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``millivid train-reward-head``."""
    parser.add_argument(
        "--autoencoder", required=True, help="autoencoder: bundled name, directory or repo id"
    )
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.add_argument("--episodes", type=int, default=300, help="ground-truth episodes (default 300)")
    parser.add_argument("--max-steps", type=int, default=200, help="steps per episode at most (default 200)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out episodes (default 0.2)")
    parser.add_argument(
        "--scripted-fraction", type=float, default=0.5, help="episodes steered to a landmark (default 0.5)"
    )
    parser.add_argument("--epsilon", type=float, default=0.25, help="random actions in scripted episodes")
    parser.add_argument("--linger", type=int, default=16, help="random steps after a success (default 16)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--pos-weight", type=float, help="loss weight of success frames (default: sqrt of the class ratio)"
    )
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)")
    parser.add_argument(
        "--latent-noise",
        type=float,
        default=0.2,
        help="std of Gaussian noise on the training latents (robustness to generated latents; default 0.2)",
    )
    parser.add_argument("--hidden", type=int, default=128, help="hidden width of the head's MLP")
    parser.add_argument("--dropout", type=float, default=0.5, help="dropout after each hidden layer")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3], help="latent levels read")
    parser.add_argument("--radius", type=float, default=2.0, help="task success radius in blocks")
    parser.add_argument("--min-start-distance", type=float, default=4.0)
    parser.add_argument("--shaping", type=float, default=0.0, help="task shaping coefficient (0: sparse)")
    parser.add_argument(
        "--imagination-episodes",
        type=int,
        default=0,
        help="also judge N imagined episodes of --diffusion against the true pose (default 0: skip)",
    )
    parser.add_argument(
        "--diffusion",
        default=ENV_CHECKPOINT,
        help=f"diffusion checkpoint of the imagined episodes (default {ENV_CHECKPOINT}, the envs')",
    )
    parser.add_argument(
        "--imagination-max-steps", type=int, default=100, help="steps per imagined episode at most"
    )
    parser.add_argument(
        "--imagined-episodes",
        type=int,
        default=0,
        help="also train on the shown frames of N imagined episodes labelled by the true pose (default 0)",
    )
    parser.add_argument(
        "--imagined-env",
        default=LANDMARK_ENV_ID,
        help=f"registered imagined landmark id of those episodes (default {LANDMARK_ENV_ID})",
    )
    parser.add_argument(
        "--imagined-max-steps", type=int, default=150, help="steps per imagined training episode at most"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (encoding only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _command_line(args: argparse.Namespace) -> str:
    """The options of this run, as a command line."""
    parts = []
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if value is None:  # an unset option (its default applies)
            continue
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _model_card(args: argparse.Namespace, metrics: dict[str, Any], seconds: float) -> str:
    test, train = metrics["test"], metrics["train"]
    rows = "\n".join(
        f"| {name} | {m['frames']} | {m['positives']} | {m['accuracy']:.3f} | {m['majority_accuracy']:.3f} | "
        f"{m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['distance_mae_blocks']:.2f} |"
        for name, m in (
            ("train", train),
            ("held-out", test),
            *((("held-out real", metrics["test_real"]),) if "test_real" in metrics else ()),
            *((("held-out imagined", metrics["test_imagined"]),) if "test_imagined" in metrics else ()),
        )
    )
    imagined = metrics.get("imagined_data")
    if imagined is None:
        imagined_line = ""
        caveat = (
            "Trained on latents of *real* frames; in imagination it reads latents generated by the\n"
            "diffusion model, so its accuracy there can be lower."
        )
    else:
        imagined_line = f"""
- Imagined data: the shown frames of {imagined["episodes"]} episodes of `{imagined["env"]}` (reset seeds
  {imagined["first_seed"]}+, at most {imagined["max_steps"]} steps; {imagined["scripted_episodes"]} steered
  by the ground-truth twin's true pose, the rest random; {imagined["reached"]} truly reached a landmark),
  {imagined["frames"]} imagined frames labelled by the twin's true pose; {imagined["test_episodes"]}
  episodes held out."""
        caveat = (
            "Trained on latents of real frames and of the imagined env's shown frames (encoded as the env\n"
            "encodes them), so that it judges the frames an agent in imagination sees."
        )
    return f"""---
library_name: millivid-env
tags: [millivid, reward-model, world-model]
license: mit
---

# Landmark reward head

Predicts, from the coarse latents (levels {args.levels}) of one frame of the autoencoder
`{args.autoencoder}`, whether the player is within {args.radius} blocks of a landmark (success:
reward {metrics["task"]["success_reward"]}, episode ends) and how far the nearest landmark is.
Used by `gym.make("{LANDMARK_ENV_ID}", reward_head=...)`.

## Training

- Command: `millivid train-reward-head {_command_line(args)}`
- Data: {metrics["data"]["episodes"]} ground-truth episodes of `Loopcraft-Landmark-v0`
  ({metrics["data"]["scripted_episodes"]} steered towards a landmark, the rest random;
  {metrics["data"]["reached"]} reached one), {metrics["data"]["frames"]} frames labelled from the true
  pose; {metrics["data"]["test_episodes"]} episodes held out.{imagined_line}
- Time: {seconds:.0f} s on {platform.machine()} ({platform.processor() or platform.system()}).

## Success prediction (threshold 0.5)

| split | frames | positives | accuracy | majority acc. | precision | recall | F1 | distance MAE |
|---|---|---|---|---|---|---|---|---|
{rows}

{caveat}
{_imagination_section(metrics.get("imagination"))}"""


def _imagination_section(judged: dict[str, Any] | None) -> str:
    if judged is None:
        return "Not measured in imagination (`--imagination-episodes`)."
    return f"""
## In imagination

{judged["episodes"]} imagined episodes of `{judged["diffusion"]}` ({judged["sampling_steps"]} sampler
steps), steered towards a landmark by the true pose of the ground-truth twin; every step's success call
compared with the true pose ({judged["episodes_truly_reached"]} episodes truly reached a landmark, the
head called success in {judged["episodes_predicted_reached"]}; an episode ends at the head's first call):

| steps | true successes | accuracy | majority acc. | precision | recall | F1 |
|---|---|---|---|---|---|---|
| {judged["frames"]} | {judged["positives"]} | {judged["accuracy"]:.3f} | \
{judged["majority_accuracy"]:.3f} | {judged["precision"]:.3f} | {judged["recall"]:.3f} | {judged["f1"]:.3f} |
"""


def _judge_in_imagination(head: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The head's success calls on imagined frames of ``args.diffusion`` vs the true pose."""
    import tempfile

    from agents.imagined_judgement import judge_in_imagination
    from millivid_env.registration import MILLIVID_TASK_VARIANTS, sampler_options

    # The sampler, warp and decoded level of the registered imagined task env, so the judgement
    # matches what agents meet.
    sampler = sampler_options(LANDMARK_ENV_ID)
    variant = MILLIVID_TASK_VARIANTS[LANDMARK_ENV_ID]
    sampler |= {key: variant[key] for key in ("warp", "decode_level") if key in variant}
    with tempfile.TemporaryDirectory() as tmp:
        head.save_pretrained(tmp)
        env_kwargs = {
            "checkpoint": args.diffusion,
            "autoencoder": args.autoencoder,
            "reward_head": tmp,
            "device": args.device,
            **sampler,
        }
        judgement = judge_in_imagination(
            env_kwargs,
            args.imagination_episodes,
            max_steps=args.imagination_max_steps,
            seed=args.seed + 1_000_000,  # worlds the head was not trained on
            progress=not args.no_progress,
        )
    return {
        **judgement.metrics(),
        "diffusion": str(args.diffusion),
        "sampling_steps": sampler["sampling_steps"],
    }


#: First reset seed of the imagined training episodes (plus ``--seed``): other worlds than the real
#: episodes' and the imagination judgement's (1,000,000 + seed).
_IMAGINED_SEED = 2_000_000


def _collect_imagined(args: argparse.Namespace, task: LandmarkTask, autoencoder: Any) -> Any:
    """Shown frames of ``--imagined-episodes`` episodes of ``--imagined-env``, labelled by the true pose."""
    import tempfile

    from agents.landmark_data import collect_imagined_landmark_frames
    from millivid_env.registration import MILLIVID_TASK_VARIANTS
    from models.defaults import simulator_autoencoder
    from models.reward_head import RewardHead, RewardHeadConfig

    # The id's sampler, warp and decoded level, with --diffusion and --autoencoder's simulator decoder
    # (by default exactly the id's models).
    kwargs = dict(MILLIVID_TASK_VARIANTS[args.imagined_env])
    kwargs |= {"checkpoint": args.diffusion, "autoencoder": simulator_autoencoder(args.autoencoder)}
    kwargs["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        # The env takes its task (radius, start distance) from a head: give it an untrained one of this task.
        config = RewardHeadConfig(
            layout=autoencoder.config.layout,
            latent_channels=autoencoder.config.latent_channels,
            levels=tuple(args.levels),
            radius=task.radius,
            min_start_distance=task.min_start_distance,
        )
        RewardHead(config).save_pretrained(tmp)
        kwargs["reward_head"] = tmp
        return collect_imagined_landmark_frames(
            kwargs,
            args.imagined_episodes,
            max_steps=args.imagined_max_steps,
            seed=_IMAGINED_SEED + args.seed,
            scripted_fraction=args.scripted_fraction,
            epsilon=args.epsilon,
            linger=args.linger,
            progress=not args.no_progress,
        )


def run(args: argparse.Namespace) -> int:
    """Collect, encode, train, evaluate and save."""
    import numpy as np
    import torch

    from agents.landmark_data import collect_landmark_frames
    from agents.reward_head_training import _evaluate, encode_in_batches, train_reward_head
    from models.checkpoints import load_autoencoder, save_checkpoint
    from models.reward_head import RewardHeadConfig
    from models.world_model import resolve_device

    if not 0.0 < args.test_fraction < 1.0:
        raise SystemExit("--test-fraction must be in (0, 1)")
    if args.episodes < 2:
        raise SystemExit("--episodes must be >= 2 (some are held out)")
    if args.imagined_episodes < 0 or args.imagined_max_steps < 1:
        raise SystemExit("--imagined-episodes must be >= 0 and --imagined-max-steps >= 1")
    if args.imagination_episodes < 0 or args.imagination_max_steps < 1:
        raise SystemExit("--imagination-episodes must be >= 0 and --imagination-max-steps >= 1")
    start = time.perf_counter()
    task = LandmarkTask(radius=args.radius, min_start_distance=args.min_start_distance, shaping=args.shaping)
    autoencoder = load_autoencoder(args.autoencoder, device=resolve_device(args.device))
    size = autoencoder.layout.image_size
    data = collect_landmark_frames(
        args.episodes,
        args.max_steps,
        args.seed,
        task,
        scripted_fraction=args.scripted_fraction,
        epsilon=args.epsilon,
        linger=args.linger,
        resolution=size,
        progress=not args.no_progress,
    )
    latents = encode_in_batches(autoencoder, data.frames, progress=not args.no_progress)
    test_episodes = max(1, round(args.test_fraction * args.episodes))
    test_mask = data.episode >= args.episodes - test_episodes  # the last episodes are held out
    imagined, imagined_test = None, None
    if args.imagined_episodes > 0:
        imagined = _collect_imagined(args, task, autoencoder)
        imagined_latents = encode_in_batches(autoencoder, imagined.frames, progress=not args.no_progress)
        held = max(1, round(args.test_fraction * args.imagined_episodes))
        imagined_test = imagined.episode >= args.imagined_episodes - held
        latents = torch.cat([latents, imagined_latents])
        test_mask = np.concatenate([test_mask, imagined_test])
        success = np.concatenate([data.success, imagined.success])
        distance = np.concatenate([data.distance, imagined.distance])
    else:
        success, distance = data.success, data.distance
    config = RewardHeadConfig(
        layout=autoencoder.config.layout,
        latent_channels=autoencoder.config.latent_channels,
        levels=tuple(args.levels),
        hidden=args.hidden,
        dropout=args.dropout,
        radius=task.radius,
        min_start_distance=task.min_start_distance,
        success_reward=task.success_reward,
        shaping=task.shaping,
    )
    head, metrics = train_reward_head(
        latents,
        success,
        distance,
        test_mask,
        config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        pos_weight=args.pos_weight,
        weight_decay=args.weight_decay,
        latent_noise=args.latent_noise,
        progress=not args.no_progress,
    )
    metrics["data"] = {
        "episodes": args.episodes,
        "test_episodes": test_episodes,
        "frames": len(data.frames),
        "scripted_episodes": int(data.scripted.sum()),
        "reached": int(data.reached.sum()),
        "reached_random": int((data.reached & ~data.scripted).sum()),
        "max_steps": args.max_steps,
        "seed": args.seed,
    }
    if imagined is not None:
        real = len(data.frames)
        mask = np.concatenate([np.zeros(real, dtype=bool), imagined_test])
        metrics["test_imagined"] = _evaluate(head, latents[mask], success[mask], distance[mask])
        real_test = data.episode >= args.episodes - test_episodes
        real_mask = np.concatenate([real_test, np.zeros(len(imagined_test), dtype=bool)])
        metrics["test_real"] = _evaluate(head, latents[real_mask], success[real_mask], distance[real_mask])
        metrics["imagined_data"] = {
            "env": args.imagined_env,
            "episodes": args.imagined_episodes,
            "test_episodes": int(held),
            "frames": len(imagined.frames),
            "scripted_episodes": int(imagined.scripted.sum()),
            "reached": int(imagined.reached.sum()),
            "max_steps": args.imagined_max_steps,
            "first_seed": _IMAGINED_SEED + args.seed,
        }
    metrics["task"] = {"name": "landmark", **{k: getattr(task, k) for k in task.__dataclass_fields__}}
    if args.imagination_episodes > 0:
        metrics["imagination"] = _judge_in_imagination(head, args)
    metrics["autoencoder"] = str(args.autoencoder)
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds, 1)
    card = _model_card(args, metrics, seconds)

    out = save_checkpoint(head, args.out, card, files={"metrics.json": json.dumps(metrics, indent=2) + "\n"})
    test = metrics["test"]
    print(
        f"held-out: accuracy {test['accuracy']:.3f} (majority {test['majority_accuracy']:.3f}), precision "
        f"{test['precision']:.3f}, recall {test['recall']:.3f}, F1 {test['f1']:.3f} on {test['frames']} "
        f"frames ({test['positives']} successes); saved {out}"
    )
    if "imagination" in metrics:
        judged = metrics["imagination"]
        print(
            f"in imagination ({judged['episodes']} episodes, {judged['frames']} steps): accuracy "
            f"{judged['accuracy']:.3f} (majority {judged['majority_accuracy']:.3f}), precision "
            f"{judged['precision']:.3f}, recall {judged['recall']:.3f}, F1 {judged['f1']:.3f}"
        )
    return 0
