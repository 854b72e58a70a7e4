"""Open-loop rollout (the paper's evaluation protocol, method.md sections 5.1 and 8.1).

Ground-truth context frames and the *whole* future action sequence are given; every step of
``plan_rollout(strategy, start, end)`` runs in order with the cached sampler, and the DENOISED tokens
of each step are scattered back into a latent buffer that later steps read as context. Used by
evaluation (``millivid rollout``) and by the env's ``imagine`` (through :func:`imagine`).

The buffer holds only the frames the plan can touch, ``[start - reach, limit)``, so memory does not
grow with the length of the given context. ``B`` videos are rolled out together: they share the plan
(same ``start``/``end``), so every step is one batched sampler call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from models.diffusion.batch import TokenBatch
from models.diffusion.dit import VideoDiT
from models.diffusion.sampler import sample
from models.rollout.tokens import StepTokens, pad_actions, step_tokens
from models.strategies.core import Strategy
from models.strategies.presets import get_strategy
from models.strategies.rollout import plan_rollout
from models.tokens import get_layout

if TYPE_CHECKING:
    from models.world_model import WorldModel

__all__ = [
    "RolloutInputs",
    "StepHook",
    "imagine",
    "prepare_rollout",
    "resolve_strategy",
    "rollout_latents",
    "windowed_tokens",
]

Generator = torch.Generator | Sequence[torch.Generator] | None


def resolve_strategy(strategy: Strategy | str, layout_name: str) -> Strategy:
    """A strategy object from a preset name of ``layout_name`` (objects are returned unchanged)."""
    return get_strategy(layout_name, strategy) if isinstance(strategy, str) else strategy


def _check_actions(actions: torch.Tensor, lo: int, hi: int, num_actions: int) -> None:
    used = actions[:, lo:hi]
    bad = (used < 0) | (used >= num_actions)
    if bool(bad.any()):
        video, frame = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(
            f"action ids must lie in [0, {num_actions - 1}] (0 forward, 1 left, 2 right), but video {video} "
            f"has action {int(used[video, frame])} at frame {lo + frame}; pass valid Loopcraft action ids"
        )


@torch.no_grad()
def rollout_latents(
    dit: VideoDiT,
    latents: torch.Tensor | np.ndarray,
    actions: torch.Tensor | np.ndarray,
    strategy: Strategy | str,
    start: int,
    end: int,
    steps: int = 8,
    generator: Generator = None,
    *,
    guidance_scale: float = 1.0,
    context_t: float = 0.0,
    use_cache: bool = True,
    endpoint: bool = True,
    progress: Callable[[int, int], None] | None = None,
    context_window: int | None = None,
    hook: StepHook | None = None,
) -> torch.Tensor:
    """Generate frames ``[start, end)`` of ``B`` videos at every level the strategy produces.

    Args:
        dit: the diffusion model (eval mode).
        latents: float ``(B, T, num_tokens, C)`` latents of all levels (token order of
            ``docs/latent-format.md``); frames ``< start`` are the ground-truth context (at least the
            strategy's ``reach`` of them are read), frames ``>= start`` are ignored.
        actions: int ``(B, T)`` action of every frame, ``T >= end``. When the plan runs past ``T``
            (its last chunk ends at ``plan.limit``), actions are padded as method.md section 7.6.
        strategy: a :class:`~models.strategies.Strategy` or a preset name (``millivid``,
            ``framepack``, ``full-resolution``, ``streaming``) of the model's token layout.
        start: first generated frame.
        end: one past the last frame wanted.
        steps: sampler evaluations per rollout step.
        generator: one ``torch.Generator`` for the whole batch, or one per video (then a video's frames
            do not depend on the batch it is rolled out in); None = torch's global RNG.
        guidance_scale: classifier-free guidance scale (1.0 = none, as the paper evaluates).
        context_t: noise time the context is presented at (see :func:`models.diffusion.sample`).
        use_cache: encode each step's context once (True) or at every evaluation.
        endpoint: evaluate at ``t = 0`` last (see :func:`models.diffusion.sample`).
        progress: called as ``progress(done, total)`` after every rollout step.
        context_window: keep only the context tokens of frames at most this many frames before the
            step's first denoised frame (None: all; a memory cut for controls, see
            :func:`windowed_tokens`).
        hook: runs every step itself (see :class:`StepHook`; None: every step samples every video).

    Returns:
        float32 ``(B, T, num_tokens, C)`` on the model's device: the context frames copied, frames
        ``[start, min(T, limit))`` generated at the levels the strategy generates (full-resolution:
        level 0 only; other levels stay 0), later frames 0.

    Raises:
        ValueError: wrong shapes, fewer than ``reach`` context frames, action ids out of range, NaN or
            inf in the context, ``end > T``.
        FloatingPointError: the model produced NaN/inf (the step is named).
    """
    cfg = dit.config
    layout = get_layout(cfg.layout)
    strategy = resolve_strategy(strategy, cfg.layout)
    latents = torch.as_tensor(latents)
    actions = torch.as_tensor(actions)
    if latents.ndim != 4 or tuple(latents.shape[2:]) != (layout.num_tokens, cfg.latent_channels):
        raise ValueError(
            f"latents must be (B, T, {layout.num_tokens}, {cfg.latent_channels}) for layout {layout.name!r}; "
            f"got {tuple(latents.shape)}"
        )
    b, t = latents.shape[:2]
    if tuple(actions.shape) != (b, t) or actions.is_floating_point():
        raise ValueError(
            f"actions must be an integer array of shape {(b, t)}; got {actions.dtype} {tuple(actions.shape)}"
        )
    start, end = int(start), int(end)
    if not 0 <= start < end <= t:
        raise ValueError(
            f"need 0 <= start < end <= T = {t} (frames with actions); got start={start}, end={end}"
        )
    if start < strategy.reach:
        raise ValueError(
            f"strategy {strategy.name!r} reads {strategy.reach} context frames before the first generated "
            f"frame, but only {start} are given; pass at least {strategy.reach} context frames (or use a "
            "strategy with a shorter reach, e.g. full-resolution)"
        )
    plan = plan_rollout(strategy, start, end)
    first, limit = plan.first_frame, plan.limit
    _check_actions(actions, first, t, cfg.num_actions)
    context = latents[:, first:start].float()
    if not bool(torch.isfinite(context).all()):
        raise ValueError(
            "the context latents contain NaN or inf; check the encoder output or the latent file"
        )
    if limit > t:  # method.md 7.6: synthetic actions for frames past the end (never scored)
        padded = [pad_actions(a[first:].numpy(), limit - first) for a in actions.cpu()]
        acts = torch.from_numpy(np.stack(padded))
    else:
        acts = actions[:, first:limit].long()
    device = dit.device
    acts = acts.to(device)
    buf = torch.zeros(b, limit - first, layout.num_tokens, cfg.latent_channels, device=device)
    buf[:, : start - first] = context.to(device)
    generators = list(generator) if isinstance(generator, Sequence) else None
    for done, step in enumerate(plan, start=1):
        table = step_tokens(strategy, step.step, layout)
        columns, positions, index, role, den = windowed_tokens(table, step.offset, context_window)
        frames = (columns + (step.offset - first)).to(device)
        positions, role, den = positions.to(device), role.to(device), den.to(device)
        index = index.to(device)
        n = len(columns)

        def run(videos: list[int] | None, draft: torch.Tensor | None = None, start_t: float = 1.0,
                frames=frames, positions=positions, index=index, role=role, den=den, n=n, step=step,
                done=done) -> None:  # fmt: skip
            """Sample this step for some videos (None: all) and write their denoised tokens.

            ``draft``: float ``(k, num_tokens, C)`` latents of the one frame this step denoises, per
            video; the sampler starts its denoised tokens from them at ``start_t`` (see :func:`sample`).
            """
            rows = slice(None) if videos is None else torch.as_tensor(videos, dtype=torch.long)
            k = b if videos is None else len(videos)
            if videos is None:
                gen = generator
            elif generators is not None:
                gen = [generators[v] for v in videos]
            else:
                raise ValueError("a hook that samples some videos needs one generator per video")
            x = buf[rows][:, frames, positions]
            if draft is not None:
                if not bool((frames[den] == frames[den][0]).all()):
                    raise ValueError(
                        "a draft is one frame's latents: pass it only for a step that denoises one frame"
                    )
                x[:, den] = draft[:, positions[den]].to(x)
            batch = TokenBatch(
                x=x,
                index=index.expand(k, n, 4),
                action=acts[rows][:, frames],
                role=role.expand(k, n),
            )
            try:
                out = sample(
                    dit, batch, steps=steps, guidance_scale=guidance_scale, generator=gen,
                    use_cache=use_cache, context_t=context_t, endpoint=endpoint, start_t=start_t,
                )  # fmt: skip
            except FloatingPointError as error:
                raise FloatingPointError(
                    f"rollout step {done}/{plan.num_steps} (chunk {step.chunk}, step {step.step} of "
                    f"strategy {strategy.name!r}): {error}"
                ) from error
            if videos is None:
                buf[:, frames[den], positions[den]] = out[:, den]
            else:
                block = buf[rows]
                block[:, frames[den], positions[den]] = out[:, den]
                buf[rows] = block

        if hook is None:
            run(None)
        else:
            finished = sorted(
                {int(f) for f in frames[den][positions[den] < layout.tokens_per_level[0]] if first + f < end}
            )
            only = bool(len(finished) == 1 and (frames[den] == finished[0]).all())
            hook.step(buf, first, finished, run, only)
        if progress is not None:
            progress(done, plan.num_steps)
    result = torch.zeros(b, t, layout.num_tokens, cfg.latent_channels, device=device)
    result[:, first:start] = buf[:, : start - first]
    result[:, :first] = latents[:, :first].float().to(device)
    stop = min(t, limit)
    result[:, start:stop] = buf[:, start - first : stop - first]
    return result


class StepHook(Protocol):
    """Runs the rollout's steps itself: e.g. shows, copies and re-encodes every finished frame.

    :func:`rollout_latents` calls :meth:`step` once per rollout step instead of sampling it.
    """

    def step(
        self,
        buf: torch.Tensor,
        first: int,
        finished: list[int],
        run: Callable[[list[int] | None], None],
        only_finished: bool,
    ) -> None:
        """Run one rollout step.

        Args:
            buf: float ``(B, F, num_tokens, C)`` the rollout's latent buffer (frame ``first + i`` at
                row ``i``); the hook may overwrite any frame's latents.
            first: absolute frame of the buffer's row 0.
            finished: buffer rows (ascending) whose level 0 this step denoises, within ``[start, end)``.
            run: ``run(videos)`` samples the step for those videos (None: all) and writes the result;
                ``run(videos, draft, start_t)`` (``only_finished`` steps) starts the denoised tokens
                from the finished frame's draft latents (``(len(videos), num_tokens, C)``) noised to
                ``start_t`` instead of from noise.
            only_finished: the step denoises nothing but one finished frame (its sampling may be
                skipped for videos whose frame comes from elsewhere).
        """


def windowed_tokens(
    table: StepTokens, offset: int, window: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A step's tokens, without the context older than ``window`` frames before its first denoised frame.

    Args:
        table: the step's token table.
        offset: absolute frame of the chunk's column 0.
        window: frames of context kept (None: all tokens).

    Returns:
        ``columns (N,)``, ``positions (N,)``, ``index (N, 4)`` with absolute frames in column 0,
        ``role (N,)`` and ``denoised (Nd,)`` positions in the kept list.
    """
    index = table.index.clone()
    index[:, 0] += offset
    if window is None:
        return table.columns, table.positions, index, table.role, table.denoised
    is_den = torch.zeros(len(table.role), dtype=torch.bool)
    is_den[table.denoised] = True
    oldest = int(table.columns[is_den].min()) - int(window)
    keep = is_den | (table.columns >= oldest)
    kept = torch.nonzero(keep).flatten()
    return (
        table.columns[kept],
        table.positions[kept],
        index[kept],
        table.role[kept],
        torch.nonzero(is_den[kept]).flatten(),
    )


def _batched(array: np.ndarray | torch.Tensor, ndim: int, name: str) -> tuple[np.ndarray, bool]:
    """``(array with a batch axis, whether one was added)``."""
    array = array.cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.ndim == ndim - 1:
        return array[None], True
    if array.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim - 1} or {ndim} dimensions (batched); got shape {array.shape}"
        )
    return array, False


@dataclass
class RolloutInputs:
    """Checked, batched inputs of an open-loop rollout from frames (:func:`prepare_rollout`).

    Attributes:
        strategy: the resolved strategy.
        frames: uint8 ``(B, C, R, R, 3)`` the context frames as given (batched).
        past: int ``(B, C)`` their actions.
        latents: float ``(B, keep + T, num_tokens, C)``: the last ``keep`` context frames encoded,
            zeros after.
        actions: int64 ``(B, keep + T)`` the actions of those frames, then the future ones.
        keep: context frames encoded (the strategy's reach); the rollout starts there.
        horizon: ``T``.
        single: the input had no batch axis.
    """

    strategy: Strategy
    frames: np.ndarray
    past: np.ndarray
    latents: torch.Tensor
    actions: torch.Tensor
    keep: int
    horizon: int
    single: bool


def prepare_rollout(
    world_model: WorldModel,
    context_frames: np.ndarray | torch.Tensor,
    context_actions: np.ndarray | torch.Tensor,
    future_actions: np.ndarray | torch.Tensor,
    strategy: Strategy | str,
    chunk: int = 256,
) -> RolloutInputs:
    """Check a rollout's frames and actions, encode the context the strategy reads (see :func:`imagine`).

    Raises:
        ValueError: shapes or dtypes, fewer context frames than the strategy's reach.
    """
    layout = world_model.layout
    strategy = resolve_strategy(strategy, layout.name)
    frames, single = _batched(context_frames, 5, "context_frames")
    past, _ = _batched(context_actions, 2, "context_actions")
    future, _ = _batched(future_actions, 2, "future_actions")
    b, c = frames.shape[:2]
    size = layout.image_size
    if frames.dtype != np.uint8 or frames.shape[2:] != (size, size, 3):
        raise ValueError(
            f"context_frames must be uint8 (B, C, {size}, {size}, 3) for layout {layout.name!r}; "
            f"got {frames.dtype} {frames.shape}"
        )
    if past.shape != (b, c) or future.ndim != 2 or future.shape[0] != b or future.shape[1] < 1:
        raise ValueError(
            f"context_actions must be (B, C) = {(b, c)} and future_actions (B, T) with T >= 1; got "
            f"{past.shape} and {future.shape}"
        )
    if c < strategy.reach:
        raise ValueError(
            f"strategy {strategy.name!r} needs at least {strategy.reach} context frames, got {c}; pass more "
            "context frames or use a strategy with a shorter reach"
        )
    keep = strategy.reach
    flat = frames[:, c - keep :].reshape(-1, size, size, 3)
    encoded = torch.cat(
        [world_model.encode_frames(part) for part in np.array_split(flat, -(-len(flat) // chunk))]
    )
    horizon = future.shape[1]
    latents = torch.zeros(b, keep + horizon, *encoded.shape[1:], device=encoded.device)
    latents[:, :keep] = encoded.view(b, keep, *encoded.shape[1:])
    actions = torch.from_numpy(np.concatenate([past[:, c - keep :], future], axis=1).astype(np.int64))
    return RolloutInputs(strategy, frames, past, latents, actions, keep, horizon, single)


@torch.no_grad()
def imagine(
    world_model: WorldModel,
    context_frames: np.ndarray | torch.Tensor,
    context_actions: np.ndarray | torch.Tensor,
    future_actions: np.ndarray | torch.Tensor,
    strategy: Strategy | str = "millivid",
    steps: int = 8,
    generator: Generator = None,
    *,
    guidance_scale: float = 1.0,
    endpoint: bool = True,
    context_t: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 256,
    context_window: int | None = None,
) -> np.ndarray:
    """Imagine the frames a known action sequence leads to: encode, open-loop rollout, decode level 0.

    Args:
        world_model: a :class:`models.world_model.WorldModel` (autoencoder + DiT of one layout).
        context_frames: uint8 ``(B, C, H, W, 3)`` real frames (or ``(C, H, W, 3)`` for one video); only
            the last ``strategy.reach`` are encoded.
        context_actions: int ``(B, C)`` (or ``(C,)``): action ``i`` led to context frame ``i``.
        future_actions: int ``(B, T)`` (or ``(T,)``): the actions of the frames to imagine.
        strategy: strategy object or preset name (default ``millivid``).
        steps: sampler evaluations per rollout step.
        generator: as :func:`rollout_latents`.
        guidance_scale: classifier-free guidance scale.
        endpoint: evaluate at ``t = 0`` last (see :func:`models.diffusion.sampler.sample`).
        context_t: noise time the context is presented at (see :func:`rollout_latents`).
        progress: ``progress(done, total)`` after every rollout step.
        chunk: frames encoded / decoded per autoencoder call (bounds memory).
        context_window: cut the model's context (see :func:`rollout_latents`; None: all).

    Returns:
        uint8 ``(B, T, H, W, 3)`` imagined frames (``(T, H, W, 3)`` for unbatched input).

    Raises:
        ValueError: shapes or dtypes, fewer context frames than the strategy's reach, bad action ids.
    """
    dit, layout = world_model.dit, world_model.layout
    inputs = prepare_rollout(world_model, context_frames, context_actions, future_actions, strategy, chunk)
    strategy, latents, actions = inputs.strategy, inputs.latents, inputs.actions
    b, keep, horizon = inputs.frames.shape[0], inputs.keep, inputs.horizon
    out = rollout_latents(
        dit, latents, actions, strategy, keep, keep + horizon, steps, generator,
        guidance_scale=guidance_scale, endpoint=endpoint, context_t=context_t, progress=progress,
        context_window=context_window,
    )  # fmt: skip
    level0 = out[:, keep:, layout.level_slice(0)].reshape(b * horizon, layout.tokens_per_level[0], -1)
    images = np.concatenate([world_model.decode_frames(part, 0) for part in level0.split(chunk)])
    images = images.reshape(b, horizon, *images.shape[1:])
    return images[0] if inputs.single else images
