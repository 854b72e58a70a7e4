"""The package as users get it: a built wheel, installed into a clean venv, imported from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

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


def test_wheel_installs_into_clean_venv(tmp_path: Path) -> None:
    # Build the wheel without network access to a build backend index: the running interpreter has
    # setuptools (a dependency of the dev extra's `build`), so build in the current environment.
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)])
    wheels = list(dist.glob("millivid_env-*.whl"))
    assert len(wheels) == 1

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # Dependencies come from the test environment (a .pth file adds its site-packages after the venv's
    # own), so this checks the wheel's contents without downloading anything; the wheel itself is
    # installed without dependencies into the clean venv.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])])
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
