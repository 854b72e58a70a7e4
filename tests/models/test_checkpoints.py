import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.autoencoder import HierarchicalAutoencoder, size_config
from models.checkpoints import (
    BUNDLED_DIR,
    CheckpointError,
    bundled_names,
    config_kind,
    directory_kind,
    load_autoencoder,
    require_kind,
    save_checkpoint,
)

from .conftest import synthetic_frames

pytestmark = pytest.mark.usefixtures("ae_one_thread")


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[HierarchicalAutoencoder, Path]:
    model = HierarchicalAutoencoder(size_config("tiny", refine_channels=4)).eval()
    for param in model.parameters():  # no zero-initialised layers: outputs depend on every weight
        torch.nn.init.normal_(param, std=0.05)
    return model, save_checkpoint(model, tmp_path / "ckpt", model_card="# test card\n")


def test_round_trip_is_bit_identical(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_autoencoder(path)
    frames = synthetic_frames(2)
    assert loaded.config == model.config
    assert torch.equal(loaded.reconstruct(frames), model.reconstruct(frames))
    again = HierarchicalAutoencoder.from_pretrained(str(path))  # the mixin entry point, same checks
    assert torch.equal(again.encode(frames), model.encode(frames))


def test_save_is_atomic(saved, monkeypatch):
    model, path = saved
    before = (path / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(HierarchicalAutoencoder, "save_pretrained", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, path)
    # The old checkpoint is untouched and no temporary directory is left that could pass as valid.
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ckpt"]
    with pytest.raises(RuntimeError):
        save_checkpoint(model, path.parent / "new")
    assert not (path.parent / "new").exists()


def test_corrupted_weights_name_the_file(saved):
    _, path = saved
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupted"):
        load_autoencoder(path)


def test_config_mismatch_names_the_file(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["width"] = 64
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match the config.*wrong shape"):
        load_autoencoder(path)
    config["width"], config["refine_channels"] = 32, 0
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unexpected"):
        load_autoencoder(path)
    (path / "config.json").write_text('{"widht": 3}')
    with pytest.raises(CheckpointError, match="config.json"):
        load_autoencoder(path)


def test_unknown_name_lists_bundled_names():
    with pytest.raises(CheckpointError, match="Bundled checkpoints") as info:
        load_autoencoder("no-such-checkpoint")
    for name in bundled_names():
        assert name in str(info.value)


def test_offline_repo_id_explains_local_directory():
    # tests/conftest.py sets HF_HUB_OFFLINE=1 before huggingface_hub is imported.
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE.*local directory"):
        load_autoencoder("nobody-xyz/not-a-model")


def test_bundled_checkpoints_load_offline():
    from models.diffusion import VideoDiT
    from models.reward_head import load_reward_head
    from models.warp import load_warp

    names = bundled_names()
    for name in names:
        assert (BUNDLED_DIR / name / "README.md").is_file(), f"{name} has no model card"
        kind = directory_kind(BUNDLED_DIR / name)
        if kind == "reward-head":
            load_reward_head(name)
        elif kind == "diffusion":
            assert VideoDiT.from_pretrained(name).config.layout == "loopcraft-64"
        elif kind == "action-warp":
            assert load_warp(name).config.resolution == 64
        elif kind == "landmark-locator":
            from models.landmark_locator import load_landmark_locator

            probability, _ = load_landmark_locator(name).locate(np.zeros((1, 64, 64, 3), np.uint8))
            assert probability.shape == (1, 16)
        else:
            assert kind == "autoencoder", f"{name}: unknown kind {kind!r}"
            model = load_autoencoder(name)
            assert model.reconstruct(synthetic_frames(1)).shape == (1, 3, 64, 64)
    if names:  # the package ships the env's defaults together
        defaults = {"loopcraft-64", "loopcraft-64-perceptual", "loopcraft-64-millivid", "loopcraft-64-warp"}
        assert defaults <= set(names)


def test_checkpoint_kinds_are_told_by_their_config(saved, tmp_path):
    assert directory_kind(saved[1]) == "autoencoder"
    kinds = {name: directory_kind(BUNDLED_DIR / name) for name in bundled_names()}
    assert kinds["loopcraft-64-perceptual"] == kinds["loopcraft-64"] == "autoencoder"
    assert kinds["loopcraft-64-millivid"] == kinds["loopcraft-64-millivid-framecausal"] == "diffusion"
    assert kinds["loopcraft-64-landmark"] == "reward-head" and kinds["loopcraft-64-warp"] == "action-warp"
    assert bundled_names("reward-head") == ["loopcraft-64-landmark"]
    assert set(bundled_names("diffusion")) == {n for n, k in kinds.items() if k == "diffusion"}
    assert config_kind({"kind": "action-warp", "resolution": 64}) == "action-warp"
    assert config_kind({"config": {"encoder_depth": 2, "decoder_depth": 2}}) == "autoencoder"
    assert config_kind({"context_attention": "frame-causal", "depth": 2}) == "diffusion"
    # Fields that several kinds share, or that no kind has, tell nothing: the loader then reports.
    assert config_kind({"layout": "loopcraft-64", "width": 64}) is None
    assert config_kind({"widht": 3}) is None and config_kind({}) is None
    assert directory_kind(tmp_path) is None


def test_loaders_refuse_a_checkpoint_of_another_kind(saved, tmp_path):
    from models.diffusion import VideoDiT
    from models.reward_head import load_reward_head

    _, path = saved
    with pytest.raises(
        CheckpointError, match=r"ckpt is an autoencoder checkpoint, not a diffusion one \(this "
    ):
        VideoDiT.from_pretrained(str(path))
    with pytest.raises(
        CheckpointError, match="loopcraft-64-millivid is a diffusion checkpoint, not an autoencoder"
    ):
        load_autoencoder("loopcraft-64-millivid")
    with pytest.raises(CheckpointError, match="is an autoencoder checkpoint, not a reward-head one"):
        load_reward_head(str(path))
    warp = tmp_path / "warp"
    warp.mkdir()
    (warp / "config.json").write_text('{"kind": "action-warp", "resolution": 64}')
    with pytest.raises(CheckpointError, match="is an action-warp checkpoint, not an autoencoder one"):
        load_autoencoder(warp)
    from models.warp import load_warp

    with pytest.raises(CheckpointError, match="is an autoencoder checkpoint, not an action-warp one"):
        load_warp(path)


def test_require_kind_names_the_argument_that_takes_it(saved):
    _, path = saved
    assert require_kind(path, "autoencoder", "autoencoder") == path
    assert (
        require_kind("loopcraft-64-millivid", "diffusion", "checkpoint")
        == BUNDLED_DIR / "loopcraft-64-millivid"
    )
    takes = {"autoencoder": "autoencoder", "diffusion": "checkpoint"}
    with pytest.raises(CheckpointError) as info:
        require_kind(path, "diffusion", "checkpoint", takes)
    bundled = ", ".join(repr(n) for n in bundled_names("diffusion"))
    assert str(info.value) == (
        f"checkpoint={str(path)!r} is an autoencoder checkpoint, not a diffusion one; pass it as "
        f"autoencoder=..., and give checkpoint= a diffusion checkpoint (bundled: {bundled})"
    )
    head_as_ae = (
        r"^ae='loopcraft-64-landmark' is a reward-head checkpoint, not an autoencoder one; "
        r"give ae= an autoencoder checkpoint \(bundled: 'loopcraft-64', "
    )
    with pytest.raises(CheckpointError, match=head_as_ae):
        require_kind("loopcraft-64-landmark", "autoencoder", "ae", takes)
    with pytest.raises(CheckpointError, match="unknown checkpoint 'no-such-checkpoint'"):
        require_kind("no-such-checkpoint", "autoencoder", "autoencoder")
