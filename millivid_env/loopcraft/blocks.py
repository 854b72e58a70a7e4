"""Block types of Loopcraft and their procedural 16x16 textures.

Textures are drawn from a fixed numpy seed with integer-exact arithmetic only (no numpy
transcendental functions, whose SIMD implementations differ between CPUs), so every machine builds
byte-identical textures and therefore byte-identical frames.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

import numpy as np

#: Texture edge in texels; a block face is TEX x TEX texels.
TEX = 16
#: Mip levels stored per face: 16, 8, 4, 2, 1 texels wide.
NUM_MIPS = 5
#: Face indices of the texture arrays.
FACE_TOP, FACE_SIDE, FACE_BOTTOM = 0, 1, 2
#: Seed of the texture generator; changing it changes every frame (bump env versions).
TEXTURE_SEED = 20240611


class Block(IntEnum):
    """Block ids stored in `World.blocks` (uint8). `AIR` is empty space, everything else is solid."""

    AIR = 0
    GRASS = 1
    DIRT = 2
    STONE = 3
    SAND = 4
    WATER = 5
    SNOW = 6
    WOOD = 7
    LEAVES = 8
    PLANKS = 9
    BRICK = 10
    BEDROCK = 11
    CACTUS = 12
    GOLD = 13
    DIAMOND = 14
    OBSIDIAN = 15
    RED_WOOL = 16
    LAPIS = 17
    EMERALD = 18
    QUARTZ = 19
    PURPLE_WOOL = 20


NUM_BLOCKS = len(Block)

#: Unusual blocks used only by landmarks, so a landmark's colour identifies it.
LANDMARK_BLOCKS: tuple[Block, ...] = (
    Block.GOLD,
    Block.DIAMOND,
    Block.OBSIDIAN,
    Block.RED_WOOL,
    Block.LAPIS,
    Block.EMERALD,
    Block.QUARTZ,
    Block.PURPLE_WOOL,
    Block.BRICK,
)


def _noise(rng: np.random.Generator, cell: int) -> np.ndarray:
    """Blocky value noise in [0, 1): float64 (16, 16), constant over `cell` x `cell` squares."""
    coarse = rng.random((TEX // cell, TEX // cell))
    return np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)


def _colour(base: tuple[int, int, int], light: np.ndarray) -> np.ndarray:
    """Modulate a base RGB colour by a (16, 16) brightness map; returns uint8 (16, 16, 3)."""
    rgb = np.asarray(base, dtype=np.float64)[None, None, :] * light[:, :, None]
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def _speckled(rng: np.random.Generator, base: tuple[int, int, int], amp: float, cell: int = 1) -> np.ndarray:
    """Flat colour with per-texel brightness noise of relative amplitude `amp`."""
    return _colour(base, 1.0 + amp * (_noise(rng, cell) - 0.5) * 2.0)


def _bevel(tex: np.ndarray, light: float, dark: float) -> np.ndarray:
    """Lighten the top/left edge and darken the bottom/right edge (ore/metal block look)."""
    out = tex.astype(np.float64)
    out[0, :] *= light
    out[:, 0] *= light
    out[-1, :] *= dark
    out[:, -1] *= dark
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _fringe(rng: np.random.Generator, side: np.ndarray, top: np.ndarray, depth: int) -> np.ndarray:
    """Paint the top rows of `side` with `top`, with a jagged lower edge (grass/snow sides)."""
    out = side.copy()
    lengths = depth - 1 + rng.integers(0, 3, size=TEX)  # per-column fringe length, 2..depth+1
    for col in range(TEX):
        out[: lengths[col], col] = top[: lengths[col], col]
    return out


def _grass_top(rng: np.random.Generator) -> np.ndarray:
    return _speckled(rng, (96, 158, 56), 0.22)


def _dirt(rng: np.random.Generator) -> np.ndarray:
    tex = _speckled(rng, (134, 96, 67), 0.18)
    pebbles = rng.random((TEX, TEX)) < 0.08  # a few darker clods break the uniform brown
    tex[pebbles] = (tex[pebbles] * 0.7).astype(np.uint8)
    return tex


def _stone(rng: np.random.Generator) -> np.ndarray:
    tex = _speckled(rng, (126, 126, 126), 0.12, cell=1)
    blotch = _noise(rng, 2) < 0.2  # darker 2x2 speckles, the classic stone look
    tex[blotch] = (tex[blotch] * 0.78).astype(np.uint8)
    return tex


def _water(rng: np.random.Generator) -> np.ndarray:
    light = 0.92 + 0.1 * _noise(rng, 1)
    # Ripples: short light horizontal strokes at staggered positions.
    for row in range(1, TEX, 4):
        start = int(rng.integers(0, TEX))
        for k in range(5):
            light[row + (k // 3) % 2 - 1, (start + k) % TEX] = 1.25
    return _colour((50, 92, 205), light)


def _wood_side(rng: np.random.Generator) -> np.ndarray:
    # Bark: vertical stripes of varying darkness, a little vertical noise.
    stripes = 0.75 + 0.35 * rng.random(TEX)
    light = stripes[None, :] * (0.92 + 0.16 * _noise(rng, 1))
    return _colour((104, 82, 50), light)


def _wood_top(rng: np.random.Generator) -> np.ndarray:
    # Rings: distance from the centre bucketed into bands (squared distance, integer exact).
    ij = np.arange(TEX) - 7.5
    d2 = ij[:, None] ** 2 + ij[None, :] ** 2
    band = (np.floor(d2 / 9.0).astype(np.int64)) % 2
    light = np.where(band == 0, 1.0, 0.82) * (0.95 + 0.1 * _noise(rng, 1))
    tex = _colour((176, 142, 86), light)
    bark = (np.abs(ij)[:, None] > 6.6) | (np.abs(ij)[None, :] > 6.6)
    tex[bark] = (86, 66, 40)
    return tex


def _leaves(rng: np.random.Generator) -> np.ndarray:
    light = 0.8 + 0.4 * _noise(rng, 1)
    holes = rng.random((TEX, TEX)) < 0.16  # dark dots: gaps in the foliage
    light[holes] = 0.45
    return _colour((58, 124, 38), light)


def _planks(rng: np.random.Generator) -> np.ndarray:
    light = 0.93 + 0.12 * _noise(rng, 1)
    for board in range(4):
        light[board * 4 + 3, :] = 0.62  # gap between boards
        seam = int(rng.integers(2, 14))
        light[board * 4 : board * 4 + 3, seam] = 0.72  # end of a board
        light[board * 4 : board * 4 + 3, :] *= 0.92 + 0.12 * rng.random()
    return _colour((164, 132, 80), light)


def _brick(rng: np.random.Generator) -> np.ndarray:
    light = 0.9 + 0.2 * _noise(rng, 1)
    tex = _colour((156, 74, 60), light)
    mortar = np.zeros((TEX, TEX), dtype=bool)
    mortar[3::4, :] = True
    for course in range(4):
        offset = 0 if course % 2 == 0 else 4
        mortar[course * 4 : course * 4 + 3, offset::8] = True
    tex[mortar] = _speckled(rng, (170, 164, 154), 0.08)[mortar]
    return tex


def _ore_block(rng: np.random.Generator, base: tuple[int, int, int], pattern_amp: float) -> np.ndarray:
    """Solid metal/gem block: smooth colour, diagonal sheen and a bevelled rim."""
    ij = np.arange(TEX)
    sheen = np.where(((ij[:, None] + ij[None, :]) // 3) % 4 == 0, 1.12, 1.0)
    light = sheen * (1.0 + pattern_amp * (_noise(rng, 2) - 0.5))
    return _bevel(_colour(base, light), 1.25, 0.7)


def _wool(rng: np.random.Generator, base: tuple[int, int, int]) -> np.ndarray:
    light = 0.88 + 0.24 * _noise(rng, 1)
    light[1::3, ::2] *= 0.9  # woven fibres
    return _colour(base, light)


def _make_block(rng: np.random.Generator, block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textures (top, side, bottom) of one block, each uint8 (16, 16, 3)."""
    if block == Block.AIR:
        blank = np.zeros((TEX, TEX, 3), np.uint8)
        return blank, blank, blank
    if block == Block.GRASS:
        top, dirt = _grass_top(rng), _dirt(rng)
        return top, _fringe(rng, dirt, _grass_top(rng), 3), dirt
    if block == Block.SNOW:
        top, dirt = _speckled(rng, (236, 244, 248), 0.05), _dirt(rng)
        return top, _fringe(rng, dirt, _speckled(rng, (236, 244, 248), 0.05), 4), dirt
    if block == Block.WOOD:
        ring = _wood_top(rng)
        return ring, _wood_side(rng), ring
    if block == Block.CACTUS:
        side_light = np.where(np.arange(TEX) % 4 == 1, 0.7, 1.0)[None, :] * (0.9 + 0.2 * _noise(rng, 1))
        side = _colour((70, 140, 50), side_light)
        side[::3, 0::4] = (220, 220, 160)  # spines
        top = _bevel(_speckled(rng, (92, 160, 64), 0.15), 0.8, 0.8)
        return top, side, top
    if block == Block.QUARTZ:
        side = _speckled(rng, (234, 228, 220), 0.04)
        side[:, [0, 1, 14, 15]] = (205, 198, 188)  # pillar fluting
        top = _bevel(_speckled(rng, (238, 233, 226), 0.04), 1.0, 0.82)
        return top, side, top
    single = {
        Block.DIRT: lambda: _dirt(rng),
        Block.STONE: lambda: _stone(rng),
        Block.SAND: lambda: _speckled(rng, (219, 206, 160), 0.08),
        Block.WATER: lambda: _water(rng),
        Block.LEAVES: lambda: _leaves(rng),
        Block.PLANKS: lambda: _planks(rng),
        Block.BRICK: lambda: _brick(rng),
        Block.BEDROCK: lambda: _speckled(rng, (70, 70, 72), 0.6, cell=2),
        Block.GOLD: lambda: _ore_block(rng, (246, 208, 62), 0.15),
        Block.DIAMOND: lambda: _ore_block(rng, (98, 222, 214), 0.15),
        Block.OBSIDIAN: lambda: _obsidian(rng),
        Block.RED_WOOL: lambda: _wool(rng, (176, 42, 38)),
        Block.LAPIS: lambda: _ore_block(rng, (36, 72, 176), 0.35),
        Block.EMERALD: lambda: _ore_block(rng, (42, 196, 92), 0.2),
        Block.PURPLE_WOOL: lambda: _wool(rng, (126, 52, 178)),
    }
    tex = single[block]()
    return tex, tex, tex


def _obsidian(rng: np.random.Generator) -> np.ndarray:
    tex = _speckled(rng, (26, 20, 40), 0.4, cell=1)
    streaks = _noise(rng, 2) < 0.18  # purple glints
    tex[streaks] = (74, 46, 110)
    return tex


@lru_cache(maxsize=1)
def _cached_textures() -> np.ndarray:
    rng = np.random.default_rng(TEXTURE_SEED)
    out = np.zeros((NUM_BLOCKS, 3, TEX, TEX, 3), np.uint8)
    for block in Block:
        out[block] = np.stack(_make_block(rng, block))
    out.setflags(write=False)
    return out


def make_textures() -> np.ndarray:
    """Build the texture atlas (identical on every machine).

    Returns:
        uint8 array (num_blocks, 3, 16, 16, 3): per block, faces (top, side, bottom), rows from the
        top of the face down, columns left to right, RGB. A fresh writable copy on every call.
    """
    return _cached_textures().copy()


@lru_cache(maxsize=1)
def make_mipmaps() -> np.ndarray:
    """Box-filtered mip chain of `make_textures()` so distant faces do not alias.

    Level ``m`` is ``16 >> m`` texels wide and stored in the top-left corner of its 16x16 slot.
    Integer rounding keeps it exact on every machine.

    Returns:
        uint8 array (num_blocks, 3, 5, 16, 16, 3), read-only: (block, face, level, row, col, rgb).
    """
    base = _cached_textures().astype(np.int32)
    out = np.zeros((NUM_BLOCKS, 3, NUM_MIPS, TEX, TEX, 3), np.uint8)
    out[:, :, 0] = base
    level = base
    for m in range(1, NUM_MIPS):
        level = (
            level[:, :, 0::2, 0::2]
            + level[:, :, 1::2, 0::2]
            + level[:, :, 0::2, 1::2]
            + level[:, :, 1::2, 1::2]
        )
        level = (level + 2) // 4
        size = TEX >> m
        out[:, :, m, :size, :size] = level
    out.setflags(write=False)
    return out
