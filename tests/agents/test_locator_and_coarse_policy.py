"""`millivid train-landmark-locator` end to end (tiny), its labels, and the coarse-input policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.locator_training import collect_walks, evaluate_maps
from millivid_env.landmark_map import locator_targets
from models.landmark_locator import LandmarkLocator, LocatorConfig, load_landmark_locator


def test_walk_labels_come_from_the_true_poses() -> None:
    config = LocatorConfig()
    data = collect_walks(2, seed=3, config=config, progress=False)
    assert data.frames.shape == (170, 64, 64, 3) and data.frames.dtype == np.uint8
    assert data.present.shape == data.distance.shape == (170, config.bearing_bins)
    assert data.walk.tolist() == [0] * 85 + [1] * 85
    for i in (0, 84, 85, 169):
        present, distance = locator_targets(data.landmarks[data.walk[i]], data.poses[i], config)
        np.testing.assert_array_equal(present, data.present[i])
        np.testing.assert_allclose(distance, data.distance[i])
    assert data.present.any(), "landmarks are tall and 12-26 blocks from the centre: some are in view"
    report = evaluate_maps(LandmarkLocator(LocatorConfig(width=8)).eval(), data)
    assert report["walks"] == 2 and 0 <= report["recall"] <= 1 and report["seen_landmarks"] > 0


def test_train_landmark_locator_writes_a_loadable_checkpoint_with_card(tmp_path) -> None:
    from millivid_env import cli

    out = tmp_path / "locator"
    code = cli.main(
        ["train-landmark-locator", "--out", str(out), "--walks", "3", "--test-walks", "1", "--steps", "4",
         "--width", "8", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["frames"] == 255 and set(metrics["test"]) >= {"precision", "recall", "f1"}
    assert "Held-out walks" in (out / "README.md").read_text()
    assert load_landmark_locator(out).config.width == 8


def test_coarse_cnn_pools_before_its_convolutions() -> None:
    pytest.importorskip("stable_baselines3")
    from gymnasium import spaces

    from agents.coarse_cnn import CoarseCNN

    extractor = CoarseCNN(spaces.Box(0, 255, (3, 64, 64), np.uint8), pool=4, features_dim=32)
    x = torch.rand(2, 3, 64, 64)
    assert extractor(x).shape == (2, 32)
    # Detail inside a 4x4 cell is invisible: only its mean reaches the network.
    shuffled = x.reshape(2, 3, 16, 4, 16, 4).flip(3).reshape(2, 3, 64, 64)
    torch.testing.assert_close(extractor(shuffled), extractor(x))
    with pytest.raises(ValueError, match="divide"):
        CoarseCNN(spaces.Box(0, 255, (3, 64, 64), np.uint8), pool=5)
