"""Cosine logSNR schedule: endpoints, variance preservation, v/x/eps conversions."""

from __future__ import annotations

import math

import pytest
import torch

from models.diffusion import CosineSchedule


def test_endpoints_match_method():
    s = CosineSchedule()
    assert s.theta_min == pytest.approx(math.atan(math.exp(-7.5)))
    assert s.theta_max == pytest.approx(math.pi / 2 - s.theta_min)
    alpha, sigma = s.alpha_sigma(torch.tensor([0.0, 1.0]))
    assert alpha[0].item() == pytest.approx(0.99999985, abs=1e-7)
    assert sigma[0].item() == pytest.approx(5.531e-4, rel=1e-3)
    assert alpha[1].item() == pytest.approx(5.531e-4, rel=1e-3)
    assert s.logsnr(torch.tensor([0.0, 1.0])).tolist() == pytest.approx([15.0, -15.0], abs=1e-4)


@pytest.mark.parametrize("shift", [1.0, 0.5, 2.0])
def test_variance_preserving_and_monotone(shift):
    s = CosineSchedule(shift=shift)
    t = torch.linspace(0, 1, 101)
    alpha, sigma = s.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), atol=1e-6, rtol=0)
    logsnr = s.logsnr(t)
    assert (logsnr.diff() < 0).all()
    torch.testing.assert_close(logsnr, CosineSchedule().logsnr(t) + 2 * math.log(shift), atol=1e-4, rtol=0)
    torch.testing.assert_close(alpha**2, torch.sigmoid(logsnr), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shift", [1.0, 0.5])
def test_conversions_invert(shift):
    s = CosineSchedule(shift=shift)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 5, generator=g).tanh()
    eps = torch.randn(3, 7, 5, generator=g)
    t = torch.rand(3, 7, generator=g)
    x_t = s.add_noise(x, eps, t)
    v = s.v_target(x, eps, t)
    x_hat, eps_hat = s.x_eps_from_v(x_t, v, t)
    torch.testing.assert_close(x_hat, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(eps_hat, eps, atol=1e-5, rtol=0)
    # Re-noising (x_hat, eps_hat) at the same time reproduces x_t (the DDIM update's fixed point).
    torch.testing.assert_close(s.add_noise(x_hat, eps_hat, t), x_t, atol=1e-5, rtol=0)


def test_timesteps_and_validation():
    s = CosineSchedule()
    assert s.timesteps(5).tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert s.timesteps(1).tolist() == [1.0]
    with pytest.raises(ValueError, match="at least one"):
        s.timesteps(0)
    with pytest.raises(ValueError, match="shift"):
        CosineSchedule(shift=0.0)
    with pytest.raises(ValueError, match="logsnr_min"):
        CosineSchedule(logsnr_min=5.0, logsnr_max=-5.0)
