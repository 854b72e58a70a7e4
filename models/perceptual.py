"""ST-LPIPS-Alex: a perceptual distance with real trained weights that works offline.

This is the *shift-tolerant* LPIPS variant with an anti-aliased AlexNet trunk (blur-pool
downsampling, first convolution at stride 1). Its complete trained weights (trunk + the five linear
calibration heads + the input scaling) ship inside the ``stlpips-pytorch`` wheel as a plain state
dict; that package itself cannot be imported here (it imports torchvision), so the network is
re-implemented below and the weight file is located without importing the package.

It is *not* the standard LPIPS-Alex of the paper (whose ImageNet trunk cannot be downloaded
offline); results are reported under the name ``ST-LPIPS-Alex``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NAME = "ST-LPIPS-Alex"
_WEIGHTS = Path("weights") / "vST0.0" / "alex_shift_tolerant.pth"
_CHANNELS = (64, 192, 384, 256, 256)


def weights_path() -> Path:
    """Path of the ST-LPIPS AlexNet weights inside the installed ``stlpips-pytorch`` package.

    Raises:
        ModuleNotFoundError: the package (``eval`` extra) is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("stlpips_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _WEIGHTS
        if candidate.is_file():
            return candidate
    raise ModuleNotFoundError(
        f"{NAME} needs the weights shipped with the 'stlpips-pytorch' package "
        f"({_WEIGHTS.as_posix()}); install the eval extra: pip install 'millivid-env[eval]'"
    )


class _BlurDown(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad 2, depthwise 3x3 binomial blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0
        self.register_buffer("filt", kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, (H + 1) // 2 + 1, ...)``."""
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantAlexNet(nn.Module):
    """The anti-aliased AlexNet trunk; returns the five ReLU feature maps LPIPS compares."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = _CHANNELS
        self.conv1 = nn.Conv2d(3, c1, 11, stride=1, padding=2)
        self.down1 = _BlurDown(c1)
        self.down2 = _BlurDown(c1)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.down3 = _BlurDown(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` scaled input -> five feature maps (64, 192, 384, 256, 256 channels)."""
        f1 = F.relu(self.down1(self.conv1(x)))
        f2 = F.relu(self.conv2(self.down2(F.max_pool2d(f1, 3, stride=1))))
        f3 = F.relu(self.conv3(self.down3(F.max_pool2d(f2, 3, stride=1))))
        f4 = F.relu(self.conv4(f3))
        f5 = F.relu(self.conv5(f4))
        return [f1, f2, f3, f4, f5]


# Parameter names of the weight file -> names in this module.
_KEY_MAP = {
    "scaling_layer.shift": "shift",
    "scaling_layer.scale": "scale",
    "net.slice1.0": "net.conv1",
    "net.slice1.1": "net.down1",
    "net.slice2.4": "net.down2",
    "net.slice2.5": "net.conv2",
    "net.slice3.8": "net.down3",
    "net.slice3.9": "net.conv3",
    "net.slice4.11": "net.conv4",
    "net.slice5.13": "net.conv5",
    **{f"lin{i}.model.1": f"heads.{i}" for i in range(5)},
}


def _rename(key: str) -> str:
    for old, new in _KEY_MAP.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old) :]
    raise KeyError(f"unexpected parameter {key!r} in the {NAME} weight file")


class PerceptualDistance(nn.Module):
    """ST-LPIPS-Alex distance between two image batches (frozen, eval mode).

    Args:
        min_size: images smaller than this are bilinearly upsampled first (the trunk's receptive
            fields are ImageNet-sized; 64 keeps the cost low for 64x64 frames).
        weights: weight file; default: the one shipped with ``stlpips-pytorch``.
    """

    name = NAME

    def __init__(self, min_size: int = 64, weights: str | Path | None = None) -> None:
        super().__init__()
        self.min_size = min_size
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))
        self.net = ShiftTolerantAlexNet()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        path = Path(weights) if weights is not None else weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict({_rename(k): v for k, v in state.items()}, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualDistance:
        """Always stays in eval mode (the heads' dropout of the original is inference-off)."""
        return super().train(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-1] < self.min_size or x.shape[-2] < self.min_size:
            x = F.interpolate(x, size=(self.min_size, self.min_size), mode="bilinear", align_corners=False)
        x = (2 * x - 1 - self.shift) / self.scale  # [0, 1] -> [-1, 1] -> LPIPS input scaling
        # Unit-normalise every spatial feature vector over channels, as LPIPS does.
        return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self.net(x)]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance per sample.

        Args:
            x: ``(B, 3, H, W)`` in ``[0, 1]``.
            y: ``(B, 3, H, W)`` in ``[0, 1]``.

        Returns:
            ``(B,)`` non-negative distances (0 for identical images).
        """
        n = x.shape[0]
        if y.requires_grad:
            fx, fy = self._features(x), self._features(y)
        else:
            # The target needs no gradient: skip its graph (halves the backward cost in training).
            fx = self._features(x)
            with torch.no_grad():
                fy = self._features(y)
        total = x.new_zeros(n)
        for head, a, b in zip(self.heads, fx, fy, strict=True):
            total = total + head((a - b) ** 2).mean(dim=(1, 2, 3))
        return total
