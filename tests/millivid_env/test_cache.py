import os
from pathlib import Path

import pytest

from millivid_env._cache import configure_numba_cache, user_cache_dir


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    yield monkeypatch
    monkeypatch.undo()
    import numba.core.config

    numba.core.config.reload_config()  # numba sees this process's own setting again


def test_numba_cache_goes_to_the_user_cache_folder(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import numba

    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "xdg" / "millivid-env" / "numba"
    assert user_cache_dir() == folder.parent
    assert configure_numba_cache() == str(folder)
    assert os.environ["NUMBA_CACHE_DIR"] == str(folder) and folder.is_dir()
    assert numba.config.CACHE_DIR == str(folder)  # numba was imported first: its config is reloaded


def test_a_user_set_numba_cache_dir_is_kept(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert configure_numba_cache() == str(tmp_path / "mine")
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "xdg").exists()


def test_an_unusable_user_cache_folder_falls_back_to_the_temp_folder(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    env.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    env.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    folder = Path(configure_numba_cache())
    assert folder.is_relative_to(tmp_path / "tmp") and folder.name == "numba"
