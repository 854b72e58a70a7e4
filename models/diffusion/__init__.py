"""Video diffusion: noise schedule, video DiT with a context cache, sampler, loss, FLOP counts.

Typical use::

    from models.diffusion import TokenBatch, VideoDiT, dit_config, diffusion_loss, sample

    model = VideoDiT(dit_config("cpu"))
    loss = diffusion_loss(model, batch, generator=gen)  # training
    x = sample(model.eval(), batch, steps=8, generator=gen)  # one rollout step
"""

from models.diffusion.attention import ContextAttention, ContextDiTBlock, attention_mask, frame_causal_mask
from models.diffusion.batch import TokenBatch, cell_tokens
from models.diffusion.config import DIT_SIZES, DiTConfig, dit_config
from models.diffusion.dit import ContextCache, VideoDiT
from models.diffusion.loss import diffusion_loss
from models.diffusion.perf import count_flops, count_sample_flops, flop_counter, time_sample, time_sampling
from models.diffusion.sampler import ContextReuse, sample
from models.diffusion.schedule import CosineSchedule

__all__ = [
    "ContextReuse",
    "DIT_SIZES",
    "ContextAttention",
    "ContextCache",
    "ContextDiTBlock",
    "CosineSchedule",
    "DiTConfig",
    "TokenBatch",
    "VideoDiT",
    "attention_mask",
    "frame_causal_mask",
    "cell_tokens",
    "count_flops",
    "count_sample_flops",
    "diffusion_loss",
    "flop_counter",
    "dit_config",
    "sample",
    "time_sample",
    "time_sampling",
]
