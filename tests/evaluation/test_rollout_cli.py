"""`millivid rollout`: mp4 + JSON from a dataset video file or a seed, on a tiny random model."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from millivid_env.cli import main
from models.testing import save_tiny_world_model


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ae, dit = save_tiny_world_model(tmp_path_factory.mktemp("tiny"))
    return str(ae), str(dit)


def write_video_file(root: Path, frames: int) -> Path:
    """One video in the dataset format (videos/000000.npz + sidecar with its sha256)."""
    (root / "videos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        frames=rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8),
        actions=rng.integers(0, 3, frames),
        poses=np.zeros((frames, 5), np.float32),
    )
    content = buffer.getvalue()
    path = root / "videos" / "000000.npz"
    path.write_bytes(content)
    sidecar = {"index": 0, "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    (root / "videos" / "000000.json").write_text(json.dumps(sidecar))
    return path


def test_rollout_of_a_dataset_video_writes_mp4_and_json(tiny, tmp_path: Path, capsys):
    ae, dit = tiny
    video = write_video_file(tmp_path / "data", 70)
    out, report = tmp_path / "out" / "rollout.mp4", tmp_path / "out" / "rollout.json"
    args = ["rollout", "--checkpoint", dit, "--autoencoder", ae, "--video", str(video), "--context", "64"]
    args += ["--frames", "3", "--strategy", "framepack", "--steps", "1", "--scale", "2", "--out", str(out)]
    assert main([*args, "--json", str(report)]) == 0
    assert "PSNR" in capsys.readouterr().out
    with imageio.get_reader(out) as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 67 and frames[0].shape[:2] == (2 * (64 + 8), 2 * (2 * 64 + 8))
    document = json.loads(report.read_text())
    assert document["strategy"] == "framepack" and len(document["psnr"]) == 3
    assert len(document["psnr_autoencoded"]) == 3 and np.isfinite(document["psnr_mean"])


def test_rollout_of_a_seed_and_bad_input(tiny, tmp_path: Path, capsys):
    ae, dit = tiny
    out = tmp_path / "seed.mp4"
    base = ["rollout", "--checkpoint", dit, "--autoencoder", ae, "--steps", "1", "--out", str(out)]
    assert (
        main([*base, "--video", "3", "--context", "4", "--frames", "2", "--strategy", "full-resolution"]) == 0
    )
    assert out.is_file() and "test loop of seed 3" in capsys.readouterr().out
    video = write_video_file(tmp_path / "short", 20)
    assert main([*base, "--video", str(video), "--context", "16", "--frames", "8"]) == 2
    assert "has 20 frames" in capsys.readouterr().err
    assert main([*base, "--video", str(video), "--context", "10", "--frames", "2"]) == 2
    assert "needs at least 85 context frames, got 10" in capsys.readouterr().err
    assert main([*base, "--video", "no/such/file.npz", "--context", "4", "--frames", "2"]) == 2
    assert "not a file" in capsys.readouterr().err


def test_a_training_run_folder_stands_for_its_model(tmp_path: Path):
    from evaluation.rollout_cli import diffusion_dir

    (tmp_path / "run" / "checkpoint" / "model").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "model" / "config.json").write_text("{}")
    assert diffusion_dir(str(tmp_path / "run")) == str(tmp_path / "run" / "checkpoint" / "model")
    assert diffusion_dir("loopcraft-64-millivid") == "loopcraft-64-millivid"
