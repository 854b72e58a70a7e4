"""Comparable strategies at one token budget, and the presets of both token layouts.

For a budget ``B = 5 * k * t_0`` (``t_l`` = tokens per frame at level ``l``):

- ``millivid``: windows ``w_l = k * t_0 / t_l`` (one window costs ``k * t_0`` tokens at every level),
  ``E = k * t_0`` -> exactly ``B`` tokens in every step.
- ``framepack``: ``d = k`` denoised frames at all levels; past context = one millivid window at
  every level but the coarsest, and the coarsest level takes all remaining tokens (the most past
  frames that fit, pad-free whenever the remainder divides by ``t_{L-1}``).
- ``streaming``: the same packing with ``d = 1`` (the env steps one frame), denoised coarse to fine
  in ``L`` sub-steps; its finest sub-step costs up to ``B``, the coarser ones less.
- ``full-resolution``: the largest even number of level-0 frames within ``B``, half context.

The token counts are duplicated from :mod:`models.tokens` (which needs torch) so that this package
stays importable with numpy alone; a test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.strategies.core import Strategy
from models.strategies.framepack import framepack, full_resolution, streaming
from models.strategies.millivid import millivid

TOKENS_PER_LEVEL: dict[str, tuple[int, ...]] = {
    "loopcraft-64": (64, 16, 4, 1),
    "paper-256": (256, 64, 16, 4),
}
BUDGETS: dict[str, int] = {"loopcraft-64": 320, "paper-256": 3840}


def _packed_context(budget: int, tpl: Sequence[int], windows: Sequence[int], denoised_frames: int) -> tuple:
    """Context frames per level: millivid windows below the coarsest level, the rest at the coarsest."""
    left = (
        budget - denoised_frames * sum(tpl) - sum(w * t for w, t in zip(windows[:-1], tpl[:-1], strict=True))
    )
    if left < 0:
        raise ValueError(
            f"budget {budget} cannot hold {denoised_frames} denoised frame(s) plus the fine context windows"
        )
    return (*windows[:-1], left // tpl[-1])


def comparable_strategies(budget: int, tokens_per_level: Sequence[int]) -> dict[str, Strategy]:
    """Build millivid, framepack, streaming and full-resolution at the same token budget.

    Args:
        budget: tokens per step ``B``; must be a multiple of ``5 * t_0`` for millivid to be exact.
        tokens_per_level: tokens of one frame at each level, finest first; each must divide ``t_0``.

    Returns:
        ``{"millivid", "framepack", "streaming", "full-resolution"}`` -> strategy.
    """
    tpl = tuple(int(t) for t in tokens_per_level)
    num_levels = len(tpl)
    base = tpl[0]
    if budget <= 0 or budget % ((num_levels + 1) * base):
        raise ValueError(
            f"budget {budget} must be a positive multiple of {(num_levels + 1) * base} "
            f"({num_levels + 1} windows of level-0 frames at {base} tokens) for millivid to use it exactly"
        )
    if any(base % t for t in tpl):
        raise ValueError(f"tokens per level {tpl} must all divide the level-0 count {base}")
    k = budget // ((num_levels + 1) * base)
    windows = tuple(k * base // t for t in tpl)
    return {
        "millivid": millivid(windows, k * base, tpl),
        "framepack": framepack(k, _packed_context(budget, tpl, windows, k), tpl),
        "streaming": streaming(1, _packed_context(budget, tpl, windows, 1), tpl),
        # Largest even level-0 frame count within the budget.
        "full-resolution": full_resolution(budget // base // 2 * 2, tpl),
    }


STRATEGY_PRESETS: dict[str, dict[str, Strategy]] = {
    layout: comparable_strategies(BUDGETS[layout], tpl) for layout, tpl in TOKENS_PER_LEVEL.items()
}


def get_strategy(layout: str, name: str) -> Strategy:
    """Look up a preset strategy, naming the valid choices on error."""
    if layout not in STRATEGY_PRESETS:
        raise ValueError(f"unknown token layout {layout!r}; valid layouts: {', '.join(STRATEGY_PRESETS)}")
    presets = STRATEGY_PRESETS[layout]
    if name not in presets:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {', '.join(presets)}")
    return presets[name]
