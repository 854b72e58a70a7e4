"""Context-causal attention: the pattern that lets the sampler cache the clean context.

The paper's video DiT attends bidirectionally over all tokens of a step (method.md section 3.3).
Then the hidden states of the clean context tokens depend on the noisy tokens, and every one of the
``S`` denoising evaluations of a rollout step must recompute the whole sequence although the context
never changes. Here attention is *context-causal* between the two roles:

* CONTEXT queries attend only to CONTEXT keys (never to noisy tokens);
* DENOISED queries attend to every key (context and denoised).

By induction over layers, a context token's hidden state, and hence its keys/values, at every layer
is a function of the context tokens alone (their latents, times, levels, actions and positions),
which are constant during a rollout step. So the sampler runs the context once per rollout step,
stores each layer's context keys/values, and every denoising evaluation processes only the denoised
tokens: their queries attend to ``[cached context K/V ; own K/V]``. With ``Nc`` context and ``Nd``
denoised tokens an evaluation costs ``O(Nd)`` token-wise work and ``O(Nd (Nc + Nd))`` attention
instead of ``O(Nc + Nd)`` and ``O((Nc + Nd)^2)``. For the CPU millivid step (``Nc = 256``,
``Nd = 64``, ``cpu`` size, 8 evaluations) one rollout step costs 6.7 instead of 23.6 GFLOP (3.5x);
measured on the shared 2-core development CPU (one thread, several runs) it ran ~2x faster at
batch 1 (64-row matmuls run at about half the efficiency of 320-row ones) and ~3x at batch 8.
Training applies the same rule as a boolean mask, so the function learnt is exactly the one the
cached sampler evaluates (cached == uncached to fp32 rounding, tested); the mask itself costs no
measurable time against unmasked attention.

Optionally (``DiTConfig.context_attention = "frame-causal"``) the context is also causal over
frames: a context query attends only to context keys of its own or an earlier frame (all levels of a
frame see each other). Then the keys/values of past frames do not depend on newer context either, so
a cache of the past can be extended with newer context tokens without recomputing it
(:meth:`VideoDiT.encode_context` with ``prefix``). The env's streaming step needs this: it generates
the next frame in four sub-steps (one per level, coarse to fine) whose contexts are the same past
plus the levels of the new frame generated so far, so with bidirectional context every sub-step
re-encodes the whole past (~235 tokens), and with frame-causal context the past is encoded once per
frame and each sub-step adds at most 21 tokens. The option changes the function, so a bidirectional
checkpoint is fine-tuned to it (``millivid train-diffusion --context-attention frame-causal
--init-from CHECKPOINT``).

What is given up: context features cannot adapt to the tokens being generated. Generated tokens
still read all context at every layer, which is what conditioning needs; the context acts as an
encoder of the past (a "prefix-LM" pattern), and its representation no longer has to serve the
noise level of the current denoising iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import Mlp
from models.strategies.core import CONTEXT


class Conditioning(NamedTuple):
    """Per-token adaLN condition stored once per *distinct* condition vector.

    Tokens of a step share few conditions (one time per role, 4 levels, 3 actions), so the
    ``Linear(D, kD)`` modulation of every block runs on the ``U`` distinct vectors and is gathered
    per token, instead of running on all ``N`` tokens (a third of the block FLOPs otherwise). When
    every token of a sample has the same condition (the denoised tokens of a streaming sub-step),
    ``inverse`` has one column and the modulation broadcasts over the tokens instead of being copied.

    Attributes:
        vectors: ``(U, D)`` distinct condition vectors ``c``.
        inverse: int64 ``(B, N)`` row of ``vectors`` of every token, or ``(B, 1)`` if uniform.
    """

    vectors: torch.Tensor
    inverse: torch.Tensor

    def modulation(
        self, layer: nn.Linear, chunks: int, scales: tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, ...]:
        """``layer(SiLU(c))`` per token, split into ``chunks`` tensors ``(B, N or 1, D')``.

        Args:
            layer: the modulation projection (``out_features = chunks * D'``).
            chunks: number of equal chunks.
            scales: chunks returned as ``1 + scale`` (computed on the ``U`` distinct rows, before the
                gather: the same floats as adding 1 per token, with less work).
        """
        table = layer(F.silu(self.vectors))  # (U, chunks * D')
        per_chunk = table.view(table.shape[0], chunks, -1)
        for i in scales:
            per_chunk[:, i].add_(1.0)
        # F.embedding gathers rows several times faster than advanced indexing on CPU (same copy).
        return F.embedding(self.inverse, table).chunk(chunks, dim=-1)


def scale_shift(x: torch.Tensor, factor: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation with a precomputed factor: ``x * factor + shift`` (``factor = 1 + scale``)."""
    return x * factor + shift


def attention_mask(
    role: torch.Tensor, pad: torch.Tensor | None = None, frames: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean mask of context-causal attention (True = may attend).

    Args:
        role: ``(B, N)`` token roles (``CONTEXT`` / ``DENOISED``).
        pad: optional bool ``(B, N)`` padding tokens; never attended to. A padding query attends
            only to itself so that no softmax row is empty (its output is ignored).
        frames: optional int64 ``(B, N)`` frame of every token: makes the context *frame-causal* as
            well (a context query attends only to context keys of its own or earlier frames).

    Returns:
        bool ``(B, 1, N, N)`` indexed ``[b, 0, query, key]``.
    """
    is_ctx = role == CONTEXT
    ctx_keys = is_ctx.unsqueeze(1)
    if frames is not None:
        ctx_keys = ctx_keys & _at_or_before(frames, frames)
    allowed = (~is_ctx).unsqueeze(2) | ctx_keys
    if pad is not None:
        real = ~pad
        allowed = allowed & real.unsqueeze(2) & real.unsqueeze(1)
        allowed = allowed | torch.eye(role.shape[1], dtype=torch.bool, device=role.device)
    return allowed.unsqueeze(1)


def frame_causal_mask(query_frames: torch.Tensor, key_frames: torch.Tensor) -> torch.Tensor | None:
    """Mask of context queries over context keys under frame-causal attention, or None if all pass.

    Args:
        query_frames: int64 ``(B, Nq)`` frames of the queries.
        key_frames: int64 ``(B, Nk)`` frames of the keys.

    Returns:
        bool ``(B, 1, Nq, Nk)`` (True = may attend), or None when every key is at or before every
        query's frame (the common case of a context that is one frame, or a prefix of older frames).
    """
    if not query_frames.numel() or bool(key_frames.max() <= query_frames.min()):
        return None
    return _at_or_before(query_frames, key_frames).unsqueeze(1)


def _at_or_before(query_frames: torch.Tensor, key_frames: torch.Tensor) -> torch.Tensor:
    """Whether each key frame is at or before each query frame, bool ``(B, Nq, Nk)``."""
    return key_frames.unsqueeze(1) <= query_frames.unsqueeze(2)


def _layer_norm(dim: int) -> nn.LayerNorm:
    # No affine parameters: adaLN supplies scale and shift.
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class ContextAttention(nn.Module):
    """Multi-head self-attention with QK RMSNorm, a boolean mask or a cached key/value prefix.

    Args:
        dim: model width.
        heads: number of heads (must divide ``dim``).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, N, D)`` -> ``q, k, v`` each ``(B, heads, N, D / heads)`` (q, k normalised)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads)
        # q and k normalised in one call, then scaled by their own weights: the same floats as the two
        # RMSNorm modules (tested), in a third of the small kernels. Normalised in fp32 (parameter
        # dtype), then back to v's dtype: under bf16 autocast q, k, v are bf16 and a mismatch would
        # break attention (method.md section 10, item 15).
        weight = torch.stack([self.q_norm.weight, self.k_norm.weight]).unsqueeze(1)  # (2, 1, hd)
        qk = F.rms_norm(qkv[:, :, :2].float(), (d // self.heads,), eps=self.q_norm.eps) * weight
        v = qkv[:, :, 2].transpose(1, 2)
        q, k = qk.to(v.dtype).permute(2, 0, 3, 1, 4)
        return q, k, v

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention of ``q (B, H, Nq, hd)`` over ``k, v (B, H, Nk, hd)``, then the output projection.

        Args:
            q: queries.
            k: keys.
            v: values.
            mask: optional bool ``(B, 1, Nq, Nk)``, True = may attend.

        Returns:
            ``(B, Nq, D)``.
        """
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, _, n, _ = q.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class ContextDiTBlock(nn.Module):
    """adaLN-Zero DiT block with per-token modulation and context-causal attention.

    ``LN -> modulate -> attention -> gated residual; LN -> modulate -> MLP -> gated residual``; the
    modulation ``Linear(D, 6D)`` is zero-initialised so the block starts as the identity.

    Args:
        dim: model width.
        heads: attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        gelu_approximate: the MLP's GELU (``F.gelu``'s ``approximate``: ``"tanh"`` or ``"none"``).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, gelu_approximate: str = "tanh") -> None:
        super().__init__()
        self.norm1, self.norm2 = _layer_norm(dim), _layer_norm(dim)
        self.attn = ContextAttention(dim, heads)
        self.mlp = Mlp(dim, mlp_ratio, gelu_approximate)
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def _qkv(
        self, x: torch.Tensor, cond: Conditioning
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        # (shift, 1 + scale, gate) for attention, then for the MLP.
        mod = cond.modulation(self.ada, 6, scales=(1, 4))
        return mod, self.attn.project(scale_shift(self.norm1(x), mod[1], mod[0]))

    def _finish(self, x: torch.Tensor, attn_out: torch.Tensor, mod: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = x + mod[2] * attn_out
        return x + mod[5] * self.mlp(scale_shift(self.norm2(x), mod[4], mod[3]))

    def forward(self, x: torch.Tensor, cond: Conditioning, mask: torch.Tensor | None) -> torch.Tensor:
        """All tokens at once (training, uncached sampling).

        Args:
            x: ``(B, N, D)`` tokens.
            cond: per-token condition of the ``N`` tokens.
            mask: bool ``(B, 1, N, N)`` from :func:`attention_mask` (None = full attention).

        Returns:
            ``(B, N, D)``.
        """
        mod, (q, k, v) = self._qkv(x, cond)
        return self._finish(x, self.attn.attend(q, k, v, mask), mod)

    def forward_context(
        self,
        x: torch.Tensor,
        cond: Conditioning,
        last: bool = False,
        mask: torch.Tensor | None = None,
        prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        reserve: int = 0,
        out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Context tokens alone (they attend only to context), keeping their keys and values.

        Args:
            x: ``(B, Nc, D)`` context tokens.
            cond: their condition.
            last: the last block: only the keys/values are needed, the rest is skipped.
            mask: optional bool ``(B, 1, Nc, Np + Nc)`` over ``[prefix ; own]`` keys (frame-causal).
            prefix: optional ``(keys, values)`` ``(B, heads, Np, D / heads)`` of context tokens
                encoded earlier, which these tokens also attend to (frame-causal models only).
            reserve: scratch rows left after the keys/values for the denoised tokens
                (see :meth:`forward_denoised`).
            out: optional ``(keys, values)`` buffers of the returned shape to write into instead of
                new ones (micro-batches writing their rows of one batch-wide buffer).

        Returns:
            ``(x_next or None, keys, values)``, each ``(B, heads, Np + Nc + reserve, D / heads)``: the
            prefix keys/values, then the new ones, then the scratch rows (one buffer, written once).
        """
        mod, (q, k, v) = self._qkv(x, cond)
        keys, values = k, v
        if prefix is not None or reserve or out is not None:
            start = 0 if prefix is None else prefix[0].shape[2]
            end = start + k.shape[2]
            if out is None:
                keys = k.new_empty(*k.shape[:2], end + reserve, k.shape[3])
                values = v.new_empty(*v.shape[:2], end + reserve, v.shape[3])
            else:
                keys, values = out
            keys[:, :, start:end], values[:, :, start:end] = k, v
            if prefix is not None:
                keys[:, :, :start], values[:, :, :start] = prefix
                k, v = keys[:, :, :end], values[:, :, :end]  # attend to [prefix ; own]
        if last:
            return None, keys, values
        return self._finish(x, self.attn.attend(q, k, v, mask), mod), keys, values

    def forward_denoised(
        self, x: torch.Tensor, cond: Conditioning, keys: torch.Tensor, values: torch.Tensor, length: int
    ) -> torch.Tensor:
        """Denoised tokens attending to ``[cached context ; themselves]``.

        Args:
            x: ``(B, Nd, D)`` denoised tokens.
            cond: their condition.
            keys: ``(B, heads, M, D / heads)`` key buffer of this block whose first ``length`` rows are
                the cached context keys. If ``M == length + Nd`` (room reserved) and no gradient is
                recorded, the denoised keys are written into the tail in place, which saves copying
                the context keys at every evaluation; otherwise they are concatenated.
            values: the matching value buffer.
            length: number of context tokens ``Nc``.

        Returns:
            ``(B, Nd, D)``.
        """
        mod, (q, k, v) = self._qkv(x, cond)
        if keys.shape[2] == length + x.shape[1] and not torch.is_grad_enabled():
            keys[:, :, length:] = k
            values[:, :, length:] = v
            k, v = keys, values
        else:
            k = torch.cat([keys[:, :, :length].to(k.dtype), k], dim=2)
            v = torch.cat([values[:, :, :length].to(v.dtype), v], dim=2)
        return self._finish(x, self.attn.attend(q, k, v), mod)
