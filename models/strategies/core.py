"""Step tables: the data representation shared by every rollout strategy.

A strategy is a fixed list of *steps* over a chunk of ``C`` consecutive frames. Each step is a
selection matrix ``int8 (num_levels, C)`` whose cell ``(level, column)`` says what the diffusion model
sees of that frame at that level in this step: nothing (``UNSEEN``), clean tokens (``CONTEXT``) or
tokens to generate (``DENOISED``). Training draws one step (group-balanced) and fills its cells with
ground truth; the rollout runs every step of every chunk in order, so training examples are exactly
the token sets the rollout presents.

Pure numpy on purpose: the step tables are used by data loaders, the env and tests without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.strategies.rollout import RolloutPlan

UNSEEN = 0
CONTEXT = 1
DENOISED = 2
ROLE_NAMES = {UNSEEN: "unseen", CONTEXT: "ctx", DENOISED: "den"}


def runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers.

    Args:
        columns: int ``(N,)`` sorted ascending, no duplicates.

    Returns:
        Half-open ``(start, stop)`` pairs, ascending.
    """
    columns = np.asarray(columns, dtype=np.int64)
    if columns.size == 0:
        return []
    # A new run starts wherever the difference to the previous column is not 1.
    breaks = np.flatnonzero(np.diff(columns) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [columns.size]])
    return [(int(columns[a]), int(columns[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


@dataclass(frozen=True, eq=False)
class Step:
    """One layout of a strategy.

    Attributes:
        selection: int8 ``(num_levels, chunk_frames)`` with values ``UNSEEN``/``CONTEXT``/``DENOISED``;
            stored read-only.
        group: sampling group (millivid and streaming: the target level); training gives every group
            the same total probability.
    """

    selection: np.ndarray
    group: int

    def __post_init__(self) -> None:
        sel = np.array(self.selection, dtype=np.int8, copy=True)
        if sel.ndim != 2 or sel.shape[1] == 0:
            raise ValueError(f"a step's selection must be (num_levels, chunk_frames), got shape {sel.shape}")
        if not np.isin(sel, (UNSEEN, CONTEXT, DENOISED)).all():
            raise ValueError("selection values must be UNSEEN=0, CONTEXT=1 or DENOISED=2")
        if not (sel == DENOISED).any():
            raise ValueError("a step must denoise at least one cell")
        sel.setflags(write=False)
        object.__setattr__(self, "selection", sel)
        object.__setattr__(self, "group", int(self.group))

    def columns(self, level: int, role: int) -> np.ndarray:
        """Chunk columns of ``level`` that have ``role``, ascending, int64 ``(N,)``."""
        return np.flatnonzero(self.selection[level] == role)

    @property
    def denoised_levels(self) -> tuple[int, ...]:
        """Levels with at least one DENOISED cell, finest first."""
        return tuple(int(lv) for lv in np.flatnonzero((self.selection == DENOISED).any(axis=1)))

    @property
    def span(self) -> tuple[int, int]:
        """Half-open column range touched by the step (any non-UNSEEN cell)."""
        used = np.flatnonzero((self.selection != UNSEEN).any(axis=0))
        return int(used[0]), int(used[-1]) + 1

    def num_tokens(self, tokens_per_level: tuple[int, ...]) -> int:
        """Tokens of the step: non-UNSEEN cells weighted by their level's tokens per frame."""
        cells_per_level = (self.selection != UNSEEN).sum(axis=1)
        return int(np.dot(cells_per_level, tokens_per_level))


@dataclass(frozen=True, eq=False)
class Strategy:
    """A rollout strategy as data: the ordered steps of one chunk plus the token layout.

    Attributes:
        name: short name (``millivid``, ``framepack``, ...).
        steps: the steps of one chunk, in rollout order.
        tokens_per_level: tokens of one frame at each level, finest first (``(64, 16, 4, 1)`` for
            ``loopcraft-64``, ``(256, 64, 16, 4)`` for ``paper-256``).
    """

    name: str
    steps: tuple[Step, ...]
    tokens_per_level: tuple[int, ...]

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        tpl = tuple(int(t) for t in self.tokens_per_level)
        if not steps:
            raise ValueError(f"strategy {self.name!r} has no steps")
        shapes = {s.selection.shape for s in steps}
        if len(shapes) != 1:
            raise ValueError(f"strategy {self.name!r}: steps have different shapes {sorted(shapes)}")
        if steps[0].selection.shape[0] != len(tpl) or min(tpl) <= 0:
            raise ValueError(
                f"strategy {self.name!r}: {steps[0].selection.shape[0]} levels in the selections but "
                f"tokens_per_level={tpl}"
            )
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "tokens_per_level", tpl)

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.tokens_per_level)

    @property
    def num_steps(self) -> int:
        """Steps per chunk."""
        return len(self.steps)

    @property
    def chunk_frames(self) -> int:
        """Width ``C`` of the selection matrices."""
        return self.steps[0].selection.shape[1]

    @cached_property
    def denoising_start(self) -> int:
        """Smallest column that is DENOISED in any step."""
        return min(int(np.flatnonzero((s.selection == DENOISED).any(axis=0))[0]) for s in self.steps)

    @property
    def new_frames(self) -> int:
        """Frames ``W`` finished per chunk; the chunk advances by this much."""
        return self.chunk_frames - self.denoising_start

    @cached_property
    def reach(self) -> int:
        """Past frames the strategy reads before its first denoised frame (context needed)."""
        return self.denoising_start - min(s.span[0] for s in self.steps)

    @cached_property
    def step_tokens(self) -> tuple[int, ...]:
        """Token count of every step."""
        return tuple(s.num_tokens(self.tokens_per_level) for s in self.steps)

    @property
    def tokens_per_step(self) -> int:
        """Sequence length the model sees: the largest step (others would be padded to it)."""
        return max(self.step_tokens)

    @property
    def needs_padding(self) -> bool:
        """True when steps differ in token count (mixing them in one batch needs padding + masks)."""
        return len(set(self.step_tokens)) > 1

    @cached_property
    def probabilities(self) -> np.ndarray:
        """Training probability of every step, float64 ``(num_steps,)``.

        Every sampling group gets the same total mass, uniform inside a group, so a layout that
        occurs once per chunk (millivid's L3 plan) is drawn as often as all 64 L0 steps together.
        """
        groups = np.array([s.group for s in self.steps])
        labels, counts = np.unique(groups, return_counts=True)
        size = dict(zip(labels.tolist(), counts.tolist(), strict=True))
        p = np.array([1.0 / (len(labels) * size[g]) for g in groups.tolist()])
        p.setflags(write=False)
        return p

    def sample_steps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` step indices with :attr:`probabilities`, int64 ``(n,)``."""
        return rng.choice(self.num_steps, size=n, p=self.probabilities)

    def rollout(self, start: int, end: int) -> RolloutPlan:
        """Expand into absolute steps generating frames ``[start, end)``; see :func:`plan_rollout`."""
        from models.strategies.rollout import plan_rollout

        return plan_rollout(self, start, end)

    def summary(self) -> dict[str, object]:
        """Headline numbers (for docs, logs and model cards)."""
        return {
            "name": self.name,
            "tokens_per_level": self.tokens_per_level,
            "chunk_frames": self.chunk_frames,
            "denoising_start": self.denoising_start,
            "new_frames_per_chunk": self.new_frames,
            "steps_per_chunk": self.num_steps,
            "tokens_per_step": self.tokens_per_step,
            "step_tokens": sorted(set(self.step_tokens)),
            "reach": self.reach,
        }
