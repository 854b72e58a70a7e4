"""`millivid bench` entries of the autoencoder: encode/decode frames/s and training frames/s.

Measured with one torch thread (a per-core rate, comparable with the renderer's), on random frames,
with the bundled ``loopcraft-64`` architecture (its weights when bundled; speed does not depend on them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from evaluation.bench.registry import Results, one_torch_thread, result

BATCHES = (1, 64)
TRAIN_BATCH = 32


def _rate(fn: Callable[[], object], items: int, min_seconds: float) -> float:
    fn()  # warm-up: allocations, kernel selection
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or calls == 0:
        fn()
        calls += 1
    return calls * items / elapsed


def _model():
    from models.autoencoder import HierarchicalAutoencoder, size_config
    from models.checkpoints import bundled_names, load_autoencoder

    if "loopcraft-64" in bundled_names():
        return load_autoencoder("loopcraft-64")
    return HierarchicalAutoencoder(size_config("cpu")).eval()


def bench_autoencoder(min_seconds: float = 1.0) -> Results:
    """Encode and level-0 decode frames/s at batch 1 and 64, one thread."""
    import torch

    out: Results = {}
    with one_torch_thread(), torch.inference_mode():
        model = _model()
        for batch in BATCHES:
            frames = torch.rand(batch, 3, 64, 64)
            latents = model.encode(frames)
            note = f"batch {batch}, 1 thread, fp32"
            out[f"encode_b{batch}"] = result(
                _rate(lambda f=frames: model.encode(f), batch, min_seconds), "frames/s", note=note
            )
            out[f"decode_b{batch}"] = result(
                _rate(lambda z=latents: model.decode(z, 0), batch, min_seconds), "frames/s", note=note
            )
    return out


def bench_autoencoder_training(min_seconds: float = 3.0) -> Results:
    """Training frames/s (forward, backward, Muon + AdamW step; no perceptual term), one thread."""
    from models.autoencoder import HierarchicalAutoencoder, reconstruction_loss
    from models.tokens import build_pyramid
    from models.training.common import build_optimizers

    with one_torch_thread():
        model = _model().train()
        model = HierarchicalAutoencoder(model.config).train()  # fresh parameters with gradients
        optimizers = build_optimizers(model, lr=1e-4)
        import torch

        images = torch.rand(TRAIN_BATCH, 3, 64, 64)
        target = build_pyramid(images, model.layout.num_levels)
        levels = torch.arange(TRAIN_BATCH) % model.layout.num_levels

        def step() -> None:
            loss, _ = reconstruction_loss(model(images, levels), target)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()

        rate = _rate(step, TRAIN_BATCH, min_seconds)
    return {
        "train": result(rate, "frames/s", note=f"batch {TRAIN_BATCH}, 1 thread, fp32, no perceptual term")
    }
