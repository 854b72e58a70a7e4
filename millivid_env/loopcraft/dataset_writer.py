"""Writing side of the video dataset: folder set-up, atomic video files, resume checks, the index.

The reading side and the layout are in `dataset`; docs/dataset-format.md describes the format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from millivid_env.loopcraft.dataset import (
    CONFIG_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_FILE,
    VIDEOS_DIR,
    DatasetConfig,
    DatasetConfigMismatchError,
    DatasetCorruptedError,
    config_document,
    finished_indices,
    read_config,
    read_sidecar,
    sha256_of,
    video_paths,
    write_json,
)
from millivid_env.loopcraft.npzio import TEMP_SUFFIX, atomic_write_bytes, npz_bytes


def prepare_folder(root: Path, config: DatasetConfig) -> None:
    """Create the dataset folder for ``config``, or check that an existing one was made with it.

    Safe for shards starting at the same moment on one folder: ``dataset.json`` is written (atomically,
    with the same bytes by every shard) before anything else, and is always read back and compared.

    Raises:
        DatasetConfigMismatchError: the folder holds a dataset of another config, or unrelated files.
    """
    root = Path(root)
    config_path = root / CONFIG_FILE
    if not config_path.exists():
        visible = (
            sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []
        )
        # Re-check: a shard started at the same moment may have just written dataset.json.
        if visible and not config_path.exists():
            raise DatasetConfigMismatchError(
                f"{root} is not empty and holds no {CONFIG_FILE} (found {visible[:5]}), so it is not a "
                "millivid dataset this command could resume; choose an empty or new --out folder (or, if "
                f"it is a dataset whose {CONFIG_FILE} was lost, delete it and generate again)"
            )
        if not visible:
            root.mkdir(parents=True, exist_ok=True)
            write_json(config_path, config_document(config))
    try:
        existing = read_config(root)
    except DatasetCorruptedError as error:
        raise DatasetConfigMismatchError(
            f"{config_path} is unreadable ({error.problem}), so the videos in {root} cannot be "
            f"trusted to match this command; delete the folder {root} or choose another --out"
        ) from error
    differences = existing.differences(config)
    if differences:
        lines = "\n".join(f"  {line}" for line in differences)
        raise DatasetConfigMismatchError(
            f"{root} already holds a dataset made with another config (folder vs this command):\n"
            f"{lines}\nVideos of different configs never share a folder. Either re-run with the "
            f"folder's values to resume or extend it, choose another --out, or delete {root} to "
            "start over."
        )
    (root / VIDEOS_DIR).mkdir(exist_ok=True)


def is_finished(root: Path, config: DatasetConfig, index: int) -> bool:
    """Whether video ``index`` has a sidecar for ``config`` and an ``.npz`` matching its size and sha256."""
    npz_path, _ = video_paths(root, index)
    try:
        meta = read_sidecar(root, index)
        if meta["config"] != config.to_json() or npz_path.stat().st_size != meta["bytes"]:
            return False
        return sha256_of(npz_path.read_bytes()) == meta["sha256"]
    except (DatasetCorruptedError, OSError):
        return False


def write_video(
    root: Path,
    config: DatasetConfig,
    index: int,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Write one video: the ``.npz`` first, then the sidecar that vouches for it, both atomically.

    Args:
        root: dataset folder (prepared with `prepare_folder`).
        config: the dataset config (copied into the sidecar).
        index: video number.
        arrays: ``frames`` uint8 (T, R, R, 3), ``actions`` int64 (T,), ``poses`` float32 (T, 5).
        meta: extra JSON-serialisable sidecar fields (seeds, pose summary, ...).

    Returns:
        The sidecar that was written.
    """
    npz_path, sidecar_path = video_paths(root, index)
    # A sidecar must never describe an older file: drop it before its .npz is replaced.
    sidecar_path.unlink(missing_ok=True)
    content = npz_bytes({name: arrays[name] for name in ("frames", "actions", "poses")})
    atomic_write_bytes(npz_path, content)
    sidecar = {
        **meta,
        "index": index,
        "file": npz_path.name,
        "sha256": sha256_of(content),
        "bytes": len(content),
        "frames": int(len(arrays["actions"])),
        "config": config.to_json(),
        "format_version": FORMAT_VERSION,
    }
    write_json(sidecar_path, sidecar)
    return sidecar


def remove_stale_temp_files(root: Path, owns: Callable[[int], bool], include_root: bool) -> list[Path]:
    """Delete temporary files left by interrupted runs.

    Args:
        root: dataset folder.
        owns: whether this run is responsible for video ``index`` (other shards may be writing theirs).
        include_root: also remove temporaries of ``dataset.json``/``index.json`` (only safe when no
            other process writes to the folder).

    Returns:
        The removed paths.
    """
    removed = []
    candidates: list[tuple[Path, int | None]] = []
    folder = Path(root) / VIDEOS_DIR
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                # Temporary names look like ".000012.npz.<pid>-<token>.tmp".
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                    stem = entry.name[1:].split(".", 1)[0]
                    if stem.isdigit():
                        candidates.append((Path(entry.path), int(stem)))
    if include_root:
        for name in (CONFIG_FILE, INDEX_FILE):
            candidates += [(path, None) for path in Path(root).glob(f".{name}.*{TEMP_SUFFIX}")]
    for path, index in candidates:
        if index is None or owns(index):
            path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(removed)


def rebuild_index(root: Path, config: DatasetConfig, requested: int) -> dict[str, Any]:
    """Rewrite ``index.json`` from the sidecars on disk (atomically; content is deterministic).

    Args:
        root: dataset folder.
        config: the dataset config; sidecars of other configs are left out.
        requested: the number of videos the dataset should have (``--videos``).

    Returns:
        The index document.
    """
    videos = []
    for index in finished_indices(root):
        try:
            meta = read_sidecar(root, index)
        except DatasetCorruptedError:
            continue  # not finished; the next run regenerates it
        if meta["config"] != config.to_json():
            continue
        keys = ("index", "file", "sha256", "bytes", "frames")
        videos.append({key: meta[key] for key in keys} | {"file": f"{VIDEOS_DIR}/{meta['file']}"})
    present = {entry["index"] for entry in videos}
    num_missing = sum(1 for i in range(requested) if i not in present)
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "videos_requested": requested,
        "num_videos": len(videos),
        "num_frames": sum(entry["frames"] for entry in videos),
        "num_missing": num_missing,
        "complete": num_missing == 0,
        "videos": videos,
    }
    atomic_write_bytes(Path(root) / INDEX_FILE, _index_bytes(document))
    return document


def _index_bytes(document: dict[str, Any]) -> bytes:
    """Index JSON with one video per line: readable, diffable, and small for large datasets."""
    head = {key: value for key, value in document.items() if key != "videos"}
    lines = ",\n".join("  " + json.dumps(entry, sort_keys=True) for entry in document["videos"])
    body = json.dumps(head, indent=1, sort_keys=True)[:-2]  # drop the closing "\n}"
    return f'{body},\n "videos": [\n{lines}\n ]\n}}\n'.encode()
