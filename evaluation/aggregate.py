"""Turn the per-video results into curves and bucket statistics (the content of ``report.json``).

For every entry and paired metric (PSNR, SSIM, LPIPS):

- ``curves[metric]``: float ``(T,)`` mean over videos of each rollout frame index;
- ``buckets[bucket][metric]``: ``{"mean", "sem", "n"}`` over videos of the per-video mean within the
  bucket (``short`` / ``medium`` / ``long`` thirds, ``all`` frames, and ``revisits``: only the rollout
  frames whose true pose revisits a context pose, for videos that have any).

Quality (unpaired): ``buckets[bucket]["fd"]`` is the Fréchet distance between the entry's features of
all frames in the bucket (pooled over videos) and the ground-truth frames' features of the same frames;
``curves["fd"]`` is the same per 16-frame window. The feature space is named in the report.

Paired differences (``"_paired"``): for the first system against every other system and baseline,
``{other: {bucket: {"mean", "sem", "n"}}}`` of the per-video LPIPS difference (first - other), the
revisits bucket over the videos that have revisits: the standard error of a comparison on the same
loops, smaller than the two entries' own.

Collapse references (``"_collapse"``): the same Fréchet distance for two degenerate "rollouts", flat
frames of random colours and uniform pixel noise, so that a system's distance has a scale: a rollout
that collapses to grey or noise scores near them, one that stays in distribution near the bounds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from evaluation.metrics import frechet_distance_between
from evaluation.protocol import Protocol
from evaluation.runner import GROUND_TRUTH, Entry
from evaluation.store import ResultStore

PAIRED = ("psnr", "ssim", "lpips")
#: Frames per point of the Fréchet-distance curve (the FVD window length).
FD_WINDOW = 16
#: Frames of each degenerate rollout of the collapse references.
COLLAPSE_FRAMES = 256


def _stats(per_video: np.ndarray) -> dict[str, float]:
    """Mean, standard error and count of finite per-video values."""
    v = per_video[np.isfinite(per_video)]
    if len(v) == 0:
        return {"mean": float("nan"), "sem": float("nan"), "n": 0}
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "sem": sem, "n": int(len(v))}


def _frechet(features: np.ndarray, reference: np.ndarray) -> float:
    """FD between two ``(N, D)`` pooled feature sets (NaN with fewer than 2 samples)."""
    if len(features) < 2 or len(reference) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # singular covariances are regularised
        return frechet_distance_between(features, reference)


def load_entry(store: ResultStore, entry: Entry, numbers: list[int]) -> dict[str, np.ndarray]:
    """Stack an entry's arrays over the videos: ``{name: (N, ...)}``.

    Raises:
        FileNotFoundError: a video's result is missing (the evaluation has not finished).
    """
    rows = []
    for number in numbers:
        arrays = store.load(entry.key, number)
        if arrays is None:
            raise FileNotFoundError(
                f"no result of {entry.key!r} on video {number} in {store.root}; run the evaluation to the end"
            )
        rows.append(arrays)
    # Revisit strips hold a different number of frames per video; the report reads them per video.
    return {name: np.stack([r[name] for r in rows]) for name in rows[0] if not name.startswith("strip_")}


def _ranges(protocol: Protocol) -> dict[str, tuple[int, int]]:
    """Frame ranges of the buckets and of ``all`` frames (revisits are a mask, not a range)."""
    return {**protocol.bucket_edges(), "all": (0, protocol.horizon)}


def collapse_frames(resolution: int, frames: int = COLLAPSE_FRAMES, seed: int = 0) -> dict[str, np.ndarray]:
    """Degenerate rollouts of ``frames`` uint8 ``(frames, R, R, 3)`` frames each.

    ``flat``: one random colour per frame; ``noise``: independent uniform pixels.
    """
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (frames, 1, 1, 3), dtype=np.uint8)
    return {
        "flat": np.broadcast_to(colours, (frames, resolution, resolution, 3)).copy(),
        "noise": rng.integers(0, 256, (frames, resolution, resolution, 3), dtype=np.uint8),
    }


def collapse_references(
    features: Callable[[np.ndarray], Any], truth_features: np.ndarray, protocol: Protocol
) -> dict[str, dict[str, float]]:
    """Fréchet distance of each :func:`collapse_frames` rollout to the true frames of every bucket.

    Args:
        features: the evaluation's feature network, uint8 frames ``(T, R, R, 3)`` -> ``(T, D)``.
        truth_features: ``(N, T, D)`` features of the true future frames.
        protocol: gives the buckets and the resolution.

    Returns:
        ``{"flat" | "noise": {bucket: distance}}`` (buckets as in :func:`aggregate`, without revisits).
    """
    out: dict[str, dict[str, float]] = {}
    for name, frames in collapse_frames(protocol.resolution).items():
        pooled = np.asarray(features(frames).cpu().numpy(), dtype=np.float64)
        out[name] = {
            b: _frechet(pooled, _pool(truth_features, lo, hi)) for b, (lo, hi) in _ranges(protocol).items()
        }
    return out


def aggregate(
    store: ResultStore,
    entries: list[Entry],
    protocol: Protocol,
    numbers: list[int],
    features: Callable[[np.ndarray], Any] | None = None,
) -> dict[str, Any]:
    """Curves and bucket statistics of every entry but the reference (see the module docstring).

    Args:
        store: the evaluation's results.
        entries: its entries (the ground-truth reference included).
        protocol: its protocol.
        numbers: its test video numbers.
        features: its Fréchet feature network; given, the collapse references are computed too.

    Returns:
        ``{entry key: {"kind", "label", "curves": {...}, "buckets": {...}}}`` plus ``"_revisits"``: the
        number of revisit frames per video, and ``"_collapse"`` (see :func:`collapse_references`) when
        ``features`` is given and the reference has features.
    """
    reference = load_entry(store, next(e for e in entries if e.key == GROUND_TRUTH), numbers)
    mask = reference["revisit_mask"]  # (N, T) bool
    truth_features = reference.get("features")
    ranges = _ranges(protocol)
    out: dict[str, Any] = {"_revisits": mask.sum(axis=1).astype(int).tolist()}
    per_video: dict[str, dict[str, np.ndarray]] = {}
    if features is not None and truth_features is not None:
        out["_collapse"] = collapse_references(features, truth_features, protocol)
    for entry in entries:
        if entry.key == GROUND_TRUTH:
            continue
        data = load_entry(store, entry, numbers)
        curves: dict[str, list[float]] = {m: data[m].mean(axis=0).tolist() for m in PAIRED}
        means = {m: _bucket_means(data[m], mask, ranges) for m in PAIRED}  # per video, per bucket
        buckets: dict[str, dict[str, Any]] = {
            name: {m: _stats(means[m][name]) for m in PAIRED} for name in [*ranges, "revisits"]
        }
        if truth_features is not None and "features" in data:
            feats = data["features"]  # (N, T, D)
            for name, (lo, hi) in ranges.items():
                buckets[name]["fd"] = _frechet(_pool(feats, lo, hi), _pool(truth_features, lo, hi))
            buckets["revisits"]["fd"] = _frechet(_pool_mask(feats, mask), _pool_mask(truth_features, mask))
            windows = range(0, protocol.horizon, FD_WINDOW)
            curves["fd"] = [
                _frechet(_pool(feats, lo, lo + FD_WINDOW), _pool(truth_features, lo, lo + FD_WINDOW))
                for lo in windows
            ]
        out[entry.key] = {"kind": entry.kind, "label": entry.label, "curves": curves, "buckets": buckets}
        per_video[entry.key] = means["lpips"]
        if "model_filled" in data:  # frames copied by construction: where the system's model drew
            out[entry.key]["model_drew"] = _model_drew(data, reference, mask)
        if "rollout_seconds" in data:
            out[entry.key]["rollout_seconds_per_video"] = float(np.mean(data["rollout_seconds"]))
        if "donor" in data:
            out[entry.key]["donors_differ_from_video"] = bool(
                all((row != n).all() for row, n in zip(data["donor"], numbers, strict=True))
            )
    out["_paired"] = paired_differences(entries, per_video)
    return out


def _model_drew(
    data: dict[str, np.ndarray], reference: dict[str, np.ndarray], mask: np.ndarray
) -> dict[str, Any]:
    """Where a system with copied frames showed its model's pixels: how often, and how close.

    Returns:
        ``fraction`` of all frames (and of the revisit frames) and the LPIPS ``{"mean", "sem", "n"}``
        over the videos of the per-video mean over those frames (videos without any left out).
    """
    filled = data["model_filled"].astype(bool)  # (N, T)
    return {
        "fraction": float(filled.mean()),
        "fraction_of_revisits": float(filled[mask].mean()) if mask.any() else None,
        "lpips": _stats(_masked_means(data["lpips"], filled)),
    }


def _bucket_means(
    values: np.ndarray, mask: np.ndarray, ranges: dict[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """Per-video means ``(N,)`` of ``(N, T)`` values in every bucket (revisits: NaN without any)."""
    out = {name: values[:, lo:hi].mean(axis=1) for name, (lo, hi) in ranges.items()}
    out["revisits"] = _masked_means(values, mask)
    return out


def _masked_means(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-video mean ``(N,)`` of ``(N, T)`` values over the masked frames (NaN where none is)."""
    counts = mask.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, (values * mask).sum(axis=1) / np.maximum(counts, 1), np.nan)


def paired_differences(
    entries: list[Entry], per_video: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, dict[str, float]]]:
    """LPIPS of the first system minus every other system and baseline, paired over the videos.

    Args:
        entries: the evaluation's entries.
        per_video: ``{entry key: {bucket: (N,) per-video mean LPIPS}}``.

    Returns:
        ``{other entry key: {bucket: {"mean", "sem", "n"}}}``; empty without a system.
    """
    systems = [e for e in entries if e.kind == "system" and e.key in per_video]
    if not systems:
        return {}
    first = per_video[systems[0].key]
    others = [e for e in entries if e.kind in ("system", "baseline", "lower-bound") and e.key in per_video]
    return {
        e.key: {b: _stats(first[b] - per_video[e.key][b]) for b in first}
        for e in others
        if e.key != systems[0].key
    }


def _pool(features: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``(N, T, D)`` -> ``(N * (hi - lo), D)`` features of frames ``[lo, hi)`` of every video."""
    part = features[:, lo:hi]
    return part.reshape(-1, part.shape[-1]).astype(np.float64)


def _pool_mask(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Features of the frames selected by a ``(N, T)`` mask, ``(M, D)``."""
    return features[mask].astype(np.float64)
