"""Fixed, structured test images for the metric tests (no randomness at test time)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

CANVAS = 96
SIZE = 64
MARGIN = 16  # crops start here, so shifts of up to +-16 px stay inside the canvas


def make_canvas(seed: int) -> torch.Tensor:
    """``(3, 96, 96)`` image in [0, 1]: smooth colour waves, flat rectangles and a fine texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS] / CANVAS
    waves = rng.uniform(0.5, 2.5, (3, 3))
    img = np.stack([0.3 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy) + p) for f, g, p in waves])
    for _ in range(12):
        x0, y0 = rng.integers(0, CANVAS - 8, 2)
        w, h = rng.integers(4, 24, 2)
        img[:, y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1, (3, 1, 1))
    img += 0.08 * np.sign(np.sin(2 * np.pi * 6 * xx + 3 * yy))[None]
    return torch.from_numpy(np.clip(img, 0, 1)).float()


def crop(canvas: torch.Tensor, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """``(3, 64, 64)`` window of a canvas, moved by ``(dx, dy)`` pixels (a true translation)."""
    return canvas[:, MARGIN + dy : MARGIN + dy + SIZE, MARGIN + dx : MARGIN + dx + SIZE]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(..., 3, H, W)`` with reflect padding (independent of the metric code)."""
    radius = int(3 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, -1, -1)
    flat = x.reshape(-1, 3, *x.shape[-2:])
    out = F.conv2d(F.pad(flat, (radius,) * 4, mode="reflect"), kernel, groups=3)
    return out.reshape(x.shape)


@pytest.fixture(scope="session")
def canvases() -> torch.Tensor:
    """``(8, 3, 96, 96)`` distinct canvases."""
    return torch.stack([make_canvas(seed) for seed in range(8)])


@pytest.fixture(scope="session")
def frames(canvases: torch.Tensor) -> torch.Tensor:
    """``(8, 3, 64, 64)`` frames (unshifted crops)."""
    return torch.stack([crop(c) for c in canvases])


@pytest.fixture(scope="session")
def helpers() -> dict[str, Callable]:
    """``crop`` and ``blur`` for tests that build degraded versions of the frames."""
    return {"crop": crop, "blur": gaussian_blur}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: for these small batches a second thread on shared cores costs more than it gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
