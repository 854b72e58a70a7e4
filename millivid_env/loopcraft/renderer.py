"""First-person voxel ray caster (numba): textured blocks, face shading, sky, clouds and fog.

One ray per pixel walks the voxel grid with the Amanatides-Woo DDA until it hits a non-air block
or passes `MAX_DIST`. The kernel is compiled without fastmath or parallelism and uses only
+, -, *, /, sqrt and comparisons (all exactly rounded in IEEE 754), and per-frame trig comes from
`physics.trig` (rounded to 2^-40), so frames are byte-identical on every machine.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral

import numpy as np
from numba import njit

from millivid_env.loopcraft.blocks import NUM_MIPS, TEX, make_mipmaps
from millivid_env.loopcraft.physics import DEFAULT_PITCH, EYE_HEIGHT, trig
from millivid_env.loopcraft.world import CLOUD_CELL, CLOUD_MAP, World

#: Horizontal and vertical field of view in degrees (square frames).
FOV_DEG = 70.0
#: Rays stop here; the fog is complete at this distance (blocks).
MAX_DIST = 44.0
#: Fog starts at this distance (blocks).
FOG_START = 18.0
#: Sky colours (RGB) at the horizon (also the fog colour) and at the zenith.
HORIZON = (192, 216, 246)
ZENITH = (104, 152, 236)
#: Height of the cloud layer and the distance over which clouds fade into the sky.
CLOUD_Y = 60.0
CLOUD_FADE = 220.0
#: Brightness of faces by orientation: top, bottom, x-facing sides, z-facing sides.
SHADE_TOP, SHADE_BOTTOM, SHADE_X, SHADE_Z = 1.0, 0.5, 0.8, 0.64
#: Ambient occlusion: darkening of a face next to an edge shared with a solid block, and band width.
AO_STRENGTH, AO_BAND = 0.22, 0.45
#: Sun: unit direction towards it (elevation ~18 deg, to the south-east) and angular half-size (tan).
SUN_DIR = (-0.55, 0.31, 0.775)
SUN_SIZE = 0.06
#: Mip-map bias: > 1 picks blurrier levels sooner (less shimmer), < 1 keeps detail longer.
LOD_BIAS = 0.8


def validate_resolution(resolution: object) -> int:
    """Return `resolution` as an int if it is a positive multiple of 8, else raise ValueError."""
    ok = isinstance(resolution, (Integral, np.integer)) and not isinstance(resolution, (bool, np.bool_))
    if not ok or int(resolution) <= 0 or int(resolution) % 8 != 0:  # type: ignore[arg-type]
        raise ValueError(f"resolution must be a positive multiple of 8, got {resolution!r}")
    return int(resolution)  # type: ignore[arg-type]


@lru_cache(maxsize=16)
def camera_rays(resolution: int, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel unit ray directions at yaw 0, and the sky colour behind each pixel.

    Returns:
        dirs: float64 (R*R, 3) unit (x, y, z) directions, row-major from the top-left pixel.
        sky: float64 (R*R, 3) RGB sky gradient (horizon -> zenith), also the pixel's fog colour.
    """
    r = resolution
    sp, cp = trig(pitch)
    tan_half = trig(FOV_DEG / 2.0)[0] / trig(FOV_DEG / 2.0)[1]
    centres = (np.arange(r, dtype=np.float64) + 0.5) * 2.0 / r - 1.0
    sx = np.tile(centres * tan_half, r)  # column coordinate, right positive
    sy = np.repeat(-centres * tan_half, r)  # row coordinate, up positive
    # forward (0, sp, cp) + sx * right (-1, 0, 0) + sy * up (0, cp, -sp): yaw 0 faces +z.
    d = np.stack([-sx, sp + sy * cp, cp - sy * sp], axis=1)
    d /= np.sqrt((d * d).sum(axis=1, keepdims=True))
    s = np.clip(d[:, 1:2] * 1.8, 0.0, 1.0)
    sky = np.asarray(HORIZON, np.float64) + (np.asarray(ZENITH, np.float64) - np.asarray(HORIZON)) * s
    d.setflags(write=False)
    sky.setflags(write=False)
    return d, sky


def _sun_frame() -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]:
    """Orthonormal frame (sun, horizontal tangent, vertical tangent), normalised with sqrt only."""
    sx, sy, sz = SUN_DIR
    n = math.sqrt(sx * sx + sy * sy + sz * sz)
    sun = (sx / n, sy / n, sz / n)
    h = math.sqrt(sun[0] * sun[0] + sun[2] * sun[2])
    e1 = (sun[2] / h, 0.0, -sun[0] / h)
    e2 = (sun[1] * e1[2], sun[2] * e1[0] - sun[0] * e1[2], -sun[1] * e1[0])
    return sun, e1, e2


_SUN, _SUN_E1, _SUN_E2 = _sun_frame()


@njit(cache=True, inline="always")
def _solid(blocks, i, j, k):  # noqa: D103
    nx, ny, nz = blocks.shape
    if i < 0 or j < 0 or k < 0 or i >= nx or j >= ny or k >= nz:
        return False
    return blocks[i, j, k] != 0


@njit(cache=True, inline="always")
def _edge_dark(blocks, i, j, k, di, dj, dk, frac):  # noqa: D103
    # Darkening near the low (frac ~ 0) and high (frac ~ 1) edge along tangent (di, dj, dk).
    dark = 0.0
    if frac < AO_BAND and _solid(blocks, i - di, j - dj, k - dk):
        dark += AO_STRENGTH * (1.0 - frac / AO_BAND)
    if frac > 1.0 - AO_BAND and _solid(blocks, i + di, j + dj, k + dk):
        dark += AO_STRENGTH * (1.0 - (1.0 - frac) / AO_BAND)
    return dark


@njit(cache=True)
def _kernel(blocks, mips, clouds, dirs, sky, out, ex, ey, ez, sin_yaw, cos_yaw, lod_scale):  # noqa: D103
    nx, ny, nz = blocks.shape
    flat = blocks.reshape(nx * ny * nz)
    mflat = mips.reshape(mips.size)  # flat texel array: one offset computation per pixel
    npix = dirs.shape[0]
    # The eye cell is the same for every ray.
    ix0 = int(math.floor(ex))
    iy0 = int(math.floor(ey))
    iz0 = int(math.floor(ez))
    for p in range(npix):
        dx0 = dirs[p, 0]
        dy = dirs[p, 1]
        dz0 = dirs[p, 2]
        # Rotate by yaw about the vertical axis (yaw 0 faces +z, positive yaw turns right).
        dx = dx0 * cos_yaw - dz0 * sin_yaw
        dz = dx0 * sin_yaw + dz0 * cos_yaw
        ix = ix0
        iy = iy0
        iz = iz0
        big = 1e30
        if dx > 0.0:
            sxs, tdx, tmx = 1, 1.0 / dx, (ix + 1.0 - ex) / dx
        elif dx < 0.0:
            sxs, tdx, tmx = -1, -1.0 / dx, (ex - ix) / -dx
        else:
            sxs, tdx, tmx = 0, big, big
        if dy > 0.0:
            sys_, tdy, tmy = 1, 1.0 / dy, (iy + 1.0 - ey) / dy
        elif dy < 0.0:
            sys_, tdy, tmy = -1, -1.0 / dy, (ey - iy) / -dy
        else:
            sys_, tdy, tmy = 0, big, big
        if dz > 0.0:
            szs, tdz, tmz = 1, 1.0 / dz, (iz + 1.0 - ez) / dz
        elif dz < 0.0:
            szs, tdz, tmz = -1, -1.0 / dz, (ez - iz) / -dz
        else:
            szs, tdz, tmz = 0, big, big
        hit = 0
        axis = 0
        t = 0.0
        # Walk a flat index alongside the cell coordinates: no 3-D index arithmetic per step.
        idx = (ix * ny + iy) * nz + iz
        stx = sxs * ny * nz
        sty = sys_ * nz
        while True:
            if tmx < tmy and tmx < tmz:
                ix += sxs
                idx += stx
                t = tmx
                tmx += tdx
                axis = 0
                if ix < 0 or ix >= nx:
                    break
            elif tmy < tmz:
                iy += sys_
                idx += sty
                t = tmy
                tmy += tdy
                axis = 1
                if iy < 0 or iy >= ny:
                    break
            else:
                iz += szs
                idx += szs
                t = tmz
                tmz += tdz
                axis = 2
                if iz < 0 or iz >= nz:
                    break
            if t > MAX_DIST:
                break
            b = flat[idx]
            if b != 0:
                hit = b
                break
        fr = sky[p, 0]
        fg = sky[p, 1]
        fb = sky[p, 2]
        if hit == 0:
            if dy > 0.0:
                # Blocky clouds on a plane high above the world, fading with distance.
                tc = (CLOUD_Y - ey) / dy
                if tc < CLOUD_FADE:
                    cx = int(math.floor((ex + dx * tc) / CLOUD_CELL)) % CLOUD_MAP
                    cz = int(math.floor((ez + dz * tc) / CLOUD_CELL)) % CLOUD_MAP
                    if clouds[cx, cz] != 0:
                        a = 0.9 * (1.0 - tc / CLOUD_FADE)
                        fr += (250.0 - fr) * a
                        fg += (252.0 - fg) * a
                        fb += (255.0 - fb) * a
            # A square sun: the ray's offsets from the sun direction, in the sun's own frame.
            sc = dx * _SUN[0] + dy * _SUN[1] + dz * _SUN[2]
            if sc > 0.0:
                sa = dx * _SUN_E1[0] + dz * _SUN_E1[2]
                sb = dx * _SUN_E2[0] + dy * _SUN_E2[1] + dz * _SUN_E2[2]
                if abs(sa) < SUN_SIZE * sc and abs(sb) < SUN_SIZE * sc:
                    fr, fg, fb = 255.0, 248.0, 200.0
            out[p, 0] = np.uint8(fr + 0.5)
            out[p, 1] = np.uint8(fg + 0.5)
            out[p, 2] = np.uint8(fb + 0.5)
            continue
        hx = ex + dx * t
        hy = ey + dy * t
        hz = ez + dz * t
        if axis == 0:
            u = hz - iz
            v = hy - iy
            face = 1
            shade = SHADE_X
            if sxs < 0:
                u = 1.0 - u
        elif axis == 2:
            u = hx - ix
            v = hy - iy
            face = 1
            shade = SHADE_Z
            if szs > 0:
                u = 1.0 - u
        else:
            u = hx - ix
            v = hz - iz
            if sys_ < 0:
                face = 0
                shade = SHADE_TOP
            else:
                face = 2
                shade = SHADE_BOTTOM
            v = 1.0 - v
        # Ambient occlusion: look at the air cell in front of the face and its four edge neighbours.
        fx, fy, fz = ix, iy, iz
        ax, ay, az = hx - ix, hy - iy, hz - iz
        if axis == 0:
            fx -= sxs
            dark = _edge_dark(blocks, fx, fy, fz, 0, 1, 0, ay) + _edge_dark(blocks, fx, fy, fz, 0, 0, 1, az)
        elif axis == 1:
            fy -= sys_
            dark = _edge_dark(blocks, fx, fy, fz, 1, 0, 0, ax) + _edge_dark(blocks, fx, fy, fz, 0, 0, 1, az)
        else:
            fz -= szs
            dark = _edge_dark(blocks, fx, fy, fz, 1, 0, 0, ax) + _edge_dark(blocks, fx, fy, fz, 0, 1, 0, ay)
        shade *= 1.0 - min(dark, 0.45)
        # Mip level from the texel footprint of one pixel at this distance.
        foot = t * lod_scale
        level = 0
        while foot >= 1.0 and level < 4:
            foot *= 0.5
            level += 1
        size = TEX >> level
        tu = int(u * size)
        tv = int((1.0 - v) * size)
        tu = min(max(tu, 0), size - 1)
        tv = min(max(tv, 0), size - 1)
        fog = (t - FOG_START) / (MAX_DIST - FOG_START)
        fog = min(max(fog, 0.0), 1.0)
        keep = shade * (1.0 - fog)
        m = ((((hit * 3 + face) * NUM_MIPS + level) * TEX + tv) * TEX + tu) * 3
        out[p, 0] = np.uint8(mflat[m] * keep + fr * fog + 0.5)
        out[p, 1] = np.uint8(mflat[m + 1] * keep + fg * fog + 0.5)
        out[p, 2] = np.uint8(mflat[m + 2] * keep + fb * fog + 0.5)


def render(world: World, pose: np.ndarray, resolution: int = 64) -> np.ndarray:
    """Render the first-person view.

    Args:
        world: the world.
        pose: (x, y, z, yaw, pitch) with (x, y, z) the feet; yaw/pitch in degrees.
        resolution: frame edge in pixels, a positive multiple of 8.

    Returns:
        uint8 (R, R, 3) RGB frame, row 0 at the top.
    """
    r = validate_resolution(resolution)
    x, y, z, yaw, pitch = (float(v) for v in pose)
    dirs, sky = camera_rays(r, pitch)
    sin_yaw, cos_yaw = trig(yaw)
    pixel_angle = 2.0 * trig(FOV_DEG / 2.0)[0] / trig(FOV_DEG / 2.0)[1] / r
    lod_scale = TEX * pixel_angle * LOD_BIAS
    out = np.empty((r * r, 3), np.uint8)
    blocks = world.blocks if world.blocks.flags.c_contiguous else np.ascontiguousarray(world.blocks)
    _kernel(blocks, _mips(), world.clouds, dirs, sky, out, x, y + EYE_HEIGHT, z, sin_yaw, cos_yaw, lod_scale)
    return out.reshape(r, r, 3)


@lru_cache(maxsize=1)
def _mips() -> np.ndarray:
    return np.ascontiguousarray(make_mipmaps())


__all__ = ["render", "validate_resolution", "camera_rays", "DEFAULT_PITCH", "FOV_DEG", "MAX_DIST"]
