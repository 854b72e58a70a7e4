"""The table of environment ids. Entry points are strings so that registering imports no torch."""

from __future__ import annotations

import gymnasium as gym

#: Episode length of the ground-truth world env; long enough for the 512-frame evaluation videos.
LOOPCRAFT_MAX_EPISODE_STEPS = 1024
#: Episode length of the world-model envs: the CPU evaluation protocol generates 384 frames after its
#: context, so 512 covers it with room to spare (imagined episodes drift; longer ones are a choice).
MILLIVID_MAX_EPISODE_STEPS = 512

#: World-model ids -> constructor kwargs. A change that alters frames (checkpoint, sampler, resolution)
#: needs a new id or a version bump (README "Environment Versioning").
MILLIVID_VARIANTS: dict[str, dict[str, object]] = {
    "MilliVid-Loopcraft-v0": {
        "checkpoint": "loopcraft-64-millivid",
        "autoencoder": "loopcraft-64",
        "sampling_steps": 8,
    },
    "MilliVid-Loopcraft-Fast-v0": {
        "checkpoint": "loopcraft-64-millivid",
        "autoencoder": "loopcraft-64",
        "sampling_steps": 4,
    },
}


def register_envs() -> None:
    """Register every millivid-env id with Gymnasium (idempotent)."""
    if "Loopcraft-v0" not in gym.registry:
        gym.register(
            id="Loopcraft-v0",
            entry_point="millivid_env.loopcraft.env:LoopcraftEnv",
            max_episode_steps=LOOPCRAFT_MAX_EPISODE_STEPS,
        )
    for env_id, kwargs in MILLIVID_VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="millivid_env.world_model_env:MilliVidEnv",
                vector_entry_point="millivid_env.world_model_vector_env:MilliVidVectorEnv",
                max_episode_steps=MILLIVID_MAX_EPISODE_STEPS,
                kwargs=dict(kwargs),
            )
