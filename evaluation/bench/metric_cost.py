"""Cost of the evaluation's metric stage per frame and entry, one-shot vs. with the truth's features cached.

A small synthetic case (random 64x64 frames; the metric cost does not depend on the content): ``videos``
test videos of ``frames`` future frames, each scored for ``entries`` entries (3 systems + 2 bounds)
plus the ground-truth reference, exactly as :class:`evaluation.runner.Evaluation` does:

- ``one-shot`` (before): per entry ``suite(pred, truth)`` (AlexNet over pred and truth) and
  ``features(pred)`` (AlexNet over pred again), and ``features(truth)`` for the reference;
- ``cached`` (now): ``suite.prepare(truth)`` once per video (one AlexNet pass, which also gives the
  reference's Fréchet features), then ``suite.score(pred, prepared)`` per entry (one pass over pred
  for LPIPS and Fréchet).

Run with one thread: ``OMP_NUM_THREADS=1 python -m evaluation.bench.metric_cost``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from evaluation.metric_setup import build_metrics


def measure(
    videos: int = 2, frames: int = 128, entries: int = 5, repeats: int = 3, size: int = 64
) -> dict[str, float]:
    """Milliseconds per frame per entry of both paths (best of ``repeats``, the two interleaved).

    Args:
        videos: test videos.
        frames: future frames ``T`` per video.
        entries: scored entries per video (the reference's features are counted on top).
        repeats: timed repetitions of each path.
        size: frame side in pixels.

    Returns:
        ``{"one-shot": ms, "cached": ms}``.
    """
    suite, features = build_metrics()
    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8) for _ in range(videos)]
    noise = [rng.integers(-40, 41, (frames, size, size, 3)) for _ in range(entries)]
    preds = [[np.clip(t.astype(np.int64) + n, 0, 255).astype(np.uint8) for n in noise] for t in truth]

    def one_shot() -> None:
        for v in range(videos):
            for pred in preds[v]:
                suite(pred, truth[v])
                if features is not None:
                    features(pred)
            if features is not None:
                features(truth[v])

    def cached() -> None:
        for v in range(videos):
            prepared = suite.prepare(truth[v], features)
            for pred in preds[v]:
                suite.score(pred, prepared, features)
            if features is not None and prepared.pooled is None:
                features(truth[v])

    paths: dict[str, Callable[[], None]] = {"one-shot": one_shot, "cached": cached}
    suite(preds[0][0][:8], truth[0][:8])  # warm-up
    best = {name: float("inf") for name in paths}
    for _ in range(repeats):
        for name, path in paths.items():
            start = time.perf_counter()
            path()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3 / (videos * frames * entries))
    return best


def main() -> None:
    """Print the per-frame-per-entry cost of both paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    best = measure(args.videos, args.frames, repeats=args.repeats)
    for name, ms in best.items():
        print(f"{name:>8}: {ms:.2f} ms per frame per entry")
    print(f" speed-up: {best['one-shot'] / best['cached']:.2f}x")


if __name__ == "__main__":
    main()
