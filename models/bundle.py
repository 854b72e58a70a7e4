"""Copy a trained run into the package as a bundled checkpoint, with its model card.

    python -m models.bundle --run RUN_DIR --eval EVAL.json --name loopcraft-64 --hardware "..."
    python -m models.bundle --run DIT_RUN --name loopcraft-64-millivid --hardware "..." [--eval ROLLOUT.json]

``RUN_DIR`` is a ``millivid train-autoencoder --out`` folder and ``EVAL.json`` comes from
``millivid eval-autoencoder --json``; a ``millivid train-diffusion --out`` folder is recognised by its
run state and gets a diffusion card (its ``--eval`` is optional: any JSON of measured rollout
metrics, shown verbatim). The card records the training command, data, steps, wall time, hardware
and the measured metrics, as DESIGN section 5 asks of every bundled checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from models.checkpoints import BUNDLED_DIR, CONFIG_NAME, WEIGHTS_NAME, atomic_save_dir, load_autoencoder

_FLAGS = (
    "data", "out", "steps", "batch_size", "lr", "muon_lr", "optimizer", "warmup_steps", "cooldown_steps",
    "all_levels", "level_sampling", "size", "variant", "refine_channels", "decoder_depth", "init_from",
    "freeze_encoder", "perceptual_weight", "perceptual_samples", "eval_data", "seed",
)  # fmt: skip


_DIFFUSION_FLAGS = (
    "latents", "out", "strategy", "mix_streaming", "size", "context_attention", "init_from", "steps",
    "batch_size", "lr", "muon_lr", "optimizer", "warmup_steps", "cooldown_steps", "rewarm_steps",
    "context_noise", "cfg_dropout", "eval_latents", "seed",
)  # fmt: skip


def training_command(train: dict, command: str = "train-autoencoder", flags: tuple[str, ...] = _FLAGS) -> str:
    """The ``millivid <command>`` command line that reproduces a run's options."""
    parts = [f"millivid {command}"]
    for key in flags:
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


def last_logged(run: Path, columns: tuple[str, ...]) -> dict[str, float]:
    """The last non-empty value of each of ``columns`` in ``run/log.csv`` (missing ones are left out)."""
    found: dict[str, float] = {}
    path = run / "log.csv"
    if path.is_file():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                found.update({k: float(row[k]) for k in columns if row.get(k)})
    return found


def parameter_count(weights: Path) -> int:
    """Number of parameters stored in a safetensors file (read from its header, no tensors loaded)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        return sum(_numel(handle, key) for key in handle.keys())


def _numel(handle: object, key: str) -> int:
    count = 1
    for size in handle.get_slice(key).get_shape():  # type: ignore[attr-defined]
        count *= size
    return count


def diffusion_model_card(
    run: Path, evaluation: dict | None, name: str, hardware: str, notes: str = "", exact_gelu: bool = False
) -> str:
    """The README.md of a bundled diffusion checkpoint (``run`` is a ``train-diffusion --out`` folder)."""
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    train, config = state["train"], state["model_config"]
    hours = state["elapsed_s"] / 3600
    params = parameter_count(run / "checkpoint" / "model" / WEIGHTS_NAME)
    levels = config["num_levels"]
    keys = ("eval_loss", *(f"eval_l{k}" for k in range(levels)), "eval_streaming")
    final = last_logged(run, ("loss", *keys))
    loss_rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in final.items())
    mix = train.get("mix_streaming", 0.0)
    mixture = f", trained on a mixture with the env's streaming layout (p = {mix})" if mix else ""
    shape = f"{params / 1e6:.2f}M parameters; width {config['width']}, {config['depth']} blocks"
    attention = config.get("context_attention", "bidirectional")
    gelu = (
        '\nTrained with the tanh-approximated GELU, bundled with the exact GELU (`"gelu": "exact"`\n'
        "in `config.json`, same weights): the two differ by at most 4.7e-4 and PyTorch's CPU kernel of the\n"
        "exact one is faster on large batches; its frames differ by <= 1 grey level.\n"
        if exact_gelu and config.get("gelu", "tanh") == "tanh"
        else ""
    )
    measured = (
        f"## Measured rollout metrics\n\n```json\n{json.dumps(evaluation, indent=1)}\n```\n"
        if evaluation
        else "Rollout metrics of this checkpoint: see the evaluation report (`docs/evaluation.md`).\n"
    )
    return f"""---
library_name: millivid-env
license: mit
tags: [millivid, diffusion, world-model, loopcraft]
---

# {name}: video diffusion world model for Loopcraft 64x64 ({state["strategy"]} strategy)

A video DiT ({shape}, {config["heads"]} heads, {attention} context attention, layout
`{config["layout"]}`) that denoises hierarchical latent tokens with the **{state["strategy"]}**
rollout strategy ({state.get("strategy_summary", "")}){mixture}.
Use it with the autoencoder whose latents it was trained on (weights sha256
`{state.get("autoencoder_sha256")}`).
{gelu}
## Training

- Command: `{training_command(train, "train-diffusion", _DIFFUSION_FLAGS)}`
- Data: latent dataset `{train["latents"]}` (Loopcraft train split encoded by the autoencoder above).
- Steps: {state["step"]} at batch {train["batch_size"]} ({state.get("samples", 0):,} samples); wall time
  {hours:.2f} h.
- Hardware: {hardware}.

## Final losses (v-prediction MSE; eval = fixed held-out samples, fixed noise)

| quantity | value |
|---|---|
{loss_rows}

{measured}
{notes}
"""


def bundle(
    run: Path, evaluation: dict | None, name: str, hardware: str, notes: str = "", exact_gelu: bool = False
) -> Path:
    """Copy ``run``'s model into ``models/bundled/<name>/`` atomically, with the card.

    ``run`` is a ``train-autoencoder`` or a ``train-diffusion`` run folder (told apart by the
    ``strategy`` of its run state); an autoencoder needs its ``eval-autoencoder`` result.
    ``exact_gelu`` (diffusion only) bundles the model with ``DiTConfig.gelu = "exact"``.
    """
    from models.diffusion import VideoDiT

    source = run / "checkpoint" / "model"
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    if "strategy" in state:
        VideoDiT.from_pretrained(str(source))  # refuse to bundle something that does not load
        card = diffusion_model_card(run, evaluation, name, hardware, notes, exact_gelu)
    else:
        if exact_gelu:
            raise ValueError("--exact-gelu applies to diffusion checkpoints only")
        if evaluation is None:
            raise ValueError("an autoencoder bundle needs --eval (millivid eval-autoencoder --json output)")
        load_autoencoder(source)
        card = model_card(run, evaluation, name, hardware, notes)

    def write(tmp: Path) -> None:
        shutil.copy2(source / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
        if exact_gelu:  # the same weights under the exact activation
            config = json.loads((source / CONFIG_NAME).read_text())
            (tmp / CONFIG_NAME).write_text(
                json.dumps({**config, "gelu": "exact"}, indent=2, sort_keys=True) + "\n"
            )
        else:
            shutil.copy2(source / CONFIG_NAME, tmp / CONFIG_NAME)
        (tmp / "README.md").write_text(card)

    return atomic_save_dir(write, BUNDLED_DIR / name)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, type=Path, help="train-autoencoder or train-diffusion --out")
    parser.add_argument(
        "--eval", type=Path, help="eval-autoencoder --json (autoencoders); rollout metrics JSON (diffusion)"
    )
    parser.add_argument("--name", default="loopcraft-64")
    parser.add_argument("--hardware", required=True, help="e.g. '1 core of a 2-core x86 VM, fp32'")
    parser.add_argument("--notes", default="", help="extra Markdown appended to the card")
    parser.add_argument(
        "--exact-gelu",
        action="store_true",
        help="diffusion: bundle with the exact GELU (DiTConfig.gelu; a few %% faster batched passes on CPU)",
    )
    args = parser.parse_args(argv)
    evaluation = json.loads(args.eval.read_text()) if args.eval else None
    path = bundle(args.run, evaluation, args.name, args.hardware, args.notes, args.exact_gelu)
    print(f"bundled {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
