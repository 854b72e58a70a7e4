"""Dataset generation: resume, config checks, seeds and splits, sharding and workers."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from millivid_env.loopcraft.dataset import DatasetConfigMismatchError, open_dataset, video_paths
from millivid_env.loopcraft.generate import generate_dataset, make_config


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_regenerates_only_what_is_missing_or_corrupt(
    train_dataset: Path, train_copy: Path, tiny: SimpleNamespace
) -> None:
    videos = train_copy / "videos"
    _, sidecar1 = video_paths(train_copy, 1)
    sidecar1.unlink()  # killed between the .npz and its sidecar
    stale = videos / ".000002.npz.999-dead.tmp"
    stale.write_bytes(b"half a file")  # killed while writing
    npz3, _ = video_paths(train_copy, 3)
    npz3.write_bytes(npz3.read_bytes()[:1000])  # truncated by a crash or a full disk
    (train_copy / ".index.json.999-dead.tmp").write_text("{")

    report = generate_dataset(train_copy, tiny.config(), tiny.videos, progress=False)

    assert report.generated == [1, 3] and report.skipped == [0, 2]
    assert stale in report.removed_temp_files and not stale.exists()
    assert _tree_bytes(train_copy) == _tree_bytes(train_dataset)
    dataset = open_dataset(train_copy)
    for video in dataset:  # every file verifies
        assert video.frames.shape[0] == video.actions.shape[0]

    again = generate_dataset(train_copy, tiny.config(), tiny.videos, progress=False)
    assert again.generated == [] and again.skipped == list(range(tiny.videos))


def test_extending_a_dataset_keeps_the_existing_videos(
    train_dataset: Path, train_copy: Path, tiny: SimpleNamespace
) -> None:
    report = generate_dataset(train_copy, tiny.config(), tiny.videos + 1, progress=False)
    assert report.generated == [tiny.videos] and report.index["num_videos"] == tiny.videos + 1
    for i in range(tiny.videos):
        npz, _ = video_paths(train_copy, i)
        assert npz.read_bytes() == video_paths(train_dataset, i)[0].read_bytes()


def test_config_mismatch_is_refused_with_the_differences(train_copy: Path, tiny: SimpleNamespace) -> None:
    before = _tree_bytes(train_copy)
    with pytest.raises(DatasetConfigMismatchError) as error:
        generate_dataset(train_copy, tiny.config(resolution=128, seed=4), tiny.videos, progress=False)
    message = str(error.value)
    assert "resolution: 64 vs 128" in message and "seed: 3 vs 4" in message and "another --out" in message
    with pytest.raises(DatasetConfigMismatchError, match="split"):
        generate_dataset(train_copy, tiny.config("test"), tiny.videos, progress=False)
    assert _tree_bytes(train_copy) == before  # nothing touched


def test_folder_with_other_files_is_refused(tmp_path: Path, tiny: SimpleNamespace) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetConfigMismatchError, match="not empty"):
        generate_dataset(tmp_path, tiny.config(), 1, progress=False)


def test_bad_parameters_are_rejected(tiny: SimpleNamespace) -> None:
    for resolution in (0, 30, -8, 64.0):
        with pytest.raises(ValueError, match="multiple of 8"):
            make_config("train", resolution, 24)
    with pytest.raises(ValueError, match="split"):
        make_config("valid", 64, 24)
    with pytest.raises(ValueError, match="context"):
        make_config("test", 64, 24, context=24)
    with pytest.raises(ValueError, match="frames"):
        make_config("train", 64, 0)
    with pytest.raises(ValueError, match="world size"):
        make_config("train", 64, 24, world_size=(16, 16, 16))
    with pytest.raises(ValueError, match="worker_id"):
        generate_dataset("unused", tiny.config(), 4, worker_id=2, num_workers=2)


def test_train_and_test_are_disjoint_by_seed(
    train_dataset: Path, tmp_path: Path, tiny: SimpleNamespace
) -> None:
    test_root = tmp_path / "test"
    generate_dataset(test_root, tiny.config("test", context=8), tiny.videos, progress=False)
    train, test = open_dataset(train_dataset), open_dataset(test_root)
    train_seeds = {tuple(video.meta["world_seed"]) for video in train}
    test_seeds = {tuple(video.meta["world_seed"]) for video in test}
    assert len(train_seeds) == len(test_seeds) == tiny.videos and not train_seeds & test_seeds
    assert not np.array_equal(train[0].frames, test[0].frames)
    assert test.config.context == 8 and train.config.context is None
    assert all("turtle_chamfer" in video.meta for video in test)


def test_test_split_default_context_is_a_quarter() -> None:
    assert make_config("test", 64, 512).context == 128


def test_shards_together_equal_one_run_byte_for_byte(
    train_dataset: Path, tmp_path: Path, tiny: SimpleNamespace
) -> None:
    sharded = tmp_path / "sharded"
    first = generate_dataset(sharded, tiny.config(), tiny.videos, worker_id=1, num_workers=2, progress=False)
    assert first.generated == [1, 3] and not first.index["complete"]
    second = generate_dataset(sharded, tiny.config(), tiny.videos, worker_id=0, num_workers=2, progress=False)
    assert second.generated == [0, 2] and second.index["complete"]
    assert _tree_bytes(sharded) == _tree_bytes(train_dataset)


def test_two_workers_equal_one_worker(train_dataset: Path, tmp_path: Path, tiny: SimpleNamespace) -> None:
    pooled = tmp_path / "pooled"
    report = generate_dataset(pooled, tiny.config(), tiny.videos, workers=2, progress=False)
    assert report.generated == list(range(tiny.videos))
    assert _tree_bytes(pooled) == _tree_bytes(train_dataset)
    shutil.rmtree(pooled)
