"""Per-token diffusion errors (for per-level logs) and the held-out denoising loss.

:func:`token_errors` is the objective of :func:`models.diffusion.diffusion_loss` with the per-token
errors kept, so the trainer can log the loss of every target level; it draws its randomness in the
same order, so ``masked_mean(*token_errors(...))`` equals ``diffusion_loss(...)`` for the same
generator (tested). It also runs the forward pass through a DDP wrapper (``net``) while reading
the schedule from the bare model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.diffusion.batch import TokenBatch
from models.diffusion.dit import VideoDiT

__all__ = ["evaluate", "level_means", "masked_mean", "token_errors"]


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    source = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=source).to(device)


def token_errors(
    net: nn.Module,
    model: VideoDiT,
    batch: TokenBatch,
    generator: torch.Generator | None = None,
    cfg_dropout: float = 0.1,
    context_noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared v-prediction error of every token (method.md 3.5).

    Args:
        net: what to call for the forward pass (``model`` or its DDP wrapper).
        model: the bare model (device, schedule).
        batch: ground-truth token sets (padding allowed).
        generator: source of dropout, times and noise.
        cfg_dropout: probability of an unconditional sample (context at ``t = 1``, no actions).
        context_noise: context times drawn from ``U[0, context_noise]`` (0 = clean context).

    Returns:
        ``(errors, weight)``: float32 ``(B, N)`` channel-mean squared errors and bool ``(B, N)`` mask
        of the real DENOISED tokens (the only ones that count).
    """
    device = model.device
    batch = batch.to(device)
    weight = batch.denoised
    b, n, c = batch.x.shape
    uncond = _uniform(b, generator, device) < cfg_dropout
    t_den = _uniform(b, generator, device)
    t_ctx = torch.where(uncond, 1.0, context_noise * _uniform(b, generator, device))
    t = torch.where(weight, t_den[:, None], t_ctx[:, None])
    source = generator.device if generator is not None else device
    eps = torch.randn(b, n, c, generator=generator, device=source).to(device)
    x = batch.x.float()
    if batch.pad is not None:
        x = x.masked_fill(batch.pad.unsqueeze(-1), 0.0)
    schedule = model.schedule
    v_hat = net(schedule.add_noise(x, eps, t), batch.index, t, batch.action, batch.role, uncond, batch.pad)
    errors = (v_hat.float() - schedule.v_target(x, eps, t)).square().mean(dim=-1)
    return errors, weight


def masked_mean(errors: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``errors`` over ``weight`` (0 with a gradient path when nothing is selected)."""
    return (errors * weight).sum() / weight.sum().clamp_min(1)


def level_means(
    errors: torch.Tensor, weight: torch.Tensor, levels: torch.Tensor, num_levels: int
) -> list[float]:
    """Mean error of the denoised tokens of each level (NaN for a level with none)."""
    out = []
    for level in range(num_levels):
        mask = weight & (levels == level)
        out.append(float(errors[mask].mean()) if bool(mask.any()) else float("nan"))
    return out


@torch.no_grad()
def evaluate(model: VideoDiT, batches: Sequence[TokenBatch], seed: int = 0) -> dict[str, float]:
    """Held-out denoising loss on fixed samples with fixed noise (comparable between evaluations).

    Conditional (no CFG dropout), clean context; the times and noise come from one generator seeded
    with ``seed``, so the only thing that changes from one evaluation to the next is the model.

    Returns:
        ``loss`` (mean over all denoised tokens) and ``l0`` ... ``l{L-1}`` (per target level).
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    levels = model.config.num_levels
    total, count = torch.zeros(levels, dtype=torch.float64), torch.zeros(levels, dtype=torch.float64)
    for batch in batches:
        errors, weight = token_errors(model, model, batch, generator, cfg_dropout=0.0)
        level = batch.index[..., 1].to(errors.device)
        for k in range(levels):
            mask = weight & (level == k)
            total[k] += float(errors[mask].double().sum())
            count[k] += float(mask.sum())
    model.train(was_training)
    out = {"loss": float(total.sum() / count.sum().clamp_min(1))}
    for k in range(levels):
        out[f"l{k}"] = float(total[k] / count[k]) if count[k] > 0 else float("nan")
    return out
