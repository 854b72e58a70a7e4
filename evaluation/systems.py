"""The systems an evaluation compares: one rollout strategy + its diffusion checkpoint + an autoencoder.

Default checkpoints are the bundled ``<layout>-<system>`` diffusion models (``loopcraft-64-millivid``,
``loopcraft-64-framepack``, ``loopcraft-64-full-resolution``) on the bundled autoencoder that decodes
generated frames (``models.defaults.simulator_autoencoder``: ``loopcraft-64-perceptual``).
Any of them can be replaced with ``--checkpoint-for SYSTEM=NAME_OR_DIR`` (a bundled name, a checkpoint
directory, a ``millivid train-diffusion --out`` run folder or a Hub repo id) and
``--autoencoder-for SYSTEM=NAME_OR_DIR``. Every problem is reported as :class:`SystemError_` with the
option to pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.protocol import Protocol
from models.defaults import simulator_autoencoder

if TYPE_CHECKING:
    from models.world_model import WorldModel

SYSTEMS = ("millivid", "framepack", "full-resolution")
#: The short-memory control: the millivid system with its memory cut to the level-0/level-1 window.
SHORT_MEMORY = "millivid-short-memory"
#: Controls: ``name -> strategy`` (a control evaluates its strategy's checkpoint with a change).
CONTROLS = {SHORT_MEMORY: "millivid"}
#: What a system's copying view may remember (``EvaluationSettings.view_memory``, ``--view-memory``).
VIEW_MEMORIES = ("shared", "layout")
#: Everything ``--systems`` accepts.
SYSTEM_CHOICES = (*SYSTEMS, *CONTROLS)


class SystemError_(ValueError):  # noqa: N801  (SystemError is a builtin)
    """A system's checkpoint is missing, broken or does not fit the protocol; the message says the fix."""


@dataclass(frozen=True)
class SystemSpec:
    """One compared system.

    Attributes:
        name: system name, also the rollout strategy (``millivid``, ``framepack``, ``full-resolution``).
        checkpoint: diffusion checkpoint as given (bundled name, directory, run folder, Hub id).
        autoencoder: autoencoder checkpoint as given.
        default_checkpoint: True when ``checkpoint`` is the bundled default (not passed by the user).
        memory_window: frames of the past the system may read (None: all its strategy reads); the
            short-memory control's level-0/level-1 window (:func:`short_memory_window`).
    """

    name: str
    checkpoint: str
    autoencoder: str
    default_checkpoint: bool = False
    memory_window: int | None = None

    @property
    def strategy(self) -> str:
        """The rollout strategy preset of the system (a control's: the system it controls)."""
        return CONTROLS.get(self.name, self.name)


def short_memory_window(layout: str) -> int:
    """Frames the millivid strategy reads at levels 0 and 1 (``loopcraft-64``: 1 + 4 = 5)."""
    from models.rollout.streaming import context_depths
    from models.strategies import get_strategy

    return context_depths(get_strategy(layout, "millivid"))[1]


def layout_reach(layout: str, strategy: str) -> tuple[int, int]:
    """Frames back from a generated frame that the strategy's token layout reads, fewest and most.

    A chunk's steps read back to ``reach`` frames before the chunk's first generated frame, so its
    later frames reach further back (:func:`models.rollout.copied.earliest_read_frame`).
    ``loopcraft-64``: millivid (85, 148), framepack (64, 64), full-resolution (2, 3).
    """
    from models.strategies import get_strategy

    s = get_strategy(layout, strategy)
    return s.reach, s.reach + s.new_frames - 1


def default_checkpoint(system: str, protocol: Protocol) -> str:
    """Bundled diffusion checkpoint name of a system for a protocol, e.g. ``loopcraft-64-millivid``."""
    return f"{protocol.layout}-{CONTROLS.get(system, system)}"


def parse_assignments(values: Iterable[str] | None, option: str) -> dict[str, str]:
    """``["millivid=DIR", ...]`` -> ``{"millivid": "DIR"}``.

    Raises:
        SystemError_: a value without ``=``, an unknown system, or a system given twice.
    """
    out: dict[str, str] = {}
    for value in values or ():
        system, sep, target = value.partition("=")
        if not sep or not target:
            raise SystemError_(f"{option} {value!r}: expected SYSTEM=NAME_OR_DIR, e.g. millivid=runs/dit")
        if system not in SYSTEM_CHOICES:
            raise SystemError_(
                f"{option} {value!r}: unknown system {system!r}; valid: {', '.join(SYSTEM_CHOICES)}"
            )
        if system in out:
            raise SystemError_(f"{option} names {system!r} twice")
        out[system] = target
    return out


def resolve_systems(
    names: Sequence[str],
    protocol: Protocol,
    checkpoints: dict[str, str] | None = None,
    autoencoders: dict[str, str] | None = None,
    autoencoder: str | None = None,
) -> list[SystemSpec]:
    """The compared systems in the given order.

    Args:
        names: system names (each of :data:`SYSTEMS` at most once).
        protocol: decides the default checkpoint names.
        checkpoints: diffusion checkpoint per system (default: bundled ``<layout>-<system>``).
        autoencoders: autoencoder per system (default: ``autoencoder``).
        autoencoder: the shared autoencoder (default: the bundled ``<layout>``).

    Raises:
        SystemError_: unknown or repeated systems, or overrides for systems that are not evaluated.
    """
    if not names:
        raise SystemError_(f"pass at least one system to --systems ({' '.join(SYSTEMS)})")
    unknown = [n for n in names if n not in SYSTEM_CHOICES]
    if unknown or len(set(names)) != len(names):
        raise SystemError_(f"--systems {' '.join(names)}: each of {', '.join(SYSTEM_CHOICES)} at most once")
    checkpoints, autoencoders = dict(checkpoints or {}), dict(autoencoders or {})
    extra = sorted((set(checkpoints) | set(autoencoders)) - set(names))
    if extra:
        raise SystemError_(
            f"checkpoints given for systems that are not evaluated: {extra}; add them to --systems"
        )
    shared = autoencoder or simulator_autoencoder(protocol.layout)
    # A control evaluates the checkpoint of the system it controls unless given its own.
    given = {name: checkpoints.get(name, checkpoints.get(CONTROLS.get(name, name))) for name in names}
    return [
        SystemSpec(
            name=name,
            checkpoint=given[name] or default_checkpoint(name, protocol),
            autoencoder=autoencoders.get(name, shared),
            default_checkpoint=given[name] is None,
            memory_window=short_memory_window(protocol.layout) if name == SHORT_MEMORY else None,
        )
        for name in names
    ]


def diffusion_dir(checkpoint: str) -> str:
    """A train-diffusion run folder stands for its ``checkpoint/model``; anything else is unchanged."""
    model = Path(checkpoint) / "checkpoint" / "model"
    return str(model) if (model / "config.json").is_file() else checkpoint


def _fix(spec: SystemSpec) -> str:
    return (
        f"pass --checkpoint-for {spec.name}=DIR (a diffusion checkpoint directory with config.json and "
        f"model.safetensors, or a `millivid train-diffusion --out` run folder trained with --strategy "
        f"{spec.name})"
    )


def resolve_files(spec: SystemSpec) -> dict[str, Any]:
    """Resolved directories and weight digests of a system's two checkpoints (for the config fingerprint).

    Raises:
        SystemError_: a checkpoint cannot be found (the message names the option to pass).
    """
    from models.checkpoints import CheckpointError, resolve_checkpoint

    out: dict[str, Any] = {}
    for role, given in (("diffusion", diffusion_dir(spec.checkpoint)), ("autoencoder", spec.autoencoder)):
        try:
            directory = resolve_checkpoint(given)
        except CheckpointError as error:
            if role == "diffusion":
                what = "the bundled default" if spec.default_checkpoint else "--checkpoint-for"
                fix = _fix(spec)
            else:
                what, fix = "the autoencoder", f"pass --autoencoder DIR or --autoencoder-for {spec.name}=DIR"
            raise SystemError_(
                f"system {spec.name!r}: {role} checkpoint {given!r} ({what}) not found: {error}. {fix}"
            ) from error
        weights = directory / "model.safetensors"
        if not weights.is_file():
            raise SystemError_(f"system {spec.name!r}: {directory} has no model.safetensors. {_fix(spec)}")
        out[role] = {
            "given": given,
            "dir": str(directory),
            "sha256": file_sha256(weights),
            "layout": _layout(directory),
        }
    out["trained_strategy"] = _trained_strategy(Path(out["diffusion"]["dir"]))
    return out


def _layout(directory: Path) -> str | None:
    """The token layout recorded in a checkpoint's config.json (None when unreadable)."""
    try:
        return json.loads((directory / "config.json").read_text()).get("layout")
    except (OSError, ValueError, AttributeError):
        return None


def check_layouts(spec: SystemSpec, files: dict[str, Any], protocol: Protocol) -> None:
    """Refuse checkpoints whose recorded token layout is not the protocol's (before any loading).

    Raises:
        SystemError_: naming the checkpoint, its layout and what to pass instead.
    """
    for role in ("diffusion", "autoencoder"):
        layout = files[role].get("layout")
        if layout is not None and layout != protocol.layout:
            option = f"--checkpoint-for {spec.name}=DIR" if role == "diffusion" else "--autoencoder DIR"
            raise SystemError_(
                f"system {spec.name!r}: {role} checkpoint {files[role]['given']!r} is for layout {layout!r} "
                f"but protocol {protocol.name!r} needs {protocol.layout!r}; pass {option} with a "
                f"{protocol.layout} checkpoint, or choose --protocol {layout}"
            )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _trained_strategy(directory: Path) -> str | None:
    """The ``--strategy`` a train-diffusion checkpoint was trained with (None when not recorded)."""
    state = directory.parent / "trainer.json"
    if not state.is_file():
        return None
    try:
        return json.loads(state.read_text()).get("strategy")
    except ValueError:
        return None


def check_strategy(spec: SystemSpec, files: dict[str, Any], allow_mismatch: bool = False) -> None:
    """Refuse a checkpoint trained for another strategy than the system it is evaluated as.

    Raises:
        SystemError_: the run state records another strategy and ``allow_mismatch`` is False.
    """
    trained = files.get("trained_strategy")
    if trained and trained != spec.strategy and not allow_mismatch:
        raise SystemError_(
            f"system {spec.name!r}: checkpoint {files['diffusion']['dir']} was trained with --strategy "
            f"{trained}; {_fix(spec)}, or pass --allow-strategy-mismatch to evaluate it anyway"
        )


def load_system(
    spec: SystemSpec, files: dict[str, Any], protocol: Protocol, device: str = "cpu"
) -> WorldModel:
    """Load a system's world model and check that it fits the protocol.

    Raises:
        SystemError_: the checkpoint does not load, its two halves do not match, or its token layout
            is not the protocol's.
    """
    from models.checkpoints import CheckpointError
    from models.world_model import WorldModel

    try:
        model = WorldModel.load(files["autoencoder"]["dir"], files["diffusion"]["dir"], device, cache=True)
    except (CheckpointError, ValueError, OSError) as error:
        raise SystemError_(
            f"system {spec.name!r}: cannot load its checkpoints: {error}. {_fix(spec)}"
        ) from error
    if model.layout.name != protocol.layout:
        raise SystemError_(
            f"system {spec.name!r}: checkpoint {spec.checkpoint!r} is for layout {model.layout.name!r} "
            f"({model.layout.image_size} px) but protocol {protocol.name!r} needs {protocol.layout!r}; "
            f"{_fix(spec)} or choose --protocol {model.layout.name}"
        )
    return model
