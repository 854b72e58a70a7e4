"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed).

- ``plots/<metric>.png``: each paired metric against the rollout frame index (mean over test videos,
  running mean over ``max(1, T // 48)`` frames), every system as a solid line, both bounds dashed, the
  held-frame baseline dotted black, the oracle look-up dash-dotted purple, bucket edges dotted;
  ``plots/fd.png`` the Fréchet distance per 16-frame window;
  ``plots/overview.png`` PSNR, SSIM and LPIPS side by side.
- ``strips/revisits.png``: rows of frames at revisits (a rollout frame whose true pose is close to a
  context pose): the context frame it revisits, the true frame, the autoencoded truth and every
  system's frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evaluation.protocol import Protocol  # noqa: E402
from evaluation.store import ORACLE_LOOKUP  # noqa: E402

_BOUND_STYLE = {
    "upper-bound": ("--", "#2ca02c"),
    "lower-bound": ("--", "#7f7f7f"),
    "baseline": (":", "#000000"),
}
#: Entries drawn in their own style (else by kind): the second baseline must not look like the first.
_ENTRY_STYLE = {ORACLE_LOOKUP: ("-.", "#9467bd")}
_SYSTEM_COLOURS = {
    "millivid": "#d62728",
    "framepack": "#1f77b4",
    "full-resolution": "#ff7f0e",
    # Its own colour: left to matplotlib's cycle it would take framepack's blue.
    "millivid-short-memory": "#8c564b",
}


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _draw_metric(
    ax: Any, results: dict[str, Any], metric: str, label: str, protocol: Protocol, better: str
) -> None:
    t = protocol.horizon
    window = max(1, t // 48)
    for key, entry in results.items():
        if key.startswith("_") or metric not in entry["curves"]:
            continue
        values = np.asarray(entry["curves"][metric], dtype=np.float64)
        if metric == "fd":
            x = np.arange(len(values)) * 16 + min(16, t) / 2 + 1
        else:
            x, values = np.arange(1, t + 1), _smooth(values, window)
        style, colour = _ENTRY_STYLE.get(key) or _BOUND_STYLE.get(
            entry["kind"], ("-", _SYSTEM_COLOURS.get(key))
        )
        ax.plot(x, values, style, color=colour, label=entry["label"], linewidth=1.6)
    for lo, _ in list(protocol.bucket_edges().values())[1:]:
        ax.axvline(lo + 0.5, color="#bbbbbb", linestyle=":", linewidth=1)
    ax.set_xlabel(f"rollout frame (after {protocol.context} context frames)")
    ax.set_ylabel(f"{label} ({better})")
    ax.set_xlim(1, t)
    ax.grid(alpha=0.3)


def plot_curves(
    results: dict[str, Any], metrics: dict[str, dict[str, Any]], protocol: Protocol, out: Path
) -> list[Path]:
    """One PNG per metric plus an overview; returns the paths written (under ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, meta in metrics.items():
        better = "higher is better" if meta["higher_is_better"] else "lower is better"
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        _draw_metric(ax, results, metric, meta["label"], protocol, better)
        ax.set_title(f"{meta['label']} vs rollout length - {protocol.name}, {meta.get('videos', '')} videos")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    paired = [m for m in ("psnr", "ssim", "lpips") if m in metrics]
    fig, axes = plt.subplots(1, len(paired), figsize=(5 * len(paired), 3.8), dpi=110)
    for ax, metric in zip(np.atleast_1d(axes), paired, strict=True):
        meta = metrics[metric]
        _draw_metric(
            ax, results, metric, meta["label"], protocol, "higher" if meta["higher_is_better"] else "lower"
        )
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"Revisit consistency - {protocol.name}")
    fig.tight_layout()
    path = out / "overview.png"
    fig.savefig(path)
    plt.close(fig)
    return [*written, path]


def plot_strips(rows: list[dict[str, Any]], columns: list[str], out: Path, context: int) -> Path | None:
    """A grid of revisit frames.

    Args:
        rows: per revisit ``{"video", "index", "context_index", "frames": {column: uint8 (R, R, 3)}}``.
        columns: column names in order (``"context"``, ``"ground truth"``, bounds, systems).
        out: folder of the PNG.
        context: ``C`` (to print video frame numbers).

    Returns:
        The PNG path, or None when there is no revisit to show.
    """
    if not rows:
        return None
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.6 * len(columns), 1.8 * len(rows)), dpi=110)
    axes = np.atleast_2d(axes)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(row["frames"][name], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
        axes[r, 0].set_ylabel(
            f"video {row['video']}\nframe {context + row['index']}\nrevisits frame {row['context_index']}",
            fontsize=7,
        )
    fig.tight_layout()
    path = out / "revisits.png"
    fig.savefig(path)
    plt.close(fig)
    return path
