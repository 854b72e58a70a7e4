"""The revisit-consistency protocols (DESIGN §8, method.md §8.1) and their horizon buckets.

A protocol fixes the frame size, the number ``C`` of ground-truth context frames and the number ``T``
of generated frames of every test video. The rollout frame index ``i`` (0-based, frame ``C + i`` of the
video) falls into one of three buckets, the thirds of the horizon:

- ``short``:  ``0 <= i < T/3``
- ``medium``: ``T/3 <= i < 2T/3``
- ``long``:   ``2T/3 <= i < T``

(``loopcraft-64``: frames 1-128, 129-256 and 257-384 after the context; ``paper-256``: 1-256, 257-512
and 513-768.) The test loops revisit what the context showed, mostly late in the rollout, so ``long``
is where memory matters most.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

BUCKETS = ("short", "medium", "long")

#: Sampler evaluations per rollout step of the open-loop protocol (``millivid evaluate`` and
#: ``millivid rollout``). The paper samples with 50; on the bundled CPU checkpoints 8 evaluations let
#: long millivid rollouts fade towards flat textures (largest 16-frame Fréchet distance 0.39, flat
#: frames 0.42) and 32 keep them in distribution (0.27) within the 3-minute budget per 384-frame video
#: (docs/results/cpu-protocol-v3-steps32). ``--steps`` overrides it.
OPEN_LOOP_STEPS = 32


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        name: preset name (``loopcraft-64``, ``paper-256``) or ``<preset>+C<c>T<t>`` when overridden.
        layout: token layout the systems must be trained on.
        resolution: frame side in pixels.
        context: ground-truth context frames ``C``.
        horizon: generated frames ``T`` (compared with the ground truth).
        standard: False when context or horizon differ from the preset (the report says so).
    """

    name: str
    layout: str
    resolution: int
    context: int
    horizon: int
    standard: bool = True

    @property
    def frames(self) -> int:
        """Frames of a test video the protocol reads, ``C + T``."""
        return self.context + self.horizon

    def bucket_edges(self) -> dict[str, tuple[int, int]]:
        """``{bucket: (first, stop)}`` half-open ranges of rollout frame indices (thirds of ``T``)."""
        t = self.horizon
        cuts = (0, round(t / 3), round(2 * t / 3), t)
        return {name: (cuts[k], cuts[k + 1]) for k, name in enumerate(BUCKETS)}

    def with_overrides(self, context: int | None = None, horizon: int | None = None) -> Protocol:
        """This protocol with another context and/or horizon (named and marked as non-standard).

        Raises:
            ValueError: a context < 1 or a horizon < 3 (each bucket needs a frame).
        """
        c = self.context if context is None else int(context)
        t = self.horizon if horizon is None else int(horizon)
        if c < 1 or t < 3:
            raise ValueError(f"context must be >= 1 and horizon >= 3 (one frame per bucket); got {c}, {t}")
        if (c, t) == (self.context, self.horizon):
            return self
        base = self.name.split("+")[0]
        return replace(self, name=f"{base}+C{c}T{t}", context=c, horizon=t, standard=False)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON fields, with the bucket edges."""
        return {**asdict(self), "frames": self.frames, "buckets": self.bucket_edges()}


PROTOCOLS: dict[str, Protocol] = {
    "loopcraft-64": Protocol("loopcraft-64", "loopcraft-64", 64, context=128, horizon=384),
    "paper-256": Protocol("paper-256", "paper-256", 256, context=256, horizon=768),
}


def get_protocol(name: str, context: int | None = None, horizon: int | None = None) -> Protocol:
    """A preset protocol, optionally with another context / horizon.

    Raises:
        ValueError: unknown name (the valid ones are listed) or bad overrides.
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name].with_overrides(context, horizon)
