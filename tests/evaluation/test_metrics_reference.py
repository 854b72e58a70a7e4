"""Agreement with the reference packages (lpips, stlpips_pytorch, torchmetrics) on fixed inputs.

All three import torchvision, whose installed wheel does not load on the CPU torch. They are imported
here with stand-in modules placed in ``sys.modules`` (torchvision, and for stlpips IPython and
torchsummary), and removed again afterwards so nothing leaks into other tests.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from evaluation.metrics.lpips import LpipsAlex, StLpipsAlex
from evaluation.metrics.psnr import psnr
from evaluation.metrics.ssim import ssim


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@contextlib.contextmanager
def stubbed_imports(
    stubs: dict[str, types.ModuleType],
    purge: tuple[str, ...],
    finder: importlib.abc.MetaPathFinder | None = None,
) -> Iterator[None]:
    """Import with ``stubs`` in ``sys.modules``; afterwards restore it and drop modules under ``purge``."""
    prefixes = (*purge, *stubs)
    saved = {name: mod for name, mod in sys.modules.items() if _matches(name, prefixes)}
    for name in saved:
        del sys.modules[name]
    sys.modules.update(stubs)
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if _matches(n, prefixes)]:
            del sys.modules[name]
        sys.modules.update(saved)


def alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet.features`` layer layout (same indices, so state dict keys match)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


def torchvision_stub(trunk_state: dict[str, torch.Tensor] | None = None) -> dict[str, types.ModuleType]:
    """A torchvision whose ``models.alexnet`` loads ``trunk_state`` (torchvision key format)."""
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")

    def alexnet(pretrained: bool = False, **_: object) -> types.SimpleNamespace:
        features = alexnet_features()
        if trunk_state is not None:
            features.load_state_dict(
                {k.removeprefix("features."): v for k, v in trunk_state.items() if k.startswith("features.")}
            )
        return types.SimpleNamespace(features=features)

    def unavailable(*_: object, **__: object) -> None:
        raise RuntimeError("stub torchvision provides only models.alexnet")

    models.alexnet = alexnet
    models.vgg16 = models.squeezenet1_1 = unavailable
    tv.models = models
    return {"torchvision": tv, "torchvision.models": models}


class _AnyAttribute(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})


class _TorchvisionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an empty stand-in for every ``torchvision.*`` module torchmetrics imports at load time."""

    def find_spec(
        self, name: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if _matches(name, ("torchvision",)):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _AnyAttribute(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, torch.Tensor]]:
    """A seeded random AlexNet trunk saved like torchvision's file (classifier included)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v.clone() for k, v in alexnet_features().state_dict().items()}
    state["classifier.1.weight"] = torch.randn(8, 8)
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-seeded.pth"
    torch.save(state, path)
    return str(path), state


def _pairs(frames: torch.Tensor, helpers: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed pairs: blurred, noisy and shifted versions of structured frames, plus random images."""
    gen = torch.Generator().manual_seed(3)
    noisy = (frames[:2] + 0.1 * torch.randn(frames[:2].shape, generator=gen)).clamp(0, 1)
    x = torch.cat([frames[:2], frames[:2], frames[2:4], torch.rand(2, 3, 64, 64, generator=gen)])
    y = torch.cat(
        [helpers["blur"](frames[:2], 1.5), noisy, frames[4:6], torch.rand(2, 3, 64, 64, generator=gen)]
    )
    return x, y


@pytest.mark.skipif(importlib.util.find_spec("lpips") is None, reason="lpips package not installed")
def test_lpips_alex_equals_lpips_package(trunk, frames, helpers):
    path, state = trunk
    x, y = _pairs(frames, helpers)
    odd = torch.rand(2, 3, 72, 96, generator=torch.Generator().manual_seed(4))  # non-square frames
    with stubbed_imports(torchvision_stub(state), purge=("lpips",)), torch.no_grad():
        import lpips

        reference = lpips.LPIPS(net="alex", version="0.1", verbose=False)
        expected = reference(x, y, normalize=True).flatten()
        expected_odd = reference(odd, odd.flip(-1), normalize=True).flatten()
    ours = LpipsAlex(path)
    with torch.no_grad():
        got, got_odd = ours(x, y), ours(odd, odd.flip(-1))
    assert expected.min() > 1e-3  # a meaningful comparison, not 0 == 0
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_odd, expected_odd, rtol=0, atol=1e-6)
    assert "lpips" not in sys.modules and "torchvision" not in sys.modules


@pytest.mark.skipif(
    importlib.util.find_spec("stlpips_pytorch") is None, reason="stlpips-pytorch not installed"
)
def test_st_lpips_alex_equals_stlpips_package(frames, helpers):
    from models.perceptual import weights_path

    x, y = _pairs(frames, helpers)
    ipython, summary = types.ModuleType("IPython"), types.ModuleType("torchsummary")
    ipython.embed = summary.summary = lambda *a, **k: None
    stubs = {**torchvision_stub(), "IPython": ipython, "torchsummary": summary}
    with stubbed_imports(stubs, purge=("stlpips_pytorch",)), torch.no_grad():
        from stlpips_pytorch import stlpips

        reference = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
        expected = reference(x, y, normalize=True).flatten()
    # The reference loads with strict=False: check the trained weights really are in it.
    file_state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(reference.net.slice5[0].weight, file_state["net.slice5.13.weight"])
    with torch.no_grad():
        got = StLpipsAlex()(x, y)
    assert expected.min() > 1e-3
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_psnr_ssim_equal_torchmetrics(frames, helpers):
    x, y = _pairs(frames, helpers)
    with stubbed_imports({}, purge=("torchvision", "torchmetrics"), finder=_TorchvisionFinder()):
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        expected_ssim = structural_similarity_index_measure(x, y, data_range=1.0, reduction="none")
        expected_psnr = peak_signal_noise_ratio(x, y, data_range=1.0, reduction="none", dim=(1, 2, 3))
        odd = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(5))
        expected_odd = structural_similarity_index_measure(
            odd, odd.flip(-1), data_range=1.0, reduction="none"
        )
    torch.testing.assert_close(ssim(x, y), expected_ssim, rtol=0, atol=1e-5)
    torch.testing.assert_close(ssim(odd, odd.flip(-1)), expected_odd, rtol=0, atol=1e-5)
    torch.testing.assert_close(psnr(x, y), expected_psnr, rtol=0, atol=1e-4)
    assert "torchmetrics" not in sys.modules


# ST-LPIPS-Alex of the fixed pairs, computed once with stlpips_pytorch (and equal to it, see above):
# guards the fallback metric where the reference package cannot be imported at all.
ST_LPIPS_FIXED = [0.195873, 0.138062, 0.191616, 0.237871, 0.413892, 0.491697, 0.038541, 0.046474]


def test_st_lpips_alex_fixed_values(frames, helpers):
    x, y = _pairs(frames, helpers)
    with torch.no_grad():
        got = StLpipsAlex()(x, y)
    torch.testing.assert_close(got, torch.tensor(ST_LPIPS_FIXED), rtol=0, atol=2e-6)
