"""Fixtures of the dataset tests: tiny datasets (small worlds, short videos) generated once per module."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from millivid_env.loopcraft.generate import generate_dataset, make_config

#: The smallest world the generator accepts: fast to build, still has terrain, trees and landmarks.
SMALL_WORLD = (48, 32, 48)
VIDEOS, FRAMES, RESOLUTION = 4, 24, 64


def tiny_config(split: str = "train", **overrides):
    params = {"resolution": RESOLUTION, "frames": FRAMES, "seed": 3, "world_size": SMALL_WORLD} | overrides
    return make_config(split, **params)


@pytest.fixture(scope="session")
def tiny() -> SimpleNamespace:
    """Sizes of the tiny datasets and `tiny_config` (``tiny.config(split, **overrides)``)."""
    return SimpleNamespace(
        videos=VIDEOS, frames=FRAMES, resolution=RESOLUTION, world=SMALL_WORLD, config=tiny_config
    )


@pytest.fixture(scope="session")
def train_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-video train dataset; tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("datasets") / "train"
    generate_dataset(root, tiny_config(), VIDEOS, progress=False)
    return root


@pytest.fixture
def train_copy(train_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of `train_dataset` that a test may damage."""
    return Path(shutil.copytree(train_dataset, tmp_path / "train"))
