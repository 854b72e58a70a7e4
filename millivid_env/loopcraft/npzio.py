"""Byte-reproducible ``.npz`` files and atomic writes.

``np.savez`` stamps every member with the current time, so the same arrays saved twice give different
bytes (and different checksums). Datasets must be byte-identical however they are generated (one
process, a pool, or cluster shards), so members are written here with a fixed timestamp, uncompressed;
``np.load`` reads the result like any other ``.npz``.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: The earliest date a zip file can hold; used for every member so the bytes never depend on the clock.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Suffix of every temporary file; readers never look at such names.
TEMP_SUFFIX = ".tmp"


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays into the bytes of an uncompressed ``.npz`` file, deterministically.

    Args:
        arrays: member name (without ``.npy``) -> array; written in this order.

    Returns:
        The file content; ``np.load(io.BytesIO(content))`` gives the arrays back.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16  # fixed permissions too, for identical bytes everywhere
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def temp_path_for(path: Path) -> Path:
    """A unique hidden temporary name next to ``path`` (same folder, so ``os.replace`` is atomic).

    The name starts with ``.<final name>.`` so stale temporaries of one file can be found and removed,
    and carries the process id and a random token so concurrent writers never collide.
    """
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so that ``path`` either keeps its old content or has all the new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows). A crash leaves at most a temporary file.
    """
    path = Path(path)
    temp = temp_path_for(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def stale_temp_files(folder: Path, final_name: str) -> list[Path]:
    """Temporary files left in ``folder`` by interrupted `atomic_write_bytes` calls for ``final_name``."""
    return sorted(Path(folder).glob(f".{final_name}.*{TEMP_SUFFIX}"))
