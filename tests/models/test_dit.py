"""Video DiT: shapes, zero init, conditioning, relative frames, context-causal mask, cache, hub I/O."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from models.checkpoints import CheckpointError
from models.diffusion import (
    DIT_SIZES,
    ContextCache,
    DiTConfig,
    TokenBatch,
    VideoDiT,
    attention_mask,
    cell_tokens,
    dit_config,
    frame_causal_mask,
)
from models.diffusion import dit as dit_module
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
# A small streaming-like step: packed past as context, the next frame's levels 1..3 denoised.
CELLS = [(10, 3, CONTEXT), (11, 3, CONTEXT), (12, 2, CONTEXT), (13, 1, CONTEXT), (14, 0, CONTEXT)] + [
    (15, level, DENOISED) for level in (3, 2, 1)
]


def make_batch(b: int = 2, seed: int = 0, cells=CELLS) -> TokenBatch:
    frames, levels, roles = zip(*cells, strict=True)
    index, role = cell_tokens(frames, levels, roles, LAYOUT)
    g = torch.Generator().manual_seed(seed)
    n = len(role)
    return TokenBatch(
        x=torch.randn(b, n, 32, generator=g).tanh(),
        index=index.expand(b, -1, -1).clone(),
        action=torch.randint(0, 3, (b, n), generator=g),
        role=role.expand(b, -1).clone(),
    )


def perturbed_model(seed: int = 0, size: str = "tiny", context_attention: str = "bidirectional") -> VideoDiT:
    """A tiny model whose zero-initialised weights (adaLN, output head) are made random."""
    torch.manual_seed(seed)
    model = VideoDiT(dit_config(size, context_attention=context_attention))
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.normal_(0.0, 0.2)
    return model.eval()


def run(
    model: VideoDiT, batch: TokenBatch, t_den: float = 0.6, t_ctx: float = 0.0, uncond=None
) -> torch.Tensor:
    t = torch.where(batch.role == DENOISED, t_den, t_ctx)
    with torch.no_grad():
        return model(batch.x, batch.index, t, batch.action, batch.role, uncond=uncond, pad=batch.pad)


def test_output_shape_and_zero_init():
    model = VideoDiT(dit_config("tiny"))
    batch = make_batch()
    out = run(model, batch)
    assert out.shape == batch.x.shape and out.dtype == torch.float32
    assert torch.equal(out, torch.zeros_like(out))


def test_sizes(monkeypatch):
    # Count parameters on the meta device (no memory, no init; Xavier init needs real values).
    monkeypatch.setattr("models.diffusion.dit.init_linear_xavier", lambda module: None)
    counts = {}
    for name, config in DIT_SIZES.items():
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in VideoDiT(config).parameters())
    assert counts["tiny"] < 200_000
    assert 1e6 < counts["cpu"] < 3e6 and DIT_SIZES["cpu"].width == 128
    assert 3e6 < counts["cpu-wide"] < 8e6
    assert counts["B"] == pytest.approx(129.6e6, rel=0.01)  # method.md 3.2: full video model ~129.6 M
    assert (DIT_SIZES["B"].depth, DIT_SIZES["B"].width, DIT_SIZES["B"].heads) == (12, 768, 12)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown DiT size"):
        dit_config("huge")
    with pytest.raises(ValueError, match="divisible"):
        DiTConfig(width=50, heads=3)
    with pytest.raises(ValueError, match="latent_channels"):
        DiTConfig(latent_channels=16)
    with pytest.raises(ValueError, match="unknown token layout"):
        DiTConfig(layout="nope")
    with pytest.raises(ValueError, match="unknown context_attention 'causal'; valid: bidirectional"):
        DiTConfig(context_attention="causal")
    with pytest.raises(ValueError, match="unknown gelu 'relu'; valid: tanh, exact"):
        DiTConfig(gelu="relu")
    assert dit_config("tiny", depth=3, heads=None).depth == 3


def test_exact_gelu_is_the_same_function_to_rounding_and_config_defaults_to_tanh():
    tanh = perturbed_model()
    exact = VideoDiT(replace(tanh.config, gelu="exact")).eval()
    exact.load_state_dict(tanh.state_dict())
    assert (
        VideoDiT(
            json.loads(json.dumps({"layout": "loopcraft-64", "width": 32, "depth": 1, "heads": 2}))
        ).config.gelu
        == "tanh"
    )
    x = torch.linspace(-8, 8, 10001)
    gap = (torch.nn.functional.gelu(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max()
    assert 1e-4 < gap < 5e-4  # the documented bound
    batch = make_batch()
    a, b = run(tanh, batch), run(exact, batch)
    assert not torch.equal(a, b)  # the activation is really switched
    torch.testing.assert_close(a, b, atol=5e-3, rtol=0)


def test_action_conditioning_and_unconditional_flag():
    model = perturbed_model()
    batch = make_batch()
    other = TokenBatch(batch.x, batch.index, (batch.action + 1) % 3, batch.role)
    assert not torch.allclose(run(model, batch), run(model, other))
    # CFG-dropped samples have no action embedding: the actions no longer matter.
    uncond = torch.tensor([True, False])
    a, b = run(model, batch, uncond=uncond), run(model, other, uncond=uncond)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.allclose(a[1], b[1])


def test_untrained_model_learns_action_dependence():
    # From the true zero init: a few optimiser steps make the output depend on the action.
    torch.manual_seed(0)
    model = VideoDiT(dit_config("tiny"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = make_batch()
    target = batch.action.float()[..., None].expand_as(batch.x)
    t = torch.where(batch.role == DENOISED, 0.5, 0.0)
    for _ in range(5):
        opt.zero_grad()
        loss = (model(batch.x, batch.index, t, batch.action, batch.role) - target).square().mean()
        loss.backward()
        opt.step()
    other = TokenBatch(batch.x, batch.index, (batch.action + 1) % 3, batch.role)
    assert (run(model, batch, 0.5) - run(model, other, 0.5)).abs().max() > 1e-3


def test_frames_are_relative():
    model = perturbed_model()
    batch = make_batch()
    shifted = TokenBatch(batch.x, batch.index.clone(), batch.action, batch.role)
    shifted.index[0, :, 0] += 1000
    shifted.index[1, :, 0] -= 10  # frames 0..5
    torch.testing.assert_close(run(model, batch), run(model, shifted), rtol=0, atol=0)
    moved = TokenBatch(batch.x, batch.index.clone(), batch.action, batch.role)
    moved.index[:, -1, 0] += 1  # one token moves relative to the others: output changes
    assert not torch.allclose(run(model, batch), run(model, moved))


def test_context_ignores_noisy_tokens():
    model = perturbed_model()
    batch = make_batch()
    ctx = batch.role[0] == CONTEXT
    noisy = TokenBatch(batch.x.clone(), batch.index, batch.action.clone(), batch.role)
    noisy.x[:, ~ctx] = torch.randn_like(noisy.x[:, ~ctx]) * 3
    noisy.action[:, ~ctx] = (noisy.action[:, ~ctx] + 1) % 3
    a, b = run(model, batch, t_den=0.3), run(model, noisy, t_den=0.9)
    torch.testing.assert_close(a[:, ctx], b[:, ctx], rtol=0, atol=0)
    assert not torch.allclose(a[:, ~ctx], b[:, ~ctx])
    # ... while the denoised tokens do read the context.
    changed = TokenBatch(batch.x.clone(), batch.index, batch.action, batch.role)
    changed.x[:, ctx] += 0.5
    assert not torch.allclose(run(model, batch)[:, ~ctx], run(model, changed)[:, ~ctx])


def test_attention_mask_pattern():
    role = torch.tensor([[CONTEXT, DENOISED, CONTEXT, DENOISED]])
    pad = torch.tensor([[False, False, False, True]])
    mask = attention_mask(role, pad)[0, 0]
    expected = torch.tensor(
        [[1, 0, 1, 0], [1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 1]],  # padding query sees only itself
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_attention_mask_frame_causal_pattern():
    role = torch.tensor([[CONTEXT, CONTEXT, CONTEXT, DENOISED]])
    frames = torch.tensor([[5, 3, 5, 3]])
    mask = attention_mask(role, frames=frames)[0, 0]
    expected = torch.tensor(
        # context of frame 5 sees both context frames; of frame 3 only frame 3; denoised sees all
        [[1, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    assert frame_causal_mask(torch.tensor([[4, 4]]), torch.tensor([[1, 4, 2]])) is None  # all pass


@pytest.mark.parametrize("context_attention", ["bidirectional", "frame-causal"])
def test_earlier_context_ignores_newer_context_only_if_frame_causal(context_attention):
    model = perturbed_model(2, context_attention=context_attention)
    batch = make_batch()
    newest = batch.index[0, :, 0] == 14  # the newest context frame (level 0 of frame 14)
    older = (batch.role[0] == CONTEXT) & ~newest
    changed = TokenBatch(batch.x.clone(), batch.index, batch.action, batch.role)
    changed.x[:, newest] += 0.5
    same = torch.allclose(run(model, batch)[:, older], run(model, changed)[:, older], rtol=0, atol=0)
    assert same == (context_attention == "frame-causal")


@pytest.mark.parametrize("context_attention", ["bidirectional", "frame-causal"])
@pytest.mark.parametrize("reserve", [False, True])  # denoised K/V concatenated, or written into the buffer
def test_cached_equals_uncached_forward(reserve, context_attention):
    model = perturbed_model(1, context_attention=context_attention)
    batch = make_batch(3)
    ctx = batch.role[0] == CONTEXT
    t = torch.where(batch.role == DENOISED, 0.4, 0.05)
    uncond = torch.tensor([False, True, False])
    with torch.no_grad():
        full = model(batch.x, batch.index, t, batch.action, batch.role, uncond=uncond)
        origin = model.frame_origin(batch.index)
        cache = model.encode_context(
            batch.x[:, ctx],
            batch.index[:, ctx],
            t[:, ctx],
            batch.action[:, ctx],
            origin,
            uncond,
            reserve=int((~ctx).sum()) if reserve else 0,
        )
        den = model.forward_denoised(
            batch.x[:, ~ctx], batch.index[:, ~ctx], t[:, ~ctx], batch.action[:, ~ctx], cache, uncond
        )
    assert len(cache.keys) == model.config.depth and cache.length == int(ctx.sum())
    torch.testing.assert_close(den, full[:, ~ctx], rtol=1e-5, atol=1e-5)


def test_context_prefix_extension_equals_full_forward():
    # Frames 10-13 encoded once as a prefix; frame 14 added on top: same predictions as the masked
    # forward over all tokens, and the prefix is left as it was.
    model = perturbed_model(3, context_attention="frame-causal")
    batch = make_batch(2)
    ctx = batch.role[0] == CONTEXT
    old = ctx & (batch.index[0, :, 0] < 14)
    new = ctx & ~old
    t = torch.where(batch.role == DENOISED, 0.4, 0.05)
    with torch.no_grad():
        full = model(batch.x, batch.index, t, batch.action, batch.role)
        origin = model.frame_origin(batch.index)
        parts = {name: (batch.x[:, m], batch.index[:, m], t[:, m], batch.action[:, m]) for name, m in
                 (("old", old), ("new", new))}  # fmt: skip
        prefix = model.encode_context(*parts["old"], origin)
        keys_before = [k.clone() for k in prefix.keys]
        cache = model.encode_context(*parts["new"], origin, reserve=int((~ctx).sum()), prefix=prefix)
        den = model.forward_denoised(
            batch.x[:, ~ctx], batch.index[:, ~ctx], t[:, ~ctx], batch.action[:, ~ctx], cache
        )
        assert cache.length == int(ctx.sum())
        assert all(torch.equal(a, b) for a, b in zip(keys_before, prefix.keys, strict=True))
        torch.testing.assert_close(den, full[:, ~ctx], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="later frames than the prefix"):
            model.encode_context(*parts["old"], origin, prefix=prefix)
        with pytest.raises(ValueError, match="frame-causal model"):
            perturbed_model(3).encode_context(*parts["new"], origin, prefix=prefix)


@pytest.mark.parametrize("context_attention", ["bidirectional", "frame-causal"])
def test_micro_batched_cpu_passes_equal_one_batch(monkeypatch, context_attention):
    # On the CPU the cached passes run in micro-batches of whole samples (cache-sized products); the
    # keys/values and predictions must be those of one batch-wide pass, prefix and reserve included.
    model = perturbed_model(4, context_attention=context_attention)
    batch = make_batch(3)
    ctx = batch.role[0] == CONTEXT
    frame_causal = context_attention == "frame-causal"
    old = ctx & (batch.index[0, :, 0] < 14) if frame_causal else torch.zeros_like(ctx)
    new = ctx & ~old
    t = torch.where(batch.role == DENOISED, 0.4, 0.05)
    uncond = torch.tensor([False, True, False])

    def passes() -> tuple[ContextCache, torch.Tensor, int]:
        calls = []
        with monkeypatch.context() as patch, torch.no_grad():
            for name in ("_context_blocks", "_denoised_blocks"):
                method = getattr(VideoDiT, name)
                patch.setattr(VideoDiT, name, lambda *a, method=method: calls.append(1) or method(*a))
            origin = model.frame_origin(batch.index)
            parts = {name: (batch.x[:, m], batch.index[:, m], t[:, m], batch.action[:, m]) for name, m in
                     (("old", old), ("new", new))}  # fmt: skip
            prefix = model.encode_context(*parts["old"], origin, uncond) if frame_causal else None
            cache = model.encode_context(
                *parts["new"], origin, uncond, reserve=int((~ctx).sum()), prefix=prefix
            )
            den = model.forward_denoised(
                batch.x[:, ~ctx], batch.index[:, ~ctx], t[:, ~ctx], batch.action[:, ~ctx], cache, uncond
            )
        return cache, den, len(calls)

    whole, whole_den, whole_calls = passes()
    monkeypatch.setattr(dit_module, "CPU_CONTEXT_ROWS", 1)  # one sample per micro-batch
    split, split_den, split_calls = passes()
    assert (whole_calls, split_calls) == (2 + frame_causal, 3 * (2 + frame_causal))
    n = whole.length
    for a, b in zip(whole.keys + whole.values, split.keys + split.values, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a[:, :, :n], b[:, :, :n], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split_den, whole_den, rtol=1e-5, atol=1e-5)


def test_padding_is_ignored():
    model = perturbed_model()
    batch = make_batch()
    n = batch.x.shape[1]
    padded = TokenBatch(
        x=torch.cat([batch.x, torch.full((2, 5, 32), float("nan"))], dim=1),
        index=torch.cat(
            [batch.index, torch.zeros(2, 5, 4, dtype=torch.long)], dim=1
        ),  # frame 0 < real frames
        action=torch.cat([batch.action, torch.full((2, 5), 99)], dim=1),  # out of range, must be ignored
        role=torch.cat([batch.role, torch.full((2, 5), DENOISED)], dim=1),
        pad=torch.cat([torch.zeros(2, n, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)], dim=1),
    )
    padded.validate(32, 4, 3)
    torch.testing.assert_close(run(model, padded)[:, :n], run(model, batch), rtol=1e-5, atol=1e-5)


def test_batch_validation_errors():
    batch = make_batch()
    bad = TokenBatch(batch.x, batch.index, batch.action + 3, batch.role)
    with pytest.raises(ValueError, match=r"action ids must lie in \[0, 2\]"):
        bad.validate(32, 4, 3)
    with pytest.raises(ValueError, match="x must be float"):
        TokenBatch(batch.x[..., :16], batch.index, batch.action, batch.role).validate(32, 4, 3)
    with pytest.raises(ValueError, match="role values"):
        TokenBatch(batch.x, batch.index, batch.action, batch.role * 0).validate(32, 4, 3)
    with pytest.raises(ValueError, match="levels"):
        TokenBatch(batch.x, batch.index + 4, batch.action, batch.role).validate(32, 4, 3)


def test_hub_round_trip(tmp_path):
    model = perturbed_model(2)
    model.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {"config.json", "model.safetensors"}
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["width"] == 48
    loaded = VideoDiT.from_pretrained(str(tmp_path / "ckpt"))
    assert loaded.config == model.config and not loaded.training
    batch = make_batch()
    torch.testing.assert_close(run(loaded, batch), run(model, batch), rtol=0, atol=0)
    # A config that does not match the weights is an error naming the file, not a silent partial load.
    VideoDiT(dit_config("tiny", depth=3)).save_pretrained(tmp_path / "other")
    (tmp_path / "ckpt" / "config.json").write_bytes((tmp_path / "other" / "config.json").read_bytes())
    with pytest.raises(CheckpointError, match="model.safetensors"):
        VideoDiT.from_pretrained(str(tmp_path / "ckpt"))
