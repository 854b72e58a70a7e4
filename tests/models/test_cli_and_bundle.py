import json
from pathlib import Path

import numpy as np
import pytest
import torch

from millivid_env.cli import main
from models import bundle as bundle_module
from models import checkpoints
from models.autoencoder import HierarchicalAutoencoder, size_config
from models.checkpoints import load_autoencoder, save_checkpoint
from models.training.autoencoder import TrainConfig, train

from .conftest import synthetic_frames

pytestmark = pytest.mark.usefixtures("ae_one_thread")


@pytest.fixture()
def two_checkpoints(tmp_path: Path) -> list[Path]:
    paths = []
    for variant in ("hierarchical", "cascaded"):
        model = HierarchicalAutoencoder(size_config("tiny", variant=variant))
        torch.nn.init.normal_(model.to_patch.weight, std=0.05)
        paths.append(save_checkpoint(model, tmp_path / variant))
    return paths


def test_eval_autoencoder_side_by_side(two_checkpoints, tmp_path, capsys):
    frames = tmp_path / "frames.npy"
    np.save(frames, synthetic_frames(6))
    out = tmp_path / "eval.json"
    args = ["eval-autoencoder", "--data", str(frames), "--json", str(out), "--max-frames", "4"]
    args += ["--perceptual", "st-lpips-alex"]
    for path in two_checkpoints:
        args += ["--checkpoint", str(path)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert (
        "hierarchical: PSNR dB" in table
        and "cascaded: " in table
        and "LPIPS-Alex" in table
        and "| L3 (1) |" in table
    )
    document = json.loads(out.read_text())
    assert document["frames"] == 4 and "LPIPS-Alex" in document["perceptual_metric"]
    levels = document["results"][1]["levels"]
    assert [row["level"] for row in levels] == [0, 1, 2, 3]
    assert all(np.isfinite([row["psnr"], row["ssim"], row["perceptual"]]).all() for row in levels)


def test_encode_command(two_checkpoints, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "latents"
    assert (
        main(
            [
                "encode",
                "--checkpoint",
                str(two_checkpoints[1]),
                "--data",
                str(tiny_dataset),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "encoded 3 videos" in capsys.readouterr().out
    assert json.loads((out / "latents.json").read_text())["autoencoder_config"]["variant"] == "cascaded"


def test_bundle_writes_a_loadable_checkpoint_with_card(tiny_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_dataset), out=str(run), size="tiny", batch_size=2, steps=1,
                      perceptual_weight=0.0, eval_frames=2, device="cpu"))  # fmt: skip
    evaluation = {"frames": 2, "perceptual_metric": "ST-LPIPS-Alex", "results": [{"levels": [
        {"level": k, "tokens": t, "psnr": 20.0 - k, "ssim": 0.5, "perceptual": 0.1} for k, t in
        enumerate((64, 16, 4, 1))]}]}  # fmt: skip
    monkeypatch.setattr(bundle_module, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path / "bundled")
    path = bundle_module.bundle(run, evaluation, "test-64", hardware="test machine")
    card = (path / "README.md").read_text()
    assert "millivid train-autoencoder" in card and "--size tiny" in card and "| L3 (1) | 17.00 |" in card
    assert checkpoints.bundled_names() == ["test-64"]
    assert load_autoencoder("test-64").config.width == 32
    # A decoder fine-tune's card names its starting point and the frozen encoder.
    tuned = tmp_path / "tuned"
    train(TrainConfig(data=str(tiny_dataset), out=str(tuned), size="tiny", batch_size=2, steps=1,
                      perceptual_weight=0.0, eval_frames=2, device="cpu", init_from="test-64",
                      freeze_encoder=True))  # fmt: skip
    tuned_card = bundle_module.bundle(tuned, evaluation, "test-64-tuned", hardware="test") / "README.md"
    assert "--init-from test-64 --freeze-encoder" in tuned_card.read_text()
