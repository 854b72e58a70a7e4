"""Diffusion training: samples are the rollout's step layouts, mixture, loss, resume, DDP, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.diffusion import VideoDiT, diffusion_loss, dit_config
from models.latents import FORMAT_NAME, FORMAT_VERSION, write_json, write_video
from models.strategies import DENOISED, get_strategy
from models.tokens import get_layout
from models.training.diffusion import DiffusionTrainConfig, train
from models.training.diffusion_data import STREAMING, Draw, LayoutSampler
from models.training.diffusion_objective import masked_mean, token_errors

REPO = Path(__file__).resolve().parents[2]
LAYOUT = get_layout("loopcraft-64")


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_latent_dataset(root: Path, lengths: list[int], seed: int = 0) -> Path:
    """A latent dataset (docs/latent-format.md) of smooth, action-driven synthetic latents."""
    (root / "videos").mkdir(parents=True)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "layout": LAYOUT.name,
        "num_levels": LAYOUT.num_levels,
        "tokens_per_level": list(LAYOUT.tokens_per_level),
        "level_offsets": [LAYOUT.level_slice(k).start for k in range(LAYOUT.num_levels)],
        "latent_channels": LAYOUT.latent_channels,
        "dtype": "float16",
        "autoencoder": {"checkpoint": "synthetic", "weights_sha256": "0" * 64},
    }
    write_json(root / "latents.json", header)
    rng = np.random.default_rng(seed)
    for i, length in enumerate(lengths):
        actions = np.repeat(rng.integers(0, 3, -(-length // 9)), 9)[:length]
        heading = np.cumsum(np.where(actions == 1, -0.3, np.where(actions == 2, 0.3, 0.0)))
        base = rng.uniform(0, 2 * np.pi, (LAYOUT.num_tokens, LAYOUT.latent_channels))
        latents = np.tanh(
            0.8 * np.sin(base[None] + heading[:, None, None] + 0.05 * np.arange(length)[:, None, None])
        )
        arrays = {
            "latents": latents.astype(np.float16),
            "actions": actions,
            "poses": np.zeros((length, 5), np.float32),
        }
        write_video(root, i, arrays, source_sha256="synthetic")
    return root


@pytest.fixture(scope="module")
def latents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four videos of 160 frames (longer than millivid's 149-frame chunk)."""
    return write_latent_dataset(tmp_path_factory.mktemp("latents") / "data", [160] * 4)


def sampler_for(latents: Path, name: str, mix: float = 0.0, videos=(0, 1, 2)) -> LayoutSampler:
    from models.latents import LatentDataset

    data = LatentDataset(latents)
    return LayoutSampler(
        data, list(videos), get_strategy(LAYOUT.name, name), mix, get_strategy(LAYOUT.name, "streaming")
    )


@pytest.mark.parametrize("name", ["millivid", "framepack", "full-resolution", "streaming"])
def test_sample_tokens_are_the_step_cells(latents: Path, name: str):
    from models.latents import LatentDataset

    strategy = get_strategy(LAYOUT.name, name)
    sampler = sampler_for(latents, name)
    data = LatentDataset(latents)
    for step in sorted({0, strategy.num_steps // 2, strategy.num_steps - 1}):
        selection = strategy.steps[step].selection
        lo, hi = strategy.steps[step].span
        offset = 160 - hi  # the last valid position of the span in video 1
        tokens = sampler.tokens(Draw(0, step, 1, offset))
        index, role = tokens["index"], tokens["role"]
        assert len(role) == strategy.step_tokens[step] and tokens["pad"].sum() == 0
        # Cells (column, level) with their role, each with all of its level's tokens.
        cells = Counter(
            (int(f), int(lv), int(r)) for f, lv, r in zip(index[:, 0], index[:, 1], role, strict=True)
        )
        expected = {
            (int(c), lv, int(selection[lv, c])) for lv in range(4) for c in np.flatnonzero(selection[lv])
        }
        assert set(cells) == expected
        assert all(n == LAYOUT.tokens_per_level[lv] for (_, lv, _), n in cells.items())
        # Relative frames as the model sees them start at the span's first column.
        assert int(VideoDiT.frame_origin(index[None])[0]) == lo
        # Values are the ground-truth latents of those (frame, level, h, w).
        truth = torch.from_numpy(np.asarray(data.latents(1), np.float32))
        for k in np.linspace(0, len(role) - 1, 25).astype(int):
            f, lv, h, w = (int(v) for v in index[k])
            pos = LAYOUT.level_slice(lv).start + h * LAYOUT.grid(lv) + w
            assert torch.equal(tokens["x"][k], truth[offset + f, pos])
            assert tokens["action"][k] == int(data.actions(1)[offset + f])


def test_draws_place_the_span_inside_the_video(latents: Path):
    sampler = sampler_for(latents, "millivid")
    strategy = sampler.strategies[0]
    for draw in sampler.draw(np.random.default_rng(0), 300):
        lo, hi = strategy.steps[draw.step].span
        assert 0 <= draw.offset + lo and draw.offset + hi <= 160


def test_mixture_and_group_proportions(latents: Path):
    sampler = sampler_for(latents, "millivid", mix=0.3)
    draws = sampler.draw(np.random.default_rng(1), 6000)
    streamed = np.array([d.source == STREAMING for d in draws])
    assert abs(streamed.mean() - 0.3) < 0.025
    for source, strategy in ((0, sampler.strategies[0]), (1, sampler.strategies[1])):
        groups = Counter(strategy.steps[d.step].group for d in draws if d.source == source)
        total = sum(groups.values())
        assert len(groups) == 4 and all(abs(n / total - 0.25) < 0.04 for n in groups.values())


def test_mixed_batches_are_padded_and_padding_changes_nothing(latents: Path):
    sampler = sampler_for(latents, "millivid", mix=1.0)
    draws = [Draw(1, s, 0, 10) for s in range(4)]  # the 4 streaming sub-steps: 236..320 tokens
    batch = sampler.collate(draws)
    sizes = [len(sampler.tokens(d)["role"]) for d in draws]
    assert batch.x.shape[1] == max(sizes) and batch.pad is not None
    assert (~batch.pad).sum(1).tolist() == sizes
    torch.manual_seed(0)
    model = VideoDiT(dit_config("tiny"))
    with torch.no_grad():
        for p in model.parameters():  # leave adaLN-Zero's identity so the check is not trivial
            if not p.any():
                p.normal_(0, 0.05)
    t = torch.where(batch.denoised, 0.5, 0.0)
    v = model(batch.x, batch.index, t, batch.action, batch.role, pad=batch.pad)
    for i, d in enumerate(draws):
        s = sampler.tokens(d)
        alone = model(
            s["x"][None], s["index"][None], t[i : i + 1, : sizes[i]], s["action"][None], s["role"][None]
        )
        assert torch.allclose(v[i, : sizes[i]], alone[0], atol=1e-5)


def test_short_videos_are_padded_not_zero_filled(tmp_path: Path):
    data = write_latent_dataset(tmp_path / "short", [40])
    sampler = sampler_for(data, "millivid", videos=(0,))
    draws = sampler.draw(np.random.default_rng(0), 20)
    assert all(d.offset == -sampler.strategies[0].steps[d.step].span[0] for d in draws)
    tokens = sampler.tokens(draws[0])
    frames = tokens["index"][:, 0] + draws[0].offset
    assert torch.equal(tokens["pad"], frames >= 40)


def test_token_errors_are_diffusion_loss(latents: Path):
    batch, _ = sampler_for(latents, "millivid", mix=0.5).batch(np.random.default_rng(2), 4)
    torch.manual_seed(0)
    model = VideoDiT(dit_config("tiny"))
    errors, weight = token_errors(model, model, batch, torch.Generator().manual_seed(5), 0.3, 0.1)
    expected = diffusion_loss(model, batch, torch.Generator().manual_seed(5), 0.3, 0.1)
    assert torch.allclose(masked_mean(errors, weight), expected, rtol=1e-6)
    assert torch.equal(weight, batch.denoised) and bool((batch.role[weight] == DENOISED).all())


def tiny_config(latents: Path, out: Path, steps: int, **kw) -> DiffusionTrainConfig:
    options = dict(
        size="tiny", batch_size=4, steps=steps, warmup_steps=2, eval_every=2, eval_samples=4, log_every=1
    )
    options.update(kw)
    return DiffusionTrainConfig(latents=str(latents), out=str(out), device="cpu", **options)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "model" / "model.safetensors"))


def test_loss_decreases(latents: Path, tmp_path: Path):
    cfg = tiny_config(latents, tmp_path / "run", 40, batch_size=8, lr=1e-2, eval_every=4, eval_samples=16)
    result = train(cfg)
    evals = [float(r["eval_loss"]) for r in _rows(tmp_path / "run") if r["eval_loss"]]
    # Fixed held-out samples and noise make a smooth curve (measured: 0.72 -> 0.63 in 40 steps).
    assert evals[-1] < 0.92 * evals[0], evals
    assert sum(b < a for a, b in zip(evals, evals[1:], strict=False)) >= len(evals) // 2, evals
    assert set(result) == {"eval_loss", "eval_l0", "eval_l1", "eval_l2", "eval_l3", "eval_streaming"}


def _rows(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_resume_is_exact_and_logs_per_level(latents: Path, tmp_path: Path):
    options = dict(mix_streaming=0.5)
    train(tiny_config(latents, tmp_path / "straight", 4, **options))
    train(tiny_config(latents, tmp_path / "resumed", 2, **options))
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "trainer.json").read_text())["step"] == 2
    result = train(tiny_config(latents, tmp_path / "resumed", 4, **options))
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = _rows(tmp_path / "resumed")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert all(r["loss_streaming"] and r["eval_loss"] for r in rows[1::2])
    assert any(r["loss_l3"] for r in rows) and "eval_streaming" in result
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "trainer.json").read_text())
    assert state["strategy"] == "millivid" and state["samples"] == 16 and state["layout"] == LAYOUT.name
    assert VideoDiT.from_pretrained(str(tmp_path / "resumed" / "checkpoint" / "model")).config.width == 48
    with pytest.raises(ValueError, match="another run"):
        train(tiny_config(latents, tmp_path / "resumed", 6, strategy="framepack"))


def test_resume_a_run_saved_before_context_attention_existed(latents: Path, tmp_path: Path):
    train(tiny_config(latents, tmp_path / "run", 2))
    state_file = tmp_path / "run" / "checkpoint" / "trainer.json"
    state = json.loads(state_file.read_text())
    del state["model_config"]["context_attention"]  # as written by earlier versions
    state_file.write_text(json.dumps(state))
    train(tiny_config(latents, tmp_path / "run", 3))
    assert json.loads(state_file.read_text())["step"] == 3
    with pytest.raises(ValueError, match="another run"):
        train(tiny_config(latents, tmp_path / "run", 4, context_attention="frame-causal"))


def test_fine_tune_from_a_checkpoint_to_frame_causal(latents: Path, tmp_path: Path):
    train(tiny_config(latents, tmp_path / "base", 2))
    base = tmp_path / "base" / "checkpoint" / "model"
    # One step at learning rate 0: the weights are the source's, the attention pattern the new one.
    options = dict(init_from=str(base), context_attention="frame-causal")
    train(tiny_config(latents, tmp_path / "ft", 1, lr=0.0, weight_decay=0.0, **options))
    tuned = VideoDiT.from_pretrained(str(tmp_path / "ft" / "checkpoint" / "model"))
    assert tuned.config.context_attention == "frame-causal"
    source = weights(tmp_path / "base")
    assert all(torch.equal(source[k], v) for k, v in tuned.state_dict().items())
    with pytest.raises(ValueError, match="architecture differs.*pass the --size"):
        train(tiny_config(latents, tmp_path / "wide", 1, init_from=str(base), size="cpu"))
    # A resumed fine-tune keeps its own weights (the source is read only for a fresh run).
    train(tiny_config(latents, tmp_path / "ft", 2, **options))
    assert not all(torch.equal(source[k], v) for k, v in weights(tmp_path / "ft").items())


def test_fine_tune_keeps_the_checkpoints_gelu(latents: Path, tmp_path: Path):
    # Bundled checkpoints run the exact GELU while --size names the tanh one: a fine-tune of one must
    # start (and resume) with the checkpoint's activation instead of failing on the difference.
    train(tiny_config(latents, tmp_path / "base", 2))
    base = VideoDiT.from_pretrained(str(tmp_path / "base" / "checkpoint" / "model"))
    exact_dir = tmp_path / "exact"
    VideoDiT(replace(base.config, gelu="exact")).save_pretrained(str(exact_dir))
    train(tiny_config(latents, tmp_path / "ft", 1, init_from=str(exact_dir)))
    train(tiny_config(latents, tmp_path / "ft", 2, init_from=str(exact_dir)))
    tuned = VideoDiT.from_pretrained(str(tmp_path / "ft" / "checkpoint" / "model"))
    assert tuned.config.gelu == "exact"
    assert json.loads((tmp_path / "ft" / "checkpoint" / "trainer.json").read_text())["step"] == 2


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_torchrun_ddp_two_processes(latents: Path, tmp_path: Path):
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "models.training.diffusion_cli", "--latents", str(latents), "--out", str(run),
        "--size", "tiny", "--strategy", "full-resolution", "--batch-size", "2", "--steps", "3",
        "--eval-every", "3", "--eval-samples", "2", "--log-every", "1", "--threads", "1",
        "--warmup-steps", "1", "--device", "cpu",
    ]  # fmt: skip
    began = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert state["step"] == 3 and state["samples"] == 3 * 2 * 2  # samples of both processes
    assert time.perf_counter() - began < 60


def test_cli_is_registered():
    from millivid_env.cli import COMMANDS

    assert COMMANDS["train-diffusion"].module == "models.training.diffusion_cli"
    assert COMMANDS["rollout"].module == "evaluation.rollout_cli"


def test_bundle_writes_a_diffusion_card(latents: Path, tmp_path: Path, monkeypatch):
    from models import bundle as bundle_module
    from models import checkpoints

    run = tmp_path / "run"
    train(tiny_config(latents, run, 2, strategy="framepack"))
    monkeypatch.setattr(bundle_module, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path / "bundled")
    path = bundle_module.bundle(run, {"lpips_long": 0.5}, "test-64-framepack", hardware="test machine")
    card = (path / "README.md").read_text()
    assert "millivid train-diffusion" in card and "--strategy framepack" in card and "--size tiny" in card
    assert "| eval_loss |" in card and '"lpips_long": 0.5' in card and "test machine" in card
    assert VideoDiT.from_pretrained(str(path)).config == dit_config("tiny")


def test_bundle_exact_gelu_keeps_weights_and_changes_only_the_activation(
    latents: Path, tmp_path: Path, monkeypatch
):
    from models import bundle as bundle_module
    from models import checkpoints

    run = tmp_path / "run"
    train(tiny_config(latents, run, 2, strategy="framepack"))
    monkeypatch.setattr(bundle_module, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path / "bundled")
    path = bundle_module.bundle(run, None, "test-exact", hardware="test machine", exact_gelu=True)
    exact, trained = (
        VideoDiT.from_pretrained(str(path)),
        VideoDiT.from_pretrained(str(run / "checkpoint" / "model")),
    )
    assert exact.config.gelu == "exact" and trained.config.gelu == "tanh"
    assert exact.config == replace(trained.config, gelu="exact")
    for (name, a), (_, b) in zip(exact.state_dict().items(), trained.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert "bundled with the exact GELU" in (path / "README.md").read_text()
