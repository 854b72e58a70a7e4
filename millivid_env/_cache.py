"""Where the package keeps what it caches at run time: a per-user folder, never the installed package.

numba's ``cache=True`` (the Loopcraft ray caster) writes compiled kernels into ``__pycache__`` next to
the source by default, that is into ``site-packages/millivid_env/loopcraft/``: that fails for a
read-only or shared install, and the files left behind outlive an uninstall (a later ``pip install
-e`` then finds ``millivid_env`` as an empty namespace package that shadows the editable install).
:func:`configure_numba_cache` points numba at ``<user cache>/millivid-env/numba`` instead, unless the
user chose a folder with ``NUMBA_CACHE_DIR``. ``millivid_env/loopcraft/__init__.py`` calls it, so it
runs before any jitted module of the package (they all live in ``millivid_env.loopcraft``) is imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

__all__ = ["configure_numba_cache", "user_cache_dir"]

APP_NAME = "millivid-env"


def user_cache_dir() -> Path:
    """The per-user cache folder of the package (not created here).

    ``$XDG_CACHE_HOME/millivid-env`` (default ``~/.cache/millivid-env``) on Linux and other POSIX
    systems, ``~/Library/Caches/millivid-env`` on macOS, ``%LOCALAPPDATA%/millivid-env`` on Windows.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP_NAME


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def configure_numba_cache() -> str:
    """Send numba's on-disk cache to the user cache folder unless ``NUMBA_CACHE_DIR`` is already set.

    Falls back to a per-user folder in the temporary directory when the user cache folder cannot be
    created (no home directory, read-only home). Safe to call more than once; if numba was imported
    before this package, its configuration is reloaded so that the new folder applies to the kernels
    compiled from then on.

    Returns:
        the cache folder numba uses.
    """
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return chosen
    folder = user_cache_dir() / "numba"
    if not _writable_dir(folder):
        user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
        folder = Path(tempfile.gettempdir()) / f"{APP_NAME}-{user}" / "numba"
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()
    return str(folder)
