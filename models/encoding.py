"""``millivid encode``: a video dataset -> a latent dataset (format in :mod:`models.latents`).

Resumable: a video whose sidecar exists and names the same source checksum is skipped, so re-running
the same command after an interruption finishes the job. Shardable with ``--worker-id/--num-workers``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models import latents as fmt
from models.checkpoints import WEIGHTS_NAME, load_autoencoder, resolve_checkpoint
from models.data import dataset_config, load_video, video_indices


def _header(checkpoint: str, model: Any, source: Path) -> dict[str, Any]:
    lay = model.layout
    weights = resolve_checkpoint(checkpoint) / WEIGHTS_NAME
    return {
        "format": fmt.FORMAT_NAME,
        "format_version": fmt.FORMAT_VERSION,
        "layout": lay.name,
        "num_levels": lay.num_levels,
        "tokens_per_level": list(lay.tokens_per_level),
        "level_offsets": [lay.level_slice(k).start for k in range(lay.num_levels)],
        "latent_channels": model.config.latent_channels,
        "dtype": "float16",
        "autoencoder": {"checkpoint": str(checkpoint), "weights_sha256": fmt.file_sha256(weights)},
        "autoencoder_config": dict(vars(model.config)),
        "source_config": dataset_config(source),
    }


def encode_dataset(
    checkpoint: str,
    data: str | Path,
    out: str | Path,
    batch_size: int = 256,
    worker_id: int = 0,
    num_workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, int]:
    """Encode every finished video of ``data`` into ``out``.

    Returns:
        ``{"encoded": n, "skipped": m}``.

    Raises:
        fmt.LatentDataError: ``out`` already holds latents of another autoencoder or dataset.
    """
    model = load_autoencoder(checkpoint, device=device)
    data, out = Path(data), Path(out)
    header = _header(checkpoint, model, data)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    existing = out / "latents.json"
    if existing.is_file():
        old = fmt.json.loads(existing.read_text())
        for key in ("autoencoder", "source_config", "layout"):
            if key == "autoencoder":
                same = old[key]["weights_sha256"] == header[key]["weights_sha256"]
            else:
                same = old.get(key) == header[key]
            if not same:
                raise fmt.LatentDataError(
                    f"{existing}: {out} holds latents of another {key.replace('_', ' ')}; use a new --out"
                )
    else:
        fmt.write_json(existing, header)
    mine = [i for i in video_indices(data) if i % num_workers == worker_id]
    counts = {"encoded": 0, "skipped": 0}
    for index in tqdm(mine, desc="encode", unit="video", disable=not progress):
        video = load_video(data, index)  # verifies the source checksum
        sidecar = fmt.sidecar_path(out, index)
        if sidecar.is_file() and fmt.json.loads(sidecar.read_text()).get("source_sha256") == video.sha256:
            counts["skipped"] += 1
            continue
        with torch.no_grad():
            parts = [
                model.encode(chunk).cpu()
                for chunk in np.array_split(video.frames, max(1, -(-len(video.frames) // batch_size)))
            ]
        latents = torch.cat(parts).numpy().astype(np.float16)
        if not np.isfinite(latents).all():
            raise FloatingPointError(f"non-finite latents for video {index}; the checkpoint is broken")
        arrays = {"latents": latents, "actions": video.actions, "poses": video.poses}
        fmt.write_video(out, index, arrays, video.sha256)
        counts["encoded"] += 1
    finished = sorted(int(p.stem) for p in (out / "videos").glob("*.json") if p.stem.isdigit())
    fmt.write_json(
        out / "index.json",
        {"videos": finished, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options of ``millivid encode``."""
    parser.add_argument("--checkpoint", default="loopcraft-64", help="bundled name, directory or Hub repo id")
    parser.add_argument("--data", required=True, help="video dataset folder (millivid generate)")
    parser.add_argument("--out", required=True, help="latent dataset folder (resumes if present)")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per encoder call")
    parser.add_argument("--worker-id", type=int, default=0, help="this shard (0 .. num-workers-1)")
    parser.add_argument("--num-workers", type=int, default=1, help="shards: videos with i %% N == worker-id")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    """Run ``millivid encode``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 <= args.worker_id < args.num_workers:
        raise SystemExit(f"--worker-id must be in [0, {args.num_workers})")
    counts = encode_dataset(
        args.checkpoint, args.data, args.out, args.batch_size, args.worker_id, args.num_workers, args.device
    )
    print(f"encoded {counts['encoded']} videos, skipped {counts['skipped']} already encoded -> {args.out}")
    return 0
