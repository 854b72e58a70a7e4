"""Transformer building blocks shared by the autoencoder and the video diffusion model.

* :class:`Attention` - multi-head self-attention with per-head RMS normalisation of q and k
  (stabilises attention logits; method.md section 2.1) through ``F.scaled_dot_product_attention``.
* :class:`TransformerBlock` - pre-LayerNorm block (LayerNorms without affine parameters).
* :class:`DiTBlock` - adaLN-Zero block; the condition is either *global* ``(B, D)`` (one vector per
  sample, the autoencoder decoder) or *per-token* ``(B, N, D)`` (the video DiT).
* :func:`sincos_embedding` - sin/cos position code of integer coordinates.
* :class:`TimestepEmbedding` - diffusion-time embedding (sinusoid + MLP).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with QK RMSNorm.

    Args:
        dim: model width.
        heads: number of heads (``dim`` must divide evenly).
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D) -> (B, N, D)``; full (unmasked) attention."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # Cast back to v's dtype: the norms run in the parameter dtype (method.md section 10, item 15).
        q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two-layer MLP with GELU (tanh-approximated by default).

    Args:
        dim: input and output width.
        ratio: hidden width / ``dim``.
        approximate: ``F.gelu``'s ``approximate``: ``"tanh"`` or ``"none"`` (exact, erf).
    """

    def __init__(self, dim: int, ratio: float = 4.0, approximate: str = "tanh") -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D) -> (..., D)``."""
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


def _layer_norm(dim: int) -> nn.LayerNorm:
    # No affine parameters: the adaLN modulation (or the next linear layer) supplies scale and shift.
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = _layer_norm(dim), _layer_norm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D) -> (B, N, D)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation ``x * (1 + scale) + shift`` (shift/scale broadcast over tokens)."""
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block.

    The six modulation vectors (shift/scale/gate for attention and MLP) come from
    ``SiLU -> Linear(D, 6D)``, zero-initialised so every block starts as the identity.

    Args:
        dim: model width.
        heads: attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = _layer_norm(dim), _layer_norm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, mlp_ratio)
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, N, D)`` tokens.
            c: ``(B, D)`` global condition or ``(B, N, D)`` per-token condition.

        Returns:
            ``(B, N, D)``.
        """
        mod = self.ada(F.silu(c))
        if mod.ndim == 2:  # global: one modulation per sample, broadcast over tokens
            mod = mod.unsqueeze(1)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


def sincos_embedding(coords: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Sin/cos code of integer coordinates, one equal share of channels per coordinate.

    For ``K`` coordinates each gets ``F = dim // (2K)`` frequencies ``base^(-i / (F - 1))`` and
    contributes ``[sin(x * w), cos(x * w)]``; the result is zero-padded to ``dim``. With coordinates
    ordered ``(w, h)`` this is the autoencoder's 2-D code of method.md section 2.1.

    Args:
        coords: ``(..., K)`` integer or float coordinates.
        dim: output channels.
        base: frequency base.

    Returns:
        float32 ``(..., dim)``.
    """
    k = coords.shape[-1]
    nfreq = dim // (2 * k)
    if nfreq < 1:
        raise ValueError(f"dim {dim} is too small for {k} coordinates")
    exponent = torch.arange(nfreq, dtype=torch.float64) / max(nfreq - 1, 1)
    freqs = (base**-exponent).to(torch.float32).to(coords.device)
    angles = coords.float().unsqueeze(-1) * freqs  # (..., K, F)
    code = torch.stack([angles.sin(), angles.cos()], dim=-2).flatten(-3)  # (..., K * 2 * F)
    return F.pad(code, (0, dim - code.shape[-1]))


def timestep_sinusoid(t: torch.Tensor, dim: int = 256, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoid ``[cos, sin]`` of ``scale * t``, ``dim // 2`` frequencies: ``(...,) -> (..., dim)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1)
    )
    angles = (scale * t.float()).unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    """Diffusion time ``t in [0, 1]`` -> width-``dim`` vector (sinusoid, then a SiLU MLP)."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``(...,) -> (..., dim)``."""
        return self.mlp(timestep_sinusoid(t, self.freq_dim))


def init_linear_xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every ``nn.Linear`` below ``module``.

    Skips layers whose weights are all zero (adaLN-Zero projections keep their zero init).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear) and bool(layer.weight.any()):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
