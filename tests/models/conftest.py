"""Fixtures of the models tests: a tiny synthetic video dataset in the on-disk format."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch


def synthetic_frames(n: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """Smooth random colour patterns (learnable quickly), uint8 (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        for c in range(3):
            a, b, phase = rng.uniform(0.5, 3, 3)
            out[i, :, :, c] = 0.5 + 0.3 * np.sin(2 * np.pi * (a * xx + b * yy) + phase)
    return (out.clip(0, 1) * 255).astype(np.uint8)


def write_dataset(root: Path, videos: int, frames: int, seed: int = 0) -> Path:
    """A dataset folder in the format of docs/dataset-format.md (dataset.json, npz + sidecar)."""
    (root / "videos").mkdir(parents=True)
    config = {
        "split": "train",
        "resolution": 64,
        "frames": frames,
        "context": None,
        "seed": seed,
        "world_size": [64, 32, 64],
        "generator_version": "synthetic",
    }
    (root / "dataset.json").write_text(
        json.dumps({"format": "millivid-loopcraft-videos", "format_version": 1, "config": config})
    )
    for i in range(videos):
        buffer = io.BytesIO()
        np.savez(
            buffer,
            frames=synthetic_frames(frames, seed * 100 + i),
            actions=np.arange(frames, dtype=np.int64) % 3,
            poses=np.zeros((frames, 5), np.float32),
        )
        content = buffer.getvalue()
        (root / "videos" / f"{i:06d}.npz").write_bytes(content)
        (root / "videos" / f"{i:06d}.json").write_text(
            json.dumps(
                {
                    "index": i,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "bytes": len(content),
                    "config": config,
                }
            )
        )
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 videos x 16 frames."""
    return write_dataset(tmp_path_factory.mktemp("data") / "videos", videos=3, frames=16)


@pytest.fixture()
def ae_one_thread() -> None:
    """One torch thread and a fixed seed (the autoencoder tests opt in with ``pytestmark``)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
