"""The Loopcraft random walk and the selection of test loops that revisit their context."""

from __future__ import annotations

import numpy as np
import pytest

from millivid_env.loopcraft import trajectories as tr
from millivid_env.loopcraft.episodes import render_episode
from millivid_env.loopcraft.physics import WALK_SPEED, initial_pose, step_pose
from millivid_env.loopcraft.world import flat_world, generate_world


def test_walk_is_made_of_9_frame_units() -> None:
    actions = tr.random_walk(np.random.default_rng(0), 9 * 300)
    assert actions.dtype == np.int64 and actions.shape == (2700,)
    assert set(np.unique(actions)) <= {0, 1, 2}
    units = actions.reshape(-1, 9)
    assert (units == units[:, :1]).all()


@pytest.mark.parametrize("length", [1, 8, 9, 10, 100, 1024])
def test_walk_is_truncated_to_the_requested_length(length: int) -> None:
    actions = tr.random_walk(np.random.default_rng(length), length)
    assert actions.shape == (length,)
    assert actions[0] == tr.FORWARD  # every cycle starts with a forward unit


def test_walk_cycles_follow_the_loopcraft_distribution() -> None:
    rng = np.random.default_rng(1)
    n_cycles = 6000
    turn_counts = np.zeros(5)
    lefts = 0
    for _ in range(n_cycles):
        cycle = tr._walk_cycle(rng)
        assert cycle[0] == tr.FORWARD
        turns = cycle[cycle != tr.FORWARD]
        assert len(set(turns.tolist())) == 1, "all turns of a cycle go the same way"
        n_turns, n_forward = len(turns), int((cycle == tr.FORWARD).sum()) - 1
        assert n_turns <= n_forward < 3 * n_turns
        turn_counts[n_turns] += 1
        lefts += turns[0] == tr.LEFT
    frequencies = turn_counts[1:] / n_cycles
    np.testing.assert_allclose(frequencies, tr.TURN_PROBABILITIES, atol=0.02)
    assert abs(lefts / n_cycles - 0.5) < 0.03


def test_walk_is_deterministic_for_a_given_rng() -> None:
    a = tr.random_walk(np.random.default_rng(7), 500)
    b = tr.random_walk(np.random.default_rng(7), 500)
    c = tr.random_walk(np.random.default_rng(8), 500)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_walk_lengths_are_rejected() -> None:
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="num_frames"):
            tr.random_walk(np.random.default_rng(0), bad)


def test_turtle_uses_the_world_conventions() -> None:
    # Yaw 0 faces +z; a right turn adds 10 degrees and 90 degrees right faces -x.
    positions = tr.turtle_positions(np.array([0, 0] + [2] * 9 + [0]))
    np.testing.assert_allclose(positions[2], [0, 2])
    np.testing.assert_allclose(positions[-1], [-1, 2], atol=1e-12)
    assert positions.shape == (13, 2)
    # 36 turns of 10 degrees come back to the start heading.
    around = tr.turtle_positions(np.array([1] * 36 + [0]))
    np.testing.assert_allclose(around[-1], [0, 1], atol=1e-12)


def test_turtle_matches_the_physics_on_open_ground() -> None:
    world = flat_world((96, 16, 96))
    actions = tr.random_walk(np.random.default_rng(3), 60)
    pose = initial_pose(world)
    start = pose[[0, 2]].copy()
    path = [start]
    for action in actions:
        pose = step_pose(world, pose, int(action))
        path.append(pose[[0, 2]])
    expected = start + tr.turtle_positions(actions) * WALK_SPEED
    np.testing.assert_allclose(np.array(path), expected, atol=1e-6)


def test_chamfer_distance() -> None:
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert tr.chamfer_distance(a, a) == 0.0
    assert tr.chamfer_distance([[0.0, 0.0]], [[3.0, 4.0]]) == pytest.approx(10.0)
    b = np.array([[0.0, 1.0], [5.0, 0.0], [9.0, 9.0]])
    assert tr.chamfer_distance(a, b) == pytest.approx(tr.chamfer_distance(b, a))
    # a -> b: (1 + sqrt(2)) / 2; b -> a: (1 + 4 + sqrt(145)) / 3
    assert tr.chamfer_distance(a, b) == pytest.approx((1 + np.sqrt(2)) / 2 + (5 + np.sqrt(145)) / 3)
    with pytest.raises(ValueError):
        tr.chamfer_distance(np.zeros((0, 2)), a)
    with pytest.raises(ValueError):
        tr.chamfer_distance(np.zeros((3, 3)), a)


def test_chamfer_distance_in_chunks_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2500, 2)), rng.normal(size=(700, 2)) + 1
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    assert tr.chamfer_distance(a, b) == pytest.approx(d.min(1).mean() + d.min(0).mean())


def test_selection_keeps_the_lowest_distances_and_is_deterministic() -> None:
    selection = tr.select_test_loop_detailed(np.random.default_rng(5), 512, 128)
    assert selection.candidates.shape == (100, 512) and len(selection.kept) == 10
    assert selection.chosen in selection.kept
    unselected = np.setdiff1d(np.arange(100), selection.kept)
    assert selection.distances[selection.kept].max() <= selection.distances[unselected].min()
    assert selection.distances[selection.chosen] < np.median(selection.distances[unselected])
    again = tr.select_test_loop(np.random.default_rng(5), 512, 128)
    np.testing.assert_array_equal(again, selection.actions)


def test_selection_rejects_bad_parameters() -> None:
    rng = np.random.default_rng(0)
    for frames, context in ((100, 0), (100, 100), (100, 150)):
        with pytest.raises(ValueError, match="context_frames"):
            tr.select_test_loop(rng, frames, context)
    with pytest.raises(ValueError, match="keep_fraction"):
        tr.select_test_loop(rng, 100, 10, keep_fraction=0.0)


def _walk_xz(world, actions: np.ndarray) -> np.ndarray:
    pose = initial_pose(world)
    path = [pose[[0, 2]]]
    for action in actions:
        pose = step_pose(world, pose, int(action))
        path.append(pose[[0, 2]])
    return np.array(path)


def _nearest(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    return np.sqrt(((points[:, None] - others[None]) ** 2).sum(-1)).min(axis=1)


def test_test_loops_revisit_their_context_in_the_real_world() -> None:
    frames, context = 256, 64
    selected_medians, unselected_medians, selected_chamfer, unselected_chamfer = [], [], [], []
    for seed in range(1, 5):
        selection = tr.select_test_loop_detailed(np.random.default_rng(seed), frames, context)
        world = generate_world((seed, 1, 0))
        # The poses of a rendered episode (frame i after action i) are the real, obstacle-aware path.
        episode = render_episode(world, selection.actions, resolution=8)
        path = np.concatenate([episode.start_pose[None, [0, 2]], episode.poses[:, [0, 2]]])
        np.testing.assert_allclose(path, _walk_xz(world, selection.actions), atol=1e-4)
        distance = _nearest(path[context:], path[:context])
        # The rollout passes within a few blocks of where the context went.
        assert np.median(distance) < 4.0
        assert (distance < 2.0).mean() > 0.4
        selected_medians.append(np.median(distance))
        selected_chamfer.append(tr.chamfer_distance(path[:context], path[context:]))
        unselected = np.setdiff1d(np.arange(100), selection.kept)
        for other in unselected[:10]:
            other_path = _walk_xz(world, selection.candidates[other])
            unselected_medians.append(np.median(_nearest(other_path[context:], other_path[:context])))
            unselected_chamfer.append(tr.chamfer_distance(other_path[:context], other_path[context:]))
    assert np.mean(selected_medians) < np.median(unselected_medians)
    assert np.mean(selected_chamfer) < np.median(unselected_chamfer)
