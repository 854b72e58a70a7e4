"""The on-disk Loopcraft video dataset: layout, config, checksummed reading.

Layout of a dataset folder ``DIR`` (full description: docs/dataset-format.md)::

    DIR/dataset.json            format name and version + the config every video was made with
    DIR/videos/000012.npz       video 12: frames uint8 (T, R, R, 3), actions int64 (T,), poses float32 (T, 5)
    DIR/videos/000012.json      its sidecar: sha256 and size of the .npz, seeds, pose summary
    DIR/index.json              listing of the finished videos, rebuilt at the end of every generation run

A video is *finished* when its sidecar exists and the ``.npz`` has the size and sha256 the sidecar
records. Files are written to hidden temporary names and renamed, the ``.npz`` before its sidecar, so an
interrupted run can leave a missing sidecar or a temporary file but never a half-written file that
passes as finished. The reader checks every file against its checksum when it reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from millivid_env.loopcraft.npzio import atomic_write_bytes

FORMAT_NAME = "millivid-loopcraft-videos"
FORMAT_VERSION = 1
SPLITS = ("train", "test")
CONFIG_FILE = "dataset.json"
INDEX_FILE = "index.json"
VIDEOS_DIR = "videos"
#: Width of the zero-padded video number in file names (more digits appear past 999,999 videos).
STEM_DIGITS = 6
SIDECAR_REQUIRED = ("index", "sha256", "bytes", "config")
REGENERATE_HINT = "delete it and re-run the same `millivid generate` command to regenerate it"


class DatasetCorruptedError(RuntimeError):
    """A dataset file is missing, truncated, or does not match its checksum."""

    def __init__(self, path: Path | str, problem: str, fix: str = REGENERATE_HINT) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}; {fix}")


class DatasetConfigMismatchError(ValueError):
    """A dataset folder holds videos made with another config than the one asked for."""


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that determines the content of a dataset's videos (besides their number).

    Attributes:
        split: ``"train"`` (random walks) or ``"test"`` (loops that revisit their context).
        resolution: frame side ``R`` in pixels.
        frames: frames per video ``T``.
        context: context frames ``C`` used to select test loops; ``None`` for train.
        seed: base seed ``S``; video ``i`` is fully determined by ``(S, split, i)``.
        world_size: ``(X, Y, Z)`` blocks of every world.
        generator_version: version of the world, physics and renderer; changes whenever frames change.
    """

    split: str
    resolution: int
    frames: int
    context: int | None
    seed: int
    world_size: tuple[int, int, int]
    generator_version: str

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON types (``world_size`` as a list)."""
        data = asdict(self)
        data["world_size"] = list(self.world_size)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetConfig:
        """Inverse of `to_json`; raises ``KeyError``/``TypeError`` on a malformed dict."""
        names = {field.name for field in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise KeyError(f"unknown config fields {sorted(unknown)}")
        values = {name: data[name] for name in names}
        values["world_size"] = tuple(int(v) for v in values["world_size"])
        return cls(**values)

    def differences(self, other: DatasetConfig) -> list[str]:
        """Human-readable ``"field: self value vs other value"`` lines for each differing field."""
        mine, theirs = self.to_json(), other.to_json()
        return [f"{name}: {mine[name]!r} vs {theirs[name]!r}" for name in mine if mine[name] != theirs[name]]


@dataclass
class Video:
    """One video read from a dataset.

    Attributes:
        frames: uint8 ``(T, R, R, 3)``; frame ``i`` is the observation after action ``i``.
        actions: int64 ``(T,)`` (0 forward, 1 left, 2 right).
        poses: float32 ``(T, 5)`` pose ``(x, y, z, yaw, pitch)`` after each action.
        meta: the video's sidecar (index, checksum, seeds, pose summary, ...).
    """

    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    meta: dict[str, Any]


def video_stem(index: int) -> str:
    """File name of video ``index`` without extension, e.g. ``000012``."""
    return f"{index:0{STEM_DIGITS}d}"


def video_paths(root: Path, index: int) -> tuple[Path, Path]:
    """``(npz, sidecar)`` paths of video ``index`` in dataset folder ``root``."""
    stem = video_stem(index)
    folder = Path(root) / VIDEOS_DIR
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def sha256_of(content: bytes) -> str:
    """Hex sha256 digest of ``content``."""
    return hashlib.sha256(content).hexdigest()


def dumps(data: dict[str, Any]) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed indentation, trailing newline)."""
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as deterministic JSON to ``path``."""
    atomic_write_bytes(path, dumps(data))


def config_document(config: DatasetConfig) -> dict[str, Any]:
    """The content of ``dataset.json`` for ``config``."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_json()}


def read_config(root: Path) -> DatasetConfig:
    """Read and check ``root/dataset.json``.

    Raises:
        FileNotFoundError: the folder or its ``dataset.json`` does not exist.
        DatasetCorruptedError: ``dataset.json`` is unreadable or of an unknown format.
    """
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a millivid video dataset (or its generation never "
            "started); create one with `millivid generate --out DIR ...`"
        )
    fix = (
        f"{CONFIG_FILE} cannot be regenerated alone: delete the folder {root} and re-run the generate command"
    )
    try:
        document = json.loads(path.read_text())
        config = DatasetConfig.from_json(document["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetCorruptedError(path, f"unreadable dataset config ({error})", fix) from error
    if document.get("format") != FORMAT_NAME or document.get("format_version") != FORMAT_VERSION:
        raise DatasetCorruptedError(
            path,
            f"format {document.get('format')!r} version {document.get('format_version')!r} is not "
            f"{FORMAT_NAME!r} version {FORMAT_VERSION}",
            "generate the dataset again with this version of millivid-env",
        )
    return config


def finished_indices(root: Path) -> list[int]:
    """Numbers of the videos that have a sidecar in ``root/videos`` (sorted; not yet verified)."""
    folder = Path(root) / VIDEOS_DIR
    if not folder.is_dir():
        return []
    indices = []
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, extension = entry.name.partition(".")
            # Temporary files start with "." and so have an empty stem; only "<digits>.json" counts.
            if dot and extension == "json" and stem.isdigit():
                indices.append(int(stem))
    return sorted(indices)


def read_sidecar(root: Path, index: int) -> dict[str, Any]:
    """The parsed sidecar of video ``index``; `DatasetCorruptedError` if it is missing or unreadable."""
    _, sidecar_path = video_paths(root, index)
    try:
        meta = json.loads(sidecar_path.read_text())
    except FileNotFoundError as error:
        raise DatasetCorruptedError(sidecar_path, "file is missing") from error
    except (OSError, ValueError) as error:
        raise DatasetCorruptedError(sidecar_path, f"unreadable sidecar ({error})") from error
    absent = [key for key in SIDECAR_REQUIRED if not isinstance(meta, dict) or key not in meta]
    if absent:
        raise DatasetCorruptedError(sidecar_path, f"sidecar lacks {absent}")
    return meta


def load_video(root: Path, index: int, config: DatasetConfig, meta: dict[str, Any] | None = None) -> Video:
    """Read video ``index`` and verify it against its sidecar and the dataset config.

    Args:
        root: dataset folder.
        index: video number.
        config: the dataset's config; shapes and the sidecar's config must match it.
        meta: the sidecar if already read.

    Returns:
        The video.

    Raises:
        DatasetCorruptedError: naming the file, on a missing, truncated or mismatching file.
    """
    npz_path, sidecar_path = video_paths(root, index)
    meta = read_sidecar(root, index) if meta is None else meta
    if meta["config"] != config.to_json():
        raise DatasetCorruptedError(sidecar_path, f"video made with another config ({meta['config']})")
    try:
        content = npz_path.read_bytes()
    except FileNotFoundError as error:
        raise DatasetCorruptedError(npz_path, "file is missing") from error
    if len(content) != meta["bytes"]:
        raise DatasetCorruptedError(
            npz_path, f"truncated or overwritten: {len(content)} bytes, expected {meta['bytes']}"
        )
    if sha256_of(content) != meta["sha256"]:
        raise DatasetCorruptedError(npz_path, "sha256 checksum does not match its sidecar (corrupted file)")
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            frames, actions, poses = archive["frames"], archive["actions"], archive["poses"]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise DatasetCorruptedError(npz_path, f"unreadable npz ({error})") from error
    size = config.resolution
    expected = {
        "frames": (frames, (config.frames, size, size, 3), np.uint8),
        "actions": (actions, (config.frames,), np.int64),
        "poses": (poses, (config.frames, 5), np.float32),
    }
    for name, (array, shape, dtype) in expected.items():
        if array.shape != shape or array.dtype != dtype:
            raise DatasetCorruptedError(
                npz_path, f"{name} is {array.dtype}{array.shape}, expected {np.dtype(dtype)}{shape}"
            )
    return Video(frames=frames, actions=actions, poses=poses, meta=meta)


class VideoDataset:
    """Read access to a dataset folder; every file is verified against its checksum when read.

    ``dataset[k]`` is the ``k``-th finished video in order of video number (``dataset.indices[k]`` is
    that number; numbers have gaps only while a dataset is incomplete).
    """

    def __init__(self, root: Path, config: DatasetConfig, indices: list[int], requested: int | None) -> None:
        """Use `open_dataset` rather than this constructor."""
        self.root = Path(root)
        self.config = config
        self.indices = list(indices)
        #: number of videos the last generation run was asked for (``None`` if no index was written).
        self.requested = requested

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Video:
        if not -len(self) <= k < len(self):
            raise IndexError(f"video {k} out of range for a dataset of {len(self)} videos")
        return load_video(self.root, self.indices[k], self.config)

    def __iter__(self) -> Iterator[Video]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"VideoDataset({str(self.root)!r}, videos={len(self)}, config={self.config})"

    @property
    def num_frames(self) -> int:
        """Total number of frames over all finished videos."""
        return len(self) * self.config.frames

    @property
    def missing(self) -> list[int]:
        """Video numbers below `requested` that are not finished (empty when complete)."""
        present = set(self.indices)
        return [i for i in range(self.requested or 0) if i not in present]

    def frames_array(self, videos: list[int] | None = None) -> np.ndarray:
        """All frames of some videos in one array (e.g. to train the autoencoder on single frames).

        Each video is verified as it is read and copied into one preallocated array, so peak memory
        is the result plus one video.

        Args:
            videos: positions ``k`` of the videos to read (default: all).

        Returns:
            uint8 ``(len(videos) * T, R, R, 3)``, video after video.
        """
        positions = range(len(self)) if videos is None else videos
        size, length = self.config.resolution, self.config.frames
        out = np.empty((len(positions) * length, size, size, 3), dtype=np.uint8)
        for row, k in enumerate(positions):
            out[row * length : (row + 1) * length] = self[k].frames
        return out


def open_dataset(path: str | os.PathLike[str]) -> VideoDataset:
    """Open a dataset folder written by `millivid generate`.

    The sidecars in ``videos/`` decide which videos are finished; ``index.json`` is compared with them
    and a warning is given when it is out of date or when videos are missing (an interrupted run).

    Args:
        path: the dataset folder (the generate command's ``--out``).

    Returns:
        The dataset; files are verified when videos are read.

    Raises:
        FileNotFoundError: not a dataset folder.
        DatasetCorruptedError: unreadable ``dataset.json``.
    """
    root = Path(path)
    config = read_config(root)
    indices = finished_indices(root)
    requested = None
    index_path = root / INDEX_FILE
    try:
        index = json.loads(index_path.read_text())
        requested = int(index["videos_requested"])
        listed = [int(entry["index"]) for entry in index["videos"]]
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    if listed != indices:
        warnings.warn(
            f"{index_path} is missing or out of date (an interrupted or still running generation); "
            "using the videos found on disk. Re-run the generate command to finish the dataset and "
            "rebuild the index.",
            stacklevel=2,
        )
    dataset = VideoDataset(root, config, indices, requested)
    missing = dataset.missing
    if missing:
        warnings.warn(
            f"{root} is incomplete: {len(missing)} of {requested} videos are not finished (first: "
            f"{video_stem(missing[0])}); re-run the same `millivid generate` command to finish it",
            stacklevel=2,
        )
    return dataset
