"""Open-loop rollout seen through the copying view, and the context window of the memory-cut control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models.rollout.open_loop as open_loop
from models.rollout.copied import earliest_read_frame, imagine_copied
from models.rollout.open_loop import rollout_latents, windowed_tokens
from models.rollout.tokens import step_tokens
from models.strategies import CONTEXT, DENOISED, get_strategy
from models.testing import save_tiny_world_model
from models.tokens import get_layout
from models.warp import ActionWarp, WarpConfig
from models.warp.view import CopyingView, ViewSettings
from models.world_model import WorldModel

LAYOUT = get_layout("loopcraft-64")
#: Only the moved previous frame: with the untrained (identity) warp its confidence decays by 0.8 a
#: step, so the model's pixels are needed once 0.8^n < 0.02, from the 18th frame on.
NO_MEMORY = ViewSettings(remember=False)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldModel:
    ae, dit = save_tiny_world_model(tmp_path_factory.mktemp("tiny"), dit_width=64)
    return WorldModel.load(str(ae), str(dit), device="cpu", cache=False)


def clips(b: int, c: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (b, c, 64, 64, 3), dtype=np.uint8)
    actions = rng.integers(0, 3, (b, c + t))
    return frames, actions[:, :c], actions[:, c:]


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_windowed_tokens_keep_the_denoised_and_the_recent_context():
    strategy = get_strategy("loopcraft-64", "millivid")
    table = step_tokens(strategy, 0, LAYOUT)  # the level-3 step: context back to 85 frames before
    columns, positions, index, role, den = windowed_tokens(table, 10, 5)
    assert len(den) == len(table.denoised)
    first_denoised = int(table.columns[table.denoised].min())
    kept_context = columns[role == CONTEXT]
    assert len(kept_context) > 0 and int(kept_context.min()) >= first_denoised - 5
    assert int(table.columns[table.role == CONTEXT].min()) < first_denoised - 5  # something was cut
    assert torch.equal(index[:, 0], columns + 10)
    assert torch.equal(positions[den], table.positions[table.denoised])
    full = windowed_tokens(table, 10, None)
    assert len(full[0]) == table.num_tokens and torch.equal(full[4], table.denoised)


def test_context_window_changes_what_the_model_reads(world):
    rng = torch.Generator().manual_seed(0)
    latents = torch.rand(1, 90, LAYOUT.num_tokens, LAYOUT.latent_channels, generator=rng) * 2 - 1
    actions = torch.randint(0, 3, (1, 90), generator=rng)
    args = (world.dit, latents, actions, "framepack", 64, 66, 1)
    full = rollout_latents(*args, gens(0))
    assert torch.equal(full, rollout_latents(*args, gens(0), context_window=None))
    cut = rollout_latents(*args, gens(0), context_window=2)
    assert not torch.equal(full[:, 64:66], cut[:, 64:66])
    # The cut only drops context older than the window: changing it leaves the cut rollout alone.
    older = latents.clone()
    older[:, :60] = 0
    cut_older = rollout_latents(world.dit, older, *args[2:], gens(0), context_window=2)
    assert torch.equal(cut[:, 64:66], cut_older[:, 64:66])
    assert not torch.equal(full[:, 64:], rollout_latents(world.dit, older, *args[2:], gens(0))[:, 64:])


@pytest.mark.parametrize("strategy", ["millivid", "framepack", "full-resolution"])
def test_untrained_warp_holds_the_last_frame_until_the_model_must_draw(world, strategy):
    frames, past, future = clips(2, 90, 24)
    out = imagine_copied(
        world, ActionWarp(WarpConfig(resolution=64)), frames, past, future, strategy, 1, gens(0, 1),
        view=NO_MEMORY,
    )  # fmt: skip
    assert out.frames.shape == (2, 24, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.filled.shape == (2, 24) and out.filled.dtype == bool
    # 0.8 ** 17 > 0.02 > 0.8 ** 18: the first 17 frames are the held frame, then the model draws.
    assert not out.filled[:, :17].any() and out.filled[:, 17].all()
    for b in range(2):
        np.testing.assert_array_equal(out.frames[b, :17], np.broadcast_to(frames[b, -1], (17, 64, 64, 3)))
    assert (out.frames[:, 17].astype(int) != frames[:, -1]).any()


def test_copied_rollout_is_per_video_deterministic(world):
    frames, past, future = clips(2, 90, 20, seed=2)
    warp = ActionWarp(WarpConfig(resolution=64))
    run = lambda f, p, a, g: imagine_copied(world, warp, f, p, a, "framepack", 1, g, view=NO_MEMORY)  # noqa: E731
    both = run(frames, past, future, gens(3, 4))
    np.testing.assert_array_equal(both.frames, run(frames, past, future, gens(3, 4)).frames)
    single = run(frames[1:], past[1:], future[1:], gens(4))
    np.testing.assert_array_equal(single.frames[0], both.frames[1])
    np.testing.assert_array_equal(single.filled[0], both.filled[1])


def test_the_model_is_not_run_for_frames_the_view_explains(world, monkeypatch):
    calls: list[int] = []
    real = open_loop.sample

    def counting(dit, batch, **kwargs):
        calls.append(batch.x.shape[0])
        return real(dit, batch, **kwargs)

    monkeypatch.setattr(open_loop, "sample", counting)
    frames, past, future = clips(1, 70, 8)
    warp = ActionWarp(WarpConfig(resolution=64))
    out = imagine_copied(world, warp, frames, past, future, "framepack", 1, gens(0))
    assert not out.filled.any() and calls == []  # every frame copied: framepack never sampled
    out = imagine_copied(world, warp, frames, past, future, "full-resolution", 1, gens(0))
    assert not out.filled.any() and len(calls) == 4  # two frames a step: sampled, then copied


def test_the_draft_started_fill_starts_from_the_encoded_view(world, monkeypatch):
    """draft_t < 1: the sampler gets the view's frame (here the held frame), encoded, at draft_t."""
    calls: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    real = open_loop.sample

    def spy(dit, batch, **kwargs):
        calls.append((batch.x.clone(), batch.role.clone(), kwargs["start_t"]))
        return real(dit, batch, **kwargs)

    monkeypatch.setattr(open_loop, "sample", spy)
    frames, past, future = clips(2, 70, 18, seed=5)
    warp = ActionWarp(WarpConfig(resolution=64))
    drafted = ViewSettings(remember=False, draft_t=0.5)
    out = imagine_copied(world, warp, frames, past, future, "framepack", 1, gens(0, 1), view=drafted)
    assert out.filled[:, 17].all() and len(calls) == 1  # framepack: only frame 17 needs the model
    x, role, start_t = calls[0]
    assert start_t == 0.5
    held = world.encode_frames(frames[:, -1])  # (2, num_tokens, C): the draft of both videos
    for b in range(2):
        denoised = x[b][role[b] == DENOISED]
        assert len(denoised) > 0
        nearest = (denoised[:, None] - held[b][None]).abs().amax(dim=-1).min(dim=1).values
        assert float(nearest.max()) < 1e-4  # every start value is one of the draft's tokens
    calls.clear()
    again = imagine_copied(world, warp, frames, past, future, "framepack", 1, gens(0, 1), view=drafted)
    np.testing.assert_array_equal(again.frames, out.frames)
    from_noise = imagine_copied(world, warp, frames, past, future, "framepack", 1, gens(0, 1), view=NO_MEMORY)
    assert calls[-1][2] == 1.0 and not np.array_equal(from_noise.frames[:, 17], out.frames[:, 17])


def test_a_draft_is_refused_for_a_step_of_several_frames(world):
    class Drafting:
        def step(self, buf, first, finished, run, only_finished):
            run([0], torch.zeros(1, LAYOUT.num_tokens, LAYOUT.latent_channels), 0.5)

    latents = torch.zeros(1, 90, LAYOUT.num_tokens, LAYOUT.latent_channels)
    actions = torch.zeros(1, 90, dtype=torch.long)
    with pytest.raises(ValueError, match="denoises one frame"):  # millivid's first step: 64 frames
        rollout_latents(world.dit, latents, actions, "millivid", 85, 90, 1, gens(0), hook=Drafting())


def test_earliest_read_frame_follows_the_chunks():
    millivid, framepack, full = (
        get_strategy("loopcraft-64", n) for n in ("millivid", "framepack", "full-resolution")
    )
    # millivid: 64-frame chunks reading 85 frames back from their start.
    assert [earliest_read_frame(millivid, 85, f) for f in (85, 148, 149, 212, 213)] == [0, 0, 64, 64, 128]
    assert [earliest_read_frame(framepack, 64, f) for f in (64, 65, 100)] == [0, 1, 36]  # sliding
    assert [earliest_read_frame(full, 2, f) for f in (2, 3, 4, 5)] == [0, 0, 2, 2]


@pytest.mark.parametrize(
    ("strategy", "context", "sizes"),
    [("full-resolution", 10, [2, 2, 0, 0, 0, 0]), ("framepack", 70, [64, 63, 62, 61, 60, 59])],
)
def test_layout_memory_keeps_what_the_layout_reads(world, monkeypatch, strategy, context, sizes):
    """Each view forgets the context frames older than its chunk reads."""
    seen: list[int] = []
    real = CopyingView.propose

    def spy(self, action):
        seen.append(len(self.memory))
        return real(self, action)

    monkeypatch.setattr(CopyingView, "propose", spy)
    frames, past, future = clips(1, context, len(sizes))
    warp = ActionWarp(WarpConfig(resolution=64))
    imagine_copied(world, warp, frames, past, future, strategy, 1, gens(0), layout_memory=True)
    assert seen == sizes
    seen.clear()  # remembering the frames shown, the layout's chunks decide how many stay
    shown = ViewSettings(remember_shown=True)
    imagine_copied(world, warp, frames, past, future, strategy, 1, gens(0), view=shown, layout_memory=True)
    assert seen == ([2, 3, 2, 3, 2, 3] if strategy == "full-resolution" else [64] * 6)
    seen.clear()
    imagine_copied(world, warp, frames, past, future, strategy, 1, gens(0))  # the shared memory
    assert seen == [context] * len(sizes)


def test_copied_rollout_errors(world):
    frames, past, future = clips(2, 90, 4)
    warp = ActionWarp(WarpConfig(resolution=64))
    with pytest.raises(ValueError, match="one generator per video"):
        imagine_copied(world, warp, frames, past, future, "millivid", 1, gens(0))
    with pytest.raises(ValueError, match="fit one at this resolution"):
        imagine_copied(
            world, ActionWarp(WarpConfig(resolution=32)), frames, past, future, "millivid", 1, gens(0, 1)
        )
    with pytest.raises(ValueError, match="needs at least 85 context frames"):
        imagine_copied(world, warp, frames[:, :40], past[:, :40], future, "millivid", 1, gens(0, 1))
    with pytest.raises(ValueError, match="fill_level"):
        imagine_copied(world, warp, frames, past, future, "millivid", 1, gens(0, 1), fill_level=4)
