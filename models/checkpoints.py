"""Checkpoint save/load: bundled names, local directories and Hub repo ids, with clear errors.

A checkpoint is a directory in the ``PyTorchModelHubMixin`` format: ``config.json`` (the model's
dataclass config) + ``model.safetensors`` (+ an optional ``README.md`` model card). Weights are read
with safetensors only (never a pickle) and loaded strictly, so a config that does not match its
weights fails with the file named instead of silently leaving layers untrained.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
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

#: Kinds of checkpoint told apart by their config's fields, each with its config dataclass (imported
#: on demand). A ``config.json`` with a ``"kind"`` field (``"action-warp"``) names its kind itself.
KIND_CONFIGS: dict[str, str] = {
    "autoencoder": "models.autoencoder:AutoencoderConfig",
    "diffusion": "models.diffusion.config:DiTConfig",
    "reward-head": "models.reward_head:RewardHeadConfig",
}

M = TypeVar("M", bound=nn.Module)


class CheckpointError(ValueError):
    """A checkpoint cannot be found or does not load; the message names the file and the fix."""


def bundled_names(kind: str | None = None) -> list[str]:
    """Names of the checkpoints shipped in the package (``models/bundled/<name>/``), of one kind if given."""
    if not BUNDLED_DIR.is_dir():
        return []
    names = sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_NAME).is_file())
    return [n for n in names if kind is None or directory_kind(BUNDLED_DIR / n) == kind]


def _config_fields(kind: str) -> set[str]:
    module, _, name = KIND_CONFIGS[kind].partition(":")
    return {f.name for f in fields(getattr(importlib.import_module(module), name))}


def _class_kind(config_cls: type) -> str | None:
    """The kind a config dataclass describes: its ``kind`` field's default, or its entry in KIND_CONFIGS."""
    for field in fields(config_cls):
        if field.name == "kind" and isinstance(field.default, str):
            return field.default
    return {v: k for k, v in KIND_CONFIGS.items()}.get(f"{config_cls.__module__}:{config_cls.__name__}")


def config_kind(data: Mapping[str, Any]) -> str | None:
    """The kind of checkpoint (``"autoencoder"``, ``"diffusion"``, ...) a parsed ``config.json`` describes.

    Its own ``"kind"`` field if it has one; else the one kind of :data:`KIND_CONFIGS` whose config
    dataclass has all of its fields; None when no kind or several fit.
    """
    if isinstance(data.get("config"), Mapping):
        data = data["config"]
    if isinstance(data.get("kind"), str):
        return data["kind"]
    fits = [kind for kind in KIND_CONFIGS if data and set(data) <= _config_fields(kind)]
    return fits[0] if len(fits) == 1 else None


def directory_kind(directory: str | os.PathLike[str]) -> str | None:
    """:func:`config_kind` of ``directory/config.json``; None if it is missing or not a JSON object."""
    try:
        data = json.loads((Path(directory) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return config_kind(data) if isinstance(data, dict) else None


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def wrong_kind_message(
    argument: str, given: object, found: str, kind: str, takes: Mapping[str, str] | None = None
) -> str:
    """``argument='given' is an autoencoder checkpoint, not a diffusion one; pass it as ...``."""
    where = (takes or {}).get(found)
    move = f"pass it as {where}=..., and " if where and where != argument else ""
    bundled = bundled_names(kind)
    examples = f" (bundled: {', '.join(repr(n) for n in bundled)})" if bundled else ""
    found_a, kind_a = _article(found), _article(kind)
    return (
        f"{argument}={str(given)!r} is {found_a} {found} checkpoint, not {kind_a} {kind} one; "
        f"{move}give {argument}= {kind_a} {kind} checkpoint{examples}"
    )


def require_kind(
    name_or_path: str | os.PathLike[str],
    kind: str,
    argument: str,
    takes: Mapping[str, str] | None = None,
    revision: str | None = None,
) -> Path:
    """Resolve a checkpoint given as ``argument=`` and check that it is of ``kind``.

    Args:
        name_or_path: bundled name, local directory, or Hub repo id.
        kind: the kind the argument takes (``"autoencoder"``, ``"diffusion"``, ...).
        argument: the argument's name in the error message (``checkpoint``, ``autoencoder``, ...).
        takes: which argument of the same call takes each other kind (e.g. ``{"autoencoder":
            "autoencoder"}``), so that the message says where a checkpoint of the wrong kind goes.
        revision: Hub revision for repo ids.

    Returns:
        the checkpoint's directory. A config whose kind cannot be told is let through (its loader
        then reports what is wrong with it).

    Raises:
        CheckpointError: the checkpoint cannot be found, or is of another kind (the message names
            its kind, the argument that takes it, and bundled checkpoints of the right kind).
    """
    directory = resolve_checkpoint(name_or_path, revision=revision)
    found = directory_kind(directory)
    if found is not None and found != kind:
        raise CheckpointError(wrong_kind_message(argument, name_or_path, found, kind, takes))
    return directory


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
    data = None
    try:
        data = json.loads(path.read_text())
        data = data.get("config", data) if isinstance(data.get("config"), dict) else data
        known = {f.name for f in fields(config_cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        return config_cls(**data)
    except (ValueError, TypeError, AttributeError) as error:
        found, wanted = config_kind(data) if isinstance(data, dict) else None, _class_kind(config_cls)
        if found is not None and wanted is not None and found != wanted:
            raise CheckpointError(
                f"{directory} is {_article(found)} {found} checkpoint, not {_article(wanted)} {wanted} one "
                f"(this loader reads a {config_cls.__name__}); pass {_article(wanted)} {wanted} checkpoint"
            ) from error
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


def save_checkpoint(
    model: nn.Module,
    out_dir: str | os.PathLike[str],
    model_card: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Save a mixin model (``config.json`` + ``model.safetensors`` [+ ``README.md``]) atomically.

    ``files`` maps further file names to their text (e.g. ``{"metrics.json": ...}``), written in the
    same atomic step so the card and its measured numbers never disagree with the weights.
    """

    def write(tmp: Path) -> None:
        if model_card is not None:
            (tmp / "README.md").write_text(model_card)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
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
