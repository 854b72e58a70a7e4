"""Rollouts of the video diffusion model over a latent buffer.

* :mod:`models.rollout.open_loop` - the paper's open-loop protocol (known future actions): every step
  of a strategy's rollout plan, batched over videos; :func:`imagine` goes frames -> frames.
* :mod:`models.rollout.tokens` - the token table of a strategy step (shared with training) and the
  action padding of method.md section 7.6.
* :mod:`models.rollout.streaming` - the env's closed-loop next-frame step (import it from there).
"""

from models.rollout.open_loop import imagine, resolve_strategy, rollout_latents
from models.rollout.tokens import StepTokens, pad_actions, step_tokens

# The streaming step (models/rollout/streaming.py) is exported here once it is stable:
# from models.rollout.streaming import StreamingPlan, generate_next_frame

__all__ = ["StepTokens", "imagine", "pad_actions", "resolve_strategy", "rollout_latents", "step_tokens"]
