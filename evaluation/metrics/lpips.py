"""LPIPS with AlexNet, the paper's perceptual distance, and its offline fallback ST-LPIPS-Alex.

- **LPIPS-Alex (v0.1)**, the standard metric of the ``lpips`` package: ImageNet AlexNet trunk
  (torchvision's ``alexnet-owt-7be5be79.pth``, which cannot be downloaded here: pass its path with
  ``alexnet_weights=`` or ``$MILLIVID_ALEXNET_WEIGHTS``) and the calibrated linear heads shipped inside
  the ``lpips`` wheel. Re-implemented because ``import lpips`` fails here (it imports torchvision); the
  tests check that it equals ``lpips.LPIPS(net="alex")(x, y, normalize=True)`` to 1e-6.
- **ST-LPIPS-Alex (vST0.0)**, the shift-tolerant variant whose complete trained weights ship with
  ``stlpips-pytorch`` (``models.perceptual``); used when no AlexNet trunk file is configured.

:func:`make_perceptual_metric` picks the variant; the returned object's ``.name`` says which one was
used, and reports must print it. Both split into ``features(x)`` (the unit-normalised maps) and
``feature_distance(a, b)``, equal to the one-shot ``metric(x, y)`` bit for bit, so the features of a
frame compared with many others (the ground truth of an evaluation) are computed once.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evaluation.metrics._inputs import ArrayLike, paired_frames
from models.perceptual import PerceptualDistance

LPIPS_NAME = "LPIPS-Alex (v0.1)"
ST_LPIPS_NAME = "ST-LPIPS-Alex (vST0.0)"
ENV_ALEXNET = "MILLIVID_ALEXNET_WEIGHTS"
_HEADS = Path("weights") / "v0.1" / "alex.pth"
_CHANNELS = (64, 192, 384, 256, 256)
# LPIPS input scaling (lpips.ScalingLayer): applied after mapping [0, 1] to [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# torchvision ``AlexNet.features`` index of each convolution -> (out, in, kernel, stride, padding).
_TRUNK_LAYERS = {
    0: (64, 3, 11, 4, 2),
    3: (192, 64, 5, 1, 2),
    6: (384, 192, 3, 1, 1),
    8: (256, 384, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}
# Smallest frame side the strided trunk accepts (two 3x3/2 max-pools after a stride-4 convolution).
MIN_SIZE = 31


def lpips_heads_path() -> Path:
    """The calibrated AlexNet heads inside the installed ``lpips`` wheel (found without importing it).

    Raises:
        ModuleNotFoundError: ``lpips`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("lpips")
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / _HEADS
        if candidate.is_file():
            return candidate
    raise ModuleNotFoundError(
        f"{LPIPS_NAME} needs the linear heads shipped with the 'lpips' package ({_HEADS.as_posix()}); "
        "install the eval extra: pip install 'millivid-env[eval]'"
    )


def resolve_alexnet_weights(path: str | Path | None = None) -> Path | None:
    """The AlexNet trunk file to use: ``path`` if given, else ``$MILLIVID_ALEXNET_WEIGHTS``, else None.

    Raises:
        FileNotFoundError: a path was configured but no file is there (a typo must not silently
            switch the metric to another variant).
    """
    configured = str(path) if path is not None else os.environ.get(ENV_ALEXNET, "")
    if not configured:
        return None
    resolved = Path(configured).expanduser()
    if not resolved.is_file():
        source = "alexnet_weights" if path is not None else f"${ENV_ALEXNET}"
        raise FileNotFoundError(
            f"AlexNet trunk weights not found at {resolved} (from {source}); pass torchvision's "
            "alexnet-owt-7be5be79.pth, or unset it to use ST-LPIPS-Alex"
        )
    return resolved


def load_alexnet_trunk(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the convolution weights of an ImageNet AlexNet from a torchvision-format state dict.

    Args:
        path: ``alexnet-owt-7be5be79.pth`` (keys ``features.{0,3,6,8,10}.{weight,bias}``; the
            classifier is ignored) or a features-only dict (keys ``{0,3,6,8,10}.{weight,bias}``).

    Returns:
        State dict for :class:`AlexNetTrunk` (keys ``convs.{0..4}.{weight,bias}``).

    Raises:
        ValueError: the file is not an AlexNet state dict of the expected shapes.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    features = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    out: dict[str, torch.Tensor] = {}
    for i, (index, (c_out, c_in, k, _, _)) in enumerate(_TRUNK_LAYERS.items()):
        for kind, shape in (("weight", (c_out, c_in, k, k)), ("bias", (c_out,))):
            tensor = features.get(f"{index}.{kind}")
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                found = None if tensor is None else tuple(getattr(tensor, "shape", ()))
                raise ValueError(
                    f"{path}: not a torchvision AlexNet state dict (features.{index}.{kind}: "
                    f"expected {shape}, found {found})"
                )
            out[f"convs.{i}.{kind}"] = tensor.float()
    return out


class AlexNetTrunk(nn.Module):
    """torchvision's AlexNet ``features`` up to the fifth ReLU; returns the five ReLU maps LPIPS uses."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
            for c_out, c_in, k, stride, padding in _TRUNK_LAYERS.values()
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` scaled input -> maps with 64, 192, 384, 256, 256 channels."""
        maps = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):  # max-pools sit before the second and third convolutions
                x = F.max_pool2d(x, 3, stride=2)
            x = F.relu(conv(x))
            maps.append(x)
        return maps


def unit_normalise(f: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> unit length over channels at every position (lpips' epsilon placement)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


class LpipsAlex(nn.Module):
    """Standard LPIPS-Alex v0.1 (frozen, eval mode); equals ``lpips.LPIPS(net="alex")``.

    Args:
        alexnet_weights: torchvision AlexNet ImageNet weights (see :func:`load_alexnet_trunk`).
        heads: calibrated linear heads; default: the file inside the ``lpips`` wheel.
    """

    name = LPIPS_NAME

    def __init__(self, alexnet_weights: str | Path, heads: str | Path | None = None) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.trunk = AlexNetTrunk()
        self.trunk.load_state_dict(load_alexnet_trunk(alexnet_weights), strict=True)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        head_state = torch.load(heads or lpips_heads_path(), map_location="cpu", weights_only=True)
        self.heads.load_state_dict(
            {k.replace("lin", "", 1).replace(".model.1", ""): v for k, v in head_state.items()}
        )
        self.requires_grad_(False)
        self.eval()

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw (not unit-normalised) ReLU maps of ``(B, 3, H, W)`` frames in ``[0, 1]``."""
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"{LPIPS_NAME} needs frames of at least {MIN_SIZE} px, got {tuple(x.shape[-2:])}"
            )
        return self.trunk((2 * x - 1 - self.shift) / self.scale)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What the distance compares: the five ReLU maps, unit-normalised over channels.

        Args:
            x: float ``(B, 3, H, W)`` in ``[0, 1]``, ``H, W >= 31``.

        Returns:
            Five maps ``(B, C_l, h_l, w_l)``, ``C_l`` = 64, 192, 384, 256, 256.
        """
        return [unit_normalise(f) for f in self.feature_maps(x)]

    def feature_distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """Distance per frame between two sets of :meth:`features` (of the same frame size).

        ``feature_distance(features(x), features(y))`` is ``forward(x, y)`` bit for bit, so the
        features of a frame compared many times (the ground truth) can be computed once.

        Args:
            a: five maps ``(B, C_l, h_l, w_l)``.
            b: the same shapes as ``a``.

        Returns:
            ``(B,)`` distances.
        """
        total = a[0].new_zeros(a[0].shape[0])
        for head, fa, fb in zip(self.heads, a, b, strict=True):
            # Head then spatial mean, as lpips does (identical to mean then head: it is linear).
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total

    def forward(self, pred: ArrayLike, target: ArrayLike) -> torch.Tensor:
        """Distance per frame (0 for identical frames).

        Args:
            pred: float ``(..., 3, H, W)`` in ``[0, 1]`` or uint8 ``(..., H, W, 3)``, ``H, W >= 31``.
            target: same shape as ``pred``.

        Returns:
            float32 tensor of the leading shape.
        """
        p, t, lead = paired_frames(pred, target)
        return self.feature_distance(self.features(p), self.features(t)).reshape(lead)


class StLpipsAlex(nn.Module):
    """ST-LPIPS-Alex with the trained weights of ``stlpips-pytorch`` (wraps ``models.perceptual``).

    Args:
        min_size: frames smaller than this are bilinearly upsampled first (see ``models.perceptual``).
    """

    name = ST_LPIPS_NAME

    def __init__(self, min_size: int = 64) -> None:
        super().__init__()
        self.distance = PerceptualDistance(min_size=min_size)
        self.eval()

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw (not unit-normalised) ReLU maps of ``(B, 3, H, W)`` frames in ``[0, 1]``."""
        d = self.distance
        if min(x.shape[-2:]) < d.min_size:
            x = F.interpolate(x, size=(d.min_size, d.min_size), mode="bilinear", align_corners=False)
        return d.net((2 * x - 1 - d.shift) / d.scale)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU maps unit-normalised over channels (what ``models.perceptual`` compares).

        Args:
            x: float ``(B, 3, H, W)`` in ``[0, 1]``.

        Returns:
            Five maps ``(B, C_l, h_l, w_l)``, ``C_l`` = 64, 192, 384, 256, 256.
        """
        return [unit_normalise(f) for f in self.feature_maps(x)]

    def feature_distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """Distance per frame between two sets of :meth:`features`; equals :meth:`forward` bit for bit.

        Args:
            a: five maps ``(B, C_l, h_l, w_l)``.
            b: the same shapes as ``a``.

        Returns:
            ``(B,)`` distances.
        """
        total = a[0].new_zeros(a[0].shape[0])
        for head, fa, fb in zip(self.distance.heads, a, b, strict=True):
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total

    def forward(self, pred: ArrayLike, target: ArrayLike) -> torch.Tensor:
        """Distance per frame (0 for identical frames); shapes as :meth:`LpipsAlex.forward`."""
        p, t, lead = paired_frames(pred, target)
        return self.distance(p, t).reshape(lead)


PerceptualMetric = LpipsAlex | StLpipsAlex
_PREFERENCES = ("lpips-alex", "st-lpips-alex")


def make_perceptual_metric(
    prefer: str = "lpips-alex", alexnet_weights: str | Path | None = None, fallback: bool = True
) -> PerceptualMetric:
    """The LPIPS variant to report: standard LPIPS-Alex when its trunk is available, else ST-LPIPS-Alex.

    Args:
        prefer: ``"lpips-alex"`` (the paper's metric) or ``"st-lpips-alex"``.
        alexnet_weights: torchvision AlexNet weights; default ``$MILLIVID_ALEXNET_WEIGHTS``.
        fallback: with ``prefer="lpips-alex"`` and no trunk configured, use ST-LPIPS-Alex (with a
            warning) instead of raising.

    Returns:
        A frozen module ``metric(pred, target) -> (N,)`` whose ``.name`` is :data:`LPIPS_NAME` or
        :data:`ST_LPIPS_NAME`.

    Raises:
        ValueError: unknown ``prefer``.
        FileNotFoundError: a configured trunk path does not exist, or none is configured and
            ``fallback`` is False.
    """
    if prefer not in _PREFERENCES:
        raise ValueError(f"prefer must be one of {_PREFERENCES}, got {prefer!r}")
    if prefer == "st-lpips-alex":
        return StLpipsAlex()
    trunk = resolve_alexnet_weights(alexnet_weights)
    if trunk is not None:
        return LpipsAlex(trunk)
    if not fallback:
        raise FileNotFoundError(
            f"{LPIPS_NAME} needs torchvision's AlexNet ImageNet weights (alexnet-owt-7be5be79.pth): pass "
            f"alexnet_weights=PATH or set ${ENV_ALEXNET}"
        )
    warnings.warn(
        f"no AlexNet trunk weights configured (${ENV_ALEXNET}); "
        f"using {ST_LPIPS_NAME} instead of {LPIPS_NAME}",
        stacklevel=2,
    )
    return StLpipsAlex()
