import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.autoencoder import AutoencoderConfig, HierarchicalAutoencoder, reconstruction_loss, size_config
from models.tokens import build_pyramid
from models.training.common import build_optimizers

from .conftest import synthetic_frames

pytestmark = pytest.mark.usefixtures("ae_one_thread")


def tiny(**overrides) -> HierarchicalAutoencoder:
    return HierarchicalAutoencoder(size_config("tiny", **overrides))


def test_shapes_per_level():
    model = tiny()
    torch.nn.init.normal_(model.to_patch.weight, std=0.1)
    frames = synthetic_frames(3)
    z = model.encode(frames)
    assert z.shape == (3, 85, 32) and z.abs().max() < 1
    pyramid = model(torch.rand(3, 3, 64, 64), torch.tensor([0, 2, 3]))
    assert [tuple(p.shape) for p in pyramid] == [(3, 3, 64, 64), (3, 3, 32, 32), (3, 3, 16, 16), (3, 3, 8, 8)]
    for level in range(4):
        out = model.decode(z[:, model.layout.level_slice(level)], level)
        assert out.shape == (3, 3, 64, 64) and 0 <= out.min() and out.max() <= 1
        assert torch.equal(out, model.decode(z, level))  # the full array works too
    assert model.reconstruct(frames, 1).shape == (3, 3, 64, 64)


def test_decode_ignores_other_levels():
    model = tiny()
    torch.nn.init.normal_(model.to_patch.weight, std=0.1)
    z = model.encode(synthetic_frames(2))
    noisy = z.clone()
    noisy[:, model.layout.level_slice(0)] = torch.randn(2, 64, 32)
    assert torch.equal(model.decode(z, 2), model.decode(noisy, 2))


def test_decode_rejects_wrong_shapes():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, 16, 32\)"):
        model.decode(torch.zeros(1, 64, 32), 1)
    with pytest.raises(ValueError, match="level"):
        model.decode(torch.zeros(1, 1, 32), 4)


def test_cascaded_latents_are_pooled_level0_without_gradient():
    model = tiny(variant="cascaded")
    torch.nn.init.normal_(model.to_patch.weight, std=0.1)  # zero at init: nothing would flow back
    images = torch.rand(2, 3, 64, 64)
    z = model.encode_images(images)
    fine = z[:, :64].transpose(1, 2).reshape(2, 32, 8, 8)
    for level, side in ((1, 4), (2, 2), (3, 1)):
        pooled = F.adaptive_avg_pool2d(fine, side).flatten(2).transpose(1, 2)
        assert torch.allclose(z[:, model.layout.level_slice(level)], pooled, atol=1e-6)
    # The coarse latents are detached: no gradient reaches the encoder through them.
    (grad,) = torch.autograd.grad(
        z[:, 64:].sum(), model.to_latent.weight, retain_graph=True, allow_unused=True
    )
    assert grad is None or grad.abs().sum() == 0
    (grad,) = torch.autograd.grad(z[:, :64].sum(), model.to_latent.weight)
    assert grad.abs().sum() > 0
    model.zero_grad()
    # Sum over all levels: at initialisation (adaLN-Zero) tokens do not mix yet.
    loss = sum(p.sum() for p in model.decode_pyramid(model.encode_images(images), torch.tensor([3, 3])))
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.to_latent.parameters())
    assert model.from_latent.weight.grad.abs().sum() > 0  # the decoder still learns to upsample


def test_hierarchical_coarse_latents_do_train_the_encoder():
    model = tiny()
    torch.nn.init.normal_(model.to_patch.weight, std=0.1)
    pyramid = model.decode_pyramid(model.encode_images(torch.rand(2, 3, 64, 64)), torch.tensor([3, 3]))
    sum(p.sum() for p in pyramid).backward()
    assert model.to_latent.weight.grad.abs().sum() > 0


def test_loss_weights_levels_equally():
    target = build_pyramid(torch.zeros(1, 3, 64, 64), 4)
    for level in range(4):
        predicted = [t.clone() for t in target]
        predicted[level] += 0.1
        loss, per_level = reconstruction_loss(predicted, target)
        assert torch.isclose(loss, torch.tensor(0.01 * 64 / 85))
        assert torch.isclose(per_level[level], torch.tensor(0.01))


def test_loss_decreases_in_30_steps():
    model = tiny()
    images = torch.from_numpy(synthetic_frames(8)).permute(0, 3, 1, 2).float() / 255
    optimizers = build_optimizers(model, lr=3e-3, muon_lr=3e-2)
    target = build_pyramid(images, 4)
    levels = torch.arange(8) % 4
    losses = []
    for _ in range(30):
        loss, _ = reconstruction_loss(model(images, levels), target)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_config_validation():
    with pytest.raises(ValueError, match="variant"):
        AutoencoderConfig(variant="adaptive-ish")
    with pytest.raises(ValueError, match="layout"):
        AutoencoderConfig(layout="nope")
    with pytest.raises(ValueError, match="size"):
        size_config("huge")


def test_muon_gets_linear_weights_only():
    from models.training.common import split_params

    model = tiny(refine_channels=4)
    muon, adamw = split_params(model)
    assert all(p.ndim == 2 for p in muon) and model.patch_in.weight in [*muon]
    assert any(p is model.enc_level.weight for p in adamw) and any(p.ndim == 4 for p in adamw)
    assert len(muon) + len(adamw) == len(list(model.parameters()))


def test_uint8_and_float_inputs_agree():
    model = tiny()
    frames = synthetic_frames(2)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(model.encode(frames), model.encode(images))
    assert np.isfinite(model.reconstruct(frames).numpy()).all()


def test_one_encoder_pass_decoded_at_every_level():
    model = tiny()
    torch.nn.init.normal_(model.to_patch.weight, std=0.1)
    images = torch.rand(2, 3, 64, 64)
    levels = torch.arange(4).repeat(2)
    pyramid = model(images, levels)
    assert pyramid[0].shape == (8, 3, 64, 64)
    single = model(images, torch.tensor([2, 2]))
    assert torch.allclose(pyramid[0][[2, 6]], single[0], atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        model(images, torch.arange(3))


def test_non_finite_values_fail_clearly():
    model = tiny()
    with pytest.raises(ValueError, match="NaN"):
        model.decode(torch.full((1, 1, 32), float("nan")), 3)
    torch.nn.init.constant_(model.to_patch.weight, float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite decoded frames"):
        model.decode(torch.zeros(1, 1, 32), 3)
