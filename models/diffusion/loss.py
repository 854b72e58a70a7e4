"""Training objective of the video DiT: v-prediction MSE on the denoised tokens (method.md 3.5).

Per sample: with probability ``cfg_dropout`` the sample is *unconditional* (context at ``t = 1``,
i.e. replaced by noise, and no action embedding on any of its tokens); otherwise the context is at
``t = 0`` or, with context noise augmentation, at ``t ~ U[0, context_noise]`` (one value per sample).
All DENOISED tokens of a sample share one ``t ~ U[0, 1]``. Every token gets fresh Gaussian noise
``x_t = alpha x + sigma eps``; the loss is the MSE between predicted and true
``v = alpha eps - sigma x``, averaged over the channels of the real DENOISED tokens of the batch.

Context noise augmentation is an exposure-bias remedy (DESIGN section 11): in a rollout the context
is the model's own, slightly wrong output; training on slightly noised context teaches the model not
to trust fine context detail that noise could have produced. ``context_noise = 0`` is the paper.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.diffusion.batch import TokenBatch
from models.diffusion.dit import VideoDiT


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    source = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=source).to(device)


def diffusion_loss(
    model: VideoDiT,
    batch: TokenBatch | Mapping[str, torch.Tensor | None],
    generator: torch.Generator | None = None,
    cfg_dropout: float = 0.1,
    context_noise: float = 0.0,
    validate: bool = True,
) -> torch.Tensor:
    """Diffusion training loss of one batch.

    Args:
        model: the video DiT (its device is used).
        batch: a :class:`TokenBatch` (or a mapping with its fields) of ground-truth latents;
            samples may have different layouts (use ``pad`` for different token counts).
        generator: source of all randomness (dropout, times, noise); None = torch's global RNG.
        cfg_dropout: probability that a sample is unconditional (classifier-free guidance).
        context_noise: largest context noise time of the augmentation (0 disables it); must be in
            ``[0, 1]``.
        validate: check the batch first (:meth:`TokenBatch.validate`).

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: an invalid batch or a batch without DENOISED tokens; probabilities out of range.
    """
    if not isinstance(batch, TokenBatch):
        batch = TokenBatch(**batch)
    if not (0.0 <= cfg_dropout <= 1.0 and 0.0 <= context_noise <= 1.0):
        raise ValueError(
            f"cfg_dropout and context_noise must lie in [0, 1]; got {cfg_dropout}, {context_noise}"
        )
    device = model.device
    batch = batch.to(device)
    cfg = model.config
    if validate:
        batch.validate(cfg.latent_channels, cfg.num_levels, cfg.num_actions)
    weight = batch.denoised
    if not bool(weight.any()):
        raise ValueError("the batch has no DENOISED token: nothing to train on")
    b, n, c = batch.x.shape
    uncond = _uniform(b, generator, device) < cfg_dropout
    t_den = _uniform(b, generator, device)
    t_ctx = torch.where(uncond, 1.0, context_noise * _uniform(b, generator, device))
    t = torch.where(weight, t_den[:, None], t_ctx[:, None])
    source = generator.device if generator is not None else device
    eps = torch.randn(b, n, c, generator=generator, device=source).to(device)
    x = batch.x.float()
    if batch.pad is not None:  # padding may hold anything; NaN would leak into gradients via 0 * NaN
        x = x.masked_fill(batch.pad.unsqueeze(-1), 0.0)
    schedule = model.schedule
    v_hat = model(schedule.add_noise(x, eps, t), batch.index, t, batch.action, batch.role, uncond, batch.pad)
    error = (v_hat.float() - schedule.v_target(x, eps, t)).square().mean(dim=-1)
    return (error * weight).sum() / weight.sum()
