"""Machinery shared by the training loops: optimisers, distributed setup, resumable run state, logs.

Run state is saved without pickles: tensors (model weights, optimiser state) as safetensors, the rest
(step, wall time, config) as JSON, all inside one directory that is replaced atomically.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from models.checkpoints import atomic_save_dir, load_weights


# ---------------------------------------------------------------------------------------- optimiser
def split_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(muon, adamw)``: 2-D ``nn.Linear`` weights go to Muon, everything else to AdamW (method.md s9)."""
    muon_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear) and m.weight.ndim == 2}
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if id(p) in muon_ids], [p for p in params if id(p) not in muon_ids]


def build_optimizers(
    model: nn.Module,
    lr: float,
    muon_lr: float | None = None,
    weight_decay: float = 0.01,
    optimizer: str = "muon",
) -> list[torch.optim.Optimizer]:
    """Muon (``match_rms_adamw`` lr scaling, so one lr suits both) + AdamW, or AdamW alone.

    Args:
        model: the model (unwrapped).
        lr: AdamW learning rate.
        muon_lr: Muon learning rate (default ``lr``).
        weight_decay: decoupled weight decay of both.
        optimizer: ``muon`` (Muon + AdamW, method.md section 9) or ``adamw`` (AdamW for everything).
    """
    if optimizer not in ("muon", "adamw"):
        raise ValueError(f"optimizer must be 'muon' or 'adamw', got {optimizer!r}")
    muon, adamw = split_params(model)
    if optimizer == "adamw":
        muon, adamw = [], muon + adamw
    optimizers: list[torch.optim.Optimizer] = []
    if muon:
        optimizers.append(
            torch.optim.Muon(
                muon, lr=muon_lr or lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"
            )
        )
    if adamw:
        optimizers.append(torch.optim.AdamW(adamw, lr=lr, weight_decay=weight_decay))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def set_lr(
    optimizers: list[torch.optim.Optimizer], step: int, warmup: int, total: int = 0, cooldown: int = 0
) -> float:
    """Linear warm-up from ~0 over ``warmup`` steps, constant, then optionally a linear cool-down.

    Args:
        optimizers: their groups' ``base_lr`` is scaled.
        step: the step about to be taken (0-based).
        warmup: warm-up steps (0 = none).
        total: the run's total steps (needed for the cool-down).
        cooldown: the last ``cooldown`` steps decay linearly towards 0 (0 = constant to the end).

    Returns:
        The multiplier applied.
    """
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if cooldown > 0 and total > 0:
        factor *= min(1.0, max(0.0, (total - step) / cooldown))
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * factor
    return factor


def optimizer_tensors(optimizers: list[torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
    """All per-parameter optimiser state as flat ``opt{i}.{param}.{key}`` tensors."""
    flat = {}
    for i, opt in enumerate(optimizers):
        for index, state in opt.state_dict()["state"].items():
            for key, value in state.items():
                flat[f"opt{i}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return flat


def load_optimizer_tensors(optimizers: list[torch.optim.Optimizer], flat: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors`; hyper-parameters come from the freshly built optimisers."""
    for i, opt in enumerate(optimizers):
        state: dict[int, dict[str, torch.Tensor]] = {}
        prefix = f"opt{i}."
        for name, value in flat.items():
            if name.startswith(prefix):
                index, key = name[len(prefix) :].split(".", 1)
                state.setdefault(int(index), {})[key] = value
        current = opt.state_dict()
        opt.load_state_dict({"state": state, "param_groups": current["param_groups"]})


# ---------------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    """Process-group facts: ``rank``, ``world`` size, ``device``; rank 0 writes files."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """True on the process that logs and writes."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, NCCL on CUDA)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def any_rank(flags: list[bool], ctx: Dist) -> list[bool]:
    """Logical OR of boolean flags over all ranks (so every rank stops/saves at the same step)."""
    if ctx.world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag checked between steps (the loop then saves and exits)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        """Reinstall the previous handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------- run state
STATE_DIR = "checkpoint"


def save_run_state(
    run_dir: Path, model: nn.Module, optimizers: list[torch.optim.Optimizer], info: dict[str, Any]
) -> Path:
    """Atomically write ``run_dir/checkpoint``: ``model/`` (mixin format), optimiser tensors, JSON info."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")  # type: ignore[attr-defined]
        save_file(optimizer_tensors(optimizers), str(tmp / "optimizer.safetensors"))
        (tmp / "trainer.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        for name in ("model/model.safetensors", "optimizer.safetensors", "trainer.json"):
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())

    return atomic_save_dir(write, Path(run_dir) / STATE_DIR)


def load_run_state(
    run_dir: Path, model: nn.Module, optimizers: list[torch.optim.Optimizer]
) -> dict[str, Any] | None:
    """Restore model and optimisers from ``run_dir/checkpoint``; ``None`` when there is none."""
    state_dir = Path(run_dir) / STATE_DIR
    if not (state_dir / "trainer.json").is_file():
        return None
    load_weights(model, state_dir / "model" / "model.safetensors")
    load_optimizer_tensors(optimizers, load_file(str(state_dir / "optimizer.safetensors")))
    return json.loads((state_dir / "trainer.json").read_text())


class CsvLog:
    """Append-only CSV log that drops rows past the resumed step (they were never checkpointed)."""

    def __init__(self, path: Path, columns: list[str], resume_step: int) -> None:
        self.path, self.columns = Path(path), columns
        rows = []
        if self.path.is_file() and resume_step > 0:
            with open(self.path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in columns} for r in rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty)."""
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


class Stopwatch:
    """Wall time accumulated over sittings (restored from the run state on resume)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset, self.start = offset, time.monotonic()

    def __call__(self) -> float:
        """Seconds trained so far, all sittings together."""
        return self.offset + time.monotonic() - self.start
