"""Which bundled autoencoder decodes generated frames by default (torch-free: env registration reads it).

Both bundled autoencoders of ``loopcraft-64`` share one encoder, bit for bit, so they give the same
latents and every diffusion model and reward head works with either. Their decoders differ:
``loopcraft-64`` reconstructs true frames best (28.3 dB at level 0), while ``loopcraft-64-perceptual``,
trained with a ten times stronger perceptual term, decodes the world model's *generated* latents
perceptually closer to the truth (measured in the env: ST-LPIPS 0.009 lower, paired over 16 test loops;
see its model card). So the tools that show generated frames (the envs, ``millivid evaluate``,
``rollout`` and ``demo``) default to the latter.
"""

from __future__ import annotations

#: Token layout -> the bundled autoencoder that decodes generated latents.
SIMULATOR_AUTOENCODERS: dict[str, str] = {"loopcraft-64": "loopcraft-64-perceptual"}


def simulator_autoencoder(layout: str) -> str:
    """The default autoencoder for generated frames of ``layout`` (its own name when none is set)."""
    return SIMULATOR_AUTOENCODERS.get(layout, layout)
