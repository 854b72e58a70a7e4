import pytest
import torch
import torch.nn.functional as F

from models import perceptual

pytestmark = pytest.mark.usefixtures("ae_one_thread")


@pytest.fixture(scope="module")
def distance():
    try:
        return perceptual.PerceptualDistance()
    except ModuleNotFoundError:
        pytest.skip("stlpips-pytorch (eval extra) not installed")


def smooth_images(n: int) -> torch.Tensor:
    torch.manual_seed(1)
    return F.interpolate(torch.rand(n, 3, 8, 8), size=64, mode="bicubic", align_corners=False).clamp(0, 1)


def blur(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)


def test_identical_images_have_zero_distance(distance):
    x = smooth_images(3)
    assert torch.equal(distance(x, x), torch.zeros(3))
    assert distance.name == "ST-LPIPS-Alex"


def test_distance_grows_with_blur_and_noise(distance):
    x = smooth_images(4)
    blurred = [distance(x, blur(x, k)).mean() for k in (3, 5, 9)]
    assert 0 < blurred[0] < blurred[1] < blurred[2]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    noisy = [distance(x, (x + s * noise).clamp(0, 1)).mean() for s in (0.02, 0.05, 0.1)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]


def test_gradient_flows_to_the_prediction_only(distance):
    x = smooth_images(2).requires_grad_(True)
    distance(x, smooth_images(2).flip(0)).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in distance.parameters())


def test_missing_weights_name_the_eval_extra(monkeypatch):
    monkeypatch.setattr(perceptual.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"millivid-env\[eval\]"):
        perceptual.PerceptualDistance()
