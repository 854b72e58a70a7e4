"""Copy a trained autoencoder run into the package as a bundled checkpoint, with its model card.

    python -m models.bundle --run RUN_DIR --eval EVAL.json --name loopcraft-64 --hardware "..."

``RUN_DIR`` is a ``millivid train-autoencoder --out`` folder; ``EVAL.json`` comes from
``millivid eval-autoencoder --json``. The card records the training command, data, steps, wall time,
hardware and the evaluation table, as DESIGN section 5 asks of every bundled checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from models.checkpoints import BUNDLED_DIR, CONFIG_NAME, WEIGHTS_NAME, atomic_save_dir, load_autoencoder

_FLAGS = (
    "data", "out", "steps", "batch_size", "lr", "muon_lr", "optimizer", "warmup_steps", "cooldown_steps",
    "all_levels", "size", "variant", "refine_channels", "perceptual_weight", "perceptual_samples",
    "eval_data", "seed",
)  # fmt: skip


def training_command(train: dict) -> str:
    """The ``millivid train-autoencoder`` command line that reproduces a run's options."""
    parts = ["millivid train-autoencoder"]
    for key in _FLAGS:
        value = train.get(key)
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):  # store_true options
            parts.extend([flag] if value else [])
        elif value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def eval_table(document: dict) -> str:
    """Markdown table of an ``eval-autoencoder --json`` result (first checkpoint)."""
    metric = document.get("perceptual_metric") or "perceptual"
    lines = [f"| kept level (tokens) | PSNR dB | SSIM | {metric} |", "|---|---|---|---|"]
    for row in document["results"][0]["levels"]:
        lines.append(
            f"| L{row['level']} ({row['tokens']}) | {row['psnr']:.2f} | {row['ssim']:.4f} | "
            f"{row.get('perceptual', float('nan')):.4f} |"
        )
    return "\n".join(lines)


def model_card(run: Path, evaluation: dict, name: str, hardware: str, notes: str = "") -> str:
    """The README.md of a bundled checkpoint."""
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    train, config = state["train"], state["model_config"]
    frames = state["step"] * train["batch_size"]
    hours = state["elapsed_s"] / 3600
    return f"""---
library_name: millivid-env
license: mit
tags: [millivid, autoencoder, world-model, loopcraft]
---

# {name}: hierarchical autoencoder for Loopcraft 64x64

Encodes a 64x64 RGB frame into 64 / 16 / 4 / 1 latent tokens (levels 0-3, 32 channels, tanh); each
level alone decodes to the whole frame (MilliVid, DESIGN section 5). Variant: **{config["variant"]}**;
width {config["width"]}, {config["encoder_depth"]} + {config["decoder_depth"]} blocks,
{config["heads"]} heads, refinement head channels {config["refine_channels"]}.

## Training

- Command: `{training_command(train)}`
- Data: `{train["data"]}` (Loopcraft train split, frames sampled uniformly at random).
- Optimiser: {"Muon (2-D linear weights) + AdamW" if train.get("optimizer", "muon") == "muon" else "AdamW"},
  lr {train["lr"]} (Muon lr {train.get("muon_lr") or train["lr"]}), warm-up {train["warmup_steps"]} steps.
- Loss: level-balanced pyramid MSE + {train["perceptual_weight"]} x ST-LPIPS-Alex on the level-0 image
  ({train["perceptual_samples"]} samples per batch). ST-LPIPS-Alex is the shift-tolerant LPIPS with the
  anti-aliased AlexNet whose trained weights ship in the `stlpips-pytorch` wheel (the standard
  LPIPS-VGG of the paper cannot be downloaded offline).
- Steps: {state["step"]} at batch {train["batch_size"]} ({frames:,} frames); wall time {hours:.2f} h.
- Hardware: {hardware}.

## Evaluation ({evaluation["frames"]} held-out test-loop frames; each level decoded alone)

{eval_table(evaluation)}

{notes}
"""


def bundle(run: Path, evaluation: dict, name: str, hardware: str, notes: str = "") -> Path:
    """Copy ``run``'s model into ``models/bundled/<name>/`` atomically, with the card."""
    source = run / "checkpoint" / "model"
    load_autoencoder(source)  # refuse to bundle something that does not load

    def write(tmp: Path) -> None:
        for file in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy2(source / file, tmp / file)
        (tmp / "README.md").write_text(model_card(run, evaluation, name, hardware, notes))

    return atomic_save_dir(write, BUNDLED_DIR / name)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, type=Path, help="train-autoencoder --out folder")
    parser.add_argument("--eval", required=True, type=Path, help="eval-autoencoder --json output")
    parser.add_argument("--name", default="loopcraft-64")
    parser.add_argument("--hardware", required=True, help="e.g. '1 core of a 2-core x86 VM, fp32'")
    parser.add_argument("--notes", default="", help="extra Markdown appended to the card")
    args = parser.parse_args(argv)
    path = bundle(args.run, json.loads(args.eval.read_text()), args.name, args.hardware, args.notes)
    print(f"bundled {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
