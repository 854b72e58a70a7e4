"""Video diffusion transformer over hierarchical tokens (DESIGN section 5, method.md section 3.3).

Tokens: ``Linear(C -> D)`` of the latent + a 3-D sin/cos code of ``(relative frame, h, w)`` (frames
renumbered from the earliest real token of each sample, h/w level-local; the level is not in the
code). Per-token adaLN condition ``c = TimeEmbed(t) + LevelEmbed(level) + ActionEmbed(action)``, the
action embedding replaced by zero for samples flagged unconditional (classifier-free guidance).
Blocks: adaLN-Zero with context-causal attention (see :mod:`models.diffusion.attention`); output:
adaLN-modulated LayerNorm and a zero-initialised ``Linear(D -> C)``, a v-prediction per token.

Two ways to run it, equal up to float rounding:

* :meth:`VideoDiT.forward` - every token at once with the boolean attention mask (training);
* :meth:`VideoDiT.encode_context` once, then :meth:`VideoDiT.forward_denoised` per denoising
  evaluation (sampling with a cache of the context keys/values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.diffusion.attention import (
    Conditioning,
    ContextDiTBlock,
    attention_mask,
    frame_causal_mask,
    scale_shift,
)
from models.diffusion.config import DIT_SIZES, DiTConfig, dit_config
from models.diffusion.schedule import CosineSchedule
from models.layers import TimestepEmbedding, init_linear_xavier, sincos_embedding

__all__ = ["DIT_SIZES", "ContextCache", "DiTConfig", "VideoDiT", "dit_config"]

#: ``DiTConfig.gelu`` -> ``F.gelu``'s ``approximate``.
_GELU_APPROXIMATE = {"tanh": "tanh", "exact": "none"}


#: Rows (samples x tokens) of one micro-batch of the cached passes (context and denoising) on the CPU.
#: Beyond about a thousand rows the ``(rows, width)`` activations of the cpu-size model stop fitting in
#: the core's cache and its matrix products drop from ~90% to ~70% of the matmul peak. Splitting the
#: batch keeps each sample's tokens together, so the results are the same up to float rounding (the
#: frames of batched env steps were bitwise equal); a batched step of 32 envs took 14-18% less CPU
#: time (8 envs: the same; BENCHMARKS.md).
CPU_CONTEXT_ROWS = 1024


def _micro_batch(x: torch.Tensor) -> int:
    """Samples per micro-batch of a cached pass (context or denoised) over ``x (B, N, C)``.

    All of them unless on the CPU without gradients (training keeps one graph; GPUs want the largest
    products).
    """
    batch, tokens = x.shape[:2]
    if x.device.type != "cpu" or torch.is_grad_enabled() or tokens == 0:
        return batch
    return max(1, min(batch, CPU_CONTEXT_ROWS // tokens))


@dataclass
class ContextCache:
    """Keys/values of the context tokens at every block, valid for one rollout step.

    Attributes:
        keys: per block ``(B, heads, Nc + reserve, D / heads)``; the first ``Nc`` rows are the context
            keys, the rest is scratch space for the denoised tokens' keys.
        values: per block, same shape.
        origin: int64 ``(B,)`` frame subtracted to make frames relative (shared with the denoised
            tokens of the same step).
        length: number of context tokens ``Nc``.
        frames: int64 ``(B, Nc)`` frame of every context token (for frame-causal extension).
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    origin: torch.Tensor
    length: int
    frames: torch.Tensor

    def rows(self, rows: slice) -> ContextCache:
        """The cache of samples ``rows`` (views: writes into the key/value buffers are shared)."""
        keys = [k[rows] for k in self.keys]
        values = [v[rows] for v in self.values]
        return ContextCache(keys, values, self.origin[rows], self.length, self.frames[rows])


class VideoDiT(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="millivid-env",
    tags=["millivid", "video-diffusion", "world-model"],
    license="mit",
):
    """Video DiT with per-token adaLN and context-causal attention; predicts v.

    Args:
        config: the architecture (a :class:`DiTConfig` or its dict from ``config.json``).
    """

    def __init__(self, config: DiTConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):  # as read back from config.json
            config = DiTConfig(**config)
        self.config = config
        d, c = config.width, config.latent_channels
        self.in_proj = nn.Linear(c, d)  # PyTorch default init, as the paper's input projection
        self.time_embed = TimestepEmbedding(d)  # weights N(0, 0.02)
        self.level_embed = nn.Embedding(config.num_levels, d)
        self.action_embed = nn.Embedding(config.num_actions, d)
        self.blocks = nn.ModuleList(
            ContextDiTBlock(d, config.heads, config.mlp_ratio, _GELU_APPROXIMATE[config.gelu])
            for _ in range(config.depth)
        )
        init_linear_xavier(self.blocks)  # leaves the zero-initialised adaLN projections at zero
        self.head_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.head_ada = nn.Linear(d, 2 * d)
        self.head = nn.Linear(d, c)
        for layer in (self.head_ada, self.head):  # zero output at init: v_hat = 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def schedule(self) -> CosineSchedule:
        """The noise schedule the model is trained with."""
        return CosineSchedule(shift=self.config.schedule_shift)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.in_proj.weight.device

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def frame_origin(index: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Earliest frame of the real tokens of each sample, int64 ``(B,)``."""
        frames = index[..., 0]
        if pad is not None:
            frames = frames.masked_fill(pad, torch.iinfo(frames.dtype).max)
        return frames.min(dim=1).values

    def embed(self, x: torch.Tensor, index: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        """Token features ``(B, N, D)`` from latents ``(B, N, C)`` and index ``(B, N, 4)``."""
        coords = torch.stack([index[..., 0] - origin[:, None], index[..., 2], index[..., 3]], dim=-1)
        pos = sincos_embedding(coords, self.config.width)
        return self.in_proj(x) + pos.to(x.dtype)

    def condition(
        self, t: torch.Tensor, level: torch.Tensor, action: torch.Tensor, uncond: torch.Tensor | None
    ) -> Conditioning:
        """Per-token condition ``c``, computed once per distinct ``(t, level, action)``.

        Args:
            t: float ``(B, N)`` noise times.
            level: int64 ``(B, N)`` levels.
            action: int64 ``(B, N)`` action ids.
            uncond: optional bool ``(B,)``: True zeroes the action embedding of the whole sample.

        Returns:
            The :class:`~models.diffusion.attention.Conditioning` of the ``(B, N)`` tokens.
        """
        if uncond is not None:
            action = action.masked_fill(uncond[:, None], -1)  # -1: no action embedding
        shape = t.shape
        if shape[1] > 1 and all(bool((x == x[:, :1]).all()) for x in (t, level, action)):
            # One condition per sample: the same distinct rows as from all tokens, one column.
            t, level, action = t[:, :1], level[:, :1], action[:, :1]
            shape = (shape[0], 1)
        key = torch.stack([t.double(), level.double(), action.double()], dim=-1).flatten(0, 1)
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        act = unique[:, 2].long()
        has_action = (act >= 0).unsqueeze(-1)
        vectors = (
            self.time_embed(unique[:, 0].float())
            + self.level_embed(unique[:, 1].long())
            + self.action_embed(act.clamp(min=0)) * has_action
        )
        return Conditioning(vectors, inverse.view(shape))

    def _output(self, h: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        shift, factor = cond.modulation(self.head_ada, 2, scales=(1,))
        return self.head(scale_shift(self.head_norm(h), factor, shift)).float()

    # ------------------------------------------------------------------ passes
    def forward(
        self,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        role: torch.Tensor,
        uncond: torch.Tensor | None = None,
        pad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict v for every token, all tokens at once (context-causal mask).

        Args:
            x: ``(B, N, C)`` noisy latents ``x_t``.
            index: int64 ``(B, N, 4)`` ``frame, level, h, w`` (absolute or relative frames).
            t: float ``(B, N)`` per-token noise time.
            action: int64 ``(B, N)`` action id of each token's frame.
            role: ``(B, N)`` ``CONTEXT`` / ``DENOISED``.
            uncond: optional bool ``(B,)`` samples without action conditioning.
            pad: optional bool ``(B, N)`` padding tokens (their outputs are meaningless).

        Returns:
            float32 ``(B, N, C)`` v predictions.
        """
        level = index[..., 1]
        if pad is not None:
            # Padding may carry any values: keep lookups in range and values finite (a masked NaN
            # value would still poison attention, since 0 * NaN = NaN).
            level, action = level.masked_fill(pad, 0), action.masked_fill(pad, 0)
            x, t = x.masked_fill(pad.unsqueeze(-1), 0.0), t.masked_fill(pad, 0.0)
        cond = self.condition(t, level, action, uncond)
        h = self.embed(x, index, self.frame_origin(index, pad))
        mask = attention_mask(role, pad, index[..., 0] if self.config.frame_causal else None)
        for block in self.blocks:
            h = block(h, cond, mask)
        return self._output(h, cond)

    def encode_context(
        self,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        origin: torch.Tensor,
        uncond: torch.Tensor | None = None,
        reserve: int = 0,
        prefix: ContextCache | None = None,
    ) -> ContextCache:
        """Run the context tokens alone and keep every block's keys/values.

        Args:
            x: ``(B, Nc, C)`` context latents as the model sees them (``x_t`` at the context time).
            index: int64 ``(B, Nc, 4)``.
            t: float ``(B, Nc)`` context times.
            action: int64 ``(B, Nc)``.
            origin: int64 ``(B,)`` frame origin of the *whole* step (see :meth:`frame_origin`).
            uncond: optional bool ``(B,)``.
            reserve: number of denoised tokens ``Nd`` to leave room for in the key/value buffers.
            prefix: frame-causal models only: the cache of context tokens of *earlier* frames,
                encoded before (same batch, origin and ``uncond``); ``x`` then holds only the newer
                context tokens, which attend to the prefix and to each other. The prefix is not
                modified.

        Returns:
            The cache for :meth:`forward_denoised` (prefix tokens first when a prefix is given).

        Raises:
            ValueError: a prefix with a bidirectional model, another origin, or context tokens of
                frames not after every prefix frame (the prefix would have attended to them).
        """
        frames = index[..., 0]
        mask = frame_causal_mask(frames, frames) if self.config.frame_causal else None
        pre: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.blocks)
        if prefix is not None:
            if not self.config.frame_causal:
                raise ValueError(
                    "a context prefix needs a frame-causal model (context_attention='frame-causal'); this "
                    "model's context attends bidirectionally, so earlier context depends on newer context"
                )
            if not torch.equal(prefix.origin, origin):
                raise ValueError("the context prefix was encoded with another frame origin")
            if frames.numel() and bool((frames.min(dim=1).values <= prefix.frames.max(dim=1).values).any()):
                raise ValueError(
                    "context tokens added to a prefix must all be of later frames than the prefix's tokens"
                )
            n = prefix.length
            pre = [(k[:, :, :n], v[:, :, :n]) for k, v in zip(prefix.keys, prefix.values, strict=True)]
            every = torch.cat([prefix.frames, frames], dim=1)
            mask, frames = frame_causal_mask(frames, every), every
        keys, values = [], []
        if x.shape[1] == 0:  # nothing new: the prefix alone, copied into a buffer with room if asked
            for k, v in pre:  # type: ignore[misc]
                room = (*k.shape[:2], reserve, k.shape[3])
                keys.append(torch.cat([k, k.new_empty(room)], dim=2) if reserve else k)
                values.append(torch.cat([v, v.new_empty(room)], dim=2) if reserve else v)
        else:
            batch = x.shape[0]
            step = _micro_batch(x)
            for start in range(0, batch, step):
                rows = slice(start, start + step)
                part = [p if p is None else (p[0][rows], p[1][rows]) for p in pre]
                out = [(k[rows], v[rows]) for k, v in zip(keys, values, strict=True)] if keys else None
                part_keys, part_values = self._context_blocks(
                    x[rows],
                    index[rows],
                    t[rows],
                    action[rows],
                    origin[rows],
                    None if uncond is None else uncond[rows],
                    None if mask is None else mask[rows],
                    part,
                    reserve,
                    out,
                )
                if step >= batch:  # one pass: its buffers are the cache
                    keys, values = part_keys, part_values
                elif not keys:  # batch-wide buffers shaped after the first micro-batch, which is copied in
                    for k, v in zip(part_keys, part_values, strict=True):
                        keys.append(k.new_empty(batch, *k.shape[1:]))
                        values.append(v.new_empty(batch, *v.shape[1:]))
                        keys[-1][rows], values[-1][rows] = k, v
        n = frames.shape[1]
        return ContextCache(keys, values, origin, n, frames)

    def _context_blocks(
        self,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        origin: torch.Tensor,
        uncond: torch.Tensor | None,
        mask: torch.Tensor | None,
        prefix: list[tuple[torch.Tensor, torch.Tensor] | None],
        reserve: int,
        out: list[tuple[torch.Tensor, torch.Tensor]] | None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every block's context keys/values of ``x (b, Nc, C)`` (see :meth:`encode_context`)."""
        cond = self.condition(t, index[..., 1], action, uncond)
        h = self.embed(x, index, origin)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            h, k, v = block.forward_context(
                h, cond, last, mask, prefix[i], reserve, None if out is None else out[i]
            )
            keys.append(k)
            values.append(v)
        return keys, values

    def forward_denoised(
        self,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        cache: ContextCache,
        uncond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict v for the denoised tokens of a step whose context is in ``cache``.

        Args:
            x: ``(B, Nd, C)`` noisy latents of the denoised tokens.
            index: int64 ``(B, Nd, 4)``.
            t: float ``(B, Nd)`` noise times.
            action: int64 ``(B, Nd)``.
            cache: from :meth:`encode_context` on the same step (same batch size).
            uncond: optional bool ``(B,)``, as given to :meth:`encode_context`.

        Returns:
            float32 ``(B, Nd, C)`` v predictions.
        """
        batch = x.shape[0]
        step = _micro_batch(x)
        if step >= batch:
            return self._denoised_blocks(x, index, t, action, cache, uncond)
        out = x.new_empty(x.shape, dtype=torch.float32)
        for start in range(0, batch, step):
            rows = slice(start, start + step)
            part_uncond = None if uncond is None else uncond[rows]
            out[rows] = self._denoised_blocks(
                x[rows], index[rows], t[rows], action[rows], cache.rows(rows), part_uncond
            )
        return out

    def _denoised_blocks(
        self,
        x: torch.Tensor,
        index: torch.Tensor,
        t: torch.Tensor,
        action: torch.Tensor,
        cache: ContextCache,
        uncond: torch.Tensor | None,
    ) -> torch.Tensor:
        """The v predictions ``(b, Nd, C)`` of one micro-batch (see :meth:`forward_denoised`)."""
        cond = self.condition(t, index[..., 1], action, uncond)
        h = self.embed(x, index, cache.origin)
        for block, k, v in zip(self.blocks, cache.keys, cache.values, strict=True):
            h = block.forward_denoised(h, cond, k, v, cache.length)
        return self._output(h, cond)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        map_location: str = "cpu",
        revision: str | None = None,
        **_: object,
    ) -> VideoDiT:
        """Load from a bundled name, a local directory or a Hub repo id (strict, safetensors only).

        Raises:
            models.checkpoints.CheckpointError: unknown name, or config and weights that do not match.
        """
        from models.checkpoints import load_checkpoint

        return load_checkpoint(cls, DiTConfig, pretrained_model_name_or_path, map_location, revision)
