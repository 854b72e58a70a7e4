"""Frame metrics: identities, known values, monotonic response to degradations, errors."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch

from evaluation.metrics import (
    ENV_ALEXNET,
    LPIPS_NAME,
    METRICS,
    ST_LPIPS_NAME,
    FrameMetricSuite,
    I3DFeatures,
    LpipsAlex,
    PooledAlexFeatures,
    StLpipsAlex,
    compute_frame_metrics,
    make_frechet_features,
    make_perceptual_metric,
    psnr,
    ssim,
    to_frames,
    window_features,
)
from evaluation.metrics.lpips import load_alexnet_trunk
from evaluation.metrics.psnr import MAX_DB

BLURS = (0.5, 1.0, 2.0, 4.0)
NOISES = (0.02, 0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def st_lpips() -> StLpipsAlex:
    return StLpipsAlex()


@pytest.fixture(scope="module")
def seeded_trunk(tmp_path_factory) -> str:
    """A random (seeded) AlexNet trunk in torchvision's format: only for identity/plumbing checks."""
    gen = torch.Generator().manual_seed(0)
    shapes = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
    state = {}
    for i, (c_out, c_in, k) in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) / math.sqrt(
            c_in * k * k
        )
        state[f"features.{i}.bias"] = torch.zeros(c_out)
    path = tmp_path_factory.mktemp("trunk") / "alexnet-seeded.pth"
    torch.save(state, path)
    return str(path)


def _noise(frames: torch.Tensor, std: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)  # the same noise pattern at every strength
    return (frames + std * torch.randn(frames.shape, generator=gen)).clamp(0, 1)


def _increasing(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


# ---- identities and known values ----------------------------------------------------------------


def test_identical_frames(frames, st_lpips, seeded_trunk):
    assert torch.all(psnr(frames, frames) == MAX_DB)
    torch.testing.assert_close(ssim(frames, frames), torch.ones(len(frames)))
    with torch.no_grad():
        assert torch.all(st_lpips(frames, frames) == 0)
        assert torch.all(LpipsAlex(seeded_trunk)(frames, frames) == 0)


def test_psnr_of_known_mse(frames):
    target = 0.2 + 0.6 * frames  # keeps target +- 0.1 inside [0, 1]: no clipping
    torch.testing.assert_close(
        psnr(target + 0.1, target), torch.full((len(frames),), 20.0), atol=1e-4, rtol=0
    )
    # uint8 (channels-last) input means the same frames / 255.
    a = (frames * 255).round().to(torch.uint8)
    b = (a.int() + 3).clamp(0, 255).to(torch.uint8)
    expected = psnr(a.float() / 255, b.float() / 255)
    torch.testing.assert_close(psnr(a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)), expected)


def test_leading_dimensions_are_kept(frames):
    videos = frames.reshape(2, 4, 3, 64, 64)
    assert psnr(videos, videos.flip(1)).shape == (2, 4)
    assert ssim(frames[0], frames[1]).shape == ()
    torch.testing.assert_close(
        ssim(videos, videos.flip(1)).flatten(), ssim(frames, videos.flip(1).flatten(0, 1))
    )


# ---- monotonic response to degradations ---------------------------------------------------------


def test_blur_monotonic(frames, helpers, st_lpips):
    x = frames[:4]
    blurred = [helpers["blur"](x, s) for s in BLURS]
    with torch.no_grad():
        lp = [float(st_lpips(x, b).mean()) for b in blurred]
    assert _increasing(lp)
    assert _increasing([-float(psnr(x, b).mean()) for b in blurred])
    assert _increasing([-float(ssim(x, b).mean()) for b in blurred])


def test_noise_monotonic(frames, st_lpips):
    x = frames[:4]
    noisy = [_noise(x, s) for s in NOISES]
    with torch.no_grad():
        lp = [float(st_lpips(x, n).mean()) for n in noisy]
    assert _increasing(lp)
    assert _increasing([-float(psnr(x, n).mean()) for n in noisy])
    assert _increasing([-float(ssim(x, n).mean()) for n in noisy])


def test_shift(canvases, helpers, st_lpips):
    crop = helpers["crop"]
    x = torch.stack([crop(c) for c in canvases[:4]])
    shifted = {d: torch.stack([crop(c, d, d // 2) for c in canvases[:4]]) for d in (1, 4, 8, 16)}
    with torch.no_grad():
        lp = {d: float(st_lpips(x, s).mean()) for d, s in shifted.items()}
    # ST-LPIPS tolerates small shifts by design: require growth only between large shifts.
    assert 0 < lp[4] < lp[8] < lp[16]
    assert _increasing([-float(psnr(x, shifted[d]).mean()) for d in (1, 4, 8, 16)])
    assert all(float(ssim(x, s).mean()) < 0.95 for s in shifted.values())


@pytest.mark.skipif(
    not os.environ.get(ENV_ALEXNET), reason=f"${ENV_ALEXNET} not set (ImageNet AlexNet trunk)"
)
def test_standard_lpips_alex_with_real_trunk(frames, helpers):
    metric = make_perceptual_metric()
    assert metric.name == LPIPS_NAME
    x = frames[:4]
    with torch.no_grad():
        assert torch.all(metric(x, x) == 0)
        assert _increasing([float(metric(x, helpers["blur"](x, s)).mean()) for s in BLURS])
        assert _increasing([float(metric(x, _noise(x, s)).mean()) for s in NOISES])


# ---- variant selection and weights --------------------------------------------------------------


def test_factory_falls_back_to_st_lpips_and_says_so(monkeypatch):
    monkeypatch.delenv(ENV_ALEXNET, raising=False)
    with pytest.warns(UserWarning, match="ST-LPIPS-Alex"):
        metric = make_perceptual_metric()
    assert isinstance(metric, StLpipsAlex) and metric.name == ST_LPIPS_NAME
    assert make_perceptual_metric(prefer="st-lpips-alex").name == ST_LPIPS_NAME
    with pytest.raises(FileNotFoundError, match=ENV_ALEXNET):
        make_perceptual_metric(fallback=False)
    with pytest.raises(ValueError, match="prefer"):
        make_perceptual_metric(prefer="vgg")


def test_factory_uses_standard_lpips_when_trunk_given(monkeypatch, seeded_trunk, tmp_path):
    monkeypatch.setenv(ENV_ALEXNET, seeded_trunk)
    assert make_perceptual_metric().name == LPIPS_NAME
    monkeypatch.delenv(ENV_ALEXNET)
    assert make_perceptual_metric(alexnet_weights=seeded_trunk).name == LPIPS_NAME
    # A configured but missing file is an error, not a silent switch of variant.
    with pytest.raises(FileNotFoundError, match="alexnet-owt"):
        make_perceptual_metric(alexnet_weights=tmp_path / "missing.pth")
    monkeypatch.setenv(ENV_ALEXNET, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=ENV_ALEXNET):
        make_perceptual_metric()


def test_bad_trunk_file(tmp_path):
    path = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="not a torchvision AlexNet"):
        load_alexnet_trunk(path)


def test_lpips_alex_rejects_tiny_frames(seeded_trunk):
    with pytest.raises(ValueError, match="at least 31"):
        LpipsAlex(seeded_trunk)(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))


# ---- input checking -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (torch.rand(2, 64, 64, 3), ValueError, "channels-first"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), ValueError, "channels-last"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.int64), TypeError, "dtype"),
        ([[0.0]], TypeError, "torch.Tensor"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
        (torch.rand(64, 64), ValueError, "channels-first"),
    ],
)
def test_bad_inputs(value, error, match):
    with pytest.raises(error, match=match):
        to_frames(value)


def test_mismatched_pairs(frames):
    with pytest.raises(ValueError, match="do not match"):
        psnr(frames[:2], frames[:3])
    with pytest.raises(ValueError, match="do not match"):
        ssim(frames[:2], frames[:2, :, :32])


# ---- suite --------------------------------------------------------------------------------------


def test_suite_on_videos(frames, st_lpips):
    pred = frames.reshape(2, 4, 3, 64, 64)
    target = (frames.flip(0).reshape(2, 4, 3, 64, 64) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)
    suite = FrameMetricSuite(batch_size=3, perceptual=st_lpips)  # 3 does not divide 8: ragged last batch
    assert suite.labels == {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": ST_LPIPS_NAME}
    values = suite(pred, target)
    assert {k: v.shape for k, v in values.items()} == {k: (2, 4) for k in ("psnr", "ssim", "lpips")}
    flat_target = target.flatten(0, 1)
    torch.testing.assert_close(values["psnr"].flatten(), psnr(frames, flat_target))
    torch.testing.assert_close(values["ssim"].flatten(), ssim(frames, flat_target))
    with torch.no_grad():
        torch.testing.assert_close(
            values["lpips"].flatten(), st_lpips(frames, flat_target), atol=1e-6, rtol=1e-5
        )
    assert set(METRICS) == {"psnr", "ssim", "lpips"}
    fast = compute_frame_metrics(pred, pred, names=("psnr", "ssim"))
    assert set(fast) == {"psnr", "ssim"} and torch.all(fast["ssim"] > 0.999)
    with pytest.raises(ValueError, match="unknown metrics"):
        FrameMetricSuite(names=("fid",))


# ---- Fréchet distance ---------------------------------------------------------------------------


def _correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))


def test_frechet_identical_and_shifted_sets():
    from evaluation.metrics import frechet_distance_between

    x = _correlated(500, 8, 0)
    assert frechet_distance_between(x, x) < 1e-8
    delta = np.arange(8) / 4.0
    # Same covariance, shifted mean: FD = |delta|^2 exactly.
    assert frechet_distance_between(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-6)


def test_frechet_closed_form_and_independent_trace():
    from evaluation.metrics import frechet_distance

    a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    mu_a, mu_b = np.zeros(3), np.array([1.0, -2.0, 0.5])
    expected = float(mu_b @ mu_b + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # General covariances: tr sqrt(A B) = sum sqrt(eig(A^1/2 B A^1/2)) (symmetric, computed independently).
    sa, sb = np.cov(_correlated(50, 6, 1), rowvar=False), np.cov(_correlated(50, 6, 2), rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(w)) @ v.T
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ sb @ root_a), 0, None)).sum()
    expected = float(np.trace(sa) + np.trace(sb) - 2 * tr_root)
    assert frechet_distance(np.zeros(6), sa, np.zeros(6), sb) == pytest.approx(expected, rel=1e-8)


def test_frechet_singular_covariances():
    from evaluation.metrics import frechet_distance, frechet_distance_between

    x = _correlated(10, 40, 3)  # fewer samples than dimensions, as with few test videos
    assert frechet_distance_between(x, x) < 1e-6 * np.trace(np.cov(x, rowvar=False))
    zero = np.zeros((4, 4))  # e.g. the zero vectors of short FVD windows on both sides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert frechet_distance(np.zeros(4), zero, np.zeros(4), zero) == pytest.approx(0.0, abs=1e-12)


def test_frechet_per_frame_index():
    from evaluation.metrics import frechet_per_frame_index

    base = np.stack([_correlated(30, 5, 10 + t) for t in range(3)], axis=1)  # (V=30, T=3, D=5)
    shift = np.array([0.0, 1.0, 2.0])[None, :, None]
    fd = frechet_per_frame_index(base + shift, base)
    np.testing.assert_allclose(fd, [0.0, 5.0, 20.0], atol=1e-6)
    with pytest.raises(ValueError, match="differ"):
        frechet_per_frame_index(base, base[:, :2])
    with pytest.raises(ValueError, match="at least 2 videos"):
        frechet_per_frame_index(base[:1], base)
    with pytest.raises(ValueError, match="3 dimensions"):
        frechet_per_frame_index(base[0], base[0])


def test_frechet_features(frames, helpers, monkeypatch):
    from evaluation.metrics import frechet_distance_between

    extractor = make_frechet_features()
    assert extractor.name == "FD-STAlex"
    feats = extractor(frames.reshape(2, 4, 3, 64, 64), batch_size=3)
    assert feats.shape == (2, 4, 256) and torch.all(feats.norm(dim=-1) <= 1 + 1e-5)
    clean = extractor(frames)
    torch.testing.assert_close(clean, feats.reshape(8, 256))
    fd = [frechet_distance_between(clean, extractor(helpers["blur"](frames, s))) for s in (1.0, 2.0, 4.0)]
    assert _increasing(fd)
    monkeypatch.delenv(ENV_ALEXNET, raising=False)
    with pytest.raises(FileNotFoundError, match="FD-Alex"):
        make_frechet_features(prefer="alex")


# ---- FVD (I3D only when the user provides it) -------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_i3d_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--i3d PATH"):
        I3DFeatures(None)
    with pytest.raises(FileNotFoundError, match="no I3D weights at"):
        I3DFeatures(tmp_path / "i3d_torchscript.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not torchscript")
    with pytest.raises(RuntimeError, match="not a TorchScript module"):
        I3DFeatures(junk)


class _FakeI3D(torch.nn.Module):
    """Stands in for the I3D TorchScript (same call signature) to test the windowing plumbing."""

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = False, return_features: bool = False
    ):
        assert resize and not rescale and return_features
        return x.mean(dim=(1, 3, 4)).repeat(1, 25)  # (B, 3, 16, H, W) -> (B, 400)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_window_features_plumbing(tmp_path):
    path = tmp_path / "fake_i3d.pt"
    torch.jit.script(_FakeI3D()).save(str(path))
    video = torch.linspace(0, 1, 40)[:, None, None, None].expand(40, 3, 8, 8)
    feats = window_features(I3DFeatures(path), video)
    assert feats.shape == (3, 400)  # 2 full windows + 1 partial window
    torch.testing.assert_close(feats[0, :16], video[:16, 0, 0, 0] * 2 - 1)  # frames scaled to [-1, 1]
    assert torch.all(feats[2] == 0)  # the partial window is a zero vector


# ---- features computed once (the evaluation's cached path) ---------------------------------------


def test_lpips_split_equals_one_shot_distance(frames, helpers, st_lpips, seeded_trunk):
    x, y = frames, helpers["blur"](frames, 1.0)
    with torch.inference_mode():
        for metric in (st_lpips, LpipsAlex(seeded_trunk)):
            fx, fy = metric.features(x), metric.features(y)
            assert [f.shape[1] for f in fx] == [64, 192, 384, 256, 256]
            assert torch.equal(metric.feature_distance(fx, fy), metric(x, y))  # bit for bit
            assert torch.equal(metric.feature_distance(fx, fx), torch.zeros(len(x)))


@pytest.mark.parametrize("cache", ["all", "none", "first-chunk"])
def test_prepared_target_scores_equal_one_shot_suite(frames, helpers, st_lpips, cache):
    """Cached truth features (all, none, or the first chunk only) give the one-shot numbers exactly."""
    extractor = PooledAlexFeatures(st_lpips)
    target = (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (8, 64, 64, 3), as the runner
    suite = FrameMetricSuite(batch_size=3, perceptual=st_lpips)  # 3 does not divide 8: ragged last chunk
    first_chunk = sum(f.numel() * f.element_size() for f in st_lpips.features(frames[:3]))
    budget = {"all": None, "none": 0, "first-chunk": first_chunk}[cache]
    prepared = suite.prepare(target, frechet=extractor, max_bytes=budget)
    kept = [maps is not None for maps in prepared.perceptual]
    assert kept == {"all": [True] * 3, "none": [False] * 3, "first-chunk": [True, False, False]}[cache]
    assert torch.equal(prepared.pooled, extractor(target, batch_size=3))
    for degraded in (helpers["blur"](frames, 2.0), frames.flip(0)):
        pred = (degraded * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        cached = suite.score(pred, prepared, frechet=extractor)
        one_shot = suite(pred, target)
        assert set(cached) == {"psnr", "ssim", "lpips", "features"}
        for name, value in one_shot.items():
            assert torch.equal(cached[name], value), name
        assert torch.equal(cached["features"], extractor(pred, batch_size=3))
    other = make_frechet_features()  # another network: its features are computed by it, not shared
    assert not other.shares_pass_with(st_lpips) and suite.prepare(target, frechet=other).pooled is None
    assert torch.equal(suite.score(pred, prepared, frechet=other)["features"], other(pred))
    with pytest.raises(ValueError, match="do not match"):
        suite.score(pred[:4], prepared)
