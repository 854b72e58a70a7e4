"""The package as users get it: a built wheel, installed into a clean venv, imported from elsewhere."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_PACKAGES = ("millivid_env", "models", "agents", "evaluation")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_import_registers_ids_without_torch() -> None:
    code = (
        "import sys, gymnasium as gym, millivid_env;"
        "print('torch' in sys.modules, 'Loopcraft-v0' in gym.registry)"
    )
    out = _run([sys.executable, "-c", code]).stdout.split()
    assert out == ["False", "True"]


def test_cli_help_lists_commands() -> None:
    out = _run([sys.executable, "-m", "millivid_env.cli", "--help"]).stdout
    assert "generate" in out and "demo" in out and "bench" in out


def test_cli_unknown_command_fails_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "millivid_env.cli", "no-such-command"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown command" in result.stderr and "generate" in result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once for this module's tests."""
    # Build the wheel without network access to a build backend index: the running interpreter has
    # setuptools (a dependency of the dev extra's `build`), so build in the current environment.
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)])
    wheels = list(dist.glob("millivid_env-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_installs_into_clean_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # Dependencies come from the test environment (a .pth file adds its site-packages after the venv's
    # own), so this checks the wheel's contents without downloading anything; the wheel itself is
    # installed without dependencies into the clean venv.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    venv_site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    (venv_site / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    code = (
        "import importlib, json;"
        f"mods = [importlib.import_module(n) for n in {TOP_LEVEL_PACKAGES!r}];"
        "print(json.dumps([m.__file__ for m in mods]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    files = json.loads(_run([str(python), "-c", code], cwd=tmp_path, env=env).stdout)
    for path in files:
        assert Path(path).is_relative_to(venv_site), f"{path} was not imported from the installed wheel"
    script = venv / "bin" / "millivid"
    assert script.exists()
    assert "generate" in _run([str(script), "--help"], cwd=tmp_path, env=env).stdout


RENDER_CODE = """
import json, numba
import millivid_env.loopcraft.renderer as renderer
from millivid_env.loopcraft.physics import initial_pose
from millivid_env.loopcraft.world import generate_world

world = generate_world(7)
frame = renderer.render(world, initial_pose(world, 30), 64)
print(json.dumps({"renderer": renderer.__file__, "cache_dir": numba.config.CACHE_DIR,
                  "shape": list(frame.shape), "max": int(frame.max())}))
"""


def _listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``root``: (mode, size, modification time in ns)."""
    return {
        str(path.relative_to(root)): (info.st_mode, info.st_size, info.st_mtime_ns)
        for path in sorted(root.rglob("*"))
        for info in [path.lstat()]
    }


def _set_writable(root: Path, writable: bool) -> None:
    bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def test_renderer_writes_nothing_into_a_read_only_install(wheel: Path, tmp_path: Path) -> None:
    # The wheel in a folder of its own, made read-only; numba's cache must go to the user cache folder.
    # (As root the permissions do not stop writes, so the file listing is what is compared.)
    site = tmp_path / "site"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ]
    )
    _set_writable(site, False)
    try:
        before = _listing(site)
        cache_home = tmp_path / "cache"
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
        env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(cache_home), HOME=str(tmp_path / "home"))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        out = json.loads(_run([sys.executable, "-c", RENDER_CODE], cwd=elsewhere, env=env).stdout)
        after = _listing(site)
    finally:
        _set_writable(site, True)
    assert Path(out["renderer"]).is_relative_to(site), f"{out['renderer']} is not the installed renderer"
    assert out["shape"] == [64, 64, 3] and out["max"] > 0
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not new and not changed, (
        f"written into the installed package: new {new[:10]}, changed {changed[:10]}"
    )
    assert out["cache_dir"] == str(cache_home / "millivid-env" / "numba")
    assert list(cache_home.rglob("*.nbi")), "numba cached nothing in the user cache folder"
