"""Readable step tables (as in method.md §5.5) for docs and debugging.

Ranges are printed inclusive (``252-254`` = frames 252, 253, 254) like method.md's tables.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from models.strategies.core import CONTEXT, DENOISED, Strategy, runs
from models.strategies.rollout import RolloutPlan


def format_ranges(columns: np.ndarray, offset: int = 0) -> str:
    """``"252-254, 258-266"`` for the runs of ``columns + offset`` (inclusive ends)."""
    return ", ".join(f"{a}-{b - 1}" if b - a > 1 else f"{a}" for a, b in runs(np.asarray(columns) + offset))


def _target(selection: np.ndarray) -> str:
    levels = np.flatnonzero((selection == DENOISED).any(axis=1))
    if len(levels) == selection.shape[0] and selection.shape[0] > 1:
        return "all"
    return "+".join(f"L{lv}" for lv in levels)


def _cell(row: np.ndarray, offset: int) -> str:
    parts = []
    den = np.flatnonzero(row == DENOISED)
    ctx = np.flatnonzero(row == CONTEXT)
    if den.size:
        parts.append(f"**den {format_ranges(den, offset)}**")
    if ctx.size:
        parts.append(f"ctx {format_ranges(ctx, offset)}")
    return ", ".join(parts) or "-"


def _table(strategy: Strategy, rows: Iterable[tuple[str, int, int]]) -> list[str]:
    """Markdown rows for ``(label, step index, offset)`` triples."""
    levels = range(strategy.num_levels)
    lines = [
        "| step | target | " + " | ".join(f"L{lv}" for lv in levels) + " | tokens |",
        "|---|---|" + "---|" * strategy.num_levels + "---|",
    ]
    for label, index, offset in rows:
        sel = strategy.steps[index].selection
        cells = " | ".join(_cell(sel[lv], offset) for lv in levels)
        lines.append(f"| {label} | {_target(sel)} | {cells} | {strategy.step_tokens[index]} |")
    return lines


def _header(strategy: Strategy) -> str:
    tokens = sorted(set(strategy.step_tokens))
    shown = str(tokens[0]) if len(tokens) == 1 else f"{'/'.join(map(str, tokens))} (max {tokens[-1]})"
    return (
        f"{strategy.name}: chunk {strategy.chunk_frames} frames, denoising start {strategy.denoising_start}, "
        f"{strategy.new_frames} new frames and {strategy.num_steps} steps per chunk, {shown} tokens per "
        f"step, reach {strategy.reach} past frames, tokens per level {strategy.tokens_per_level}"
    )


def describe(strategy: Strategy, steps: Iterable[int] | None = None) -> str:
    """Relative step table of one chunk (frames = chunk columns).

    Args:
        strategy: the strategy.
        steps: step indices to show (default: all).

    Returns:
        A header line and a markdown table.
    """
    indices = range(strategy.num_steps) if steps is None else steps
    return "\n".join([_header(strategy), "", *_table(strategy, ((str(i), i, 0) for i in indices))])


def describe_rollout(plan: RolloutPlan, steps: Iterable[int] | None = None) -> str:
    """Absolute step table of a rollout (like method.md's worked example).

    Args:
        plan: from :meth:`Strategy.rollout`.
        steps: global step indices to show (default: all).

    Returns:
        A header line and a markdown table.
    """
    strategy = plan.strategy
    indices = range(plan.num_steps) if steps is None else steps
    rows = []
    for i in indices:
        chunk, local = divmod(i, strategy.num_steps)
        rows.append((f"{i} (chunk {chunk})", local, plan.offsets[chunk]))
    head = (
        f"rollout of {strategy.name}: frames [{plan.start}, {plan.end}), {plan.num_chunks} chunks, "
        f"{plan.num_steps} steps, reads from frame {plan.first_frame}, buffer limit {plan.limit}"
    )
    return "\n".join([head, "", *_table(strategy, rows)])
