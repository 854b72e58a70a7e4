"""A minimal reader of the Loopcraft video dataset format, for the ``models`` side.

``models`` must not import ``millivid_env``, so this re-reads the on-disk format that
``millivid_env.loopcraft.dataset`` writes (docs/dataset-format.md)::

    DIR/dataset.json         {"format": "millivid-loopcraft-videos", "format_version": 1, "config": {...}}
    DIR/videos/000012.npz    frames uint8 (T, R, R, 3), actions int64 (T,), poses float32 (T, 5)
    DIR/videos/000012.json   sidecar: {"index", "sha256", "bytes", "config", ...}

A video is finished when its sidecar exists; its ``.npz`` is verified against the sidecar's size and
sha256 when read. A plain ``.npy`` file of uint8 ``(N, R, R, 3)`` frames is accepted as a frame source
too (tests, synthetic data).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "millivid-loopcraft-videos"
FORMAT_VERSION = 1


class DataError(ValueError):
    """A dataset folder or file is missing, malformed or fails its checksum (the file is named)."""


@dataclass
class VideoArrays:
    """One video: frames uint8 ``(T, R, R, 3)``, actions int64 ``(T,)``, poses float32 ``(T, 5)``."""

    index: int
    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    sha256: str


def dataset_config(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config`` dict of ``root/dataset.json`` (resolution, frames, split, seed, ...)."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(
            f"{path} not found: {root} is not a video dataset; create one with `millivid generate`"
        )
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise DataError(f"{path}: unreadable ({error})") from error
    if document.get("format") != FORMAT_NAME or document.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format {document.get('format')!r} v{document.get('format_version')!r} is not supported"
        )
    return document["config"]


def video_indices(root: str | os.PathLike[str]) -> list[int]:
    """Numbers of the finished videos (those with a ``<digits>.json`` sidecar), sorted."""
    folder = Path(root) / "videos"
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def load_video(root: str | os.PathLike[str], index: int) -> VideoArrays:
    """Read and verify one video of a dataset folder.

    Raises:
        DataError: naming the file, if it is missing, truncated, fails its sha256, or is malformed.
    """
    folder = Path(root) / "videos"
    sidecar, npz = folder / f"{index:06d}.json", folder / f"{index:06d}.npz"
    try:
        meta = json.loads(sidecar.read_text())
        content = npz.read_bytes()
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read video {index} of {root}: {error}") from error
    if len(content) != meta.get("bytes") or hashlib.sha256(content).hexdigest() != meta.get("sha256"):
        raise DataError(
            f"{npz}: size or sha256 does not match {sidecar.name} (corrupted); regenerate the video"
        )
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            frames, actions, poses = archive["frames"], archive["actions"], archive["poses"]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{npz}: unreadable npz ({error})") from error
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{npz}: frames are {frames.dtype}{frames.shape}, expected uint8 (T, R, R, 3)")
    return VideoArrays(index, frames, actions.astype(np.int64), poses.astype(np.float32), meta["sha256"])


def load_frames(
    source: str | os.PathLike[str], max_videos: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a dataset folder (or a ``.npy`` frame file) in memory.

    Args:
        source: dataset folder, or a ``.npy`` file of uint8 ``(N, R, R, 3)`` frames.
        max_videos: read at most this many videos (first ones).

    Returns:
        ``(frames, video_id)``: uint8 ``(N, R, R, 3)`` and int64 ``(N,)`` video number of each frame
        (for a ``.npy`` source: frame index // 256, so held-out splits still cut between "videos").
    """
    path = Path(source)
    if path.suffix == ".npy" and path.is_file():
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"{path}: frames are {frames.dtype}{frames.shape}, expected uint8 (N, R, R, 3)")
        return np.ascontiguousarray(frames), np.arange(len(frames)) // 256
    dataset_config(path)
    indices = video_indices(path)[:max_videos]
    if not indices:
        raise DataError(f"{path} has no finished videos; run `millivid generate --out {path} ...` first")
    videos = [load_video(path, i).frames for i in indices]
    ids = np.concatenate([np.full(len(v), i, dtype=np.int64) for i, v in zip(indices, videos, strict=True)])
    return np.concatenate(videos), ids
