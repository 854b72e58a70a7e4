"""The table of environment ids. Entry points are strings so that registering imports no torch."""

from __future__ import annotations

import gymnasium as gym

from models.defaults import simulator_autoencoder

#: Episode length of the ground-truth world env; long enough for the 512-frame evaluation videos.
LOOPCRAFT_MAX_EPISODE_STEPS = 1024
#: Episode length of the world-model envs: the CPU evaluation protocol generates 384 frames after its
#: context, so 512 covers it with room to spare (imagined episodes drift; longer ones are a choice).
MILLIVID_MAX_EPISODE_STEPS = 512
#: Episode length of the landmark task (real and imagined): a start is 25-70 straight forward steps
#: from a landmark, so 200 leaves room for turning and detours while keeping a random policy's success
#: rate low (about 20%, docs/agents.md).
LANDMARK_MAX_EPISODE_STEPS = 200

#: Diffusion checkpoint of the world-model envs: the bundled millivid model.
ENV_CHECKPOINT = "loopcraft-64-millivid"
#: Diffusion checkpoint of the ``-Fast-`` env: the millivid model fine-tuned to frame-causal context
#: attention, so that the streaming step encodes the past once per frame instead of once per level
#: (faster; lower quality, measured in README "The learned simulator").
FAST_CHECKPOINT = "loopcraft-64-millivid-framecausal"

#: The action warp of the world-model envs: frames are copied by construction (`models.warp`): the
#: previous frame moved by the action, remembered views rotated and walked into the new pose, and the
#: diffusion model's frame only where nothing seen explains a pixel.
WARP_CHECKPOINT = "loopcraft-64-warp"

#: The current id of each world-model env (what docs, examples and the bench use).
DEFAULT_ENV_ID = "MilliVid-Loopcraft-v4"
FAST_ENV_ID = "MilliVid-Loopcraft-Fast-v4"
LANDMARK_ENV_ID = "MilliVid-Loopcraft-Landmark-v4"
#: The same task judged on a map of the context's landmarks instead of a head on each frame.
LANDMARK_MAP_ENV_ID = "MilliVid-Loopcraft-LandmarkMap-v4"

#: World-model ids -> constructor kwargs. A change that alters frames (checkpoint, sampler, resolution)
#: needs a new id or a version bump (README "Environment Versioning"); `gym.make` of a version that is
#: no longer registered raises Gymnasium's `DeprecatedEnv` naming the current one. The sampler skips
#: the evaluation at noise time 0 (`sampler_endpoint=False`): 7 evaluations on the grid of 8, 3 on
#: the grid of 4 (the skipped one moves the latents by less than 1e-3). The remembered latents are shown
#: to the model at noise time 0.25 (`context_noise`; the models were trained with context noise up to
#: 0.3): measured closer to the true frames (docs/results/env-quality/report.md). Frames are decoded by
#: `loopcraft-64-perceptual` (`models.defaults`: the decoder measured best on generated latents).
_V1 = {
    "autoencoder": simulator_autoencoder("loopcraft-64"),
    "sampler_endpoint": False,
    "context_noise": 0.25,
    "guidance_scale": 1.0,
    "warp": WARP_CHECKPOINT,
    # Where nothing seen explains a pixel, the model's level-2 frame (4 tokens) fills it: over 16 test
    # loops closer to the truth than its level-0 frame in every 32-step bucket (docs/results/faithful-frames).
    "decode_level": 2,
}
MILLIVID_VARIANTS: dict[str, dict[str, object]] = {
    DEFAULT_ENV_ID: {**_V1, "checkpoint": ENV_CHECKPOINT, "sampling_steps": 7},
    FAST_ENV_ID: {**_V1, "checkpoint": FAST_CHECKPOINT, "sampling_steps": 3},
}

#: World-model task ids -> constructor kwargs: reward and termination come from a reward head on the
#: model's latents (`models.reward_head`) or, for `-LandmarkMap-`, from the landmark map of the real
#: context frames and the dead-reckoned pose (`millivid_env.landmark_map`; agents trained there
#: transfer to the real world, docs/results/landmark-map). Kept apart from `MILLIVID_VARIANTS` (other
#: episode length).
MILLIVID_TASK_VARIANTS: dict[str, dict[str, object]] = {
    LANDMARK_ENV_ID: {
        **_V1,
        "checkpoint": ENV_CHECKPOINT,
        "sampling_steps": 3,
        "reward_head": "loopcraft-64-landmark",
    },
    LANDMARK_MAP_ENV_ID: {
        **_V1,
        "checkpoint": ENV_CHECKPOINT,
        "sampling_steps": 3,
        "landmark_locator": "loopcraft-64-locator",
    },
}

#: The kwargs of a variant that set how frames are sampled (not which models).
SAMPLER_KWARGS = ("sampling_steps", "sampler_endpoint", "context_noise", "guidance_scale")


def sampler_options(env_id: str) -> dict[str, object]:
    """The sampler kwargs of a registered world-model id (:data:`SAMPLER_KWARGS`)."""
    variant = {**MILLIVID_VARIANTS, **MILLIVID_TASK_VARIANTS}[env_id]
    return {k: variant[k] for k in SAMPLER_KWARGS}


def register_envs() -> None:
    """Register every millivid-env id with Gymnasium (idempotent)."""
    if "Loopcraft-v0" not in gym.registry:
        gym.register(
            id="Loopcraft-v0",
            entry_point="millivid_env.loopcraft.env:LoopcraftEnv",
            max_episode_steps=LOOPCRAFT_MAX_EPISODE_STEPS,
        )
    if "Loopcraft-Landmark-v0" not in gym.registry:
        gym.register(
            id="Loopcraft-Landmark-v0",
            entry_point="millivid_env.loopcraft.landmark_env:LoopcraftLandmarkEnv",
            max_episode_steps=LANDMARK_MAX_EPISODE_STEPS,
        )
    variants = [(MILLIVID_VARIANTS, MILLIVID_MAX_EPISODE_STEPS)]
    variants.append((MILLIVID_TASK_VARIANTS, LANDMARK_MAX_EPISODE_STEPS))
    for table, max_steps in variants:
        for env_id, kwargs in table.items():
            if env_id not in gym.registry:
                gym.register(
                    id=env_id,
                    entry_point="millivid_env.world_model_env:MilliVidEnv",
                    vector_entry_point="millivid_env.world_model_vector_env:MilliVidVectorEnv",
                    max_episode_steps=max_steps,
                    kwargs=dict(kwargs),
                )
