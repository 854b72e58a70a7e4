"""The latent dataset format (docs/latent-format.md): one memory-mappable ``.npy`` per video.

::

    DIR/latents.json              format, layout, dtype, the autoencoder (config + weights sha256), source
    DIR/videos/000012.npy         float16 (T, num_tokens, C): all levels of every frame, token order
    DIR/videos/000012.actions.npy int64 (T,)
    DIR/videos/000012.poses.npy   float32 (T, 5)
    DIR/videos/000012.json        sidecar: frames, sha256 of the three files, sha256 of the source video
    DIR/index.json                the finished videos (rebuilt at the end of every encoding run)

Arrays are written to temporary names and renamed, the sidecar last, so a video is finished exactly
when its sidecar exists; a crash leaves at most temporary files.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "millivid-latents"
FORMAT_VERSION = 1
ARRAYS = ("latents", "actions", "poses")


class LatentDataError(ValueError):
    """A latent dataset file is missing, corrupted or belongs to another encoder (file named)."""


def _suffix(kind: str) -> str:
    return ".npy" if kind == "latents" else f".{kind}.npy"


def array_path(root: Path, index: int, kind: str) -> Path:
    """Path of array ``kind`` (``latents``, ``actions``, ``poses``) of video ``index``."""
    return Path(root) / "videos" / f"{index:06d}{_suffix(kind)}"


def sidecar_path(root: Path, index: int) -> Path:
    """Path of the sidecar of video ``index``."""
    return Path(root) / "videos" / f"{index:06d}.json"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(handle)`` on a temporary file next to ``path``, fsync, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic, deterministic JSON."""
    atomic_write(path, lambda h: h.write((json.dumps(data, indent=1, sort_keys=True) + "\n").encode()))


def write_video(root: Path, index: int, arrays: dict[str, np.ndarray], source_sha256: str) -> dict[str, Any]:
    """Write the arrays of one video, then its sidecar (the 'finished' marker)."""
    meta: dict[str, Any] = {"index": index, "frames": len(arrays["latents"]), "source_sha256": source_sha256}
    for kind in ARRAYS:
        path = array_path(root, index, kind)
        atomic_write(path, lambda h, a=arrays[kind]: np.save(h, np.ascontiguousarray(a), allow_pickle=False))
        meta[f"{kind}_sha256"] = file_sha256(path)
    write_json(sidecar_path(root, index), meta)
    return meta


class LatentDataset:
    """Read access to a latent dataset; arrays are memory-mapped for fast random access.

    ``dataset.latents(k)`` is the ``(T, num_tokens, C)`` float16 memmap of the ``k``-th finished video;
    ``dataset.info`` is ``latents.json`` (layout, ``tokens_per_level``, ``level_offsets``, encoder).
    """

    def __init__(self, root: str | os.PathLike[str], verify: bool = False) -> None:
        self.root = Path(root)
        path = self.root / "latents.json"
        if not path.is_file():
            raise LatentDataError(
                f"{path} not found: not a latent dataset; create one with `millivid encode`"
            )
        self.info = json.loads(path.read_text())
        if self.info.get("format") != FORMAT_NAME or self.info.get("format_version") != FORMAT_VERSION:
            raise LatentDataError(f"{path}: unsupported format {self.info.get('format')!r}")
        folder = self.root / "videos"
        self.indices = sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())
        self.meta = {i: json.loads(sidecar_path(self.root, i).read_text()) for i in self.indices}
        if verify:
            self.verify()

    def __len__(self) -> int:
        return len(self.indices)

    def verify(self) -> None:
        """Check every array against the sha256 in its sidecar (reads everything once)."""
        for index in self.indices:
            for kind in ARRAYS:
                path = array_path(self.root, index, kind)
                if not path.is_file() or file_sha256(path) != self.meta[index][f"{kind}_sha256"]:
                    raise LatentDataError(
                        f"{path} is missing or fails its sha256 (corrupted); re-run `millivid encode`"
                    )

    def _load(self, k: int, kind: str, mmap: bool) -> np.ndarray:
        path = array_path(self.root, self.indices[k], kind)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise LatentDataError(f"{path}: unreadable ({error}); re-run `millivid encode`") from error

    def latents(self, k: int, mmap: bool = True) -> np.ndarray:
        """float16 ``(T, num_tokens, C)`` latents of the ``k``-th video (all levels, token order)."""
        return self._load(k, "latents", mmap)

    def level(self, k: int, level: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """float16 ``(stop - start, tokens_per_level[level], C)`` latents of one level, frames start..stop."""
        lo = self.info["level_offsets"][level]
        hi = lo + self.info["tokens_per_level"][level]
        return np.asarray(self.latents(k)[start:stop, lo:hi])

    def actions(self, k: int) -> np.ndarray:
        """int64 ``(T,)`` actions of the ``k``-th video."""
        return self._load(k, "actions", False)

    def poses(self, k: int) -> np.ndarray:
        """float32 ``(T, 5)`` poses of the ``k``-th video."""
        return self._load(k, "poses", False)
