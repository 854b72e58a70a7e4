"""Training loop of the hierarchical autoencoder (resumable, DDP-ready, CPU-first).

Frames are held in memory as uint8 and sampled at random. Every step keeps one random level per sample
(the rest zeroed), the loss is the level-balanced pyramid MSE plus a small ST-LPIPS-Alex term on the
level-0 image. The batch randomness is a function of ``(seed, rank, step)``, so a resumed run draws
exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from models.autoencoder import AutoencoderConfig, HierarchicalAutoencoder, reconstruction_loss, size_config
from models.data import load_frames
from models.tokens import build_pyramid
from models.training.common import (
    Dist,
    TrainingLoop,
    build_optimizers,
    init_distributed,
    initialise_from,
    leave_distributed,
    load_run_state,
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
    rewarm_steps: int = 0
    size: str = "cpu"
    variant: str = "hierarchical"
    refine_channels: int | None = None
    decoder_depth: int | None = None
    init_from: str | None = None
    freeze_encoder: bool = False
    perceptual_weight: float = 0.05
    perceptual_samples: int = 8
    all_levels: bool = False
    level_sampling: str = "random"
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


#: ``--level-sampling`` choices: which levels every training frame is decoded from.
LEVEL_SAMPLING = ("random", "all", "fine-plus-random")


def level_sampling(cfg: TrainConfig) -> str:
    """The run's level sampling (``--all-levels`` is the older spelling of ``all``).

    Raises:
        ValueError: an unknown choice, or ``--all-levels`` with another ``--level-sampling``.
    """
    if cfg.level_sampling not in LEVEL_SAMPLING:
        raise ValueError(f"unknown --level-sampling {cfg.level_sampling!r}; choose one of {LEVEL_SAMPLING}")
    if cfg.all_levels and cfg.level_sampling not in ("random", "all"):
        raise ValueError(
            f"--all-levels contradicts --level-sampling {cfg.level_sampling}; pass only --level-sampling"
        )
    return "all" if cfg.all_levels else cfg.level_sampling


def decoded_levels(sampling: str, num_levels: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """The levels the ``batch`` frames of a step are decoded from, int64 ``(k * batch,)``.

    Frame ``b`` is decoded from ``levels[b * k : (b + 1) * k]`` after one encoder pass (the layout
    :meth:`~models.autoencoder.HierarchicalAutoencoder.forward` takes):

    * ``random`` (k = 1): one random level per frame, the paper's objective;
    * ``all`` (k = L): every level; the same objective in expectation, lower variance, the encoder
      cost shared;
    * ``fine-plus-random`` (k = 2): level 0 and one random coarser level. Level 0 is what every
      consumer decodes (env, rollouts, evaluation), so it gets every frame, while the coarser levels
      keep being trained at half the decoder cost of ``all``.
    """
    if sampling == "all":
        return torch.arange(num_levels).repeat(batch)
    if sampling == "fine-plus-random":
        coarse = rng.integers(1, num_levels, batch) if num_levels > 1 else np.zeros(batch, dtype=np.int64)
        return torch.from_numpy(np.stack([np.zeros(batch, dtype=np.int64), coarse], axis=1).reshape(-1))
    return torch.from_numpy(rng.integers(0, num_levels, batch))


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


#: The command-line flags that set the architecture (named in mismatch errors).
ARCHITECTURE_FLAGS = "--size/--variant/--refine-channels/--decoder-depth"


def grown_modules(
    source: AutoencoderConfig, target: AutoencoderConfig
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a fine-tune may add to a checkpoint's architecture without changing its output.

    A refinement head where it has none (its last conv starts at zero) and decoder blocks after its
    last one (adaLN-Zero: identity at initialisation), so training starts from exactly the
    checkpoint's reconstructions and, with ``--freeze-encoder``, its latent space.

    Returns:
        ``(config fields allowed to differ, module paths the checkpoint lacks)``.
    """
    ignore: list[str] = []
    new: list[str] = []
    if source.refine_channels == 0 and target.refine_channels > 0:
        ignore.append("refine_channels")
        new.append("refine")
    if target.decoder_depth > source.decoder_depth:
        ignore.append("decoder_depth")
        new += [f"decoder.{i}" for i in range(source.decoder_depth, target.decoder_depth)]
    return tuple(ignore), tuple(new)


def train(cfg: TrainConfig, ctx: Dist | None = None) -> dict[str, float]:
    """Train (or resume) an autoencoder run in ``cfg.out``.

    Returns:
        The last held-out evaluation (``psnr_l0`` ... ``psnr_l3``).
    """
    ctx = ctx or init_distributed(cfg.device)
    run_dir = Path(cfg.out)
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    model_cfg = size_config(
        cfg.size, variant=cfg.variant, refine_channels=cfg.refine_channels, decoder_depth=cfg.decoder_depth
    )
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = HierarchicalAutoencoder(model_cfg).to(ctx.device)
    optimizers = build_optimizers(model, cfg.lr, cfg.muon_lr, cfg.weight_decay, cfg.optimizer)
    state = load_run_state(run_dir, model, optimizers)
    if state is not None and state["model_config"] != asdict(model_cfg):
        raise ValueError(
            f"{run_dir} holds a run of another architecture ({state['model_config']}); "
            f"use a new --out directory or the same {ARCHITECTURE_FLAGS}"
        )
    if state is None and cfg.init_from:
        from models.checkpoints import load_autoencoder

        source = load_autoencoder(cfg.init_from)
        ignore, new_modules = grown_modules(source.config, model_cfg)
        initialise_from(model, source, cfg.init_from, ARCHITECTURE_FLAGS, ignore, new_modules)
    if cfg.freeze_encoder:
        if not (cfg.init_from or state is not None):
            raise ValueError(
                "--freeze-encoder keeps the encoder as it is, so it needs trained weights: pass "
                "--init-from CHECKPOINT (or resume a run folder)"
            )
        # Frozen parameters get no gradient, so neither optimiser touches them (no update, no weight
        # decay) and DDP does not synchronise them: the latent space stays bit-identical.
        for module in model.encoder_modules():
            module.requires_grad_(False)
    loop = TrainingLoop(
        ctx,
        run_dir,
        model,
        optimizers,
        cfg,
        state,
        counter="frames",
        run_info={"model_config": asdict(model_cfg), "train": asdict(cfg)},
        data_name="data",
        counter_per_step_if_missing=cfg.batch_size,  # run states saved before "frames" was recorded
    )
    perceptual = None
    if cfg.perceptual_weight > 0:
        from models.perceptual import PerceptualDistance

        perceptual = PerceptualDistance().to(ctx.device)

    train_frames, held = split_frames(cfg)
    held_images = _to_images(held, ctx.device)
    net = DistributedDataParallel(model) if ctx.world > 1 else model
    levels_n = model.layout.num_levels
    sampling = level_sampling(cfg)
    columns = ["lr", "loss", "perceptual"]
    columns += [f"mse_l{k}" for k in range(levels_n)] + [f"psnr_l{k}" for k in range(levels_n)]
    loop.open_log(columns, asdict(cfg))

    last_eval: dict[str, float] = {}
    with loop.running("train-autoencoder"):
        model.train()
        while loop.step < cfg.steps:
            rng = np.random.default_rng([cfg.seed, ctx.rank, loop.step])
            idx = np.sort(rng.integers(0, len(train_frames), cfg.batch_size))
            images = _to_images(train_frames[idx], ctx.device)
            levels = decoded_levels(sampling, levels_n, cfg.batch_size, rng).to(ctx.device)
            loop.schedule_lr()
            with ctx.autocast():
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
            outcome = loop.take_step(loss)
            row = {}
            if outcome.log:
                row = {"loss": loss.item(), "perceptual": p_loss.item(), "lr": loop.lr}
                row.update({f"mse_l{k}": float(v) for k, v in enumerate(per_level)})
            if outcome.evaluate:
                last_eval = evaluate(model, held_images)
                row.update(last_eval)
                loop.show({k: f"{v:.2f}" for k, v in last_eval.items()})
            loop.end_step(outcome, row)
            if outcome.halt:
                break
    if ctx.main and not last_eval:  # nothing left to train (a finished run re-run)
        last_eval = evaluate(model, held_images)
    leave_distributed(ctx)
    return last_eval


def describe_eval(result: dict[str, float]) -> str:
    """``L0 24.1 dB | L1 ...`` summary line."""
    return " | ".join(f"L{k[-1]} {v:.2f} dB" for k, v in sorted(result.items()) if not math.isnan(v))
