"""Deterministic DDIM-style sampler over ``(x_hat, eps_hat)`` with a cached context (method.md 3.6).

For one rollout step (a token set whose CONTEXT tokens are clean and whose DENOISED tokens are to be
generated): ``x_hat`` starts at the clean context and at zero for the denoised tokens, ``eps_hat`` is
fresh ``N(0, I)`` for every token, drawn from the given ``torch.Generator``. At each
``t_k in linspace(1, 0, steps)`` the denoised tokens are ``x_t = alpha(t_k) x_hat + sigma(t_k)
eps_hat``, the model predicts v, and ``(x_hat, eps_hat)`` of the denoised tokens only are replaced by
the estimates from v; the context is never modified. The last evaluation is at ``t = 0`` and its
``x_hat`` is the result.

The context enters at time ``context_t`` (0: as in training without augmentation) with its own
``eps_hat``, so it is constant over the step: with ``use_cache`` it is encoded once and every
evaluation runs only the denoised tokens (see :mod:`models.diffusion.attention`). Classifier-free
guidance (``guidance_scale != 1``) runs a second, unconditional branch in the same batch: context
re-noised at ``t = 1`` with the same ``eps_hat``, no action embedding; ``v = v_u + s (v_c - v_u)``.
Its context is cached as well.

With a frame-causal model (``context_attention='frame-causal'``), a :class:`ContextReuse` passed to
successive calls encodes the context of past frames once and reuses it: the streaming env step
generates one new frame in four sub-steps that share the same past and differ only in the levels of
the new frame given as context, so three of its four context encodings are saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from models.diffusion.batch import TokenBatch
from models.diffusion.dit import ContextCache, VideoDiT


@dataclass
class ContextReuse:
    """Context tokens of frames before ``before`` encoded once, reused by later :func:`sample` calls.

    The caller promises that every call it is passed to has the same context tokens of frames
    ``< before`` (same latents, positions, actions, batch, noise time and guidance): they are encoded
    on the first call (with that call's context noise) and their keys/values reused by the later
    calls, whose newer context tokens are encoded on top (:meth:`VideoDiT.encode_context` with a
    prefix). Their positions and actions are checked; their latents are not compared.

    Attributes:
        before: first frame (token ``index[..., 0]``) that is not part of the reused prefix.
    """

    before: int
    _cache: ContextCache | None = field(default=None, repr=False)
    _key: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def encode(
        self,
        model: VideoDiT,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        origin: torch.Tensor,
        uncond: torch.Tensor,
        reserve: int,
    ) -> ContextCache:
        """The cache of all context tokens ``(B, Nc, ...)``: the prefix reused, the rest encoded."""
        old = index[..., 0] < self.before  # (B, Nc)
        if not bool((old == old[:1]).all()):
            raise ValueError("ContextReuse needs the same context frames in every sample of the batch")
        prefix, rest = torch.nonzero(old[0]).squeeze(1), torch.nonzero(~old[0]).squeeze(1)
        key = (index[:, prefix], action[:, prefix])
        if self._cache is None:
            self._cache = model.encode_context(
                x[:, prefix], index[:, prefix], t[:, prefix], action[:, prefix], origin, uncond
            )
            self._key = key
        elif not all(torch.equal(a, b) for a, b in zip(key, self._key, strict=True)):  # type: ignore[arg-type]
            raise ValueError(
                "ContextReuse was given other context tokens before frame "
                f"{self.before} than on its first call; use a new ContextReuse for another step"
            )
        return model.encode_context(
            x[:, rest],
            index[:, rest],
            t[:, rest],
            action[:, rest],
            origin,
            uncond,
            reserve,
            prefix=self._cache,
        )


def skip_sample(generators: Sequence[torch.Generator], tokens: int, channels: int) -> None:
    """Advance per-sample generators as a deterministic (``eta = 0``) :func:`sample` call would.

    Such a call draws one ``(1, tokens, channels)`` noise tensor from each sample's generator and
    nothing else; drawing it here leaves every generator where the skipped call would have, so what a
    stream generates later does not depend on whether the call ran.

    Args:
        generators: one generator per sample.
        tokens: tokens of the skipped call's batch (context and denoised).
        channels: latent channels.
    """
    _noise((len(generators), int(tokens), int(channels)), list(generators), torch.device("cpu"))


def _noise(
    shape: tuple[int, ...],
    generator: torch.Generator | Sequence[torch.Generator] | None,
    device: torch.device,
) -> torch.Tensor:
    if isinstance(generator, Sequence):
        # One generator per sample: sample b gets exactly the noise it would get in a batch of its
        # own, so batching independent streams (vector envs) does not change what each one sees.
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]} samples")
        return torch.cat([_noise((1, *shape[1:]), g, device) for g in generator])
    # Drawn on the generator's own device, so one CPU generator gives the same noise on any device.
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source, dtype=torch.float32).to(device)


def _autocast(device: torch.device, enabled: bool | None) -> contextlib.AbstractContextManager:
    if enabled is None:
        enabled = device.type == "cuda"
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _structure(batch: TokenBatch, model: VideoDiT) -> tuple[torch.Tensor, torch.Tensor]:
    """Context and denoised positions, shared by all samples of the batch (int64 ``(Nc,)``, ``(Nd,)``)."""
    cfg = model.config
    batch.validate(cfg.latent_channels, cfg.num_levels, cfg.num_actions)
    if batch.pad is not None and bool(batch.pad.any()):
        raise ValueError("sample() does not take padding: pass the tokens of one step without padding")
    role = batch.role
    if not bool((role == role[:1]).all()):
        raise ValueError(
            "sample() needs the same token structure (roles) in every sample of the batch; "
            "sample steps of different layouts in separate calls"
        )
    denoised = batch.denoised[0]
    if not bool(denoised.any()):
        raise ValueError("the token set has no DENOISED token: nothing to sample")
    return torch.nonzero(~denoised).squeeze(1), torch.nonzero(denoised).squeeze(1)


@torch.no_grad()
def sample(
    model: VideoDiT,
    batch: TokenBatch,
    *,
    steps: int = 8,
    guidance_scale: float = 1.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    use_cache: bool = True,
    context_t: float = 0.0,
    autocast: bool | None = None,
    reuse: ContextReuse | None = None,
    endpoint: bool = True,
    eta: float = 0.0,
    start_t: float = 1.0,
) -> torch.Tensor:
    """Generate the DENOISED tokens of a batch of token sets with the same structure.

    Args:
        model: the diffusion model (put in eval mode by the caller; it has no dropout).
        batch: ``B`` token sets sharing roles (and so token count); ``x`` holds the clean context,
            the values at DENOISED positions are ignored; no padding.
        steps: model evaluations (``t = linspace(1, 0, steps)``); paper 50, CPU 8-16.
        guidance_scale: classifier-free guidance scale; 1.0 skips the unconditional branch.
        generator: source of all noise; same seed => bit-identical output on CPU. A sequence of ``B``
            generators gives every sample its own noise stream (sample ``b`` draws only from
            ``generator[b]``), so a sample's noise does not depend on what else is in the batch.
        use_cache: encode the context once per call (True) or run all tokens at every evaluation.
        context_t: noise time of the context tokens (0 = clean; a model trained with context noise
            augmentation may be sampled at a small positive value).
        autocast: bf16 autocast; None = on for CUDA, off (fp32) on CPU.
        reuse: share the encoded context of past frames with other calls (frame-causal models
            with ``use_cache`` only; see :class:`ContextReuse`).
        endpoint: the last evaluation is at ``t = 0`` (the paper). It moves ``x_hat`` by at most
            ``sigma(0) = 5.5e-4`` times the predicted v, so False stops one time earlier
            (``t = 1 / steps``, see :meth:`CosineSchedule.timesteps`) and returns that evaluation's
            clean estimate: ``steps`` evaluations then do the work of ``steps + 1`` with the endpoint.
        eta: stochasticity of the update (DDIM's eta): 0 moves deterministically along the predicted
            noise; 1 replaces as much of it with fresh noise as ancestral (DDPM) sampling does.
        start_t: first sampling time (1: from pure noise). Below 1 the DENOISED values of
            ``batch.x`` are a draft, noised to ``start_t`` and denoised from there (SDEdit): the
            ``steps`` evaluations cover ``[start_t, 0]``.

    Returns:
        float32 ``(B, N, C)``: ``batch.x`` with the DENOISED tokens replaced by samples (the context
        positions are a bit-exact copy of the input).

    Raises:
        ValueError: invalid batch (see :meth:`TokenBatch.validate`), padding, mixed structures.
        FloatingPointError: the model produced NaN/inf.
    """
    if reuse is not None and not (use_cache and model.config.frame_causal):
        raise ValueError(
            "reuse needs use_cache=True and a frame-causal model (context_attention='frame-causal')"
        )
    if not 0.0 <= context_t <= 1.0:
        raise ValueError(f"context_t must lie in [0, 1] (0 = clean context), got {context_t}")
    if not torch.isfinite(torch.tensor(guidance_scale)):
        raise ValueError(f"guidance_scale must be finite, got {guidance_scale}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0 = deterministic), got {eta}")
    if not 0.0 < start_t <= 1.0:
        raise ValueError(f"start_t must lie in (0, 1] (1 = from pure noise), got {start_t}")
    ctx, den = _structure(batch, model)
    device, schedule = model.device, model.schedule
    batch = batch.to(device)
    b, n, c = batch.x.shape
    eps = _noise((b, n, c), generator, device)
    guided = guidance_scale != 1.0
    reps = 2 if guided else 1

    def tile(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.repeat(reps, *([1] * (tensor.ndim - 1)))

    index, action = tile(batch.index), tile(batch.action)
    origin = model.frame_origin(index)
    uncond = torch.arange(reps * b, device=device) >= b  # second half = unconditional branch
    # Context input: conditional branch at context_t; unconditional branch re-noised at t = 1.
    t_ctx = torch.where(uncond, 1.0, float(context_t))[:, None].expand(-1, ctx.numel())
    x_ctx = schedule.add_noise(tile(batch.x[:, ctx].float()), tile(eps[:, ctx]), t_ctx)
    x_hat = torch.zeros(b, den.numel(), c, device=device)
    if start_t < 1.0:
        x_hat = batch.x[:, den].float()
    eps_hat = eps[:, den]
    times = schedule.timesteps(steps, endpoint=endpoint) * start_t
    # Share r of the next noise scale that is fresh noise (DDIM's sigma_t(eta) / sigma_next):
    # r = eta * sqrt(1 - alpha_t^2 / alpha_next^2) / sigma_t, at most 1 since alpha_next <= 1.
    renoise: list[float] = []  # deterministic sampling (the env's hot path) computes nothing here
    if eta:
        alphas, sigmas = (a.double() for a in schedule.alpha_sigma(times))
        ratio = (1 - (alphas[:-1] / alphas[1:]) ** 2).clamp_min(0).sqrt() / sigmas[:-1]
        renoise = (eta * ratio.clamp_max(1)).tolist()
    finite = []
    with _autocast(device, autocast):
        cache = None
        if use_cache and ctx.numel():
            context = (x_ctx, index[:, ctx], t_ctx, action[:, ctx], origin, uncond)
            if reuse is None:
                cache = model.encode_context(*context, reserve=den.numel())
            else:
                cache = reuse.encode(model, *context, reserve=den.numel())
        for k, t_k in enumerate(times.tolist()):
            t_den = torch.full((b, den.numel()), t_k, device=device)
            x_t = schedule.add_noise(x_hat, eps_hat, t_den)
            if cache is not None:
                v = model.forward_denoised(
                    tile(x_t), index[:, den], tile(t_den), action[:, den], cache, uncond
                )
            else:
                v = _full_forward(model, batch, tile(x_t), x_ctx, tile(t_den), t_ctx, ctx, den, uncond)
            if guided:
                v_cond, v_uncond = v.float().chunk(2)
                v = v_uncond + guidance_scale * (v_cond - v_uncond)
            finite.append(torch.isfinite(v).all())
            x_hat, eps_hat = schedule.x_eps_from_v(x_t, v.float(), t_den)
            if k < len(renoise):
                r = renoise[k]
                fresh = _noise((b, den.numel(), c), generator, device)
                eps_hat = (1 - r * r) ** 0.5 * eps_hat + r * fresh
    ok = torch.stack(finite)
    if not bool(ok.all()):
        k = int(torch.nonzero(~ok)[0])
        raise FloatingPointError(
            f"sampling produced NaN/inf in the model output at evaluation {k + 1}/{steps} "
            f"(t = {float(times[k]):.3f}). The checkpoint weights may be corrupted or diverged (reload it "
            "and check the training log); on a GPU, retry with autocast=False to rule out bf16 overflow"
        )
    out = batch.x.float().clone()
    out[:, den] = x_hat
    return out


def _full_forward(
    model: VideoDiT,
    batch: TokenBatch,
    x_den: torch.Tensor,
    x_ctx: torch.Tensor,
    t_den: torch.Tensor,
    t_ctx: torch.Tensor,
    ctx: torch.Tensor,
    den: torch.Tensor,
    uncond: torch.Tensor,
) -> torch.Tensor:
    """Uncached evaluation: all tokens through the masked forward; v of the denoised tokens."""
    reps = x_den.shape[0] // batch.x.shape[0]
    b2, n, c = x_den.shape[0], batch.x.shape[1], batch.x.shape[2]
    x = x_den.new_empty(b2, n, c)
    t = t_den.new_empty(b2, n)
    x[:, ctx], x[:, den] = x_ctx, x_den
    t[:, ctx], t[:, den] = t_ctx, t_den
    index, action, role = (
        tensor.repeat(reps, *([1] * (tensor.ndim - 1))) for tensor in (batch.index, batch.action, batch.role)
    )
    return model(x, index, t, action, role, uncond=uncond)[:, den]
