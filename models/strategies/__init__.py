"""Rollout strategies as data: step tables, rollout placement, presets (pure numpy).

See ``docs/strategies.md`` and method.md §5. Typical use::

    from models.strategies import get_strategy, describe

    strategy = get_strategy("loopcraft-64", "millivid")
    for step in strategy.rollout(start=128, end=512):
        frames, levels = step.denoised  # absolute cells to generate in this step
"""

from models.strategies.core import CONTEXT, DENOISED, UNSEEN, Step, Strategy, runs
from models.strategies.describe import describe, describe_rollout, format_ranges
from models.strategies.framepack import framepack, full_resolution, streaming
from models.strategies.millivid import millivid
from models.strategies.presets import (
    BUDGETS,
    STRATEGY_PRESETS,
    TOKENS_PER_LEVEL,
    comparable_strategies,
    get_strategy,
)
from models.strategies.rollout import RolloutPlan, RolloutStep, plan_rollout

__all__ = [
    "BUDGETS",
    "CONTEXT",
    "DENOISED",
    "STRATEGY_PRESETS",
    "TOKENS_PER_LEVEL",
    "UNSEEN",
    "RolloutPlan",
    "RolloutStep",
    "Step",
    "Strategy",
    "comparable_strategies",
    "describe",
    "describe_rollout",
    "format_ranges",
    "framepack",
    "full_resolution",
    "get_strategy",
    "millivid",
    "plan_rollout",
    "runs",
    "streaming",
]
