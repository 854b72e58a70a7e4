"""Training loop of the hierarchical autoencoder (resumable, DDP-ready, CPU-first).

Frames are held in memory as uint8 and sampled at random. Every step keeps one random level per sample
(the rest zeroed), the loss is the level-balanced pyramid MSE plus a small ST-LPIPS-Alex term on the
level-0 image. The batch randomness is a function of ``(seed, rank, step)``, so a resumed run draws
exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models.autoencoder import HierarchicalAutoencoder, reconstruction_loss, size_config
from models.data import load_frames
from models.tokens import build_pyramid
from models.training.common import (
    CsvLog,
    Dist,
    StopSignal,
    Stopwatch,
    any_rank,
    build_optimizers,
    init_distributed,
    load_run_state,
    save_run_state,
    set_lr,
)


@dataclass
class TrainConfig:
    """Options of ``millivid train-autoencoder`` (stored in the run state; see the CLI for help)."""

    data: str
    out: str
    steps: int = 20000
    batch_size: int = 32
    lr: float = 2e-3
    muon_lr: float | None = None
    optimizer: str = "muon"
    weight_decay: float = 0.01
    warmup_steps: int = 100
    cooldown_steps: int = 0
    size: str = "cpu"
    variant: str = "hierarchical"
    refine_channels: int | None = None
    perceptual_weight: float = 0.05
    perceptual_samples: int = 8
    all_levels: bool = False
    eval_data: str | None = None
    holdout_videos: int = 1
    eval_frames: int = 64
    eval_every: int = 250
    log_every: int = 10
    checkpoint_every_minutes: float = 10.0
    max_minutes: float | None = None
    max_videos: int | None = None
    seed: int = 0
    device: str = "auto"


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in ``[0, 1]`` from their MSE."""
    return -10 * torch.log10(mse.clamp_min(1e-10))


def split_frames(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` uint8 frames: ``--eval-data`` or the last ``holdout_videos`` videos."""
    frames, video = load_frames(cfg.data, cfg.max_videos)
    if cfg.eval_data:
        held, _ = load_frames(cfg.eval_data)
        train = frames
    else:
        ids = np.unique(video)
        if len(ids) > cfg.holdout_videos >= 1:
            mask = np.isin(video, ids[-cfg.holdout_videos :])
            train, held = frames[~mask], frames[mask]
        else:  # one video: hold out its last tenth
            cut = max(1, len(frames) * 9 // 10)
            train, held = frames[:cut], frames[cut:]
    pick = np.linspace(0, len(held) - 1, min(cfg.eval_frames, len(held))).round().astype(int)
    return train, held[pick]


@torch.no_grad()
def evaluate(model: HierarchicalAutoencoder, images: torch.Tensor, batch: int = 64) -> dict[str, float]:
    """Level-0 PSNR of frames decoded from each single level (``psnr_l{k}``) on a held-out batch."""
    was_training = model.training
    model.eval()
    out = {}
    for level in range(model.layout.num_levels):
        errors = []
        for chunk in images.split(batch):
            z = model.encode_images(chunk)
            levels = torch.full((len(chunk),), level, dtype=torch.long, device=chunk.device)
            pred = model.decode_pyramid(z, levels)[0].clamp(0, 1)
            errors.append(((pred - chunk) ** 2).mean(dim=(1, 2, 3)))
        out[f"psnr_l{level}"] = float(psnr(torch.cat(errors)).mean())
    model.train(was_training)
    return out


def _to_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def train(cfg: TrainConfig, ctx: Dist | None = None) -> dict[str, float]:
    """Train (or resume) an autoencoder run in ``cfg.out``.

    Returns:
        The last held-out evaluation (``psnr_l0`` ... ``psnr_l3``).
    """
    ctx = ctx or init_distributed(cfg.device)
    run_dir = Path(cfg.out)
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    model_cfg = size_config(cfg.size, variant=cfg.variant, refine_channels=cfg.refine_channels)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = HierarchicalAutoencoder(model_cfg).to(ctx.device)
    optimizers = build_optimizers(model, cfg.lr, cfg.muon_lr, cfg.weight_decay, cfg.optimizer)
    state = load_run_state(run_dir, model, optimizers)
    if state is not None and state["model_config"] != asdict(model_cfg):
        raise ValueError(
            f"{run_dir} holds a run of another architecture ({state['model_config']}); "
            "use a new --out directory or the same --size/--variant/--refine-channels"
        )
    step = state["step"] if state else 0
    # Frames seen over all processes and sittings (the world size may change between sittings).
    frames_seen = state.get("frames", step * cfg.batch_size) if state else 0
    clock = Stopwatch(state["elapsed_s"] if state else 0.0)
    perceptual = None
    if cfg.perceptual_weight > 0:
        from models.perceptual import PerceptualDistance

        perceptual = PerceptualDistance().to(ctx.device)

    train_frames, held = split_frames(cfg)
    held_images = _to_images(held, ctx.device)
    net = DistributedDataParallel(model) if ctx.world > 1 else model
    levels_n = model.layout.num_levels
    log = None
    if ctx.main:
        columns = ["step", "time_s", "frames", "lr", "loss", "perceptual"]
        columns += [f"mse_l{k}" for k in range(levels_n)] + [f"psnr_l{k}" for k in range(levels_n)]
        log = CsvLog(run_dir / "log.csv", columns, step)
        (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")

    saved_step = step

    def checkpoint() -> None:
        nonlocal saved_step
        if ctx.main and step != saved_step:
            saved_step = step
            info = {
                "step": step,
                "frames": frames_seen,
                "elapsed_s": clock(),
                "model_config": asdict(model_cfg),
                "train": asdict(cfg),
            }
            save_run_state(run_dir, model, optimizers, info)

    stop = StopSignal()
    last_save = time.monotonic()
    last_eval: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=step, disable=not ctx.main, desc="train-autoencoder", unit="step")
    try:
        model.train()
        while step < cfg.steps:
            rng = np.random.default_rng([cfg.seed, ctx.rank, step])
            idx = np.sort(rng.integers(0, len(train_frames), cfg.batch_size))
            images = _to_images(train_frames[idx], ctx.device)
            if cfg.all_levels:
                # Every frame decoded from each level after one encoder pass: the same objective as
                # one random level per frame (its expectation), lower variance, encoder cost shared.
                levels = torch.arange(levels_n, device=ctx.device).repeat(cfg.batch_size)
            else:
                levels = torch.from_numpy(rng.integers(0, levels_n, cfg.batch_size)).to(ctx.device)
            lr_factor = set_lr(optimizers, step, cfg.warmup_steps, cfg.steps, cfg.cooldown_steps)
            with torch.autocast(ctx.device.type, torch.bfloat16, enabled=ctx.device.type == "cuda"):
                predicted = net(images, levels)
            predicted = [p.float() for p in predicted]
            repeat = len(levels) // len(images)
            target = [t.repeat_interleave(repeat, dim=0) for t in build_pyramid(images, levels_n)]
            loss, per_level = reconstruction_loss(predicted, target)
            p_loss = torch.zeros((), device=ctx.device)
            if perceptual is not None:
                k = min(cfg.perceptual_samples, len(levels))
                p_loss = perceptual(predicted[0][:k].clamp(0, 1), target[0][:k]).mean()
                loss = loss + cfg.perceptual_weight * p_loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}; lower --lr or check the data")
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            step += 1
            frames_seen += cfg.batch_size * ctx.world
            bar.update(1)
            out_of_time = cfg.max_minutes is not None and clock() >= cfg.max_minutes * 60
            due = time.monotonic() - last_save >= cfg.checkpoint_every_minutes * 60
            halt, save = any_rank([stop.requested or out_of_time, due], ctx)
            last = halt or step == cfg.steps
            row = {}
            if ctx.main and (step % cfg.log_every == 0 or last):
                row = {"loss": loss.item(), "perceptual": p_loss.item(), "lr": lr_factor * cfg.lr}
                row.update({f"mse_l{k}": float(v) for k, v in enumerate(per_level)})
            if ctx.main and (step % cfg.eval_every == 0 or last):
                last_eval = evaluate(model, held_images)
                row.update(last_eval)
                bar.set_postfix({k: f"{v:.2f}" for k, v in last_eval.items()})
            if row and log is not None:
                log.write({"step": step, "time_s": clock(), "frames": frames_seen, **row})
            if save or halt:
                checkpoint()
                last_save = time.monotonic()
            if halt:
                break
        if step >= cfg.steps:
            checkpoint()
    finally:
        bar.close()
        stop.restore()
    if ctx.main and not last_eval:  # nothing left to train (a finished run re-run)
        last_eval = evaluate(model, held_images)
    return last_eval


def describe_eval(result: dict[str, float]) -> str:
    """``L0 24.1 dB | L1 ...`` summary line."""
    return " | ".join(f"L{k[-1]} {v:.2f} dB" for k, v in sorted(result.items()) if not math.isnan(v))
