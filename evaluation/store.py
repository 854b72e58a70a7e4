"""On-disk results of an evaluation: its config and one atomic ``.npz`` per (entry, video).

Layout of ``DIR``::

    DIR/evaluation.json                     the shared config, the entries' configs, their fingerprints
    DIR/per_video/<entry>/<video>.npz       per-frame results of one entry on one test video

``<entry>`` is a system name, ``autoencoded-<ae>`` (upper bound), ``random-frames`` (lower bound),
``last-context-frame`` (the trivial baseline: the last context frame held), ``oracle-lookup`` (the
baseline of the context frame nearest to each true pose) or ``ground-truth`` (reference features and
strip frames); ``<video>`` is the zero-padded video number.
Each ``.npz`` is written to a temporary name and renamed, and carries its entry's fingerprint, so a
killed evaluation leaves only finished files and a rerun skips exactly those.

The config splits in two. The *shared* part (protocol, test set, sampling, metrics, strips) must match
to use a folder at all: a ``DIR`` made with another one is refused (:class:`ConfigMismatchError`). Each
entry's own part (a system's checkpoints, an autoencoder's digest) goes into that entry's fingerprint
only, so a folder grows: evaluating more systems in it computes only their results and reuses the
stored ones of the others, and a system given another checkpoint is recomputed. A system is identified
by its files' contents (sha256), not by the names or folders they were given as, so renaming a bundled
checkpoint keeps its results. Folders of the earlier formats are converted in place.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.baselines import DEGREES_PER_BLOCK
from millivid_env.loopcraft.npzio import atomic_write_bytes, npz_bytes

FORMAT = "millivid-evaluation"
FORMAT_VERSION = 3
CONFIG_FILE = "evaluation.json"
PER_VIDEO = "per_video"
GROUND_TRUTH = "ground-truth"
RANDOM_FRAMES = "random-frames"
LAST_CONTEXT_FRAME = "last-context-frame"
ORACLE_LOOKUP = "oracle-lookup"


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


def autoencoded_key(digest: str) -> str:
    """Entry key of the autoencoded-ground-truth bound of the autoencoder whose weights hash to ``digest``."""
    return f"autoencoded-{digest[:8]}"


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(shared, {entry key: entry config})`` of a full evaluation config (with ``"systems"``).

    A system's results depend on its checkpoints; the autoencoded bound only on the autoencoder's
    weights; the random-frames bound, the last-context-frame baseline and the ground-truth reference
    on the shared config alone; the oracle-lookup baseline also on its pose distance (recorded, so that
    another rule would be recomputed).
    """
    shared = {k: v for k, v in config.items() if k != "systems"}
    entries: dict[str, dict[str, Any]] = {}
    for name, system in config.get("systems", {}).items():
        entries[name] = {"system": system}
        digest = system["files"]["autoencoder"]["sha256"]
        entries[autoencoded_key(digest)] = {"autoencoder_sha256": digest}
    entries[RANDOM_FRAMES] = {}
    entries[LAST_CONTEXT_FRAME] = {}
    entries[ORACLE_LOOKUP] = {"degrees_per_block": DEGREES_PER_BLOCK, "distance": "xz-blocks+yaw-degrees"}
    entries[GROUND_TRUTH] = {}
    return shared, entries


def entry_identity(entry: dict[str, Any]) -> dict[str, Any]:
    """What an entry's results depend on besides the shared config.

    For a system: the sha256 of its diffusion and autoencoder weights and the strategy it was trained
    for, not the names or folders the files were given as. Other entries: their config as it is.
    """
    system = entry.get("system")
    if system is None:
        return entry
    files = system["files"]
    return {
        "diffusion_sha256": files["diffusion"]["sha256"],
        "autoencoder_sha256": files["autoencoder"]["sha256"],
        "trained_strategy": system.get("trained_strategy"),
    }


def entry_fingerprint(shared: dict[str, Any], key: str, entry: dict[str, Any]) -> str:
    """The stamp of ``key``'s per-video results: the shared config and the entry's identity."""
    return fingerprint({"shared": shared, "entry": key, "identity": entry_identity(entry)})


def _v2_fingerprint(shared: dict[str, Any], key: str, entry: dict[str, Any]) -> str:
    """The stamp format 2 gave: the whole entry config, names and folders included."""
    return fingerprint({"shared": shared, "entry": key, "config": entry})


class ResultStore:
    """Reads and writes the per-video results of one evaluation folder.

    Args:
        root: the evaluation's ``--out`` folder (created).
        config: the evaluation config (JSON types, with ``"systems"``); its shared part must match the
            folder's (:func:`split_config`). Folders of the earlier formats (one fingerprint for
            everything; stamps over names and folders) are converted in place (their results stay
            valid).

    Raises:
        ConfigMismatchError: ``root`` was used for another shared config.
    """

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.config = config
        self.fingerprint = fingerprint(config)
        self.shared, entries = split_config(config)
        self.stamps = {key: entry_fingerprint(self.shared, key, cfg) for key, cfg in entries.items()}
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / CONFIG_FILE
        recorded: dict[str, Any] | None = None  # the entries evaluation.json holds (None: a new folder)
        version = FORMAT_VERSION
        if path.is_file():
            try:
                document = json.loads(path.read_text())
                version, old = document.get("format_version", 1), document["config"]
                old_shared = old if version >= 2 else split_config(old)[0]
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise ConfigMismatchError(
                    f"{path} is unreadable ({error}); use another --out folder or delete {self.root}"
                ) from error
            if fingerprint(old_shared) != fingerprint(self.shared):
                lines = "\n  ".join(differences(old_shared, self.shared))
                raise ConfigMismatchError(
                    f"{self.root} holds an evaluation with another config; refusing to mix results. "
                    f"Differences (stored vs requested):\n  {lines}\nUse another --out folder, or delete "
                    f"{self.root} to start over"
                )
            recorded = document.get("entries", {}) if version >= 3 else None
            if version < 2:
                self._convert(document)
            elif version == 2:
                recorded = self._restamp_v2(old_shared, document.get("entries", {}))
        previous = recorded or {}
        updated = {**previous, **{k: {"config": entries[k], "fingerprint": self.stamps[k]} for k in entries}}
        if updated != recorded or version != FORMAT_VERSION:
            document = {"format": FORMAT, "format_version": FORMAT_VERSION}
            document.update(fingerprint=fingerprint(self.shared), config=self.shared, entries=updated)
            atomic_write_bytes(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())

    def _convert(self, document: dict[str, Any]) -> None:
        """Re-stamp the results of a format-1 folder (one fingerprint of the whole config) per entry.

        Only entries of the old config are carried over (the requested config has the same shared
        part; its entries are then recorded as usual).
        """
        shared, entries = split_config(document["config"])
        for key, entry in entries.items():
            self._restamp(key, document["fingerprint"], entry_fingerprint(shared, key, entry))

    def _restamp_v2(self, shared: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
        """Re-stamp the results of a format-2 folder with content identities; returns its entries."""
        converted = {}
        for key, record in entries.items():
            old, new = (
                _v2_fingerprint(shared, key, record["config"]),
                entry_fingerprint(shared, key, record["config"]),
            )
            self._restamp(key, old, new)
            converted[key] = {"config": record["config"], "fingerprint": new}
        return converted

    def _restamp(self, key: str, old: str, new: str) -> None:
        """Give ``key``'s result files stamped ``old`` the stamp ``new`` (atomic rewrites)."""
        for path in sorted((self.root / PER_VIDEO / key).glob("*.npz")):
            arrays = _read(path)
            if arrays is not None and _stamp(arrays) == old:
                arrays["fingerprint"] = np.array(new)
                atomic_write_bytes(path, npz_bytes(arrays))

    def path(self, entry: str, number: int) -> Path:
        """File of ``entry``'s results on video ``number``."""
        return self.root / PER_VIDEO / entry / f"{number:06d}.npz"

    def load(self, entry: str, number: int) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when missing, unreadable or of another fingerprint."""
        arrays = _read(self.path(entry, number))
        if arrays is None:
            return None
        if _stamp(arrays) != self.stamps[entry]:
            return None
        arrays.pop("fingerprint")
        return arrays

    def done(self, entry: str, number: int) -> bool:
        """Whether ``entry``'s results on video ``number`` are stored (and valid)."""
        return self.load(entry, number) is not None

    def save(self, entry: str, number: int, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``entry``'s results on video ``number`` atomically; returns the path."""
        path = self.path(entry, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {k: np.asarray(v) for k, v in arrays.items()}
        content["fingerprint"] = np.array(self.stamps[entry])
        atomic_write_bytes(path, npz_bytes(content))
        return path


def _read(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a result file, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def _stamp(arrays: dict[str, np.ndarray]) -> str | None:
    """The fingerprint a result file carries (None when it has none)."""
    stamp = arrays.get("fingerprint", np.array([])).reshape(-1)
    return str(stamp[0]) if stamp.size == 1 else None
