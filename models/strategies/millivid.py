"""The MilliVid strategy: a long coarse plan first, then depth-first refinement (method.md §5.5).

With windows ``w = (w_0, ..., w_{L-1})`` (``w_l = k * 4^l`` so every window costs the same tokens)
and an extra budget ``E``, one chunk has ``C = sum(w) + e_{L-1}`` frames and finishes the last
``w_{L-1}`` of them. The chunk's steps visit windows depth first, coarse to fine:
``L3 -> (L2 -> (L1 -> 4 x L0) x 4) x 4`` = 85 steps for ratio 4. Every step denoises one window
at its target level, conditioned on ``e_T`` older frames at the same level and on one window per
other level laid out around it (see :func:`_millivid_step`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from models.strategies.core import CONTEXT, DENOISED, Step, Strategy


def _visit_order(windows: Sequence[int], level: int) -> Iterator[int]:
    """Target levels in depth-first order: ``level``, then each child window's subtree."""
    yield level
    if level > 0:
        for _ in range(windows[level] // windows[level - 1]):
            yield from _visit_order(windows, level - 1)


def _millivid_step(
    windows: Sequence[int], extra: Sequence[int], pointers: Sequence[int], target: int, chunk_frames: int
) -> np.ndarray:
    """Selection of one step (my reading of method.md §5.5 "Construction of one step").

    The covered interval ``[lo, hi)`` starts empty at the current level-0 window and grows level by
    level, fine to coarse. A non-target level spends exactly one window of frames: first on frames
    at or after ``hi`` that its current window still covers (newer frames, including the frames the
    target denoises), the rest on frames just before ``lo`` (older history). The target level
    denoises its window and spends ``e_T`` frames on the history just before ``lo``. Each frame of
    ``[lo, hi)`` thus appears at exactly one level, the finest one the budget allows.

    Args:
        windows: window ``w_l`` per level, finest first.
        extra: extra same-level context frames ``e_l`` per level.
        pointers: start column ``s_l`` of every level's current window (target already advanced).
        target: level denoised by this step.
        chunk_frames: ``C``.

    Returns:
        int8 ``(num_levels, chunk_frames)`` selection.
    """
    sel = np.zeros((len(windows), chunk_frames), dtype=np.int8)
    lo = hi = pointers[0]
    for level, (s, w) in enumerate(zip(pointers, windows, strict=True)):
        if level == target:
            sel[level, s : s + w] = DENOISED
            before = extra[level]
        else:
            # Frames of the current window that lie at or beyond hi (never fewer than 0 or more than w).
            after = min(w, max(0, s + w - max(hi, s)))
            if after and s > hi:
                raise AssertionError(f"gap before level {level}'s window at column {s} (covered up to {hi})")
            sel[level, hi : hi + after] = CONTEXT
            hi += after
            before = w - after
        if lo - before < 0 or hi > chunk_frames:
            # Slicing with a negative start would silently wrap around, so check explicitly.
            raise ValueError(f"millivid layout leaves the chunk at level {level} (windows {tuple(windows)})")
        sel[level, lo - before : lo] = CONTEXT
        lo -= before
    return sel


def millivid(
    windows: Sequence[int],
    extra_budget: int,
    tokens_per_level: Sequence[int],
    name: str = "millivid",
) -> Strategy:
    """Build the MilliVid strategy.

    Tokens per step are ``sum_l w_l * t_l + e_T * t_T``; with ``w_l * t_l`` equal at every level and
    ``E`` divisible by every ``t_l`` this is the constant ``L * w_0 * t_0 + E`` (5 windows for
    ``E = w_0 * t_0``). ``e_l = E // t_l`` (floor, as in the original code).

    Args:
        windows: frames per window at each level, finest first, each a multiple of the finer one
            (paper ``(3, 12, 48, 192)``, CPU ``(1, 4, 16, 64)``).
        extra_budget: ``E``, tokens of extra same-level past context for the target level.
        tokens_per_level: tokens of one frame at each level, finest first.
        name: strategy name.

    Returns:
        The strategy; its sampling group is the target level.
    """
    windows = tuple(int(w) for w in windows)
    tpl = tuple(int(t) for t in tokens_per_level)
    if len(windows) != len(tpl) or min(windows) <= 0:
        raise ValueError(f"need one positive window per level: windows={windows}, tokens_per_level={tpl}")
    for level in range(1, len(windows)):
        if windows[level] % windows[level - 1]:
            raise ValueError(
                f"window {windows[level]} at level {level} is not a multiple of {windows[level - 1]} "
                f"at level {level - 1}; the depth-first refinement needs whole child windows"
            )
    if extra_budget < 0:
        raise ValueError(f"extra_budget must be >= 0, got {extra_budget}")
    extra = tuple(extra_budget // t for t in tpl)
    top = len(windows) - 1
    chunk_frames = sum(windows) + extra[top]
    denoising_start = chunk_frames - windows[top]
    # Before a level is first visited its "current window" is the one just before the denoised
    # range, i.e. the most recent past frames; visiting advances the pointer by one window.
    pointers = [denoising_start - w for w in windows]
    steps = []
    for target in _visit_order(windows, top):
        pointers[target] += windows[target]
        steps.append(Step(_millivid_step(windows, extra, pointers, target, chunk_frames), group=target))
    return Strategy(name=name, steps=tuple(steps), tokens_per_level=tpl)
