"""millivid-env: a learned simulator of the Loopcraft voxel world, exposed as Gymnasium environments.

Importing this package registers the environment ids (Gymnasium 1.x has no plugin autoload).
It stays cheap on purpose: registration uses string entry points, so torch is imported only
when a model-backed environment is actually made.

    >>> import gymnasium as gym
    >>> import millivid_env
    >>> env = gym.make("Loopcraft-v0", render_mode="rgb_array")
"""

from __future__ import annotations

from millivid_env.registration import register_envs

__version__ = "0.1.0"
__all__ = ["__version__", "register_envs"]

register_envs()
