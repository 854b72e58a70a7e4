"""models/rollout/streaming.py: sub-step structure, context gathering, batching, errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import models.rollout.streaming as streaming
from models.diffusion import TokenBatch, VideoDiT, cell_tokens
from models.diffusion.sampler import sample
from models.rollout.streaming import StreamingPlan, context_depths, generate_next_frame
from models.strategies import get_strategy
from models.testing import batch_equal
from models.tokens import get_layout
from models.world_model import WorldModel

LAYOUT = get_layout("loopcraft-64")
STREAMING = get_strategy("loopcraft-64", "streaming")


@pytest.fixture(scope="module")
def plan() -> StreamingPlan:
    return StreamingPlan.build(STREAMING, LAYOUT)


@pytest.fixture(scope="module")
def dit(tiny_model):
    return WorldModel.load(tiny_model.autoencoder, tiny_model.diffusion, "cpu").dit


def _inputs(plan: StreamingPlan, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    past = [
        torch.rand(b, d, n, LAYOUT.latent_channels, generator=g) * 2 - 1
        for d, n in zip(plan.depths, LAYOUT.tokens_per_level, strict=True)
    ]
    past_actions = torch.randint(0, 3, (b, plan.reach), generator=g)
    action = torch.randint(0, 3, (b,), generator=g)
    return past, past_actions, action


def test_context_depths():
    assert context_depths(STREAMING) == (1, 5, 21, 64)
    assert context_depths(get_strategy("loopcraft-64", "millivid")) == (1, 5, 21, 85)


def test_substeps_match_the_strategy_rollout(plan):
    # The compiled sub-steps present exactly the cells of the strategy's own rollout plan.
    rollout = STREAMING.rollout(start=100, end=101)
    assert [s.target for s in plan.substeps] == [3, 2, 1, 0]
    for sub, step in zip(plan.substeps, rollout, strict=True):
        index, role = cell_tokens(step.frames - step.offset, step.levels, step.roles, LAYOUT)
        assert torch.equal(sub.index, index) and torch.equal(sub.role, role)
        assert len(sub.denoised) == LAYOUT.tokens_per_level[sub.target]
    assert [len(s.role) for s in plan.substeps] == list(STREAMING.step_tokens)


def test_each_token_carries_its_frames_latent_and_action(plan, dit, monkeypatch):
    # Past latents encode (frames back, level) so the gathered batch can be checked token by token.
    b = 2
    past = [
        torch.stack([torch.full((n, 32), 100.0 * level + (d - row)) for row in range(d)])[None].repeat(
            b, 1, 1, 1
        )
        for level, (d, n) in enumerate(zip(plan.depths, LAYOUT.tokens_per_level, strict=True))
    ]
    past = [p / 1000.0 for p in past]  # keep inside (-1, 1)
    past_actions = (torch.arange(plan.reach) % 3).repeat(b, 1)
    action = torch.tensor([2, 1])
    seen: list[TokenBatch] = []

    def recording_sample(model, batch, **kwargs):
        seen.append(batch)
        return sample(model, batch, **kwargs)

    monkeypatch.setattr(streaming, "sample", recording_sample)
    gens = [torch.Generator().manual_seed(i) for i in range(b)]
    generate_next_frame(dit, plan, past, past_actions, action, gens, steps=1)
    start = STREAMING.denoising_start
    for batch in seen:
        ctx = batch.role[0] == 1
        frame, level = batch.index[0, :, 0], batch.index[0, :, 1]
        past_token = ctx & (frame < start)
        back = start - frame[past_token]
        expected = (100.0 * level[past_token] + back) / 1000.0
        assert torch.allclose(batch.x[0, past_token, 0], expected)
        # Actions: column c of the past window holds past_actions[c]; the new column the new action.
        new_token = frame == start
        assert torch.equal(batch.action[:, ~new_token], past_actions[:, frame[~new_token]])
        assert (batch.action[:, new_token] == action[:, None]).all()


def test_batch_equals_single_streams(plan, dit):
    past, past_actions, action = _inputs(plan, b=3)
    batched = generate_next_frame(
        dit, plan, past, past_actions, action, [torch.Generator().manual_seed(s) for s in (5, 6, 7)], steps=2
    )
    for i, s in enumerate((5, 6, 7)):
        alone = generate_next_frame(
            dit,
            plan,
            [p[i : i + 1] for p in past],
            past_actions[i : i + 1],
            action[i : i + 1],
            [torch.Generator().manual_seed(s)],
            steps=2,
        )
        assert batch_equal(alone[0], batched[i])
    assert not torch.equal(batched[0], batched[1])


def test_deterministic_per_generator(plan, dit):
    past, past_actions, action = _inputs(plan, b=1)
    runs = [
        generate_next_frame(
            dit, plan, past, past_actions, action, [torch.Generator().manual_seed(s)], steps=2
        )
        for s in (1, 1, 2)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert runs[0].shape == (1, LAYOUT.num_tokens, 32) and torch.isfinite(runs[0]).all()


def test_frame_causal_model_encodes_the_past_once_per_frame(plan, dit, monkeypatch):
    causal = VideoDiT(replace(dit.config, context_attention="frame-causal"))
    causal.load_state_dict(dit.state_dict())
    causal.eval()
    calls = []
    original = VideoDiT.encode_context

    def counting(self, x, *args, prefix=None, **kwargs):
        calls.append((x.shape[1], prefix is not None))
        return original(self, x, *args, prefix=prefix, **kwargs)

    monkeypatch.setattr(VideoDiT, "encode_context", counting)
    past, past_actions, action = _inputs(plan, b=2)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = generate_next_frame(causal, plan, past, past_actions, action, gens, steps=2)
    past_tokens = sum(d * n for d, n in zip(plan.depths, LAYOUT.tokens_per_level, strict=True))
    new_context = [0, 1, 5, 21]  # levels of the new frame already generated, per sub-step
    # One encoding of the past (fewer tokens than the full memory: the pack reads a subset), then
    # each sub-step adds only the new frame's levels on top of it.
    assert calls[0][1] is False and calls[0][0] <= past_tokens
    assert calls[1:] == [(n, True) for n in new_context]
    assert torch.isfinite(out).all()
    # The bidirectional model re-encodes the whole context at every sub-step.
    calls.clear()
    generate_next_frame(dit, plan, past, past_actions, action, gens, steps=2)
    assert [prefix for _, prefix in calls] == [False] * 4 and calls[0][0] < calls[3][0]


def test_non_finite_output_raises(plan, dit, monkeypatch):
    past, past_actions, action = _inputs(plan, b=1)
    monkeypatch.setattr(
        streaming, "sample", lambda model, batch, **kw: torch.full_like(batch.x, float("nan"))
    )
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        generate_next_frame(dit, plan, past, past_actions, action, [torch.Generator()], steps=1)


def test_bad_inputs_raise(plan, dit):
    past, past_actions, action = _inputs(plan, b=2)
    gens = [torch.Generator(), torch.Generator()]
    with pytest.raises(ValueError, match="one generator per stream"):
        generate_next_frame(dit, plan, past, past_actions, action, gens[:1])
    with pytest.raises(ValueError, match=r"past\[3\] must have shape"):
        generate_next_frame(dit, plan, [*past[:3], past[3][:, 1:]], past_actions, action, gens)
    with pytest.raises(ValueError, match="past_actions must have shape"):
        generate_next_frame(dit, plan, past, past_actions[:, 1:], action, gens)


def test_non_streaming_strategies_are_rejected():
    with pytest.raises(ValueError, match="one new frame"):
        StreamingPlan.build(get_strategy("loopcraft-64", "millivid"), LAYOUT)
    with pytest.raises(ValueError, match="every step must denoise one level"):
        StreamingPlan.build(get_strategy("loopcraft-64", "framepack"), LAYOUT)
    with pytest.raises(ValueError, match="tokens per level"):
        StreamingPlan.build(get_strategy("paper-256", "streaming"), LAYOUT)


def test_per_sample_generators_in_the_sampler(dit):
    # The sampler draws sample b's noise from generator b only: batching does not change a sample.
    index, role = cell_tokens([0, 1], [3, 3], [1, 2], LAYOUT)
    x = torch.rand(2, len(role), 32) * 2 - 1
    batch = TokenBatch(
        x, index.expand(2, -1, -1), torch.zeros(2, len(role), dtype=torch.long), role.expand(2, -1)
    )
    both = sample(
        dit, batch, steps=2, generator=[torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]
    )
    first = TokenBatch(x[:1], index[None], torch.zeros(1, len(role), dtype=torch.long), role[None])
    alone = sample(dit, first, steps=2, generator=[torch.Generator().manual_seed(3)])
    assert batch_equal(both[0], alone[0])
    with pytest.raises(ValueError, match="2 generators for a batch of 1"):
        sample(dit, first, steps=2, generator=[torch.Generator(), torch.Generator()])
    assert np.isfinite(both.numpy()).all()


def test_finest_stops_early_and_leaves_the_noise_streams_where_they_would_be(plan, dit):
    """``finest=2`` makes levels 3 and 2 exactly as a full call does, and moves the generators alike."""
    past, past_actions, action = _inputs(plan, b=2)
    full_gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    short_gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    full = generate_next_frame(dit, plan, past, past_actions, action, full_gens, steps=2)
    short = generate_next_frame(dit, plan, past, past_actions, action, short_gens, steps=2, finest=2)
    coarse = slice(LAYOUT.level_slice(2).start, LAYOUT.num_tokens)
    assert torch.equal(short[:, coarse], full[:, coarse])
    assert short[:, : LAYOUT.level_slice(2).start].abs().sum() == 0  # levels 0 and 1 not generated
    for a, b in zip(full_gens, short_gens, strict=True):
        assert torch.equal(a.get_state(), b.get_state())
    with pytest.raises(ValueError, match="finest must lie in"):
        generate_next_frame(dit, plan, past, past_actions, action, short_gens, steps=2, finest=4)
