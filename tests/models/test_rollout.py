"""Open-loop rollout: every cell generated once, context untouched, determinism, batching, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models.rollout.open_loop as open_loop
from models.rollout import imagine, pad_actions, rollout_latents
from models.strategies import DENOISED, get_strategy, plan_rollout
from models.testing import batch_equal, save_tiny_world_model
from models.tokens import get_layout
from models.world_model import WorldModel

LAYOUT = get_layout("loopcraft-64")
N, C = LAYOUT.num_tokens, LAYOUT.latent_channels


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldModel:
    # Width 64 (a multiple of 32): batched and single runs are then bit-identical (models/testing.py).
    ae, dit = save_tiny_world_model(tmp_path_factory.mktemp("tiny"), dit_width=64)
    return WorldModel.load(str(ae), str(dit), device="cpu", cache=False)


def video(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, N, C, generator=g) * 2 - 1, torch.randint(0, 3, (b, t), generator=g)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [("millivid", 90, 160), ("framepack", 70, 75), ("full-resolution", 5, 12), ("streaming", 64, 66)],
)
def test_every_cell_generated_once_from_available_context(world, monkeypatch, name, start, end):
    """A fake sampler writes its step number into the tokens it generates; the buffer tells who wrote what."""
    calls = []

    def fake_sample(model, batch, **kwargs):
        k = len(calls) + 1
        den = batch.role[0] == DENOISED
        ctx_frames = batch.index[0, ~den, 0]
        future = batch.x[:, ~den][:, ctx_frames >= start]
        assert bool(((future >= 1) & (future < k)).all()), "context read before it was generated"
        calls.append(k)
        out = batch.x.clone()
        out[:, den] = float(k)
        return out

    monkeypatch.setattr(open_loop, "sample", fake_sample)
    strategy = get_strategy("loopcraft-64", name)
    t = 160
    latents, actions = video(2, t)
    result = rollout_latents(world.dit, latents, actions, strategy, start, end, 1)
    plan = plan_rollout(strategy, start, end)
    assert len(calls) == plan.num_steps
    writer = {}
    for step in plan:
        for frame, level in zip(*step.denoised, strict=True):
            assert (int(frame), int(level)) not in writer, "a cell generated twice"
            writer[int(frame), int(level)] = step.index + 1
    assert torch.equal(result[:, :start], latents[:, :start])  # context untouched
    generated_levels = {level for _, level in writer}
    for frame in range(start, min(t, plan.limit)):
        for level in range(4):
            values = result[:, frame, LAYOUT.level_slice(level)]
            expected = float(writer[frame, level]) if level in generated_levels else 0.0
            assert bool((values == expected).all()), (frame, level)
    assert bool((result[:, plan.limit :] == 0).all())


def test_deterministic_and_batched_equals_per_video(world):
    latents, actions = video(2, 90, seed=1)
    for name, start, end in (("framepack", 64, 67), ("millivid", 85, 86)):

        def run(lat, act, seeds, name=name, start=start, end=end):
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            return rollout_latents(
                world.dit, lat, act, name, start, end, 1 if name == "millivid" else 2, gens
            )

        batched = run(latents, actions, [3, 4])
        assert torch.equal(batched, run(latents, actions, [3, 4]))
        assert batch_equal(batched[:1], run(latents[:1], actions[:1], [3]))
        assert batch_equal(batched[1:], run(latents[1:], actions[1:], [4]))
        assert not torch.equal(batched[:1, start:end], run(latents[:1], actions[:1], [5])[:, start:end])
        assert bool(torch.isfinite(batched).all()) and batched[:, start:end].abs().sum() > 0
    one = rollout_latents(
        world.dit, latents, actions, "full-resolution", 5, 9, 2, torch.Generator().manual_seed(0)
    )
    two = rollout_latents(
        world.dit, latents, actions, "full-resolution", 5, 9, 2, torch.Generator().manual_seed(0)
    )
    assert torch.equal(one, two)


def test_progress_and_padding_past_the_video(world):
    seen = []
    # millivid's first chunk runs to frame 149: actions past frame 100 are padded (method.md 7.6).
    latents, actions = video(1, 100)
    out = rollout_latents(
        world.dit, latents, actions, "millivid", 85, 100, 1, torch.Generator().manual_seed(0),
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen == [(k, 85) for k in range(1, 86)]
    assert out.shape == (1, 100, N, C) and bool(torch.isfinite(out).all())


def test_pad_actions():
    actions = np.array([0] * 9 + [2] * 4)
    padded = pad_actions(actions, 60)
    assert padded[:13].tolist() == actions.tolist() and padded[13:18].tolist() == [2] * 5
    assert set(padded.tolist()) <= {0, 1, 2} and padded[18] == 0  # a walk cycle starts forward
    assert all(len(set(padded[i : i + 9].tolist())) == 1 for i in range(0, 54, 9))  # 9-frame units
    assert np.array_equal(padded, pad_actions(actions, 60)) and pad_actions(actions, 5).tolist() == [0] * 5


def test_bad_input_errors(world):
    latents, actions = video(1, 120)
    dit = world.dit
    with pytest.raises(ValueError, match="reads 85 context frames.*only 40"):
        rollout_latents(dit, latents, actions, "millivid", 40, 60)
    bad = actions.clone()
    bad[0, 100] = 3
    with pytest.raises(ValueError, match=r"action ids must lie in \[0, 2\].*action 3 at frame 100"):
        rollout_latents(dit, latents, bad, "framepack", 90, 95)
    bad[0, 100] = -1
    with pytest.raises(ValueError, match="action -1"):
        rollout_latents(dit, latents, bad, "framepack", 90, 95)
    nan = latents.clone()
    nan[0, 80, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        rollout_latents(dit, nan, actions, "framepack", 90, 95)
    with pytest.raises(ValueError, match="latents must be"):
        rollout_latents(dit, latents[..., :16], actions, "framepack", 90, 95)
    with pytest.raises(ValueError, match="end <= T"):
        rollout_latents(dit, latents, actions, "framepack", 90, 130)
    with pytest.raises(ValueError, match="actions must be"):
        rollout_latents(dit, latents, actions[:, :50], "framepack", 90, 95)
    with pytest.raises(ValueError, match="unknown strategy"):
        rollout_latents(dit, latents, actions, "nope", 90, 95)


def test_nan_in_the_model_names_the_step(world, tmp_path: Path):
    ae, dit = save_tiny_world_model(tmp_path, dit_width=64)
    broken = WorldModel.load(str(ae), str(dit), device="cpu", cache=False).dit
    with torch.no_grad():
        broken.head.bias.fill_(float("nan"))
    latents, actions = video(1, 70)
    with pytest.raises(FloatingPointError, match=r"rollout step 1/\d+ .*NaN"):
        rollout_latents(broken, latents, actions, "framepack", 64, 66, 1)


def test_imagine_shapes_and_errors(world):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 90, 64, 64, 3), dtype=np.uint8)
    past, future = rng.integers(0, 3, (2, 90)), rng.integers(0, 3, (2, 3))
    out = imagine(
        world, frames, past, future, "framepack", 1, [torch.Generator().manual_seed(s) for s in (0, 1)]
    )
    assert out.shape == (2, 3, 64, 64, 3) and out.dtype == np.uint8
    single = imagine(world, frames[0], past[0], future[0], "framepack", 1, [torch.Generator().manual_seed(0)])
    assert single.shape == (3, 64, 64, 3) and np.array_equal(single, out[0])
    millivid = imagine(world, frames[0, -85:], past[0, -85:], future[0, :2], steps=1)
    assert millivid.shape == (2, 64, 64, 3) and millivid.dtype == np.uint8
    with pytest.raises(ValueError, match="needs at least 85 context frames, got 40"):
        imagine(world, frames[:, :40], past[:, :40], future)
    with pytest.raises(ValueError, match="uint8"):
        imagine(world, frames.astype(np.float32), past, future)
    with pytest.raises(ValueError, match="context_actions"):
        imagine(world, frames, past[:, :10], future)
