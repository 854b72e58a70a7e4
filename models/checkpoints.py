"""Checkpoint save/load: bundled names, local directories and Hub repo ids, with clear errors.

A checkpoint is a directory in the ``PyTorchModelHubMixin`` format: ``config.json`` (the model's
dataclass config) + ``model.safetensors`` (+ an optional ``README.md`` model card). Weights are read
with safetensors only (never a pickle) and loaded strictly, so a config that does not match its
weights fails with the file named instead of silently leaving layers untrained.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound=nn.Module)


class CheckpointError(ValueError):
    """A checkpoint cannot be found or does not load; the message names the file and the fix."""


def bundled_names() -> list[str]:
    """Names of the checkpoints shipped inside the package (``models/bundled/<name>/``)."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_checkpoint(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """Find the directory of a checkpoint.

    Resolution order: an existing local directory; a bundled name; a Hub repo id (``owner/name``,
    downloaded or taken from the cache; with ``HF_HUB_OFFLINE=1`` only the cache is used).

    Raises:
        CheckpointError: unknown name (lists the bundled names), or a repo id that cannot be fetched.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if text in bundled_names():
        return BUNDLED_DIR / text
    if _looks_like_repo_id(text) and not path.exists():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(
                snapshot_download(text, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "*.md"])
            )
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else str(error)
            raise CheckpointError(
                f"cannot fetch Hub repo {text!r} ({why}). To load a checkpoint without the network, pass "
                f"a local directory holding {CONFIG_NAME} and {WEIGHTS_NAME} (e.g. one written by "
                f"`save_checkpoint` or downloaded earlier with `huggingface-cli download {text} "
                f"--local-dir DIR`), or a bundled name: {', '.join(bundled_names()) or '(none)'}"
            ) from error
    raise CheckpointError(
        f"unknown checkpoint {text!r}: not a local directory, not a bundled name and not a Hub repo id "
        f"(owner/name). Bundled checkpoints: {', '.join(bundled_names()) or '(none)'}"
    )


def read_config(directory: Path, config_cls: type) -> object:
    """Parse ``directory/config.json`` into ``config_cls`` (a dataclass), with the file named on error."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {directory} is not a checkpoint directory")
    try:
        data = json.loads(path.read_text())
        data = data.get("config", data) if isinstance(data.get("config"), dict) else data
        known = {f.name for f in fields(config_cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        return config_cls(**data)
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid {config_cls.__name__} ({error})") from error


def load_weights(model: M, weights_path: Path) -> M:
    """Load a safetensors file strictly into ``model``.

    Raises:
        CheckpointError: the file is missing, corrupted, or its tensors do not match the model
            built from the config (missing/unexpected names or wrong shapes).
    """
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} not found")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{weights_path} is corrupted or not a safetensors file ({error})") from error
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {names[:5]}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if names
        )
        raise CheckpointError(
            f"{weights_path} does not match the config in {weights_path.parent / CONFIG_NAME} ({detail})"
        )
    model.load_state_dict(state, strict=True)
    return model


def atomic_save_dir(write: callable, out_dir: str | os.PathLike[str]) -> Path:
    """Write a directory atomically: ``write(tmp)`` fills a temp dir that then replaces ``out_dir``.

    A crash leaves at most a hidden ``.<name>.tmp-*`` directory (never a partial ``out_dir``); an
    existing ``out_dir`` is swapped out only after the new one is complete.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_checkpoint(model: nn.Module, out_dir: str | os.PathLike[str], model_card: str | None = None) -> Path:
    """Save a mixin model (``config.json`` + ``model.safetensors`` [+ ``README.md``]) atomically."""

    def write(tmp: Path) -> None:
        if model_card is not None:
            (tmp / "README.md").write_text(model_card)
        model.save_pretrained(tmp)  # type: ignore[attr-defined]
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())

    return atomic_save_dir(write, out_dir)


def load_checkpoint(
    model_cls: Callable[[Any], M],
    config_cls: type,
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    revision: str | None = None,
) -> M:
    """Load a mixin model in eval mode: its config, then its weights strictly (safetensors only).

    Shared by the models' ``from_pretrained`` overrides: unlike the mixin's own loader, it accepts
    bundled names and raises :class:`CheckpointError` naming the file when config and weights differ.

    Args:
        model_cls: the model class, built as ``model_cls(config)``.
        config_cls: its config dataclass (``config.json``).
        name_or_path: bundled name, local directory, or Hub repo id.
        device: where to put the model.
        revision: Hub revision (branch, tag or commit) for repo ids.

    Raises:
        CheckpointError: unknown name, missing or corrupted files, or config and weights that do not match.
    """
    directory = resolve_checkpoint(name_or_path, revision=revision)
    model = load_weights(model_cls(read_config(directory, config_cls)), directory / WEIGHTS_NAME)
    return model.to(device).eval()


def load_autoencoder(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", revision: str | None = None
):
    """Load a :class:`~models.autoencoder.HierarchicalAutoencoder` in eval mode.

    Args:
        name_or_path: bundled name (e.g. ``loopcraft-64``), local directory, or Hub repo id.
        device: where to put the model.
        revision: Hub revision (branch, tag or commit) for repo ids.
    """
    from models.autoencoder import AutoencoderConfig, HierarchicalAutoencoder

    return load_checkpoint(HierarchicalAutoencoder, AutoencoderConfig, name_or_path, device, revision)
