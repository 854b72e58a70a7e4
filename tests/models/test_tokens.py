import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.tokens import LAYOUTS, build_pyramid, frames_to_tokens, patchify, unpatchify, validate_frames

pytestmark = pytest.mark.usefixtures("ae_one_thread")


@pytest.mark.parametrize("name, counts", [("loopcraft-64", (64, 16, 4, 1)), ("paper-256", (256, 64, 16, 4))])
def test_token_counts(name, counts):
    layout = LAYOUTS[name]
    assert layout.tokens_per_level == counts
    assert layout.num_tokens == sum(counts)
    assert layout.latent_channels == 32
    index = layout.token_index()
    assert index.shape == (sum(counts), 3)
    for level, n in enumerate(counts):
        assert int((index[:, 0] == level).sum()) == n
        assert index[layout.level_slice(level), 0].eq(level).all()


def test_ordering_is_level_major_then_raster():
    layout = LAYOUTS["loopcraft-64"]
    index = layout.token_index()
    assert index[:, 0].tolist() == sorted(index[:, 0].tolist())
    level0 = index[layout.level_slice(0)]
    assert level0[:3].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2]]
    assert level0[8].tolist() == [0, 1, 0]  # row-major: the 9th token starts row 1
    assert index[-1].tolist() == [3, 0, 0]  # level-local coordinates (not rescaled)
    assert index[layout.level_slice(1)][:, 1:].max() == 3


def test_pyramid_is_box_average():
    x = torch.rand(2, 3, 64, 64)
    pyramid = build_pyramid(x, 4)
    assert [p.shape[-1] for p in pyramid] == [64, 32, 16, 8]
    assert torch.allclose(pyramid[1][0, 1, 3, 5], x[0, 1, 6:8, 10:12].mean())
    assert torch.allclose(pyramid[3][1, 2, 0, 0], x[1, 2, :8, :8].mean(), atol=1e-6)


def test_patch_round_trip_is_exact():
    layout = LAYOUTS["loopcraft-64"]
    pyramid = build_pyramid(torch.rand(2, 3, 64, 64), 4)
    tokens = patchify(pyramid, layout)
    assert tokens.shape == (2, 85, 192)
    for a, b in zip(unpatchify(tokens, layout), pyramid, strict=True):
        assert torch.equal(a, b)
    # A token holds exactly the pixels of its patch.
    assert torch.equal(tokens[0, 9].view(3, 8, 8), pyramid[0][0, :, 8:16, 8:16])
    assert torch.equal(frames_to_tokens(pyramid[0], layout), tokens)


def test_validate_frames_accepts_both_layouts():
    layout = LAYOUTS["loopcraft-64"]
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    images = validate_frames(frames, layout)
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert torch.equal(validate_frames(images, layout), images)
    assert images[1, 2, 5, 7] == frames[1, 5, 7, 2] / 255


@pytest.mark.parametrize(
    "frames, words",
    [
        (np.zeros((64, 64, 3), np.uint8), "(B, 64, 64, 3)"),
        (np.zeros((2, 32, 32, 3), np.uint8), "got (2, 32, 32, 3)"),
        (torch.zeros(2, 64, 64, 3), "(B, 3, 64, 64)"),
        (torch.full((1, 3, 64, 64), 2.0), "[0, 1]"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
        (np.zeros((1, 64, 64, 3), np.int32), "dtype"),
    ],
)
def test_bad_frames_raise_value_error(frames, words):
    with pytest.raises(ValueError, match=None) as info:
        validate_frames(frames, LAYOUTS["loopcraft-64"])
    assert words in str(info.value)


def test_layers_dit_block_starts_as_identity_and_takes_both_conditions():
    from models.layers import DiTBlock, sincos_embedding

    block = DiTBlock(32, 2)
    x = torch.randn(2, 5, 32)
    assert torch.equal(block(x, torch.randn(2, 32)), x)
    assert torch.equal(block(x, torch.randn(2, 5, 32)), x)
    torch.nn.init.normal_(block.ada.weight)
    assert block(x, torch.randn(2, 5, 32)).shape == x.shape
    code = sincos_embedding(torch.tensor([[0, 0], [3, 1]]), 16)
    # per coordinate: F sines then F cosines ([sin(w), cos(w), sin(h), cos(h)] blocks)
    assert code.shape == (2, 16) and code[0, :4].eq(0).all() and code[0, 4:8].eq(1).all()
    assert F.mse_loss(code[0], code[1]) > 0
