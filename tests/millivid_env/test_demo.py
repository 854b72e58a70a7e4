"""`millivid demo` with a world model (the tiny one) and its ground-truth fallback."""

from __future__ import annotations

import imageio.v2 as imageio

from millivid_env.cli import main
from millivid_env.demo_model import comparison_strip


def test_model_demo_writes_side_by_side_video_and_strip(tiny_model, tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--frames", "90", "--sampling-steps", "1", "--device", "cpu"]
    args += ["--autoencoder", str(tiny_model.autoencoder), "--checkpoint", str(tiny_model.diffusion)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "left: ground truth, right: model" in printed
    with imageio.get_reader(tmp_path / "demo.mp4") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 90 and frames[0].shape == (256, 2 * 256 + 4 * 8, 3)
    strip = imageio.imread(tmp_path / "strip.png")
    assert strip.shape == (2 * (128 + 6), 8 * (128 + 6), 3)


def test_demo_falls_back_to_ground_truth_with_a_note(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("models.checkpoints.BUNDLED_DIR", tmp_path / "no-bundled-models")
    assert main(["demo", "--out", str(tmp_path / "a"), "--frames", "24"]) == 0
    assert "not part of this install yet" in capsys.readouterr().out
    assert (tmp_path / "a" / "montage.png").is_file()
    # A loop too short for the model's context also falls back (the bundled warp back in place: the
    # demo copies frames with it, as the envs do).
    monkeypatch.undo()
    args = ["demo", "--out", str(tmp_path / "b"), "--frames", "24"]
    args += [
        "--autoencoder",
        str(tiny_model.autoencoder),
        "--checkpoint",
        str(tiny_model.diffusion),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert "needs more than 85 frames" in capsys.readouterr().out


def test_comparison_strip_marks_context_and_generated_frames():
    import numpy as np

    truth = np.zeros((20, 64, 64, 3), np.uint8)
    strip = comparison_strip(truth, truth + 50, context=10, columns=4)
    assert strip.shape == (2 * 134, 4 * 134, 3)
    assert tuple(strip[0, 0]) == (40, 110, 230) and tuple(strip[0, -1]) == (240, 150, 30)
    assert strip[134 + 10, 10, 0] == 50
