"""Seeded procedural Loopcraft worlds: terrain, biomes, water, trees and landmarks.

Everything is vectorised numpy driven by one `np.random.default_rng(seed)` stream and uses only
exact elementwise arithmetic (no transcendental functions), so the same seed gives byte-identical
blocks on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from millivid_env.loopcraft.blocks import LANDMARK_BLOCKS, Block
from millivid_env.loopcraft.landmarks import Landmark, place_landmarks

#: World extent in blocks along (x, y, z).
WORLD_SIZE: tuple[int, int, int] = (128, 48, 128)
#: Cloud map cells per side (each cell is CLOUD_CELL x CLOUD_CELL blocks, tiled over the sky).
CLOUD_MAP = 32
CLOUD_CELL = 8

SeedLike = int | Sequence[int]


@dataclass
class World:
    """A voxel world.

    Attributes:
        blocks: uint8 (X, Y, Z) block ids (`Block`); index (i, j, k) fills [i, i+1) x [j, j+1) x [k, k+1).
        seed: the seed it was generated from (None for hand-made worlds).
        spawn: float64 (3,) feet position at the centre of the world, standing on the ground.
        landmarks: the tall distinctive structures of the world.
        clouds: uint8 (CLOUD_MAP, CLOUD_MAP), 1 where a cloud cell is; tiled over the sky.
    """

    blocks: np.ndarray
    seed: SeedLike | None
    spawn: np.ndarray
    landmarks: list[Landmark] = field(default_factory=list)
    clouds: np.ndarray = field(default_factory=lambda: np.zeros((CLOUD_MAP, CLOUD_MAP), np.uint8))

    @property
    def size(self) -> tuple[int, int, int]:
        """(X, Y, Z) extent in blocks."""
        return tuple(int(s) for s in self.blocks.shape)  # type: ignore[return-value]


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth 2-D value noise in [0, 1): float64 `shape`, features about `cell` blocks wide."""
    nx, nz = shape
    grid = rng.random((int(nx / cell) + 3, int(nz / cell) + 3))
    off = rng.random(2)  # random sub-cell offset so octaves do not share lattice lines
    fx = np.arange(nx) / cell + off[0]
    fz = np.arange(nz) / cell + off[1]
    ix, iz = np.floor(fx).astype(np.int64), np.floor(fz).astype(np.int64)
    tx, tz = fx - ix, fz - iz
    tx, tz = tx * tx * (3.0 - 2.0 * tx), tz * tz * (3.0 - 2.0 * tz)  # smoothstep: no grid creases
    a = grid[ix[:, None], iz[None, :]]
    b = grid[ix[:, None] + 1, iz[None, :]]
    c = grid[ix[:, None], iz[None, :] + 1]
    d = grid[ix[:, None] + 1, iz[None, :] + 1]
    top = a + (b - a) * tx[:, None]
    bottom = c + (d - c) * tx[:, None]
    return top + (bottom - top) * tz[None, :]


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, octaves: int) -> np.ndarray:
    """Sum of `octaves` value-noise layers (each half the size and weight); float64 `shape` in [0, 1)."""
    total = np.zeros(shape)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amp * _value_noise(rng, shape, cell)
        norm += amp
        amp *= 0.5
        cell = max(cell / 2.0, 1.0)
    return total / norm


# Biome ids of the per-column biome map.
GRASSLAND, DESERT, SNOWY, FOREST = 0, 1, 2, 3
#: Tree probability per column, by biome.
_TREE_DENSITY = np.array([0.008, 0.004, 0.014, 0.045])


def _terrain(rng: np.random.Generator, nx: int, nz: int, ny: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Height map int64 (X, Z) (= number of solid blocks), biome map int64 (X, Z), sea level."""
    sea = ny // 4  # 12 for the default world
    hilliness = 8.0 + 10.0 * rng.random()
    n = fractal_noise(rng, (nx, nz), 40.0, 4)
    n = np.clip((n - 0.5) * 1.9 + 0.5, 0.0, 1.0)  # stretch: octave sums cluster around 0.5
    height = sea - 5.0 + n * hilliness + (n * n) * hilliness * 0.6  # squared term: steeper peaks
    h = np.clip(np.floor(height).astype(np.int64), 2, ny - 18)
    # Spawn clearing: blend the centre towards the mean height around it (at least dry land), so
    # the player starts on an open rise, not in a pit, and sees the landmarks around.
    cx, cz = (nx - 1) / 2.0, (nz - 1) / 2.0
    r = np.sqrt((np.arange(nx)[:, None] - cx) ** 2 + (np.arange(nz)[None, :] - cz) ** 2)
    disc = r <= 14.0
    target = max(sea + 2, int(h[disc].sum()) // int(disc.sum()) + 1)  # integer mean: exact everywhere
    w = np.clip((15.0 - r) / 9.0, 0.0, 1.0)
    h = np.floor(h + (target - h) * w + 0.5).astype(np.int64)
    # Per-world biases make worlds differ (some mostly snowy, some dry) while regions still vary.
    temp = fractal_noise(rng, (nx, nz), 44.0, 2) + (rng.random() - 0.5) * 0.3
    wet = fractal_noise(rng, (nx, nz), 40.0, 2) + (rng.random() - 0.5) * 0.3
    biome = np.full((nx, nz), GRASSLAND, np.int64)
    biome[wet > 0.56] = FOREST
    biome[(temp > 0.6) & (wet < 0.52)] = DESERT
    biome[temp < 0.36] = SNOWY
    return h, biome, sea


def _fill_columns(h: np.ndarray, biome: np.ndarray, sea: int, ny: int) -> np.ndarray:
    """Voxelise the height map: uint8 (X, Y, Z) with surface, sub-surface, stone and water layers."""
    surface = np.choose(biome, [Block.GRASS, Block.SAND, Block.SNOW, Block.GRASS]).astype(np.uint8)
    under = np.where(biome == DESERT, Block.SAND, Block.DIRT).astype(np.uint8)
    shore = (h <= sea + 1) & (biome != SNOWY)
    surface[shore] = Block.SAND
    under[shore] = Block.SAND
    surface[h < sea] = np.where(biome[h < sea] == SNOWY, Block.DIRT, Block.SAND)
    surface[h >= ny - 24] = Block.STONE  # bare mountain tops
    surface[h >= ny - 21] = Block.SNOW

    y = np.arange(ny)[None, :, None]
    hh = h[:, None, :]
    blocks = np.where(y < hh - 4, np.uint8(Block.STONE), under[:, None, :])
    blocks = np.where(y == hh - 1, surface[:, None, :], blocks)
    blocks = np.where(y >= hh, np.uint8(Block.AIR), blocks)
    water = (y >= hh) & (y < sea)
    blocks = np.where(water, np.uint8(Block.WATER), blocks).astype(np.uint8)
    blocks[:, 0, :] = Block.BEDROCK
    return blocks


def _place_trees(
    rng: np.random.Generator, blocks: np.ndarray, h: np.ndarray, biome: np.ndarray, sea: int, free: np.ndarray
) -> None:
    """Grow trees (and cacti in deserts) on dry land where `free` (bool (X, Z)) allows; in place."""
    nx, ny, nz = blocks.shape
    draw = rng.random((nx, nz))
    trunk_heights = rng.integers(4, 7, size=(nx, nz))
    # Thin the trees near the centre so the landmarks are visible from the spawn.
    cx, cz = (nx - 1) / 2.0, (nz - 1) / 2.0
    r = np.sqrt((np.arange(nx)[:, None] - cx) ** 2 + (np.arange(nz)[None, :] - cz) ** 2)
    near = np.clip((r - 7.0) / 18.0, 0.0, 1.0)
    ok = (draw < _TREE_DENSITY[biome] * near) & free & (h > sea)
    ok[:3, :] = ok[-3:, :] = ok[:, :3] = ok[:, -3:] = False
    taken = np.zeros((nx, nz), bool)
    for i, k in zip(*np.nonzero(ok), strict=True):
        if taken[max(i - 2, 0) : i + 3, max(k - 2, 0) : k + 3].any():
            continue  # keep canopies from merging into one blob
        taken[i, k] = True
        ground = int(h[i, k])
        top = ground + int(trunk_heights[i, k])
        if top + 2 >= ny:
            continue
        if biome[i, k] == DESERT:
            blocks[i, ground : ground + int(trunk_heights[i, k]) // 2, k] = Block.CACTUS
            continue
        if biome[i, k] == SNOWY:
            # Spruce-like cone: wide low layers, narrow top.
            for layer, radius in ((top - 3, 2), (top - 2, 1), (top - 1, 2), (top, 1), (top + 1, 0)):
                _leaf_square(blocks, i, layer, k, radius, corners=radius < 2)
        else:
            for layer, radius, corners in ((top - 2, 2, False), (top - 1, 2, False), (top, 1, True)):
                _leaf_square(blocks, i, layer, k, radius, corners)
            _leaf_square(blocks, i, top + 1, k, 1, corners=False)
        blocks[i, ground:top, k] = Block.WOOD


def _leaf_square(blocks: np.ndarray, i: int, j: int, k: int, radius: int, corners: bool) -> None:
    """Fill air in a (2r+1)^2 square of leaves centred on (i, j, k); `corners=False` rounds it."""
    region = blocks[i - radius : i + radius + 1, j, k - radius : k + radius + 1]
    mask = region == Block.AIR
    if not corners and radius > 0:
        mask[0, 0] = mask[0, -1] = mask[-1, 0] = mask[-1, -1] = False
    region[mask] = Block.LEAVES


def _make_clouds(rng: np.random.Generator) -> np.ndarray:
    """Blocky cloud cover: uint8 (CLOUD_MAP, CLOUD_MAP), about a quarter of the cells set."""
    n = fractal_noise(rng, (CLOUD_MAP, CLOUD_MAP), 4.0, 2)
    return (n > 0.58).astype(np.uint8)


def ground_height(blocks: np.ndarray, i: int, k: int) -> int:
    """Feet height of someone standing on column (i, k): 1 + the topmost solid block's y."""
    solid = np.nonzero(blocks[i, :, k] != Block.AIR)[0]
    return int(solid[-1]) + 1 if solid.size else 0


def add_border(blocks: np.ndarray) -> None:
    """Make the outermost columns solid bedrock over the full height (the player never leaves); in place."""
    blocks[0, :, :] = blocks[-1, :, :] = Block.BEDROCK
    blocks[:, :, 0] = blocks[:, :, -1] = Block.BEDROCK


def generate_world(seed: SeedLike, size: tuple[int, int, int] = WORLD_SIZE) -> World:
    """Generate the world of a seed.

    Args:
        seed: an int or a sequence of ints (anything `np.random.default_rng` accepts).
        size: (X, Y, Z) extent in blocks; each at least (48, 32, 48).

    Returns:
        The `World`; same seed and size give byte-identical `blocks` on every machine.
    """
    nx, ny, nz = (int(s) for s in size)
    if nx < 48 or nz < 48 or ny < 32:
        raise ValueError(f"world size must be at least (48, 32, 48), got {tuple(size)}")
    rng = np.random.default_rng(seed)
    h, biome, sea = _terrain(rng, nx, nz, ny)
    blocks = _fill_columns(h, biome, sea, ny)
    clouds = _make_clouds(rng)
    landmarks, footprint = place_landmarks(rng, blocks, np.maximum(h, sea), LANDMARK_BLOCKS)
    free = ~footprint
    ci, ck = nx // 2, nz // 2
    free[ci - 4 : ci + 5, ck - 4 : ck + 5] = False  # keep the spawn clear of trunks
    _place_trees(rng, blocks, h, biome, sea, free)
    add_border(blocks)
    spawn = np.array([ci + 0.5, float(ground_height(blocks, ci, ck)), ck + 0.5])
    return World(blocks=blocks, seed=seed, spawn=spawn, landmarks=landmarks, clouds=clouds)


def flat_world(
    size: tuple[int, int, int] = (32, 16, 32), ground: int = 4, block: Block = Block.GRASS
) -> World:
    """A hand-made flat world (for tests and examples): solid up to `ground`, bedrock border.

    Returns:
        `World` with `blocks[:, :ground, :]` solid (`block` on top), spawn at the centre on the ground.
        Edit `world.blocks` in place to build walls and steps.
    """
    nx, ny, nz = size
    blocks = np.zeros((nx, ny, nz), np.uint8)
    blocks[:, : ground - 1, :] = Block.DIRT
    blocks[:, ground - 1, :] = block
    blocks[:, 0, :] = Block.BEDROCK
    add_border(blocks)
    spawn = np.array([nx // 2 + 0.5, float(ground), nz // 2 + 0.5])
    return World(blocks=blocks, seed=None, spawn=spawn)
