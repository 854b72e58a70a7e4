"""Training loop of the video DiT on a latent dataset (resumable, DDP-ready, CPU-first).

Every sample is one step layout of the chosen strategy filled with ground-truth latents
(:mod:`models.training.diffusion_data`), optionally mixed with the env's streaming layout. The loss
is the v-prediction MSE of method.md 3.5 with CFG dropout and optional context noise. The batch
randomness is a function of ``(seed, rank, step)``, so a resumed run draws exactly the batches the
uninterrupted run would have drawn. Step bookkeeping, run state, logs and signals are shared with the
autoencoder (:class:`models.training.common.TrainingLoop`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from models.checkpoints import read_config, resolve_checkpoint
from models.diffusion.config import DiTConfig, dit_config
from models.diffusion.dit import VideoDiT
from models.latents import LatentDataset
from models.strategies.presets import get_strategy
from models.training.common import (
    Dist,
    TrainingLoop,
    build_optimizers,
    init_distributed,
    initialise_from,
    leave_distributed,
    load_run_state,
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
    context_attention: str = "bidirectional"
    init_from: str | None = None
    steps: int = 20000
    batch_size: int = 16
    lr: float = 1e-3
    muon_lr: float | None = None
    optimizer: str = "muon"
    weight_decay: float = 0.01
    warmup_steps: int = 200
    cooldown_steps: int = 0
    rewarm_steps: int = 0
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
    model_cfg = dit_config(cfg.size, layout=identity["layout"], context_attention=cfg.context_attention)
    if cfg.init_from:
        # The GELU variant has no weights (bundled checkpoints use the exact one): a fine-tune keeps
        # the checkpoint's instead of failing on it. Read on resume too (config only), so the run's
        # config matches.
        source_cfg = read_config(resolve_checkpoint(cfg.init_from), DiTConfig)
        model_cfg = replace(model_cfg, gelu=source_cfg.gelu)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = VideoDiT(model_cfg).to(ctx.device)
    optimizers = build_optimizers(model, cfg.lr, cfg.muon_lr, cfg.weight_decay, cfg.optimizer)
    state = load_run_state(run_dir, model, optimizers)
    if state is None and cfg.init_from:
        source = VideoDiT.from_pretrained(cfg.init_from)
        initialise_from(model, source, cfg.init_from, "--size", ignore=("context_attention",))
    run_info = {
        "model_config": asdict(model_cfg),
        "strategy": cfg.strategy,
        "mix_streaming": cfg.mix_streaming,
        "strategy_summary": sampler.strategies[0].summary(),
        "train": asdict(cfg),
        **identity,
    }
    if state is not None:
        # What makes a run this run (the rest of run_info may differ between sittings).
        mine = {k: run_info[k] for k in ("model_config", "strategy", "mix_streaming", *identity)}
        theirs = {k: state.get(k) for k in mine}
        if isinstance(theirs["model_config"], dict):  # runs saved before a config field existed: its default
            theirs["model_config"] = asdict(DiTConfig(**theirs["model_config"]))
        if theirs != mine:
            diff = {k: (theirs[k], mine[k]) for k in mine if theirs[k] != mine[k]}
            raise ValueError(
                f"{run_dir} holds another run (saved vs requested: {diff}); use a new --out directory or the "
                "run's own --size/--strategy/--mix-streaming and latents"
            )
    loop = TrainingLoop(
        ctx, run_dir, model, optimizers, cfg, state, counter="samples", run_info=run_info, data_name="latents"
    )
    eval_batches = (
        eval_main.fixed_batches(cfg.seed + 1, cfg.eval_samples, cfg.batch_size) if eval_main else []
    )
    stream_batches = (
        eval_stream.fixed_batches(cfg.seed + 2, cfg.eval_samples, cfg.batch_size) if eval_stream else []
    )
    net = DistributedDataParallel(model) if ctx.world > 1 else model
    levels = model_cfg.num_levels
    columns = ["tokens_per_s", "lr", "loss"]
    columns += [f"loss_l{k}" for k in range(levels)] + ["loss_streaming"]
    columns += ["eval_loss"] + [f"eval_l{k}" for k in range(levels)] + ["eval_streaming"]
    loop.open_log(columns, asdict(cfg))

    def run_eval() -> dict[str, float]:
        out = {}
        if eval_batches:
            result = evaluate(model, eval_batches, cfg.seed)
            out = {"eval_loss": result["loss"], **{f"eval_l{k}": result[f"l{k}"] for k in range(levels)}}
        if stream_batches:
            out["eval_streaming"] = evaluate(model, stream_batches, cfg.seed)["loss"]
        return out

    last_eval: dict[str, float] = {}
    with loop.running(f"train-diffusion {cfg.strategy}"):
        model.train()
        while loop.step < cfg.steps:
            began = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, ctx.rank, loop.step])
            batch, draws = sampler.batch(rng, cfg.batch_size)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            loop.schedule_lr()
            with ctx.autocast():
                errors, weight = token_errors(
                    net, model, batch, generator, cfg.cfg_dropout, cfg.context_noise
                )
            loss = masked_mean(errors, weight)
            outcome = loop.take_step(loss)
            row: dict[str, float] = {}
            if outcome.log:
                errors, weight = errors.detach(), weight.to(errors.device)
                tokens = int((~batch.pad).sum()) if batch.pad is not None else batch.role.numel()
                row = {"loss": loss.item(), "lr": loop.lr}
                row["tokens_per_s"] = tokens * ctx.world / (time.perf_counter() - began)
                per_level = level_means(errors, weight, batch.index[..., 1].to(errors.device), levels)
                row.update({f"loss_l{k}": v for k, v in enumerate(per_level) if not math.isnan(v)})
                streamed = torch.tensor([d.source == STREAMING for d in draws], device=errors.device)
                if bool(streamed.any()):
                    row["loss_streaming"] = float(masked_mean(errors, weight & streamed[:, None]))
            if outcome.evaluate:
                last_eval = run_eval()
                row.update(last_eval)
                if last_eval:
                    loop.show(
                        {k: f"{v:.4f}" for k, v in last_eval.items() if k in ("eval_loss", "eval_streaming")}
                    )
            loop.end_step(outcome, row)
            if outcome.halt:
                break
    if ctx.main and not last_eval:  # nothing left to train (a finished run re-run)
        last_eval = run_eval()
    leave_distributed(ctx)
    return last_eval
