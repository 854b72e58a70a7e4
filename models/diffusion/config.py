"""Architecture config of the video DiT and its named sizes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from models.tokens import get_layout

#: Attention patterns among context tokens (``DiTConfig.context_attention``).
CONTEXT_ATTENTION = ("bidirectional", "frame-causal")

#: MLP activations (``DiTConfig.gelu``): the tanh approximation of GELU, or the exact (erf) GELU.
GELU = ("tanh", "exact")


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of a :class:`VideoDiT` (saved as ``config.json``).

    Attributes:
        layout: token layout preset the model is trained on (``loopcraft-64``, ``paper-256``).
        width: transformer width ``D``.
        depth: number of blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden width / width.
        latent_channels: channels of one latent token (must equal the layout's).
        num_levels: pyramid levels (must equal the layout's).
        num_actions: number of discrete action ids (Loopcraft: forward, left, right).
        schedule_shift: ``shift`` of the cosine logSNR schedule the model is trained with.
        context_attention: how context tokens attend to each other: ``bidirectional`` (all context)
            or ``frame-causal`` (context of their own or earlier frames only, so the keys/values of
            past frames do not change when newer context is added; see
            :mod:`models.diffusion.attention`). Denoised tokens attend to everything either way.
        gelu: MLP activation: ``tanh`` (the tanh approximation, what the bundled models were trained
            with) or ``exact`` (erf, what they run with since the v2 bundle). They differ by at most
            4.7e-4; PyTorch's CPU kernel of the exact GELU is ~5x faster on large tensors, which makes
            batched passes faster (measured: 10% less CPU time per batched env step at N = 32, 8% at
            N = 8, nothing for a single env; BENCHMARKS.md). A ``tanh``-trained model can be run
            ``exact`` (``python -m models.bundle --exact-gelu``).
    """

    layout: str = "loopcraft-64"
    width: int = 192
    depth: int = 8
    heads: int = 3
    mlp_ratio: float = 4.0
    latent_channels: int = 32
    num_levels: int = 4
    num_actions: int = 3
    schedule_shift: float = 1.0
    context_attention: str = "bidirectional"
    gelu: str = "tanh"

    def __post_init__(self) -> None:
        layout = get_layout(self.layout)
        if (self.latent_channels, self.num_levels) != (layout.latent_channels, layout.num_levels):
            raise ValueError(
                f"latent_channels={self.latent_channels}, num_levels={self.num_levels} differ from layout "
                f"{self.layout!r} ({layout.latent_channels} channels, {layout.num_levels} levels)"
            )
        if self.width % self.heads or self.width < 6:
            raise ValueError(f"width {self.width} must be >= 6 and divisible by heads ({self.heads})")
        if self.context_attention not in CONTEXT_ATTENTION:
            raise ValueError(
                f"unknown context_attention {self.context_attention!r}; valid: {', '.join(CONTEXT_ATTENTION)}"
            )
        if self.gelu not in GELU:
            raise ValueError(f"unknown gelu {self.gelu!r}; valid: {', '.join(GELU)}")
        if min(self.depth, self.num_actions) < 1 or self.schedule_shift <= 0:
            raise ValueError("depth and num_actions must be >= 1 and schedule_shift > 0")

    @property
    def frame_causal(self) -> bool:
        """Context tokens attend only to context of their own or earlier frames."""
        return self.context_attention == "frame-causal"


#: Named sizes. ``tiny``: tests; ``cpu``: the bundled CPU checkpoints (loopcraft-64; 1.9M parameters,
#: sized so that the env steps at >= 4 frames/s on one CPU core and trains a few thousand steps per
#: core-hour); ``cpu-wide``: a 5.5M-parameter CPU size (2.2x slower to step); ``S``: a GPU size for
#: loopcraft-64; ``B``: the paper's DiT-B (12 x 768, 12 heads) on the paper-256 layout.
DIT_SIZES: dict[str, DiTConfig] = {
    "tiny": DiTConfig(width=48, depth=2, heads=2),
    "cpu": DiTConfig(width=128, depth=6, heads=2),
    "cpu-wide": DiTConfig(width=192, depth=8, heads=3),
    "S": DiTConfig(width=384, depth=12, heads=6),
    "B": DiTConfig(layout="paper-256", width=768, depth=12, heads=12),
}


def dit_config(size: str, **overrides: object) -> DiTConfig:
    """A named size with some fields replaced (``None`` values are ignored)."""
    if size not in DIT_SIZES:
        raise ValueError(f"unknown DiT size {size!r}; valid sizes: {', '.join(DIT_SIZES)}")
    return replace(DIT_SIZES[size], **{k: v for k, v in overrides.items() if v is not None})
