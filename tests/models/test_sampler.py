"""Sampler (determinism, context untouched, cache, guidance, NaN) and the training loss."""

from __future__ import annotations

import pytest
import torch

from models.diffusion import (
    ContextReuse,
    TokenBatch,
    VideoDiT,
    cell_tokens,
    count_flops,
    count_sample_flops,
    diffusion_loss,
    dit_config,
    sample,
)
from models.strategies import CONTEXT, DENOISED
from models.tokens import get_layout


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: a second OpenMP thread costs more than it saves, and on a shared, loaded 2-core
    # machine a parallel region waits for a descheduled thread (measured: 30x slower sampling).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


LAYOUT = get_layout("loopcraft-64")
CELLS = [(4, 3, CONTEXT), (5, 2, CONTEXT), (6, 1, CONTEXT), (7, 1, DENOISED), (7, 2, CONTEXT)]


def make_batch(b: int = 2, seed: int = 0) -> TokenBatch:
    frames, levels, roles = zip(*CELLS, strict=True)
    index, role = cell_tokens(frames, levels, roles, LAYOUT)
    g = torch.Generator().manual_seed(seed)
    n = len(role)
    return TokenBatch(
        x=torch.randn(b, n, 32, generator=g).tanh(),
        index=index.expand(b, -1, -1).clone(),
        action=torch.randint(0, 3, (b, n), generator=g),
        role=role.expand(b, -1).clone(),
    )


def perturbed_model(seed: int = 0) -> VideoDiT:
    torch.manual_seed(seed)
    model = VideoDiT(dit_config("tiny"))
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.normal_(0.0, 0.2)
    return model.eval()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_determinism_and_context_untouched():
    model, batch = perturbed_model(), make_batch()
    den = batch.role == DENOISED
    a = sample(model, batch, steps=4, generator=gen(1))
    b = sample(model, batch, steps=4, generator=gen(1))
    c = sample(model, batch, steps=4, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a[den], c[den])
    assert torch.equal(a[~den], batch.x[~den])  # context: bit-exact copy
    assert torch.isfinite(a).all() and not torch.allclose(a[den], batch.x[den])


def test_context_noise_level_at_sampling():
    model, batch = perturbed_model(), make_batch()
    den = batch.role == DENOISED
    clean = sample(model, batch, steps=3, generator=gen(0))
    noised = sample(model, batch, steps=3, generator=gen(0), context_t=0.2)
    assert not torch.allclose(clean[den], noised[den])
    assert torch.equal(noised[~den], batch.x[~den])  # the noised copy is only the model's input


def test_denoised_input_values_are_ignored():
    model, batch = perturbed_model(), make_batch()
    other = TokenBatch(batch.x.clone(), batch.index, batch.action, batch.role)
    other.x[other.role == DENOISED] = 5.0
    out_a = sample(model, batch, steps=3, generator=gen(0))
    out_b = sample(model, other, steps=3, generator=gen(0))
    den = batch.role == DENOISED
    torch.testing.assert_close(out_a[den], out_b[den], rtol=0, atol=0)


def test_a_draft_started_late_stays_near_the_draft():
    """SDEdit: from ``start_t`` the denoised values of the batch are the start, not ignored."""
    model, batch = perturbed_model(), make_batch()
    den = batch.role == DENOISED
    late = sample(model, batch, steps=3, generator=gen(0), start_t=0.01)
    full = sample(model, batch, steps=3, generator=gen(0))
    moved_late = float((late[den] - batch.x[den]).abs().mean())
    assert moved_late < 0.1 * float((full[den] - batch.x[den]).abs().mean())
    assert torch.equal(late[~den], batch.x[~den])
    assert torch.equal(full, sample(model, batch, steps=3, generator=gen(0), start_t=1.0))


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_cached_sampler_equals_uncached(guidance_scale):
    model, batch = perturbed_model(1), make_batch(3)
    kwargs = {"steps": 5, "guidance_scale": guidance_scale}
    cached = sample(model, batch, generator=gen(3), use_cache=True, **kwargs)
    uncached = sample(model, batch, generator=gen(3), use_cache=False, **kwargs)
    torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("guidance_scale", [1.0, 2.0])
def test_context_reuse_across_calls(guidance_scale):
    # Two sub-steps sharing the context of frames < 7: the second reuses the first's encoding and
    # agrees with encoding everything afresh up to the context noise of t = 0 (sigma = 5.5e-4).
    torch.manual_seed(0)
    model = perturbed_model(2)
    causal = VideoDiT(dit_config("tiny", context_attention="frame-causal"))
    causal.load_state_dict(model.state_dict())
    causal.eval()
    first, second = make_batch(2, seed=1), make_batch(2, seed=1)
    frame, level = second.index[0, :, 0], second.index[0, :, 1]
    second.role[:, (frame == 7) & (level == 1)] = CONTEXT  # frame 7 level 1 now given as context
    second.role[:, (frame == 7) & (level == 2)] = DENOISED
    kwargs = {"steps": 3, "guidance_scale": guidance_scale}
    reuse = ContextReuse(before=7)
    for batch in (first, second):
        reused = sample(causal, batch, generator=gen(4), reuse=reuse, **kwargs)
        fresh = sample(causal, batch, generator=gen(4), **kwargs)
        torch.testing.assert_close(reused, fresh, rtol=0, atol=2e-3)
    with pytest.raises(ValueError, match="other context tokens before frame 7"):
        shifted = make_batch(2, seed=1)
        shifted.action[:, 0] = (shifted.action[:, 0] + 1) % 3
        sample(causal, shifted, generator=gen(4), reuse=reuse, **kwargs)
    with pytest.raises(ValueError, match="frame-causal model"):
        sample(model, first, generator=gen(4), reuse=ContextReuse(before=7))


def test_without_endpoint_one_evaluation_less_for_the_same_grid(monkeypatch):
    # steps=S without the endpoint evaluates at the first S times of the (S + 1)-grid; the skipped
    # evaluation at t = 0 only moves x_hat by sigma(0) * v (sigma(0) = 5.5e-4).
    model, batch = perturbed_model(1), make_batch(2)
    calls = []
    forward = VideoDiT.forward_denoised
    monkeypatch.setattr(
        VideoDiT,
        "forward_denoised",
        lambda self, x, *a, **k: calls.append(float(a[1].max())) or forward(self, x, *a, **k),
    )
    short = sample(model, batch, steps=3, generator=gen(5), endpoint=False)
    assert calls == pytest.approx([1.0, 2 / 3, 1 / 3])
    calls.clear()
    full = sample(model, batch, steps=4, generator=gen(5))
    assert calls == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    difference = (short - full).abs().max()
    assert 0 < difference < 5e-3


def test_guidance_changes_output_and_batch_rows_are_independent():
    model, batch = perturbed_model(), make_batch(2)
    plain = sample(model, batch, steps=4, generator=gen(0))
    guided = sample(model, batch, steps=4, generator=gen(0), guidance_scale=3.0)
    assert not torch.allclose(plain, guided)
    # Sample 0 alone gives the same tokens as inside the batch: the noise of row 0 is the first
    # (N, C) block drawn in both cases, and the samples do not interact.
    first = TokenBatch(batch.x[:1], batch.index[:1], batch.action[:1], batch.role[:1])
    alone = sample(model, first, steps=4, generator=gen(0))
    torch.testing.assert_close(alone[0], plain[0], rtol=1e-5, atol=1e-5)


def test_stochastic_updates_are_seeded_and_per_sample():
    model, batch = perturbed_model(), make_batch(2)
    den = batch.role == DENOISED
    plain = sample(model, batch, steps=4, generator=[gen(0), gen(1)])
    noisy = [sample(model, batch, steps=4, generator=[gen(0), gen(1)], eta=1.0) for _ in range(2)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.allclose(plain[den], noisy[0][den])
    assert torch.equal(noisy[0][~den], batch.x[~den])
    # One evaluation: nothing to re-noise, so eta changes nothing.
    assert torch.equal(
        sample(model, batch, steps=1, generator=gen(0), eta=1.0),
        sample(model, batch, steps=1, generator=gen(0)),
    )
    # A sample's fresh noise comes from its own generator: the same alone as in the batch.
    first = TokenBatch(batch.x[:1], batch.index[:1], batch.action[:1], batch.role[:1])
    alone = sample(model, first, steps=4, generator=[gen(0)], eta=1.0)
    torch.testing.assert_close(alone[0], noisy[0][0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        sample(model, batch, steps=2, eta=1.5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_bf16_autocast_path(use_cache):
    # The CUDA path (bf16 autocast) exercised on the CPU: same result up to bf16 rounding.
    model, batch = perturbed_model(), make_batch()
    kwargs = {"steps": 3, "guidance_scale": 2.0, "use_cache": use_cache}
    fp32 = sample(model, batch, generator=gen(0), **kwargs)
    bf16 = sample(model, batch, generator=gen(0), autocast=True, **kwargs)
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().max() < 0.02 * fp32.abs().max()


def test_bad_inputs():
    model, batch = perturbed_model(), make_batch(2)
    mixed = TokenBatch(batch.x, batch.index, batch.action, batch.role.clone())
    mixed.role[1, 0] = DENOISED
    with pytest.raises(ValueError, match="same token structure"):
        sample(model, mixed, steps=2)
    with pytest.raises(ValueError, match="action ids"):
        sample(model, TokenBatch(batch.x, batch.index, batch.action - 1, batch.role), steps=2)
    with pytest.raises(ValueError, match="context_t"):
        sample(model, batch, steps=2, context_t=1.5)
    with pytest.raises(ValueError, match="start_t"):
        sample(model, batch, steps=2, start_t=0.0)
    no_den = TokenBatch(batch.x, batch.index, batch.action, torch.full_like(batch.role, CONTEXT))
    with pytest.raises(ValueError, match="no DENOISED"):
        sample(model, no_den, steps=2)


def test_nan_raises_floating_point_error():
    model, batch = perturbed_model(), make_batch()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        sample(model, batch, steps=3, generator=gen(0))


def test_loss_matches_definition_for_zero_model():
    # At init v_hat = 0, so the loss is the mean square of the true v over the denoised tokens,
    # with the random draws in the documented order: dropout, t(denoised), t(context), noise.
    model, batch = VideoDiT(dit_config("tiny")), make_batch(4)
    loss = diffusion_loss(model, batch, generator=gen(7), cfg_dropout=0.5, context_noise=0.2)
    g = gen(7)
    b, n, c = batch.x.shape
    uncond = torch.rand(b, generator=g) < 0.5
    t_den = torch.rand(b, generator=g)
    t_ctx = torch.where(uncond, 1.0, 0.2 * torch.rand(b, generator=g))
    eps = torch.randn(b, n, c, generator=g)
    den = batch.role == DENOISED
    t = torch.where(den, t_den[:, None], t_ctx[:, None])
    v = model.schedule.v_target(batch.x, eps, t)
    torch.testing.assert_close(loss, v.square().mean(-1)[den].mean())
    with pytest.raises(ValueError, match="cfg_dropout"):
        diffusion_loss(model, batch, cfg_dropout=1.5)


def test_loss_ignores_padding():
    model, batch = perturbed_model(), make_batch(2)
    n = batch.x.shape[1]
    padded = TokenBatch(
        x=torch.cat([batch.x, torch.full((2, 3, 32), float("nan"))], dim=1),
        index=torch.cat([batch.index, torch.zeros(2, 3, 4, dtype=torch.long)], dim=1),
        action=torch.cat([batch.action, torch.full((2, 3), -1)], dim=1),
        role=torch.cat([batch.role, torch.full((2, 3), DENOISED)], dim=1),
        pad=torch.cat([torch.zeros(2, n, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)], dim=1),
    )
    model.train()
    loss = diffusion_loss(model, padded, generator=gen(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_decreases_on_tiny_overfit():
    torch.manual_seed(0)
    model, batch = VideoDiT(dit_config("tiny")), make_batch(2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def held_out() -> float:
        with torch.no_grad():  # same times and noise every time: a fixed evaluation
            return sum(float(diffusion_loss(model, batch, generator=gen(100 + i))) for i in range(4)) / 4

    before = held_out()
    train_gen = gen(0)
    for _ in range(40):
        opt.zero_grad()
        loss = diffusion_loss(model, batch, generator=train_gen, context_noise=0.1)
        loss.backward()
        opt.step()
    after = held_out()
    assert after < 0.9 * before, (before, after)


def test_flop_counts():
    model, batch = perturbed_model(), make_batch(1)
    n = batch.x.shape[1]
    forward = count_flops(model, batch)
    d, depth = model.config.width, model.config.depth
    # At least the block matmuls: qkv + proj + MLP = 12 d^2 multiply-adds per token and block.
    assert forward >= 2 * 12 * d * d * n * depth
    cached = count_sample_flops(model, batch, steps=4, use_cache=True)
    uncached = count_sample_flops(model, batch, steps=4, use_cache=False)
    # (Not exact: at t = 0 context and denoised tokens share conditions, so fewer adaLN rows.)
    assert uncached == pytest.approx(4 * forward, rel=0.02)
    assert cached < uncached
