"""On-disk results of an evaluation: a config fingerprint and one atomic ``.npz`` per (entry, video).

Layout of ``DIR``::

    DIR/evaluation.json                     the full config and its sha256 fingerprint
    DIR/per_video/<entry>/<video>.npz       per-frame results of one entry on one test video

``<entry>`` is a system name, ``autoencoded-<ae>`` (upper bound), ``random-frames`` (lower bound) or
``ground-truth`` (reference features and strip frames); ``<video>`` is the zero-padded video number.
Each ``.npz`` is written to a temporary name and renamed, and carries the fingerprint, so a killed
evaluation leaves only finished files and a rerun skips exactly those. A ``DIR`` made with another
config is refused (:class:`ConfigMismatchError`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from millivid_env.loopcraft.npzio import atomic_write_bytes, npz_bytes

FORMAT = "millivid-evaluation"
FORMAT_VERSION = 1
CONFIG_FILE = "evaluation.json"
PER_VIDEO = "per_video"


class ConfigMismatchError(ValueError):
    """``DIR`` holds results of another evaluation config; the message lists the differences."""


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config``."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 8) -> list[str]:
    """``"key: old vs new"`` lines for the differing leaves of two configs (at most ``limit``)."""
    a, b = _flatten(old), _flatten(new)
    lines = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return [*lines[:limit], *([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])]


class ResultStore:
    """Reads and writes the per-video results of one evaluation folder.

    Args:
        root: the evaluation's ``--out`` folder (created).
        config: the evaluation config (JSON types); its fingerprint must match a folder's existing one.

    Raises:
        ConfigMismatchError: ``root`` was used for another config.
    """

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.config = config
        self.fingerprint = fingerprint(config)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / CONFIG_FILE
        if path.is_file():
            try:
                document = json.loads(path.read_text())
                old, old_print = document["config"], document["fingerprint"]
            except (ValueError, KeyError, TypeError) as error:
                raise ConfigMismatchError(
                    f"{path} is unreadable ({error}); use another --out folder or delete {self.root}"
                ) from error
            if old_print != self.fingerprint:
                lines = "\n  ".join(differences(old, config))
                raise ConfigMismatchError(
                    f"{self.root} holds an evaluation with another config; refusing to mix results. "
                    f"Differences (stored vs requested):\n  {lines}\nUse another --out folder, or delete "
                    f"{self.root} to start over"
                )
        else:
            document = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": self.fingerprint}
            document["config"] = config
            atomic_write_bytes(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())

    def path(self, entry: str, number: int) -> Path:
        """File of ``entry``'s results on video ``number``."""
        return self.root / PER_VIDEO / entry / f"{number:06d}.npz"

    def load(self, entry: str, number: int) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when missing, unreadable or of another fingerprint."""
        path = self.path(entry, number)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
        stamp = arrays.pop("fingerprint", np.array([""])).reshape(-1)
        if stamp.size != 1 or str(stamp[0]) != self.fingerprint:
            return None
        return arrays

    def done(self, entry: str, number: int) -> bool:
        """Whether ``entry``'s results on video ``number`` are stored (and valid)."""
        return self.load(entry, number) is not None

    def save(self, entry: str, number: int, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``entry``'s results on video ``number`` atomically; returns the path."""
        path = self.path(entry, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {**{k: np.asarray(v) for k, v in arrays.items()}, "fingerprint": np.array(self.fingerprint)}
        atomic_write_bytes(path, npz_bytes(content))
        return path
