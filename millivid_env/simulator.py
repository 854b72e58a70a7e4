"""The torch side of the world-model envs: ``B`` streams of one world model stepped in one batch.

Both :class:`~millivid_env.world_model_env.MilliVidEnv` (``B = 1``) and the vector env
(``B = num_envs``) run through :class:`StreamingSimulator`, so a sub-env of the vector env executes
exactly the code of a single env. Every stream has its own :class:`HierarchicalMemory` (latents,
actions and noise generator); a batched step gathers every stream's context, generates all new frames
in one model call per sub-step (:func:`models.rollout.streaming.generate_next_frame`), pushes them into
the memories and decodes level 0 in one autoencoder call.

With a ``warp`` (:class:`models.warp.ActionWarp`) the frame shown is copied by construction
(:class:`models.warp.view.CopyingView`): per pixel, the previous shown frame moved by the action, a
remembered view rotated and walked into the new pose, or, where nothing seen explains the pixel, the
diffusion model's frame. The model runs only for the streams that need its pixels. The shown frame
is then encoded into the latent memory, so that what the model remembers is what the user saw.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from millivid_env.memory import HierarchicalMemory
from models.checkpoints import require_kind
from models.rollout.streaming import StreamingPlan, context_depths, generate_next_frame
from models.strategies import get_strategy
from models.warp import ActionWarp, load_warp
from models.warp.view import CopyingView, ViewSettings, commit_views
from models.world_model import ARGUMENTS, WorldModel

T = TypeVar("T")

__all__ = ["StreamingSimulator", "load_warp_or_none", "memory_depths", "view_settings"]


def memory_depths(layout_name: str) -> tuple[int, ...]:
    """Frames the memory keeps per level: what the streaming step and the open-loop rollout read."""
    streaming = context_depths(get_strategy(layout_name, "streaming"))
    millivid = context_depths(get_strategy(layout_name, "millivid"))
    return tuple(max(a, b) for a, b in zip(streaming, millivid, strict=True))


def load_warp_or_none(warp: str | os.PathLike[str] | None, world_model: WorldModel) -> ActionWarp | None:
    """The env kwarg ``warp`` (bundled name, local directory or Hub repo id) on the model's device."""
    if warp is None:
        return None
    require_kind(warp, "action-warp", "warp", ARGUMENTS)
    return load_warp(warp, device=world_model.device)


def view_settings(view: dict[str, object] | None, warp: object) -> ViewSettings | None:
    """The env kwarg ``view`` (field overrides of :class:`~models.warp.view.ViewSettings`) checked."""
    if view is None:
        return None
    if warp is None:
        raise ValueError(
            "view=... weighs the copied frames of a warp: pass warp=... too (e.g. 'loopcraft-64-warp')"
        )
    if not isinstance(view, dict):
        raise TypeError(f"view must be a dict of ViewSettings fields, got {type(view).__name__}")
    fields = set(ViewSettings.__dataclass_fields__)
    unknown = sorted(set(view) - fields)
    if unknown:
        raise ValueError(f"unknown view settings {unknown}; valid: {sorted(fields)}")
    settings = ViewSettings(**view)
    if settings.draft_t < 1.0:  # the env's streaming steps draw from noise; do not ignore it silently
        raise ValueError(
            "view draft_t applies to open-loop rollouts (millivid evaluate --view) only; the env's "
            "model draws its frames from noise: leave draft_t at 1"
        )
    return settings


class StreamingSimulator:
    """``num_streams`` independent streams of a world model, stepped together.

    Args:
        world_model: the loaded (shared, read-only) autoencoder + diffusion pair.
        num_streams: ``B``.
        sampling_steps: sampler evaluations per sub-step.
        guidance_scale: classifier-free guidance scale (1.0: none, as the paper evaluates).
        endpoint: the sampler's last evaluation is at ``t = 0`` (see
            :func:`models.diffusion.sampler.sample`; False saves it).
        context_noise: noise time at which the remembered latents are shown to the model (0: clean;
            models trained with context-noise augmentation accept up to their training range).
        decode_level: level of the generated latents that frames are decoded from (0: the finest).
            Every level is still generated and remembered; only the returned frame changes.
        warp: moves the previous shown frame by the action and places remembered frames (None: show
            the decoded frame, as v3).
        view: with a warp, how the copied, remembered and generated pixels are weighed.
    """

    def __init__(
        self,
        world_model: WorldModel,
        num_streams: int,
        sampling_steps: int,
        guidance_scale: float = 1.0,
        endpoint: bool = True,
        context_noise: float = 0.0,
        decode_level: int = 0,
        warp: ActionWarp | None = None,
        view: ViewSettings | None = None,
    ) -> None:
        if int(sampling_steps) < 1:
            raise ValueError(f"sampling_steps must be a positive int, got {sampling_steps!r}")
        self.world_model = world_model
        self.sampling_steps = int(sampling_steps)
        if not (math.isfinite(float(guidance_scale)) and float(guidance_scale) > 0):
            raise ValueError(
                f"guidance_scale must be a finite number > 0 (1.0 = no guidance), got {guidance_scale!r}"
            )
        self.guidance_scale = float(guidance_scale)
        self.endpoint = bool(endpoint)
        if not 0.0 <= float(context_noise) <= 1.0:
            raise ValueError(f"context_noise must lie in [0, 1] (0 = clean context), got {context_noise!r}")
        self.context_noise = float(context_noise)
        layout = world_model.layout
        levels = layout.num_levels
        if (
            isinstance(decode_level, bool)
            or not isinstance(decode_level, (int, np.integer))
            or not 0 <= decode_level < levels
        ):
            raise ValueError(
                f"decode_level must be an int in [0, {levels - 1}] (0 = the finest level, the default), "
                f"got {decode_level!r}"
            )
        self.decode_level = int(decode_level)
        if warp is not None:
            if not isinstance(warp, ActionWarp):
                raise TypeError(
                    f"warp must be an ActionWarp (models.warp.load_warp), got {type(warp).__name__}"
                )
            if warp.config.resolution != layout.image_size:
                raise ValueError(
                    f"the warp was fitted on {warp.config.resolution}x{warp.config.resolution} frames but "
                    f"the world model makes {layout.image_size}x{layout.image_size} ones: fit one at this "
                    "resolution (millivid fit-warp)"
                )
            warp = warp.to(world_model.device)
        self.warp = warp
        self.view_settings = view or ViewSettings()
        self.plan = StreamingPlan.build(get_strategy(layout.name, "streaming"), layout)
        self.depths = memory_depths(layout.name)
        self.memories = [
            HierarchicalMemory(
                self.depths, layout.tokens_per_level, layout.latent_channels, world_model.device
            )
            for _ in range(int(num_streams))
        ]
        # Where step time goes (seconds per part: view, diffusion, decoder, encoder; for the bench) and
        # how many frames were stepped and how many needed the diffusion model's pixels.
        self.seconds: dict[str, float] = {}
        self.frames_stepped = 0
        self.frames_filled = 0
        # Each stream's shown view (frame, pose, remembered frames) when frames are copied.
        self.views = (
            None if warp is None else [CopyingView(warp, self.view_settings) for _ in range(int(num_streams))]
        )

    @property
    def min_context(self) -> int:
        """Fewest context frames a stream must start from (its memory's deepest level)."""
        return max(self.depths)

    def reset_stream(self, stream: int, frames: np.ndarray, actions: np.ndarray, seed: int) -> None:
        """Encode a stream's context frames into its (cleared) memory and reseed its generator.

        Args:
            stream: which stream.
            frames: uint8 ``(T, R, R, 3)`` with ``T >= min_context``; only the last ``min_context`` are
                encoded (older frames are never read).
            actions: int64 ``(T,)``.
            seed: seed of the stream's noise generator.
        """
        keep = self.min_context
        latents = self.world_model.encode_frames(frames[-keep:])  # (keep, num_tokens, C)
        memory = self.memories[stream]
        memory.clear(seed)
        memory.extend(latents, np.asarray(actions[-keep:]))
        if self.views is not None:
            self.views[stream].reset(np.asarray(frames, dtype=np.uint8), np.asarray(actions))

    @torch.no_grad()
    def step(self, actions: Sequence[int], streams: Sequence[int] | None = None) -> np.ndarray:
        """Generate, remember and decode the next frame of some streams in one batch.

        Args:
            actions: the action of each stepped stream.
            streams: indices of the streams to step (default: all, in order).

        Returns:
            uint8 ``(len(streams), R, R, 3)`` new frames.

        Raises:
            FloatingPointError: the model produced NaN/inf.
        """
        streams = list(range(len(self.memories))) if streams is None else list(streams)
        if len(actions) != len(streams):
            raise ValueError(f"{len(actions)} actions for {len(streams)} streams")
        clock = self._clock
        if self.views is None:
            new = clock("diffusion", lambda: self._generate(streams, actions))
            shown = clock("decoder", lambda: self._decode(new))
        else:
            views = [self.views[i] for i in streams]
            proposals = clock(
                "view", lambda: [v.propose(int(a)) for v, a in zip(views, actions, strict=True)]
            )
            need = [j for j, p in enumerate(proposals) if views[j].needs_fill(p)]
            decoded = None
            if need:
                self.frames_filled += len(need)
                # Only the levels down to the shown one are used: the memory gets the shown frame.
                generated = clock(
                    "diffusion",
                    lambda: self._generate(
                        [streams[j] for j in need], [actions[j] for j in need], self.decode_level
                    ),
                )
                decoded = clock("decoder", lambda: self._decode(generated))
            shown = clock("view", lambda: commit_views(views, proposals, decoded, need))
            new = clock("encoder", lambda: self.world_model.encode_frames(shown))
        self.frames_stepped += len(streams)
        for i, latents, action in zip(streams, new, actions, strict=True):
            self.memories[i].push(latents, int(action))
        return shown

    def _clock(self, part: str, work: Callable[[], T]) -> T:
        """Run ``work`` and add its wall time to :attr:`seconds` under ``part``."""
        start = time.perf_counter()
        out = work()
        self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
        return out

    def _generate(self, streams: list[int], actions: Sequence[int], finest: int = 0) -> torch.Tensor:
        """The diffusion model's next latents of some streams: ``(B, num_tokens, C)``.

        Levels below ``finest`` are left 0 (see :func:`~models.rollout.streaming.generate_next_frame`).
        """
        memories = [self.memories[i] for i in streams]
        contexts = [m.context(self.plan.depths, self.plan.reach) for m in memories]
        past = [torch.cat([c[0][level] for c in contexts]) for level in range(len(self.depths))]
        past_actions = torch.cat([c[1] for c in contexts])
        return generate_next_frame(
            self.world_model.dit,
            self.plan,
            past,
            past_actions,
            torch.as_tensor(list(actions), dtype=torch.long),
            [m.generator for m in memories],
            steps=self.sampling_steps,
            guidance_scale=self.guidance_scale,
            endpoint=self.endpoint,
            context_t=self.context_noise,
            finest=finest,
        )

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        """uint8 ``(B, R, R, 3)`` frames of generated latents, decoded from ``decode_level``."""
        level = self.decode_level
        return self.world_model.decode_frames(
            latents[:, self.world_model.layout.level_slice(level)], level=level
        )
