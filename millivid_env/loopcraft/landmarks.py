"""Landmarks: tall, distinctive structures of unusual blocks that make places recognisable.

Each world gets 3-5 of them, with different shapes and materials, 12-26 blocks from the centre at
spread-out bearings, so several are visible from the spawn and revisits can be recognised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from millivid_env.loopcraft.blocks import Block


@dataclass(frozen=True)
class Landmark:
    """One landmark.

    Attributes:
        kind: shape name ("tower", "obelisk", "arch", "ziggurat", "spire", "banded pillar").
        block: its main `Block` (unique within a world).
        x, z: centre of its footprint in world coordinates (blocks).
        base_y: y of its lowest block (the foundation starts at the lowest ground under it).
        top_y: y just above its highest block.
        radius: half-width of its footprint in blocks.
    """

    kind: str
    block: Block
    x: float
    z: float
    base_y: int
    top_y: int
    radius: int

    @property
    def name(self) -> str:
        """Human-readable name, e.g. "gold tower"."""
        return f"{self.block.name.lower().replace('_', ' ')} {self.kind}"

    @property
    def position(self) -> np.ndarray:
        """float64 (3,): centre of the footprint at its top (x, top_y, z)."""
        return np.array([self.x, float(self.top_y), self.z])


# A builder fills blocks[x0:x0+w, base:, z0:z0+w] around centre (i, k) and returns the top y.
Builder = Callable[[np.ndarray, int, int, int, int, Block, Block], int]


def _box(blocks: np.ndarray, i0: int, i1: int, j0: int, j1: int, k0: int, k1: int, b: Block) -> None:
    blocks[i0:i1, j0:j1, k0:k1] = b


def _tower(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """A 3x3 column with a 5x5 crenellated crown."""
    top = base + height
    _box(blocks, i - 1, i + 2, base, top, k - 1, k + 2, main)
    _box(blocks, i - 2, i + 3, top - 1, top, k - 2, k + 3, trim)
    for di in (-2, 0, 2):
        for dk in (-2, 0, 2):
            if di or dk:
                blocks[i + di, top, k + dk] = trim
    return top + 1


def _obelisk(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """A 2x2 shaft on a 4x4 plinth, topped with a single block of the trim."""
    _box(blocks, i - 2, i + 2, base, base + 2, k - 2, k + 2, trim)
    top = base + height
    _box(blocks, i - 1, i + 1, base, top, k - 1, k + 1, main)
    blocks[i - 1 : i + 1, top, k - 1 : k + 1] = trim
    return top + 1


def _arch(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """Two 2x1 legs five blocks apart joined by a lintel: a gate you can walk through."""
    top = base + max(height - 3, 7)
    _box(blocks, i - 3, i - 1, base, top, k, k + 1, main)
    _box(blocks, i + 2, i + 4, base, top, k, k + 1, main)
    _box(blocks, i - 4, i + 5, top, top + 2, k, k + 1, main)
    _box(blocks, i - 1, i + 2, top + 2, top + 3, k, k + 1, trim)
    return top + 3


def _ziggurat(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """A stepped pyramid (7x7 base, 2-block steps) crowned with a thin spire."""
    j = base
    for r in (3, 2, 1):
        _box(blocks, i - r, i + r + 1, j, j + 2, k - r, k + r + 1, main)
        j += 2
    top = base + height
    _box(blocks, i, i + 1, j, top, k, k + 1, trim)
    return top


def _spire(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """A thin 1x1 needle with a 3x3x3 orb near the top."""
    top = base + height
    _box(blocks, i, i + 1, base, top, k, k + 1, main)
    _box(blocks, i - 1, i + 2, top - 4, top - 1, k - 1, k + 2, main)
    blocks[i, top - 3, k - 1 : k + 2] = trim
    blocks[i - 1 : i + 2, top - 3, k] = trim
    return top


def _banded(blocks: np.ndarray, i: int, k: int, base: int, height: int, main: Block, trim: Block) -> int:
    """A 2x2 pillar in alternating 2-block bands of two colours."""
    top = base + height
    for j in range(base, top):
        blocks[i - 1 : i + 1, j, k - 1 : k + 1] = main if (j - base) // 2 % 2 == 0 else trim
    return top


_SHAPES: dict[str, tuple[Builder, int]] = {
    "tower": (_tower, 2),
    "obelisk": (_obelisk, 2),
    "arch": (_arch, 4),
    "ziggurat": (_ziggurat, 3),
    "spire": (_spire, 1),
    "banded pillar": (_banded, 1),
}


def place_landmarks(
    rng: np.random.Generator, blocks: np.ndarray, h: np.ndarray, materials: Sequence[Block]
) -> tuple[list[Landmark], np.ndarray]:
    """Build 3-5 landmarks around the world centre; modifies `blocks` in place.

    Args:
        rng: the world's generator.
        blocks: uint8 (X, Y, Z) terrain to build into.
        h: int64 (X, Z) surface height per column (terrain or water surface, whichever is higher).
        materials: candidate landmark blocks; each landmark takes a different one.

    Returns:
        The landmarks, and a bool (X, Z) mask of the columns they (plus a margin) occupy.
    """
    nx, ny, nz = blocks.shape
    count = int(rng.integers(3, 6))
    kinds = rng.permutation(list(_SHAPES))[:count]
    mats = rng.permutation(np.asarray(materials, dtype=np.int64))
    trims = rng.permutation(np.asarray(materials, dtype=np.int64))
    # Bearings spread evenly around the centre with jitter: every direction shows something.
    bearings = (np.arange(count) + 0.35 * rng.random(count)) / count + rng.random()
    taken = np.zeros((nx, nz), bool)
    out: list[Landmark] = []
    cx, cz = nx // 2, nz // 2
    for n in range(count):
        builder, radius = _SHAPES[str(kinds[n])]
        dist = 12.0 + 14.0 * rng.random()
        # Bearing -> unit direction via a rational rotation table (exact arithmetic, no numpy trig).
        ux, uz = _unit(float(bearings[n] % 1.0))
        i = int(np.clip(cx + round(dist * ux), radius + 3, nx - radius - 4))
        k = int(np.clip(cz + round(dist * uz), radius + 3, nz - radius - 4))
        foot = h[i - radius : i + radius + 1, k - radius : k + radius + 1]
        base = int(foot.min())
        height = int(rng.integers(8, 17))
        main = Block(int(mats[n]))
        trim = Block(int(trims[n])) if trims[n] != mats[n] else Block.QUARTZ
        if base + height + 4 >= ny:
            height = ny - base - 5
        # Foundation: fill from the lowest to the highest ground under the footprint.
        top_ground = int(foot.max())
        blocks[i - radius : i + radius + 1, base:top_ground, k - radius : k + radius + 1] = main
        top = builder(blocks, i, k, max(base, top_ground), height, main, trim)
        out.append(Landmark(str(kinds[n]), main, i + 0.5, k + 0.5, base, top, radius))
        taken[max(i - radius - 3, 0) : i + radius + 4, max(k - radius - 3, 0) : k + radius + 4] = True
    return out, taken


# Unit vectors at 16 bearings (fraction of a turn), precomputed digits so no runtime trig is needed.
_DIRS = (
    (0.0, 1.0),
    (0.382683, 0.923880),
    (0.707107, 0.707107),
    (0.923880, 0.382683),
    (1.0, 0.0),
    (0.923880, -0.382683),
    (0.707107, -0.707107),
    (0.382683, -0.923880),
    (0.0, -1.0),
    (-0.382683, -0.923880),
    (-0.707107, -0.707107),
    (-0.923880, -0.382683),
    (-1.0, 0.0),
    (-0.923880, 0.382683),
    (-0.707107, 0.707107),
    (-0.382683, 0.923880),
)


def _unit(turn: float) -> tuple[float, float]:
    """Unit (x, z) direction at bearing `turn` in [0, 1), snapped to 1/16 of a turn."""
    return _DIRS[int(turn * 16.0 + 0.5) % 16]
