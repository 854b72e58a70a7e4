"""Player physics of Loopcraft (DESIGN §3): 10-degree turns, forward walking, auto-jump, gravity.

The player is an axis-aligned box of half-width `BODY_RADIUS` and height `BODY_HEIGHT` whose feet
are at the pose's (x, y, z). Jump is always held: walking into a 1-block step climbs it, a 2-block
wall stops the player. Walking off an edge drops the player to the ground below at once. Every
non-air block is solid (water included, so it is a walkable surface and the camera never dips
into it). Trig comes from a table of yaw multiples of 10 degrees rounded to 2^-40, so positions are
bit-identical on every machine.
"""

from __future__ import annotations

import math
from enum import IntEnum
from numbers import Integral

import numpy as np

from millivid_env.loopcraft.world import World

#: Degrees a left/right action turns (left = -TURN_DEG, right = +TURN_DEG).
TURN_DEG = 10
#: Blocks walked per forward action.
WALK_SPEED = 0.22
#: Default camera pitch in degrees (negative looks down); constant within an episode.
DEFAULT_PITCH = -10.0
#: Eye height above the feet, in blocks.
EYE_HEIGHT = 1.62
#: Half-width and height of the player's collision box, in blocks.
BODY_RADIUS = 0.3
BODY_HEIGHT = 1.8
#: Highest step the automatic jump climbs, in blocks.
STEP_HEIGHT = 1.0

_EPS = 1e-6
VALID_ACTIONS_TEXT = "valid actions: 0 forward, 1 left, 2 right"


class Action(IntEnum):
    """The three Loopcraft actions."""

    forward = 0
    left = 1
    right = 2


def _quantise(value: float) -> float:
    # Round libm results to a 2^-40 grid: last-ulp differences between C libraries vanish.
    return round(value * 2.0**40) / 2.0**40


#: (sin, cos) of every yaw that is a multiple of TURN_DEG, indexed by yaw // TURN_DEG.
YAW_TRIG: tuple[tuple[float, float], ...] = tuple(
    (_quantise(math.sin(math.radians(d))), _quantise(math.cos(math.radians(d))))
    for d in range(0, 360, TURN_DEG)
)


def trig(degrees: float) -> tuple[float, float]:
    """(sin, cos) of an angle in degrees, bit-identical on every machine (table or 2^-40 rounding)."""
    if float(degrees).is_integer() and int(degrees) % TURN_DEG == 0:
        return YAW_TRIG[(int(degrees) % 360) // TURN_DEG]
    r = math.radians(float(degrees))
    return _quantise(math.sin(r)), _quantise(math.cos(r))


def validate_action(action: object) -> int:
    """Check an action and return it as a Python int.

    Args:
        action: a Python or numpy integer (or 0-d integer array) in {0, 1, 2}.

    Raises:
        ValueError: for anything else (out of range, float, str, bool, arrays with elements).
    """
    value = action
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item() if np.issubdtype(value.dtype, np.integer) else value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, np.integer)):
        raise ValueError(f"invalid action {action!r} of type {type(action).__name__}; {VALID_ACTIONS_TEXT}")
    if not 0 <= int(value) <= 2:
        raise ValueError(f"invalid action {int(value)}; {VALID_ACTIONS_TEXT}")
    return int(value)


def _body_cells(x: float, y: float, z: float) -> tuple[int, int, int, int, int, int]:
    """Block index ranges [i0, i1) x [j0, j1) x [k0, k1) overlapped by the body at feet (x, y, z)."""
    i0 = math.floor(x - BODY_RADIUS)
    i1 = math.floor(x + BODY_RADIUS - _EPS) + 1
    k0 = math.floor(z - BODY_RADIUS)
    k1 = math.floor(z + BODY_RADIUS - _EPS) + 1
    j0 = math.floor(y + _EPS)
    j1 = math.floor(y + BODY_HEIGHT - _EPS) + 1
    return i0, i1, j0, j1, k0, k1


def collides(blocks: np.ndarray, x: float, y: float, z: float) -> bool:
    """Whether the body with feet at (x, y, z) overlaps a solid block (outside the grid counts as solid)."""
    nx, ny, nz = blocks.shape
    i0, i1, j0, j1, k0, k1 = _body_cells(x, y, z)
    if i0 < 0 or k0 < 0 or j0 < 0 or i1 > nx or k1 > nz:
        return True
    # Above the top of the world is open air.
    return bool(blocks[i0:i1, j0 : min(j1, ny), k0:k1].any())


def ground_below(blocks: np.ndarray, x: float, y: float, z: float) -> float:
    """Feet height after falling straight down from (x, y, z): top of the highest block under the body."""
    nx, ny, nz = blocks.shape
    i0, i1, _, _, k0, k1 = _body_cells(x, y, z)
    j_start = min(math.floor(y + _EPS), ny) - 1  # highest cell fully below the feet
    for j in range(j_start, -1, -1):
        if blocks[i0:i1, j, k0:k1].any():
            return float(j + 1)
    return 0.0


def _try_move(
    blocks: np.ndarray, x: float, y: float, z: float, nx_: float, nz_: float
) -> tuple[float, float, float]:
    """Move the feet horizontally to (nx_, nz_), climbing a step of up to STEP_HEIGHT if needed."""
    if not collides(blocks, nx_, y, nz_):
        return nx_, y, nz_
    # Auto-jump: feet rise to the top of the next block level; needs head room here and there.
    up = math.floor(y + _EPS) + STEP_HEIGHT
    if not collides(blocks, x, up, z) and not collides(blocks, nx_, up, nz_):
        return nx_, ground_below(blocks, nx_, up, nz_), nz_
    return x, y, z


def step_pose(world: World, pose: np.ndarray, action: object) -> np.ndarray:
    """Advance the pose by one action.

    Args:
        world: the world to move in.
        pose: float64 (5,) = (x, y, z, yaw, pitch); (x, y, z) are the feet, yaw an integer multiple of
            10 in [0, 360).
        action: 0 forward, 1 left, 2 right (validated with `validate_action`).

    Returns:
        The new pose, float64 (5,) (a new array; the input is not modified).
    """
    act = validate_action(action)
    x, y, z, yaw, pitch = (float(v) for v in pose)
    if act == Action.left:
        return np.array([x, y, z, float((int(yaw) - TURN_DEG) % 360), pitch])
    if act == Action.right:
        return np.array([x, y, z, float((int(yaw) + TURN_DEG) % 360), pitch])
    blocks = world.blocks
    s, c = trig(yaw)
    dx, dz = -s * WALK_SPEED, c * WALK_SPEED
    # Axis-wise moves: a diagonal push into a wall slides along it; a straight push stops.
    if dx != 0.0:
        x, y, z = _try_move(blocks, x, y, z, x + dx, z)
    if dz != 0.0:
        x, y, z = _try_move(blocks, x, y, z, x, z + dz)
    y = ground_below(blocks, x, y, z)
    return np.array([x, y, z, yaw, pitch])


def initial_pose(world: World, yaw: int = 0, pitch: float = DEFAULT_PITCH) -> np.ndarray:
    """Pose standing at the world's spawn: float64 (5,) = (x, y, z, yaw, pitch)."""
    x, y, z = (float(v) for v in world.spawn)
    # The spawn column may be under a canopy or overhang; settle on the ground from just above it.
    while collides(world.blocks, x, y, z) and y < world.blocks.shape[1]:
        y += 1.0
    y = ground_below(world.blocks, x, y, z)
    return np.array([x, y, z, float(int(yaw) % 360), float(pitch)])
