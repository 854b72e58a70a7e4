"""Training samples of the video DiT: exactly the token sets a rollout presents (method.md 5.1).

A sample is drawn as the paper draws it: a layout (one step of the strategy, every sampling group
with the same total probability), then a clip of a training video, then the step's CONTEXT and
DENOISED cells are filled with ground-truth latents. The token table of a step is shared with the
rollout (:func:`models.rollout.tokens.step_tokens`), so training and rollout agree token for token.

**Clip placement.** Every position at which the step's touched columns (its span, at most the chunk
width ``C``) fit inside a video is a valid sample, each equally likely over the whole dataset (a
video is chosen with probability proportional to its number of valid positions). Only a video
shorter than a step's span needs padding (method.md 7.6): it is used once, its first frame at the
span's start; cells past its end are *padding tokens* (masked out of attention and loss), never zero
latents the model would learn to predict.

**Mixture.** With ``mix_streaming = P`` every sample independently comes from the ``streaming``
layout (the env's closed-loop layout) with probability ``P``, else from the main strategy.

**Batching.** Samples of different token counts (streaming sub-steps: 236/240/256/320 tokens for
``loopcraft-64``; short videos) are padded to the longest sample of the batch with the padding mask
(the DiT's attention mask excludes padding keys, the loss excludes padding tokens). This keeps every
batch an i.i.d. draw with the exact layout probabilities, which grouping batches by layout would
not; the price is the padded tokens' compute (about 4 % of the tokens at ``P = 0.25``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.diffusion.batch import TokenBatch
from models.latents import LatentDataset
from models.rollout.tokens import step_tokens
from models.strategies.core import CONTEXT, Strategy
from models.tokens import TokenLayout, get_layout

__all__ = ["Draw", "LayoutSampler"]

MAIN, STREAMING = 0, 1


@dataclass(frozen=True)
class Draw:
    """One drawn training sample.

    Attributes:
        source: 0 = the main strategy, 1 = the streaming layout.
        step: step index inside the source strategy.
        video: position of the video in the sampler's video list.
        offset: absolute frame of chunk column 0 (negative when the step's span starts later).
    """

    source: int
    step: int
    video: int
    offset: int


class LayoutSampler:
    """Draws step layouts and clips and builds :class:`TokenBatch` es of ground-truth latents.

    Args:
        dataset: the latent dataset.
        videos: positions (``0 .. len(dataset) - 1``) of the videos to draw from.
        strategy: the main strategy.
        mix_streaming: probability ``P`` of a streaming-layout sample.
        streaming: the streaming strategy (needed when ``P > 0``).
    """

    def __init__(
        self,
        dataset: LatentDataset,
        videos: Sequence[int],
        strategy: Strategy,
        mix_streaming: float = 0.0,
        streaming: Strategy | None = None,
    ) -> None:
        if not 0.0 <= mix_streaming <= 1.0:
            raise ValueError(f"mix_streaming must lie in [0, 1], got {mix_streaming}")
        if mix_streaming > 0 and streaming is None:
            raise ValueError("mix_streaming > 0 needs the streaming strategy")
        if not videos:
            raise ValueError(f"no videos to draw training samples from in {dataset.root}")
        self.layout: TokenLayout = get_layout(dataset.info["layout"])
        self.strategies = (strategy, streaming)
        self.mix = float(mix_streaming)
        self.latents = [dataset.latents(k) for k in videos]  # memory-mapped float16 (T, N, C)
        self.actions = [dataset.actions(k) for k in videos]
        self.lengths = np.array([len(a) for a in self.latents], dtype=np.int64)
        self._weights: dict[int, np.ndarray] = {}

    def _video_probabilities(self, width: int) -> np.ndarray:
        """Probability of each video for a span of ``width`` frames: its number of valid positions."""
        if width not in self._weights:
            counts = np.maximum(self.lengths - width + 1, 1).astype(np.float64)
            self._weights[width] = counts / counts.sum()
        return self._weights[width]

    def draw(self, rng: np.random.Generator, n: int) -> list[Draw]:
        """Draw ``n`` samples (layout, video, clip position)."""
        sources = (rng.random(n) < self.mix).astype(int) if self.mix > 0 else np.zeros(n, dtype=int)
        draws = []
        for source in sources.tolist():
            strategy = self.strategies[source]
            step = int(strategy.sample_steps(rng, 1)[0])
            lo, hi = strategy.steps[step].span
            video = int(rng.choice(len(self.lengths), p=self._video_probabilities(hi - lo)))
            position = int(rng.integers(0, max(int(self.lengths[video]) - (hi - lo), 0) + 1))
            draws.append(Draw(source, step, video, position - lo))
        return draws

    def tokens(self, draw: Draw) -> dict[str, torch.Tensor]:
        """The tokens of one drawn sample: ``x (N, C)``, ``index (N, 4)``, ``action``, ``role``, ``pad``."""
        table = step_tokens(self.strategies[draw.source], draw.step, self.layout)
        frames = table.columns.numpy() + draw.offset
        length = int(self.lengths[draw.video])
        real = frames < length
        frames = np.minimum(frames, length - 1)
        x = torch.from_numpy(
            np.asarray(self.latents[draw.video][frames, table.positions.numpy()], np.float32)
        )
        action = torch.from_numpy(self.actions[draw.video][frames].astype(np.int64))
        pad = torch.from_numpy(~real)
        return {"x": x, "index": table.index, "action": action, "role": table.role, "pad": pad}

    def collate(self, draws: Sequence[Draw]) -> TokenBatch:
        """Build the batch of ``draws``, padded to the longest sample (see the module docstring)."""
        samples = [self.tokens(d) for d in draws]
        n = max(len(s["role"]) for s in samples)
        b, c = len(samples), samples[0]["x"].shape[1]
        x = torch.zeros(b, n, c)
        index = torch.zeros(b, n, 4, dtype=torch.long)
        action = torch.zeros(b, n, dtype=torch.long)
        role = torch.full((b, n), CONTEXT, dtype=torch.long)
        pad = torch.ones(b, n, dtype=torch.bool)
        for i, s in enumerate(samples):
            k = len(s["role"])
            x[i, :k], index[i, :k], action[i, :k], role[i, :k], pad[i, :k] = (
                s["x"], s["index"], s["action"], s["role"], s["pad"]
            )  # fmt: skip
        return TokenBatch(x=x, index=index, action=action, role=role, pad=pad if bool(pad.any()) else None)

    def batch(self, rng: np.random.Generator, n: int) -> tuple[TokenBatch, list[Draw]]:
        """Draw and build a batch of ``n`` samples."""
        draws = self.draw(rng, n)
        return self.collate(draws), draws

    def fixed_batches(self, seed: int, samples: int, batch_size: int) -> list[TokenBatch]:
        """Held-out batches drawn once with ``seed`` (the same samples at every evaluation)."""
        draws = self.draw(np.random.default_rng(seed), samples)
        return [self.collate(draws[i : i + batch_size]) for i in range(0, len(draws), batch_size)]
