"""The hierarchical latent memory of one world-model env: recent frames fine, older frames coarse.

The streaming layout reads the last frame at level 0, the 4 before it at level 1, 16 more at level 2
and 43 more at level 3 (``loopcraft-64``); the open-loop millivid layout reads up to 85 frames back at
level 3. So a frame needs its level-``l`` latents only while it is at most ``depths[l]`` frames old
(``depths = (1, 5, 21, 85)``): the memory keeps one ring buffer per level holding exactly the last
``depths[l]`` frames at that level, plus a ring of their actions. Its size is fixed
(``loopcraft-64``: 64 + 5 * 16 + 21 * 4 + 85 * 1 = 313 tokens, ~40 KB) however long the episode runs.

The memory also owns the stream's noise generator, so :meth:`HierarchicalMemory.snapshot` /
:meth:`~HierarchicalMemory.restore` capture everything the next generated frames depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["HierarchicalMemory", "MemorySnapshot"]


@dataclass(frozen=True)
class MemorySnapshot:
    """A deep copy of a memory's state (reusable: restoring does not consume it).

    Attributes:
        buffers: per level ``(depths[l], n_l, C)`` ring buffer contents.
        actions: int64 ``(max(depths),)`` action ring.
        count: frames pushed since the last :meth:`HierarchicalMemory.clear`.
        generator_state: the noise generator's state.
    """

    buffers: tuple[torch.Tensor, ...]
    actions: torch.Tensor
    count: int
    generator_state: torch.Tensor


class HierarchicalMemory:
    """Ring buffers of one stream's past latents per level, its past actions and its noise generator.

    Args:
        depths: frames kept per level, finest first (each ``>= 1`` and non-decreasing: a frame is
            kept at a level only while a coarser level still holds it).
        tokens_per_level: tokens of one frame per level, finest first.
        channels: latent channels ``C``.
        device: where the latents live (the model's device).
    """

    def __init__(
        self,
        depths: Sequence[int],
        tokens_per_level: Sequence[int],
        channels: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.depths = tuple(int(d) for d in depths)
        self.tokens_per_level = tuple(int(n) for n in tokens_per_level)
        if len(self.depths) != len(self.tokens_per_level) or min(self.depths) < 1:
            raise ValueError(
                f"need a depth >= 1 for each of the {len(self.tokens_per_level)} levels, got {self.depths}"
            )
        if list(self.depths) != sorted(self.depths):
            raise ValueError(f"depths must not decrease from fine to coarse levels, got {self.depths}")
        self.device = torch.device(device)
        self._buffers = [
            torch.zeros(d, n, channels, device=self.device)
            for d, n in zip(self.depths, self.tokens_per_level, strict=True)
        ]
        self._actions = torch.zeros(max(self.depths), dtype=torch.long)
        self._count = 0
        # A CPU generator on every device: the same seed gives the same noise on CPU and GPU.
        self.generator = torch.Generator(device="cpu")

    # ------------------------------------------------------------------ filling
    def clear(self, seed: int) -> None:
        """Forget every frame and reseed the noise generator."""
        self._count = 0
        for buffer in self._buffers:
            buffer.zero_()
        self._actions.zero_()
        self.generator.manual_seed(int(seed))

    def push(self, latents: torch.Tensor, action: int) -> None:
        """Append one frame.

        Args:
            latents: float ``(num_tokens, C)`` the frame's latents at all levels, level 0 first.
            action: the action that produced the frame.
        """
        if latents.shape[0] != sum(self.tokens_per_level):
            raise ValueError(
                f"latents must have {sum(self.tokens_per_level)} tokens (all levels), got {latents.shape[0]}"
            )
        start = 0
        for level, (buffer, n) in enumerate(zip(self._buffers, self.tokens_per_level, strict=True)):
            buffer[self._count % self.depths[level]] = latents[start : start + n]
            start += n
        self._actions[self._count % len(self._actions)] = int(action)
        self._count += 1

    def extend(self, latents: torch.Tensor, actions: Sequence[int] | torch.Tensor) -> None:
        """Append frames in order; only the last ``max(depths)`` can matter, so only those are stored.

        Args:
            latents: float ``(T, num_tokens, C)``.
            actions: ``T`` actions.
        """
        actions = torch.as_tensor(actions, dtype=torch.long)
        if len(actions) != len(latents):
            raise ValueError(f"{len(latents)} frames of latents but {len(actions)} actions")
        skip = max(0, len(latents) - len(self._actions))
        self._count += skip  # frames older than every level's depth are never read
        for frame, action in zip(latents[skip:], actions[skip:].tolist(), strict=True):
            self.push(frame, action)

    # ------------------------------------------------------------------ reading
    def _rows(self, depth: int, capacity: int) -> torch.Tensor:
        """Ring slots of the last ``depth`` frames, oldest first."""
        if depth > min(self._count, capacity):
            raise ValueError(
                f"the memory holds {min(self._count, capacity)} frame(s) at this level, {depth} requested; "
                "reset the env with more context frames"
            )
        return torch.arange(self._count - depth, self._count) % capacity

    def level(self, level: int, depth: int | None = None) -> torch.Tensor:
        """Latents ``(depth, n_l, C)`` of the last ``depth`` (default: all kept) frames at ``level``."""
        depth = self.depths[level] if depth is None else int(depth)
        return self._buffers[level][self._rows(depth, self.depths[level]).to(self.device)]

    def actions(self, depth: int) -> torch.Tensor:
        """int64 ``(depth,)`` actions of the last ``depth`` frames, oldest first."""
        return self._actions[self._rows(depth, len(self._actions))]

    def context(self, depths: Sequence[int], reach: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The context of the next streaming step (see :func:`models.rollout.streaming.generate_next_frame`).

        Args:
            depths: frames needed per level (``StreamingPlan.depths``).
            reach: past actions needed.

        Returns:
            ``(past, past_actions)``: per level ``(1, depths[l], n_l, C)`` and int64 ``(1, reach)``.
        """
        past = [self.level(lv, d)[None] for lv, d in enumerate(depths)]
        return past, self.actions(reach)[None]

    # ------------------------------------------------------------------ inspection
    @property
    def frames_seen(self) -> int:
        """Frames pushed since the last :meth:`clear` (context included)."""
        return self._count

    @property
    def frames_per_level(self) -> tuple[int, ...]:
        """Frames currently held at each level, finest first."""
        return tuple(min(self._count, d) for d in self.depths)

    @property
    def tokens(self) -> int:
        """Latent tokens currently held (all levels)."""
        return sum(f * n for f, n in zip(self.frames_per_level, self.tokens_per_level, strict=True))

    @property
    def nbytes(self) -> int:
        """Bytes allocated by the buffers (fixed at construction)."""
        return sum(b.nbytes for b in self._buffers) + self._actions.nbytes

    def summary(self) -> dict[str, Any]:
        """Plain-Python description (for logs, the HUD and tests)."""
        return {
            "depths": self.depths,
            "frames_per_level": self.frames_per_level,
            "tokens": self.tokens,
            "nbytes": self.nbytes,
            "frames_seen": self.frames_seen,
            "device": str(self.device),
        }

    def __repr__(self) -> str:
        return (
            f"HierarchicalMemory(frames_per_level={self.frames_per_level}, tokens={self.tokens}, "
            f"nbytes={self.nbytes})"
        )

    # ------------------------------------------------------------------ state
    def snapshot(self) -> MemorySnapshot:
        """A deep copy of the buffers, actions, frame count and generator state."""
        return MemorySnapshot(
            buffers=tuple(b.clone() for b in self._buffers),
            actions=self._actions.clone(),
            count=self._count,
            generator_state=self.generator.get_state(),
        )

    def restore(self, snapshot: MemorySnapshot) -> None:
        """Return to a :meth:`snapshot` (copied in, so the snapshot can be restored again)."""
        if tuple(b.shape for b in snapshot.buffers) != tuple(b.shape for b in self._buffers):
            raise ValueError("the snapshot comes from a memory with other depths or token counts")
        for own, saved in zip(self._buffers, snapshot.buffers, strict=True):
            own.copy_(saved)
        self._actions.copy_(snapshot.actions)
        self._count = int(snapshot.count)
        self.generator.set_state(snapshot.generator_state.clone())
