"""examples/train_on_gpu.sh end to end on the CPU with tiny settings: stages chain, steps fill the budget."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "train_on_gpu.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_generates_encodes_and_trains_to_the_computed_steps(tmp_path: Path) -> None:
    millivid = Path(sys.executable).with_name("millivid")
    if not millivid.exists():
        pytest.skip("the millivid console script is not installed beside this interpreter")
    settings = {
        "VIDEOS": "2", "FRAMES": "200", "WORKERS": "1", "DEVICE": "cpu", "SIZE": "tiny", "BATCH": "2",
        "MINUTES": "0.3", "CALIBRATION_MINUTES": "0.1", "ENCODE_BATCH": "64", "MILLIVID": str(millivid),
        "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    out = tmp_path / "gpu"
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out)], env={**os.environ, **settings}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps, cooldown = map(int, (out / "run" / "steps.txt").read_text().split())
    assert steps > 1 and cooldown == max(1, int(steps * 0.2))
    rows = list(csv.DictReader(open(out / "run" / "log.csv")))
    # The second sitting stops at the computed step (or at the budget, on a slow machine).
    assert int(rows[-1]["step"]) == steps or float(rows[-1]["time_s"]) >= 0.3 * 60
    assert (out / "run" / "checkpoint" / "model" / "model.safetensors").is_file()
    assert "== done" in done.stdout
    # Run again: every stage resumes (nothing regenerated, no training step added).
    again = subprocess.run(
        ["bash", str(SCRIPT), str(out)], env={**os.environ, **settings}, capture_output=True, text=True
    )
    assert again.returncode == 0 and "already finished 2" in again.stdout + again.stderr
    if int(rows[-1]["step"]) == steps:  # a finished run stays finished
        assert list(csv.DictReader(open(out / "run" / "log.csv")))[-1]["step"] == rows[-1]["step"]
