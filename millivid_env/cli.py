"""The `millivid` console script: a table of sub-commands, each imported only when it runs.

Every sub-command lives in its own module that defines ``add_arguments(parser)`` and
``run(args) -> int | None``. Modules are named by string so that ``millivid --help`` and light
commands stay fast (no torch import) and so that this dispatcher depends on no package statically.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One sub-command: the module implementing it and a one-line summary."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "generate": Command("millivid_env.loopcraft.generate_cli", "render a Loopcraft video dataset"),
    "demo": Command("millivid_env.demo", "render a Loopcraft loop to an mp4 and a PNG montage"),
    "train-autoencoder": Command(
        "models.training.autoencoder_cli", "train or resume the hierarchical autoencoder"
    ),
    "encode": Command("models.encoding", "encode a video dataset into a latent dataset"),
    "fit-warp": Command("models.warp.fit_cli", "fit the per-action warp of the previous frame to a dataset"),
    "train-diffusion": Command(
        "models.training.diffusion_cli", "train or resume the video diffusion model on a latent dataset"
    ),
    "rollout": Command(
        "evaluation.rollout_cli", "open-loop rollout of a video, side by side with ground truth"
    ),
    "evaluate": Command(
        "evaluation.evaluate_cli", "revisit-consistency evaluation of several systems, with report"
    ),
    "eval-autoencoder": Command("evaluation.autoencoder_eval", "autoencoder PSNR/SSIM/perceptual per level"),
    "play": Command("agents.play", "play an env with the keyboard in a pygame window"),
    "train-reward-head": Command("agents.reward_head_cli", "train the landmark reward head on latents"),
    "train-landmark-locator": Command(
        "agents.locator_cli", "train the landmark locator that maps the context for imagined rewards"
    ),
    "train-agent": Command("agents.train_agent", "train a PPO agent (real env or in imagination)"),
    "eval-agent": Command("agents.eval_agent", "success rate and return of an agent in the real world"),
    "bench": Command("evaluation.bench.cli", "measure speed (frames/s, FLOP utilisation) side by side"),
}


def _print_overview() -> None:
    print("usage: millivid <command> [options]\n\ncommands:")
    width = max(len(name) for name in COMMANDS)
    for name, command in COMMANDS.items():
        print(f"  {name:<{width}}  {command.summary}")
    print("\nRun `millivid <command> --help` for the options of one command.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `millivid` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _print_overview()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"millivid: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name].module)
    parser = argparse.ArgumentParser(prog=f"millivid {name}", description=COMMANDS[name].summary)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    result = module.run(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
