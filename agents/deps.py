"""Optional dependencies of the agent commands, with the pip extra to install in the error."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import gymnasium as gym

__all__ = ["has_tensorboard", "require_sb3"]


def require_sb3() -> ModuleType:
    """The ``stable_baselines3`` module, or `DependencyNotInstalled` naming the ``agents`` extra."""
    try:
        return importlib.import_module("stable_baselines3")
    except ImportError as error:
        raise gym.error.DependencyNotInstalled(
            'stable-baselines3 is not installed; run `pip install "millivid-env[agents]"` to train or '
            "evaluate agents"
        ) from error


def has_tensorboard() -> bool:
    """Whether TensorBoard logging is available (``tensorboard`` is part of the ``agents`` extra)."""
    return importlib.util.find_spec("tensorboard") is not None
