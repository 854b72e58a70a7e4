"""The on-disk video dataset: round trip, checksums, corruption, incomplete datasets."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from millivid_env.loopcraft.dataset import (
    DatasetCorruptedError,
    open_dataset,
    video_paths,
)
from millivid_env.loopcraft.generate import make_video
from millivid_env.loopcraft.npzio import atomic_write_bytes, npz_bytes


def test_round_trip(train_dataset: Path, tiny: SimpleNamespace) -> None:
    dataset = open_dataset(train_dataset)
    config = tiny.config()
    assert dataset.config == config and len(dataset) == tiny.videos and dataset.missing == []
    for k in (0, tiny.videos - 1):
        video = dataset[k]
        arrays, meta = make_video(config, k)
        np.testing.assert_array_equal(video.frames, arrays["frames"])
        np.testing.assert_array_equal(video.actions, arrays["actions"])
        np.testing.assert_array_equal(video.poses, arrays["poses"])
        assert (
            video.frames.shape == (tiny.frames, tiny.resolution, tiny.resolution, 3)
            and video.frames.dtype == np.uint8
        )
        assert video.actions.dtype == np.int64 and video.poses.dtype == np.float32
        assert video.meta["world_seed"] == [config.seed, 0, k] == meta["world_seed"]
    assert dataset[-1].meta["index"] == tiny.videos - 1
    with pytest.raises(IndexError):
        dataset[tiny.videos]


def test_frames_array_concatenates_all_videos(train_dataset: Path, tiny: SimpleNamespace) -> None:
    dataset = open_dataset(train_dataset)
    frames = dataset.frames_array()
    assert frames.shape == (
        tiny.videos * tiny.frames,
        tiny.resolution,
        tiny.resolution,
        3,
    ) and dataset.num_frames == len(frames)
    np.testing.assert_array_equal(frames[tiny.frames : 2 * tiny.frames], dataset[1].frames)
    np.testing.assert_array_equal(dataset.frames_array([2]), dataset[2].frames)


def test_files_of_the_format(train_dataset: Path, tiny: SimpleNamespace) -> None:
    document = json.loads((train_dataset / "dataset.json").read_text())
    assert document["format"] == "millivid-loopcraft-videos" and document["format_version"] == 1
    assert document["config"]["resolution"] == tiny.resolution
    index = json.loads((train_dataset / "index.json").read_text())
    assert (
        index["complete"]
        and index["num_videos"] == tiny.videos
        and index["num_frames"] == tiny.videos * tiny.frames
    )
    assert [entry["file"] for entry in index["videos"]] == [f"videos/{i:06d}.npz" for i in range(tiny.videos)]
    names = sorted(path.name for path in (train_dataset / "videos").iterdir())
    assert names == sorted(
        [f"{i:06d}.npz" for i in range(tiny.videos)] + [f"{i:06d}.json" for i in range(tiny.videos)]
    )
    # Plain numpy reads a video without this package.
    with np.load(train_dataset / "videos" / "000000.npz") as archive:
        assert sorted(archive.files) == ["actions", "frames", "poses"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupted_file_is_detected_and_named(train_copy: Path, damage: str) -> None:
    npz, _ = video_paths(train_copy, 2)
    content = bytearray(npz.read_bytes())
    if damage == "flip":
        content[len(content) // 2] ^= 0xFF
        npz.write_bytes(bytes(content))
    elif damage == "truncate":
        npz.write_bytes(bytes(content[: len(content) // 3]))
    else:
        npz.unlink()
    dataset = open_dataset(train_copy)
    dataset[1]  # the others still read fine
    with pytest.raises(DatasetCorruptedError) as error:
        dataset[2]
    message = str(error.value)
    assert str(npz) in message and "re-run the same `millivid generate` command" in message
    with pytest.raises(DatasetCorruptedError):
        dataset.frames_array()


def test_corrupted_sidecar_is_detected(train_copy: Path) -> None:
    _, sidecar = video_paths(train_copy, 0)
    sidecar.write_text("{ not json")
    with pytest.raises(DatasetCorruptedError, match="000000.json"):
        open_dataset(train_copy)[0]


def test_half_written_files_are_never_read(train_copy: Path) -> None:
    # An interrupted run: video 3's sidecar never written, temporary files lying around.
    _, sidecar = video_paths(train_copy, 3)
    sidecar.unlink()
    (train_copy / "videos" / ".000003.json.123-abcd.tmp").write_text("{}")
    (train_copy / "videos" / ".000004.npz.123-abcd.tmp").write_bytes(b"PK")
    with pytest.warns(UserWarning) as record:
        dataset = open_dataset(train_copy)
    messages = " ".join(str(warning.message) for warning in record)
    assert "index.json is missing or out of date" in messages and "1 of 4 videos are not finished" in messages
    assert dataset.indices == [0, 1, 2] and dataset.missing == [3]


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="millivid generate"):
        open_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("garbage")
    with pytest.raises(DatasetCorruptedError, match="dataset.json"):
        open_dataset(tmp_path)


def test_stale_index_warns_and_uses_the_videos_on_disk(train_copy: Path, tiny: SimpleNamespace) -> None:
    (train_copy / "index.json").unlink()
    with pytest.warns(UserWarning, match="index.json"):
        dataset = open_dataset(train_copy)
    assert len(dataset) == tiny.videos


def test_complete_dataset_opens_without_warnings(train_dataset: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_dataset(train_dataset)


def test_npz_bytes_are_deterministic_and_standard(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.ones((2, 2), np.float32)}
    content = npz_bytes(arrays)
    assert content == npz_bytes(arrays)
    with np.load(io.BytesIO(content)) as archive:
        np.testing.assert_array_equal(archive["a"], arrays["a"])
        np.testing.assert_array_equal(archive["b"], arrays["b"])
    path = tmp_path / "x.npz"
    atomic_write_bytes(path, content)
    assert path.read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["x.npz"]
