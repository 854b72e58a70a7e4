"""The torch side of the world-model envs: ``B`` streams of one world model stepped in one batch.

Both :class:`~millivid_env.world_model_env.MilliVidEnv` (``B = 1``) and the vector env
(``B = num_envs``) run through :class:`StreamingSimulator`, so a sub-env of the vector env executes
exactly the code of a single env. Every stream has its own :class:`HierarchicalMemory` (latents,
actions and noise generator); a batched step gathers every stream's context, generates all new frames
in one model call per sub-step (:func:`models.rollout.streaming.generate_next_frame`), pushes them into
the memories and decodes level 0 in one autoencoder call.

With a ``warp`` (:class:`models.warp.ActionWarp`) the frame shown is copied by construction: the
previous shown frame moved by the action wherever the move keeps it in view, and the diffusion
model's decoded frame only where the move reveals pixels that were not in view. The shown frame is
then encoded back into the memory in place of the generated latents (``remember_shown``), so what
the model remembers is what the user saw, sharp, and not its own blurrier guess.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from millivid_env.memory import HierarchicalMemory
from models.rollout.streaming import StreamingPlan, context_depths, generate_next_frame
from models.strategies import get_strategy
from models.warp import ActionWarp, load_warp
from models.world_model import WorldModel

__all__ = ["StreamingSimulator", "load_warp_or_none", "memory_depths"]


def memory_depths(layout_name: str) -> tuple[int, ...]:
    """Frames the memory keeps per level: what the streaming step and the open-loop rollout read."""
    streaming = context_depths(get_strategy(layout_name, "streaming"))
    millivid = context_depths(get_strategy(layout_name, "millivid"))
    return tuple(max(a, b) for a, b in zip(streaming, millivid, strict=True))


def load_warp_or_none(warp: str | os.PathLike[str] | None, world_model: WorldModel) -> ActionWarp | None:
    """The env kwarg ``warp`` (bundled name, local directory or Hub repo id) on the model's device."""
    return None if warp is None else load_warp(warp, device=world_model.device)


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
        warp: moves the previous shown frame by the action (None: show the decoded frame, as v3).
        remember_shown: with a warp, encode the shown frame into the memory instead of keeping the
            generated latents.
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
        remember_shown: bool = True,
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
        self.remember_shown = bool(remember_shown)
        self.plan = StreamingPlan.build(get_strategy(layout.name, "streaming"), layout)
        self.depths = memory_depths(layout.name)
        self.memories = [
            HierarchicalMemory(
                self.depths, layout.tokens_per_level, layout.latent_channels, world_model.device
            )
            for _ in range(int(num_streams))
        ]
        # The last frame each stream showed (uint8 (R, R, 3)): what the warp moves at the next step.
        self.frames: list[np.ndarray | None] = [None] * int(num_streams)

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
        self.frames[stream] = np.array(frames[-1], dtype=np.uint8)

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
        memories = [self.memories[i] for i in streams]
        contexts = [m.context(self.plan.depths, self.plan.reach) for m in memories]
        past = [torch.cat([c[0][level] for c in contexts]) for level in range(len(self.depths))]
        past_actions = torch.cat([c[1] for c in contexts])
        new = generate_next_frame(
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
        )
        layout = self.world_model.layout
        level = self.decode_level
        decoded = self.world_model.decode_frames(new[:, layout.level_slice(level)], level=level)
        shown = decoded if self.warp is None else self._composite(decoded, actions, streams)
        if self.warp is not None and self.remember_shown:
            new = self.world_model.encode_frames(shown)
        for memory, latents, action in zip(memories, new, actions, strict=True):
            memory.push(latents, int(action))
        for i, frame in zip(streams, shown, strict=True):
            self.frames[i] = frame
        return shown

    def _composite(self, decoded: np.ndarray, actions: Sequence[int], streams: list[int]) -> np.ndarray:
        """The previous shown frames moved by the actions, the decoded frames where the move reveals.

        Args:
            decoded: uint8 ``(B, R, R, 3)`` frames decoded from the generated latents.
            actions: the ``B`` actions.
            streams: the ``B`` streams.

        Returns:
            uint8 ``(B, R, R, 3)``.

        Raises:
            FloatingPointError: the warp produced NaN/inf.
        """
        assert self.warp is not None
        previous = [self.frames[i] for i in streams]
        if any(frame is None for frame in previous):
            raise RuntimeError("reset_stream() a stream before stepping it (it has no frame to move)")
        device = self.world_model.device
        prev = torch.from_numpy(np.stack(previous)).to(device).permute(0, 3, 1, 2).float() / 255.0
        fill = torch.from_numpy(decoded).to(device).permute(0, 3, 1, 2).float() / 255.0
        warped, valid = self.warp(prev, torch.as_tensor(list(actions), dtype=torch.long, device=device))
        out = valid * warped + (1.0 - valid) * fill  # (B, 3, R, R)
        if not bool(torch.isfinite(out).all()):
            raise FloatingPointError("the warp produced NaN/inf: the warp checkpoint is corrupt")
        return (out.clamp(0.0, 1.0) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
