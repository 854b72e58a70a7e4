"""Training loop of the video DiT on a latent dataset (resumable, DDP-ready, CPU-first).

Every sample is one step layout of the chosen strategy filled with ground-truth latents
(:mod:`models.training.diffusion_data`), optionally mixed with the env's streaming layout. The loss
is the v-prediction MSE of method.md 3.5 with CFG dropout and optional context noise. The batch
randomness is a function of ``(seed, rank, step)``, so a resumed run draws exactly the batches the
uninterrupted run would have drawn. Run state, logs and signals work as for the autoencoder
(:mod:`models.training.common`).
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

from models.diffusion.config import dit_config
from models.diffusion.dit import VideoDiT
from models.latents import LatentDataset
from models.strategies.presets import get_strategy
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
from models.training.diffusion_data import STREAMING, LayoutSampler
from models.training.diffusion_objective import evaluate, level_means, masked_mean, token_errors

STRATEGIES = ("millivid", "framepack", "full-resolution")


@dataclass
class DiffusionTrainConfig:
    """Options of ``millivid train-diffusion`` (stored in the run state; see the CLI for help)."""

    latents: str
    out: str
    strategy: str = "millivid"
    mix_streaming: float = 0.0
    size: str = "cpu"
    steps: int = 20000
    batch_size: int = 16
    lr: float = 1e-3
    muon_lr: float | None = None
    optimizer: str = "muon"
    weight_decay: float = 0.01
    warmup_steps: int = 200
    cooldown_steps: int = 0
    context_noise: float = 0.0
    cfg_dropout: float = 0.1
    eval_latents: str | None = None
    holdout_videos: int = 1
    eval_samples: int = 64
    eval_every: int = 250
    log_every: int = 10
    checkpoint_every_minutes: float = 10.0
    max_minutes: float | None = None
    max_videos: int | None = None
    seed: int = 0
    device: str = "auto"


def build_samplers(
    cfg: DiffusionTrainConfig,
) -> tuple[LayoutSampler, LayoutSampler | None, LayoutSampler | None]:
    """``(train, eval_main, eval_streaming)`` samplers: ``--eval-latents`` or the last held-out videos.

    ``eval_streaming`` (the streaming layouts on the held-out videos) is built for millivid runs and
    for runs that mix streaming in, so the effect of the mixture can be read off both layouts.
    """
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}; valid: {', '.join(STRATEGIES)}")
    data = LatentDataset(cfg.latents)
    layout = data.info["layout"]
    strategy, streaming = get_strategy(layout, cfg.strategy), get_strategy(layout, "streaming")
    videos = list(range(len(data)))[: cfg.max_videos]
    held_data, held = data, []
    if cfg.eval_latents:
        held_data = LatentDataset(cfg.eval_latents)
        if held_data.info["layout"] != layout:
            raise ValueError(f"--eval-latents uses layout {held_data.info['layout']!r}, --latents {layout!r}")
        held = list(range(len(held_data)))
    elif len(videos) > cfg.holdout_videos >= 1:
        videos, held = videos[: -cfg.holdout_videos], videos[-cfg.holdout_videos :]
    train = LayoutSampler(data, videos, strategy, cfg.mix_streaming, streaming)
    if not held or cfg.eval_samples <= 0:
        return train, None, None
    eval_main = LayoutSampler(held_data, held, strategy)
    eval_stream = None
    if cfg.strategy == "millivid" or cfg.mix_streaming > 0:
        eval_stream = LayoutSampler(held_data, held, streaming)
    return train, eval_main, eval_stream


def _latents_identity(cfg: DiffusionTrainConfig) -> dict:
    info = LatentDataset(cfg.latents).info
    return {"layout": info["layout"], "autoencoder_sha256": info.get("autoencoder", {}).get("weights_sha256")}


def train(cfg: DiffusionTrainConfig, ctx: Dist | None = None) -> dict[str, float]:
    """Train (or resume) a diffusion run in ``cfg.out``.

    Returns:
        The last held-out evaluation (``eval_loss``, ``eval_l0`` ... and ``eval_streaming`` when
        measured), or ``{}`` without held-out data.
    """
    ctx = ctx or init_distributed(cfg.device)
    if not (
        0.0 <= cfg.mix_streaming <= 1.0 and 0.0 <= cfg.cfg_dropout <= 1.0 and 0.0 <= cfg.context_noise <= 1.0
    ):
        raise ValueError("--mix-streaming, --cfg-dropout and --context-noise must lie in [0, 1]")
    sampler, eval_main, eval_stream = build_samplers(cfg)  # bad data fails before anything is written
    run_dir = Path(cfg.out)
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    identity = _latents_identity(cfg)
    model_cfg = dit_config(cfg.size, layout=identity["layout"])
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = VideoDiT(model_cfg).to(ctx.device)
    optimizers = build_optimizers(model, cfg.lr, cfg.muon_lr, cfg.weight_decay, cfg.optimizer)
    state = load_run_state(run_dir, model, optimizers)
    if state is not None:
        mine = {
            "model_config": asdict(model_cfg),
            "strategy": cfg.strategy,
            "mix_streaming": cfg.mix_streaming,
            **identity,
        }
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            diff = {k: (theirs[k], mine[k]) for k in mine if theirs[k] != mine[k]}
            raise ValueError(
                f"{run_dir} holds another run (saved vs requested: {diff}); use a new --out directory or the "
                "run's own --size/--strategy/--mix-streaming and latents"
            )
    step = state["step"] if state else 0
    samples_seen = state.get("samples", 0) if state else 0
    clock = Stopwatch(state["elapsed_s"] if state else 0.0)
    eval_batches = (
        eval_main.fixed_batches(cfg.seed + 1, cfg.eval_samples, cfg.batch_size) if eval_main else []
    )
    stream_batches = (
        eval_stream.fixed_batches(cfg.seed + 2, cfg.eval_samples, cfg.batch_size) if eval_stream else []
    )
    net = DistributedDataParallel(model) if ctx.world > 1 else model
    levels = model_cfg.num_levels
    log = None
    if ctx.main:
        columns = ["step", "time_s", "samples", "tokens_per_s", "lr", "loss"]
        columns += [f"loss_l{k}" for k in range(levels)] + ["loss_streaming"]
        columns += ["eval_loss"] + [f"eval_l{k}" for k in range(levels)] + ["eval_streaming"]
        log = CsvLog(run_dir / "log.csv", columns, step)
        (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")

    def run_eval() -> dict[str, float]:
        out = {}
        if eval_batches:
            result = evaluate(model, eval_batches, cfg.seed)
            out = {"eval_loss": result["loss"], **{f"eval_l{k}": result[f"l{k}"] for k in range(levels)}}
        if stream_batches:
            out["eval_streaming"] = evaluate(model, stream_batches, cfg.seed)["loss"]
        return out

    saved_step = step

    def checkpoint() -> None:
        nonlocal saved_step
        if ctx.main and step != saved_step:
            saved_step = step
            info = {
                "step": step,
                "samples": samples_seen,
                "elapsed_s": clock(),
                "model_config": asdict(model_cfg),
                "strategy": cfg.strategy,
                "mix_streaming": cfg.mix_streaming,
                "strategy_summary": sampler.strategies[0].summary(),
                "train": asdict(cfg),
                **identity,
            }
            save_run_state(run_dir, model, optimizers, info)

    stop = StopSignal()
    last_save = time.monotonic()
    last_eval: dict[str, float] = {}
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        disable=not ctx.main,
        desc=f"train-diffusion {cfg.strategy}",
        unit="step",
    )
    try:
        model.train()
        while step < cfg.steps:
            began = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, ctx.rank, step])
            batch, draws = sampler.batch(rng, cfg.batch_size)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            lr_factor = set_lr(optimizers, step, cfg.warmup_steps, cfg.steps, cfg.cooldown_steps)
            with torch.autocast(ctx.device.type, torch.bfloat16, enabled=ctx.device.type == "cuda"):
                errors, weight = token_errors(
                    net, model, batch, generator, cfg.cfg_dropout, cfg.context_noise
                )
            loss = masked_mean(errors, weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}; lower --lr or check the latents")
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            step += 1
            samples_seen += cfg.batch_size * ctx.world
            bar.update(1)
            out_of_time = cfg.max_minutes is not None and clock() >= cfg.max_minutes * 60
            due = time.monotonic() - last_save >= cfg.checkpoint_every_minutes * 60
            halt, save = any_rank([stop.requested or out_of_time, due], ctx)
            last = halt or step == cfg.steps
            row: dict[str, float] = {}
            if ctx.main and (step % cfg.log_every == 0 or last):
                errors, weight = errors.detach(), weight.to(errors.device)
                tokens = int((~batch.pad).sum()) if batch.pad is not None else batch.role.numel()
                row = {"loss": loss.item(), "lr": lr_factor * cfg.lr}
                row["tokens_per_s"] = tokens * ctx.world / (time.perf_counter() - began)
                per_level = level_means(errors, weight, batch.index[..., 1].to(errors.device), levels)
                row.update({f"loss_l{k}": v for k, v in enumerate(per_level) if not math.isnan(v)})
                streamed = torch.tensor([d.source == STREAMING for d in draws], device=errors.device)
                if bool(streamed.any()):
                    row["loss_streaming"] = float(masked_mean(errors, weight & streamed[:, None]))
            if ctx.main and (step % cfg.eval_every == 0 or last):
                last_eval = run_eval()
                row.update(last_eval)
                if last_eval:
                    bar.set_postfix(
                        {k: f"{v:.4f}" for k, v in last_eval.items() if k in ("eval_loss", "eval_streaming")}
                    )
            if row and log is not None:
                log.write({"step": step, "time_s": clock(), "samples": samples_seen, **row})
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
        last_eval = run_eval()
    return last_eval
