"""Action sequences for Loopcraft videos: the random walk and the selection of revisiting test loops.

The random walk is the one of the original Loopcraft data generator (reference/method.md §7.1): it is
made of 9-frame *units*; a turn unit is 9 x 10 deg = 90 deg, so walks follow a coarse grid and often
come back to places they have already seen. Test videos go one step further: among many candidate
walks they keep one whose second part (after the context) stays close to the first part, so a model
that remembers its context can be scored against the ground truth.

Everything here is numpy (no world or renderer) and takes its randomness from the
``np.random.Generator`` it is given, so a video is reproducible from its seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from millivid_env.loopcraft.physics import TURN_DEG, YAW_TRIG, Action

FORWARD, LEFT, RIGHT = int(Action.forward), int(Action.left), int(Action.right)

#: Every action of the walk is held for this many consecutive frames.
FRAMES_PER_UNIT = 9
#: Possible numbers of turn units per cycle and their probabilities.
TURN_COUNTS = np.array([1, 2, 3, 4])
TURN_PROBABILITIES = np.array([0.1, 0.3, 0.1, 0.5])
#: Yaw change of one turn frame, in degrees (right turns add, left turns subtract).
TURN_DEGREES = TURN_DEG

#: Rows of pairwise distances computed at once by `chamfer_distance`; bounds its memory use.
_CHAMFER_CHUNK = 1024


def _walk_cycle(rng: np.random.Generator) -> np.ndarray:
    """One cycle of the walk, in units (not frames).

    Returns:
        int64 ``(1 + n_forward + n_turns,)``: a forward unit followed by a shuffle of ``n_forward``
        forward units and ``n_turns`` turn units that all turn the same way.
    """
    n_turns = int(rng.choice(TURN_COUNTS, p=TURN_PROBABILITIES))
    n_forward = int(rng.integers(n_turns, 3 * n_turns))  # uniform over {n_turns, ..., 3 n_turns - 1}
    direction = LEFT if rng.random() < 0.5 else RIGHT
    units = np.array([FORWARD] * n_forward + [direction] * n_turns, dtype=np.int64)
    rng.shuffle(units)
    return np.concatenate([np.array([FORWARD], dtype=np.int64), units])


def random_walk(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """The Loopcraft random walk, truncated to ``num_frames`` actions.

    Cycles of `_walk_cycle` are drawn until the walk is long enough; every unit is expanded to
    `FRAMES_PER_UNIT` identical frames, so the result is made of 9-frame runs (the last one may be
    cut short by the truncation).

    Args:
        rng: source of all randomness.
        num_frames: number of actions ``T`` (>= 1).

    Returns:
        int64 ``(T,)`` action ids (0 forward, 1 left, 2 right).
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    num_units = -(-int(num_frames) // FRAMES_PER_UNIT)
    cycles: list[np.ndarray] = []
    drawn = 0
    while drawn < num_units:
        cycle = _walk_cycle(rng)
        cycles.append(cycle)
        drawn += len(cycle)
    units = np.concatenate(cycles)
    return np.repeat(units, FRAMES_PER_UNIT)[: int(num_frames)].astype(np.int64)


def turtle_positions(actions: np.ndarray) -> np.ndarray:
    """Where a walk goes on open flat ground: a 2-D turtle with unit steps.

    The turtle starts at the origin facing yaw 0 and uses the world's conventions
    (docs/INTERFACES.md): forward moves one unit along ``(-sin(yaw), cos(yaw))`` in the ``(x, z)``
    plane; right turns add 10 deg, left turns subtract 10 deg. A real forward frame moves about
    0.22 blocks, so turtle positions are world positions (without obstacles) divided by that step.

    Args:
        actions: int ``(T,)`` action ids.

    Returns:
        float64 ``(T + 1, 2)``: the ``(x, z)`` start position followed by the position after each action.
    """
    actions = np.asarray(actions)
    if actions.ndim != 1:
        raise ValueError(f"actions must be one-dimensional, got shape {actions.shape}")
    turns = np.where(actions == RIGHT, 1, 0) - np.where(actions == LEFT, 1, 0)
    # Headings as integer multiples of 10 degrees keep them exact however long the walk is, and the
    # physics' rounded trig table (not numpy's SIMD sin/cos) makes positions identical on every CPU.
    heading = np.cumsum(turns) % (360 // TURN_DEGREES)
    sin_cos = np.array(YAW_TRIG)  # (36, 2)
    forward = actions == FORWARD
    steps = np.stack([-sin_cos[heading, 0] * forward, sin_cos[heading, 1] * forward], axis=1)
    positions = np.zeros((len(actions) + 1, 2))
    np.cumsum(steps, axis=0, out=positions[1:])
    return positions


def _nearest_squared(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance from each point of ``a`` (N, D) to its nearest in ``b`` (M, D), and vice versa.

    Differences are formed explicitly (not via ``|a|^2 + |b|^2 - 2ab`` and a matrix product) so every
    operation is exactly rounded: the ranking of test-loop candidates, and so the test videos, are
    the same on every machine. Rows go in chunks to bound memory.

    Returns:
        float64 ``(N,)`` and ``(M,)``.
    """
    to_b = np.empty(len(a))
    to_a = np.full(len(b), np.inf)
    for start in range(0, len(a), _CHAMFER_CHUNK):
        chunk = a[start : start + _CHAMFER_CHUNK]
        squared = np.zeros((len(chunk), len(b)))
        for d in range(a.shape[1]):
            diff = chunk[:, d, None] - b[None, :, d]
            squared += diff * diff
        to_b[start : start + len(chunk)] = squared.min(axis=1)
        np.minimum(to_a, squared.min(axis=0), out=to_a)
    return to_b, to_a


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance between two point sets.

    As in the original test-set selection: mean nearest-neighbour distance from ``a`` to ``b`` plus
    the mean from ``b`` to ``a`` (Euclidean distances, not squared).

    Args:
        a: float ``(N, D)`` points, N >= 1.
        b: float ``(M, D)`` points, M >= 1.

    Returns:
        The distance, >= 0, in the units of the points.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected point sets (N, D) and (M, D), got shapes {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("chamfer_distance needs at least one point in each set")
    to_b, to_a = _nearest_squared(a, b)
    return float(np.sqrt(to_b).mean() + np.sqrt(to_a).mean())


def context_rollout_distance(actions: np.ndarray, context_frames: int) -> float:
    """How far the part of a walk after its context strays from the context, in turtle steps.

    Args:
        actions: int ``(T,)`` action ids.
        context_frames: ``C``, with ``1 <= C <= T``.

    Returns:
        `chamfer_distance` between turtle positions ``[0:C]`` and ``[C:]`` (reference/method.md §7.1).
    """
    positions = turtle_positions(actions)
    return chamfer_distance(positions[:context_frames], positions[context_frames:])


@dataclass(frozen=True)
class TestLoopSelection:
    """Everything `select_test_loop` looked at, for tests and diagnostics.

    Attributes:
        candidates: int64 ``(K, T)`` the candidate walks, in the order they were drawn.
        distances: float64 ``(K,)`` their `context_rollout_distance`.
        kept: int64 ``(k,)`` indices of the ``k`` lowest distances (ties broken by draw order).
        chosen: index into ``candidates`` of the returned walk (one of ``kept``).
    """

    __test__ = False  # not a pytest test class despite its name

    candidates: np.ndarray
    distances: np.ndarray
    kept: np.ndarray
    chosen: int

    @property
    def actions(self) -> np.ndarray:
        """int64 ``(T,)``: the chosen walk."""
        return self.candidates[self.chosen]


def select_test_loop_detailed(
    rng: np.random.Generator,
    num_frames: int,
    context_frames: int,
    candidates: int = 100,
    keep_fraction: float = 0.1,
) -> TestLoopSelection:
    """`select_test_loop`, also returning the candidates and their distances.

    Args:
        rng: source of all randomness.
        num_frames: ``T``, the length of every candidate walk.
        context_frames: ``C``, number of context frames (``1 <= C < T``).
        candidates: number of random walks drawn.
        keep_fraction: fraction of the candidates (lowest distance first) among which one is picked;
            at least one is always kept.

    Returns:
        The selection; ``.actions`` is the test loop.
    """
    if not 1 <= context_frames < num_frames:
        raise ValueError(
            f"context_frames must be in [1, num_frames), got context_frames={context_frames} "
            f"for num_frames={num_frames}"
        )
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    walks = np.stack([random_walk(rng, num_frames) for _ in range(candidates)])
    distances = np.array([context_rollout_distance(walk, context_frames) for walk in walks])
    num_kept = max(1, int(round(candidates * keep_fraction)))
    kept = np.argsort(distances, kind="stable")[:num_kept]
    chosen = int(kept[rng.integers(num_kept)])
    return TestLoopSelection(candidates=walks, distances=distances, kept=kept, chosen=chosen)


def select_test_loop(
    rng: np.random.Generator,
    num_frames: int,
    context_frames: int,
    candidates: int = 100,
    keep_fraction: float = 0.1,
) -> np.ndarray:
    """A random walk whose post-context part revisits its context (the Loopcraft test split).

    Draws ``candidates`` walks, keeps the ``keep_fraction`` with the lowest Chamfer distance between
    the turtle positions of the context and those of the rest, and picks one of them uniformly.

    Args:
        rng: source of all randomness.
        num_frames: ``T``.
        context_frames: ``C`` (``1 <= C < T``).
        candidates: number of random walks drawn (100 in the original data).
        keep_fraction: fraction kept before picking (0.1 in the original data).

    Returns:
        int64 ``(T,)`` action ids.
    """
    return select_test_loop_detailed(rng, num_frames, context_frames, candidates, keep_fraction).actions
