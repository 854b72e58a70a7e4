"""The action warp: homography resampling, the fit, checkpoints, and the env's copy-by-construction step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.checkpoints import CheckpointError, save_checkpoint
from models.warp import ActionWarp, WarpConfig, load_warp
from models.warp.fit import fit_warp
from models.warp.homography import apply_homographies


def smooth_frames(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random smooth images ``(n, 3, size, size)`` in [0, 1] (low-pass noise, so shifts are learnable)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def shift(pixels: float, size: int) -> torch.Tensor:
    """The homography (output -> source) that reads each output pixel ``pixels`` to its right."""
    h = torch.eye(3)
    h[0, 2] = 2.0 * pixels / size
    return h


def test_identity_homography_returns_the_frame_exactly() -> None:
    frames = smooth_frames(2, 16)
    warped, valid = apply_homographies(frames, torch.eye(3).expand(2, 3, 3))
    assert torch.allclose(warped, frames, atol=1e-5)
    assert bool((valid == 1).all())


def test_integer_shift_moves_pixels_and_marks_the_revealed_strip() -> None:
    frames = smooth_frames(1, 16)
    warped, valid = apply_homographies(frames, shift(3, 16)[None])
    assert torch.allclose(warped[..., :13], frames[..., 3:], atol=1e-5)
    assert bool((valid[..., 13:] == 0).all()) and bool((valid[..., :13] == 1).all())
    assert bool((warped[..., 13:] == 0).all())


def test_degenerate_homography_raises() -> None:
    h = torch.zeros(1, 3, 3)
    with pytest.raises(FloatingPointError, match="degenerate"):
        apply_homographies(smooth_frames(1, 8), h)
    with pytest.raises(FloatingPointError, match="NaN"):
        apply_homographies(smooth_frames(1, 8), torch.full((1, 3, 3), float("nan")))


def test_untrained_warp_is_the_identity_and_validates_input() -> None:
    warp = ActionWarp(WarpConfig(resolution=16))
    frames = smooth_frames(3, 16)
    warped, _ = warp(frames, torch.tensor([0, 1, 2]))
    assert torch.allclose(warped, frames, atol=1e-5)
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\)"):
        warp(frames, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="one action per frame"):
        warp(frames, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, C, R, R\)"):
        warp(frames[0], torch.tensor([0]))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("kind", "dit", "kind must be 'action-warp'"), ("interpolation", "nearest", "interpolation must be")],
)
def test_bad_config(field: str, value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WarpConfig(**{field: value})


def test_fit_recovers_a_known_shift_per_action() -> None:
    torch.manual_seed(0)
    size = 32
    prev = smooth_frames(16, size + 8)
    # Action 0: the scene moves 4 px left (a right turn's look); action 1: 4 px right.
    pairs = [
        (prev[..., 4 : 4 + size, 4 : 4 + size], prev[..., 4 : 4 + size, 8 : 8 + size]),
        (prev[..., 4 : 4 + size, 4 : 4 + size], prev[..., 4 : 4 + size, 0:size]),
    ]
    warp = ActionWarp(WarpConfig(resolution=size, num_actions=2, interpolation="bilinear"))
    report = fit_warp(warp, pairs, blur_widths=(8, 4, 1), steps_per_width=80, lr=1e-2, progress=False)
    h = warp.homographies().detach()
    assert h[0, 0, 2].item() == pytest.approx(2 * 4 / size, abs=0.03)
    assert h[1, 0, 2].item() == pytest.approx(-2 * 4 / size, abs=0.03)
    for warp_error, held_error in zip(report.warp_error, report.held_error, strict=True):
        assert warp_error < 0.3 * held_error


def test_checkpoint_round_trip_and_wrong_kind(tmp_path) -> None:
    warp = ActionWarp(WarpConfig(resolution=16))
    with torch.no_grad():
        warp.delta[1, 2] = 0.25
    save_checkpoint(warp, tmp_path / "warp")
    loaded = load_warp(tmp_path / "warp")
    assert torch.equal(loaded.homographies(), warp.homographies())
    with pytest.raises(CheckpointError):
        load_warp("loopcraft-64-millivid")
