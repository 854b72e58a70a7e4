"""The model-free baselines of `millivid evaluate`: the held frame and the oracle look-up."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from evaluation.baselines import (  # noqa: E402
    DEGREES_PER_BLOCK,
    held_frames,
    nearest_pose_frames,
    oracle_lookup_frames,
    pose_distances,
)
from evaluation.plots import _draw_metric  # noqa: E402
from evaluation.protocol import get_protocol  # noqa: E402

#: Context poses (x, y, z, yaw, pitch).
CONTEXT = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [5.0, 0.0, 0.0, 170.0, 0.0],
        [0.0, 0.0, 5.0, -90.0, 0.0],
    ]
)


def test_nearest_pose_uses_xz_blocks_plus_wrapped_yaw_over_30():
    assert DEGREES_PER_BLOCK == 30.0
    poses = np.array(
        [
            [0.1, 9.0, 0.0, 10.0, 40.0],  # height and pitch are ignored: context 0
            [5.0, 0.0, 0.0, -175.0, 0.0],  # 15 degrees from 170 across +-180 (345 unwrapped): context 1
            [0.0, 0.0, 4.0, 270.0, 0.0],  # 270 is -90: context 2 (unwrapped it ties with context 0)
            [2.5, 0.0, 0.0, 0.0, 0.0],  # half-way in x, heading of context 0: context 0
            [3.0, 0.0, 0.0, 165.0, 0.0],  # nearer context 0 in blocks, but 165 degrees off: context 1
        ]
    )
    np.testing.assert_array_equal(nearest_pose_frames(CONTEXT, poses), [0, 1, 2, 0, 1])
    distances = pose_distances(CONTEXT, poses)
    assert distances.shape == (5, 3)
    np.testing.assert_allclose(
        distances[0], [0.1 + 10 / 30, np.hypot(4.9, 0) + 160 / 30, np.hypot(0.1, 5) + 100 / 30]
    )
    np.testing.assert_allclose(distances[1, 1], 15 / 30)
    np.testing.assert_allclose(distances[2, 2], 1.0)
    np.testing.assert_allclose(distances[4], [3 + 165 / 30, 2 + 5 / 30, np.hypot(3, 5) + 105 / 30])
    # 180 degrees either way is the same half turn; 30 degrees weigh one block.
    half = pose_distances(
        np.array([[0, 0, 0, 180.0, 0]]), np.array([[0, 0, 0, -180.0, 0], [1, 0, 0, 150.0, 0]])
    )
    np.testing.assert_allclose(half[:, 0], [0.0, 2.0])


def test_nearest_pose_ties_go_to_the_earlier_context_frame_and_bad_shapes_are_refused():
    context = np.array([[1.0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]], dtype=np.float32)
    index = nearest_pose_frames(context, np.zeros((2, 5), dtype=np.float32))
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, [0, 0])
    with pytest.raises(ValueError, match="poses"):
        nearest_pose_frames(context, np.zeros(5))
    with pytest.raises(ValueError, match="no context frame"):
        nearest_pose_frames(np.zeros((0, 5)), np.zeros((2, 5)))


def test_oracle_lookup_takes_only_context_frames_and_held_repeats_the_last_one():
    c, t = 3, 4
    frames = np.arange(c + t, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    # Future poses: one equal to a later future frame's (must still pick a context frame), then revisits.
    future = np.array(
        [
            [0.0, 0, 9.0, -90.0, 0],
            [0.0, 0, 9.0, -90.0, 0],
            [5.0, 0, 0.0, -178.0, 0],
            [0.0, 0, 0.2, 355.0, 0],
        ]
    )
    poses = np.concatenate([CONTEXT, future])
    looked_up, index = oracle_lookup_frames(frames, poses, c)
    np.testing.assert_array_equal(index, [2, 2, 1, 0])
    assert looked_up.shape == (t, 2, 2, 3) and looked_up.dtype == np.uint8
    np.testing.assert_array_equal(looked_up[:, 0, 0, 0], index)
    np.testing.assert_array_equal(held_frames(frames, c)[:, 0, 0, 0], [c - 1] * t)
    with pytest.raises(ValueError, match="7 frames but 6 poses"):
        oracle_lookup_frames(frames, poses[:-1], c)


def test_plots_tell_the_two_baselines_apart():
    protocol = get_protocol("loopcraft-64", 8, 6)
    curve = {"curves": {"lpips": [0.5] * 6}}
    results = {
        "last-context-frame": {"kind": "baseline", "label": "last context frame held", **curve},
        "oracle-lookup": {"kind": "baseline", "label": "oracle look-up", **curve},
    }
    fig, ax = plt.subplots()
    try:
        _draw_metric(ax, results, "lpips", "LPIPS", protocol, "lower is better")
        styles = {line.get_label(): (line.get_linestyle(), line.get_color()) for line in ax.get_lines()}
    finally:
        plt.close(fig)
    assert styles["last context frame held"] != styles["oracle look-up"]
