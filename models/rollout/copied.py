"""Open-loop rollout with frames copied by construction: any strategy's rollout seen through the view.

The env (``MilliVid-Loopcraft-v4``) shows, per pixel, the previous frame moved by the action, a
remembered context frame rotated and walked into the new pose, or the diffusion model's frame where
nothing seen explains the pixel (:class:`models.warp.view.CopyingView`), and encodes what it showed
into the model's memory. :func:`imagine_copied` applies the same rule to the open-loop rollout of any
strategy (``millivid``, ``framepack``, ``full-resolution``), so that the paper's comparison of token
layouts can be made with everything else shared: every time a step of the rollout plan finishes a
frame's level 0, the frame is shown through the video's view and the shown frame's latents (all levels)
replace the generated ones in the rollout buffer, so later steps read what was shown.

Where a step produces nothing but that one frame (millivid's level-0 steps, framepack's steps), the
model is only run for the videos whose view needs its pixels: the others' frames come from the view.
Every video draws its noise from its own generator, so its frames do not depend on its batch. With
``view.draft_t`` below 1 the model's frame starts from the frame the view would show without it (the
moved last frame, remembered views), noised to that time: the model redraws the view's draft instead
of drawing the frame from noise (only at those one-frame steps).

With ``layout_memory`` the views remember no more than the strategy's token layout does: when a frame
is shown, each view forgets the stored frames older than the oldest one any step of that frame's chunk
reads (:func:`earliest_read_frame`). Then the three layouts copy from the context frames their token
budgets still reach (``loopcraft-64``: millivid 85 frames back from its chunk's start, so 85 to 148
back from the frame shown; framepack 64; full-resolution 2 to 3) instead of from one shared store of
every context frame. Whether the views also store the frames they show is ``view.remember_shown``'s
(off by default, as in the env; when on, the views weigh stored frames by their confidence).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.rollout.open_loop import prepare_rollout, rollout_latents
from models.strategies.core import Strategy
from models.warp import ActionWarp
from models.warp.view import CopyingView, ViewSettings, commit_views, to_frames
from models.world_model import WorldModel

__all__ = ["CopiedRollout", "earliest_read_frame", "imagine_copied"]


def earliest_read_frame(strategy: Strategy, start: int, frame: int) -> int:
    """The oldest frame any step of the rollout chunk that finishes ``frame`` reads.

    Args:
        strategy: the rollout's strategy (chunks of ``new_frames`` frames, reading ``reach`` back).
        start: the rollout's first generated frame.
        frame: a generated frame (``>= start``).

    Returns:
        ``start + k * W - reach`` for ``frame`` in chunk ``k`` (``W``: frames finished per chunk).
    """
    w = strategy.new_frames
    return start + (frame - start) // w * w - strategy.reach


@dataclass
class CopiedRollout:
    """What :func:`imagine_copied` returns.

    Attributes:
        frames: uint8 ``(B, T, R, R, 3)`` the shown frames.
        filled: bool ``(B, T)`` whether the model's pixels were needed for the frame.
    """

    frames: np.ndarray
    filled: np.ndarray


class _ShowFinishedFrames:
    """The :class:`~models.rollout.open_loop.StepHook` of :func:`imagine_copied`."""

    def __init__(
        self,
        world_model: WorldModel,
        views: list[CopyingView],
        actions: np.ndarray,
        start: int,
        horizon: int,
        fill_level: int,
        strategy: Strategy,
        layout_memory: bool,
    ) -> None:
        self.world_model, self.views, self.actions = world_model, views, actions
        self.start, self.fill_level = start, fill_level
        self.strategy = strategy
        # With a layout-bounded memory: the frame number of every view's memory entry, oldest first
        # (the context frames end at ``start - 1``); kept in step with ``view.memory``.
        self.numbers: list[deque[int]] | None = None
        if layout_memory:
            self.numbers = [deque(range(start - len(v.memory), start), maxlen=v.memory.maxlen) for v in views]
        size = world_model.layout.image_size
        self.frames = np.zeros((len(views), horizon, size, size, 3), dtype=np.uint8)
        self.filled = np.zeros((len(views), horizon), dtype=bool)

    def step(
        self,
        buf: torch.Tensor,
        first: int,
        finished: list[int],
        run: Callable[[list[int] | None], None],
        only_finished: bool,
    ) -> None:
        if not finished:
            run(None)
            return
        if only_finished:
            row = finished[0]
            proposals = self._propose(first + row)
            need = [b for b, p in enumerate(proposals) if self.views[b].needs_fill(p)]
            if need:
                start_t = self.views[0].settings.draft_t
                if start_t < 1.0:  # the fill starts from what the view would show without it
                    drafts = torch.stack([self.views[b].draft(proposals[b]) for b in need])
                    run(need, self.world_model.encode_frames(to_frames(drafts)).to(buf.device), start_t)
                else:
                    run(need)
            self._show(buf, row, first + row, proposals, need)
            return
        run(None)
        for row in finished:
            proposals = self._propose(first + row)
            need = [b for b, p in enumerate(proposals) if self.views[b].needs_fill(p)]
            self._show(buf, row, first + row, proposals, need)

    def _propose(self, frame: int) -> list:
        if self.numbers is not None:
            oldest = earliest_read_frame(self.strategy, self.start, frame)
            for view, numbers in zip(self.views, self.numbers, strict=True):
                while numbers and numbers[0] < oldest:
                    numbers.popleft()
                    view.memory.popleft()
        return [view.propose(int(self.actions[b, frame])) for b, view in enumerate(self.views)]

    def _show(self, buf: torch.Tensor, row: int, frame: int, proposals: list, need: list[int]) -> None:
        """Show frame ``frame`` (buffer row ``row``) of every video and write its latents back."""
        decoded = None
        if need:
            decoded = self.world_model.decode_frames(
                buf[need, row, self.world_model.layout.level_slice(self.fill_level)], level=self.fill_level
            )
        images = commit_views(self.views, proposals, decoded, need)
        if self.numbers is not None:
            for view, numbers in zip(self.views, self.numbers, strict=True):
                if view.settings.remember_shown:  # the view stored the frame it showed
                    numbers.append(frame)
        buf[:, row] = self.world_model.encode_frames(images).to(buf.device)
        self.frames[:, frame - self.start] = images
        self.filled[need, frame - self.start] = True


@torch.no_grad()
def imagine_copied(
    world_model: WorldModel,
    warp: ActionWarp,
    context_frames: np.ndarray,
    context_actions: np.ndarray,
    future_actions: np.ndarray,
    strategy: Strategy | str,
    steps: int,
    generators: Sequence[torch.Generator],
    *,
    view: ViewSettings | None = None,
    fill_level: int = 0,
    context_window: int | None = None,
    layout_memory: bool = False,
    guidance_scale: float = 1.0,
    context_t: float = 0.0,
    chunk: int = 256,
) -> CopiedRollout:
    """Imagine the frames a known action sequence leads to, copied where seen, else the model's.

    Args:
        world_model: autoencoder + DiT of one layout.
        warp: the fitted action warp of that resolution.
        context_frames: uint8 ``(B, C, R, R, 3)`` real frames; the view remembers all of them (up to its
            capacity), the model reads the last ``strategy.reach``.
        context_actions: int ``(B, C)``: action ``i`` led to context frame ``i``.
        future_actions: int ``(B, T)``.
        strategy: strategy object or preset name of the model's layout.
        steps: sampler evaluations per rollout step.
        generators: one ``torch.Generator`` per video.
        view: how copied, remembered and generated pixels are weighed (default settings).
        fill_level: level of the generated latents decoded where the model's pixels are needed (it
            must be a level the strategy generates: full-resolution makes level 0 only).
        context_window: cut the model's context to this many frames before what it denoises (None:
            all; see :func:`models.rollout.open_loop.windowed_tokens`).
        layout_memory: bound each view's memory by the strategy's token layout (see the module
            docstring).
        guidance_scale: classifier-free guidance scale.
        context_t: noise time the context is presented at.
        chunk: frames encoded per autoencoder call.

    Returns:
        The shown frames and which of them needed the model.

    Raises:
        ValueError: shapes, too few context frames, a generator count that is not ``B``, a warp of
            another resolution.
    """
    layout = world_model.layout
    if warp.config.resolution != layout.image_size:
        raise ValueError(
            f"the warp was fitted on {warp.config.resolution}x{warp.config.resolution} frames but the "
            f"model makes {layout.image_size}x{layout.image_size} ones: fit one at this resolution "
            "(millivid fit-warp)"
        )
    if not 0 <= fill_level < layout.num_levels:
        raise ValueError(f"fill_level must lie in [0, {layout.num_levels - 1}], got {fill_level}")
    inputs = prepare_rollout(world_model, context_frames, context_actions, future_actions, strategy, chunk)
    if len(generators) != len(inputs.frames):
        raise ValueError(
            f"pass one generator per video: {len(inputs.frames)} videos, {len(generators)} generators"
        )
    warp = warp.to(world_model.device)
    views = [CopyingView(warp, view) for _ in inputs.frames]
    for v, clip, acts in zip(views, inputs.frames, inputs.past, strict=True):
        v.reset(clip, acts)
    keep, horizon = inputs.keep, inputs.horizon
    hook = _ShowFinishedFrames(
        world_model, views, inputs.actions.numpy(), keep, horizon, fill_level, inputs.strategy, layout_memory
    )
    rollout_latents(
        world_model.dit, inputs.latents, inputs.actions, inputs.strategy, keep, keep + horizon, steps,
        list(generators), guidance_scale=guidance_scale, context_t=context_t,
        context_window=context_window, hook=hook,
    )  # fmt: skip
    return CopiedRollout(hook.frames, hook.filled)
