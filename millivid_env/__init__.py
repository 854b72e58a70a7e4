"""millivid-env: a learned simulator of the Loopcraft voxel world, exposed as Gymnasium environments.

Importing this package registers the environment ids (Gymnasium 1.x has no plugin autoload).
It stays cheap on purpose: registration uses string entry points, so torch is imported only
when a model-backed environment is actually made.

    >>> import gymnasium as gym
    >>> import millivid_env
    >>> env = gym.make("Loopcraft-v0", render_mode="rgb_array")

It also asks MKL (torch's CPU BLAS) for strict conditional numerical reproducibility unless
``MKL_CBWR`` is already set: MKL otherwise computes a matrix product with few rows with other kernels
than one with many, so a world-model stream would get last-bit different frames alone than inside a
batched vector env. MKL reads the variable at its first use, so import this package before torch
computes anything (set ``MKL_CBWR=AUTO`` to opt out).
"""

from __future__ import annotations

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from millivid_env.registration import register_envs  # noqa: E402

__version__ = "0.1.0"
__all__ = ["__version__", "register_envs"]

register_envs()
