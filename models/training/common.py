"""Machinery shared by the training loops: optimisers, distributed setup, resumable run state, logs.

Run state is saved without pickles: tensors (model weights, optimiser state) as safetensors, the rest
(step, wall time, config) as JSON, all inside one directory that is replaced atomically.

:class:`TrainingLoop` drives the part of a loop that is the same for every trainer (lr schedule,
optimiser steps, stop signals, time limit, log rows, checkpoint cadence); the command-line flags behind
it are declared by :func:`add_optimiser_arguments` and :func:`add_run_arguments`.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from models.checkpoints import atomic_save_dir, load_weights

OPTIMIZERS = ("muon", "adamw")


# ---------------------------------------------------------------------------------------- optimiser
def split_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(muon, adamw)``: 2-D ``nn.Linear`` weights go to Muon, everything else to AdamW (method.md s9)."""
    muon_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear) and m.weight.ndim == 2}
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if id(p) in muon_ids], [p for p in params if id(p) not in muon_ids]


def initialise_from(
    model: nn.Module,
    source: nn.Module,
    checkpoint: str,
    flags: str,
    ignore: tuple[str, ...] = (),
    new_modules: tuple[str, ...] = (),
) -> None:
    """Copy a loaded checkpoint's weights into ``model`` if their architectures (``config``) agree.

    Args:
        model: the model to initialise (has a dataclass ``config``).
        source: the checkpoint's model (same kind).
        checkpoint: its name or path (for the error).
        flags: the command-line flags that set the architecture (for the error's fix).
        ignore: config fields allowed to differ (e.g. an attention pattern a fine-tune changes).
        new_modules: paths of ``model``'s submodules the checkpoint lacks (e.g. ``refine`` or
            ``decoder.4``); they keep their own initialisation, which must leave the model's function
            unchanged (a zeroed last layer, an adaLN-Zero block).

    Raises:
        ValueError: the architectures differ; names the fields and the flags to pass.
    """
    mine, theirs = asdict(model.config), asdict(source.config)
    for key in ignore:
        mine.pop(key), theirs.pop(key)
    if mine != theirs:
        diff = {k: (theirs[k], mine[k]) for k in mine if theirs[k] != mine[k]}
        raise ValueError(
            f"--init-from {checkpoint}: its architecture differs from the requested one (checkpoint vs "
            f"requested: {diff}); pass the {flags} it was trained with"
        )
    # Non-strict load, then one check of our own: only the declared new modules may be missing.
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    stray = [k for k in missing if not any(k.startswith(m + ".") for m in new_modules)] + list(unexpected)
    if stray:
        raise ValueError(f"--init-from {checkpoint}: weights do not match the model: {stray[:5]}")


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
    if optimizer not in OPTIMIZERS:
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
    optimizers: list[torch.optim.Optimizer],
    step: int,
    warmup: int,
    total: int = 0,
    cooldown: int = 0,
    extra_factor: float = 1.0,
) -> float:
    """Linear warm-up from ~0 over ``warmup`` steps, constant, then optionally a linear cool-down.

    Args:
        optimizers: their groups' ``base_lr`` is scaled.
        step: the step about to be taken (0-based).
        warmup: warm-up steps (0 = none).
        total: the run's total steps (needed for the cool-down).
        cooldown: the last ``cooldown`` steps decay linearly towards 0 (0 = constant to the end).
        extra_factor: a further multiplier (a resumed sitting's re-warm-up).

    Returns:
        The multiplier applied.
    """
    factor = extra_factor * (min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)
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

    def autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA; disabled elsewhere, so CPU runs stay in fp32."""
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.device.type == "cuda")


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
        # Leave the group before the interpreter tears down: a gloo group still alive at exit can abort
        # the process ("terminate called without an active exception") after a successful run.
        atexit.register(_leave_process_group)
    return Dist(rank, world, local, dev)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave_distributed(ctx: Dist) -> None:
    """End a torchrun run: wait for every rank, then leave the process group.

    Rank 0 may still evaluate or save when the others finish; leaving together means no rank tears
    gloo down while another still holds its connections.
    """
    if ctx.world > 1 and dist.is_initialized():
        dist.barrier()
        _leave_process_group()


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


# ---------------------------------------------------------------------------------------- loop driver
class LoopOptions(Protocol):
    """The run-control fields every training config has, read by :class:`TrainingLoop`.

    Their flags: :func:`add_optimiser_arguments`, :func:`add_run_arguments`, and each CLI's ``--steps``,
    ``--batch-size`` and ``--eval-every``.
    """

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    cooldown_steps: int
    rewarm_steps: int
    eval_every: int
    log_every: int
    checkpoint_every_minutes: float
    max_minutes: float | None


@dataclass(frozen=True)
class StepOutcome:
    """What the step just taken calls for.

    ``halt`` and ``save`` agree on every rank (so all ranks stop and save at the same step); ``log`` and
    ``evaluate`` can only be true on the main rank, the one that writes.
    """

    halt: bool  # SIGINT/SIGTERM or --max-minutes: save and leave the loop
    save: bool  # --checkpoint-every-minutes has passed since the last save
    log: bool  # a training row is due (every --log-every steps and at the last step)
    evaluate: bool  # a held-out evaluation is due (every --eval-every steps and at the last step)


@dataclass
class _Sitting:
    """What exists only while the loop runs (see :meth:`TrainingLoop.running`)."""

    stop: StopSignal
    bar: tqdm


class TrainingLoop:
    """The bookkeeping of a resumable training loop, the same for every trainer.

    The trainer draws its batch and computes its loss; this class sets the step's learning rate, steps
    the optimisers, counts steps and samples, turns signals and the time limit into a halt, and writes
    log rows and run states (``run_dir/checkpoint``, ``run_dir/log.csv``, ``run_dir/train_config.json``).
    Step, sample count and wall time are restored from ``state`` so a resumed run carries on where the
    saved one stopped. Typical use::

        loop = TrainingLoop(ctx, run_dir, model, optimizers, cfg, state, counter="samples", ...)
        loop.open_log(["lr", "loss"], asdict(cfg))
        with loop.running("train-x"):
            while loop.step < cfg.steps:
                loop.schedule_lr()
                loss = ...
                outcome = loop.take_step(loss)
                loop.end_step(outcome, {"loss": loss.item(), "lr": loop.lr} if outcome.log else {})
                if outcome.halt:
                    break
    """

    def __init__(
        self,
        ctx: Dist,
        run_dir: Path,
        model: nn.Module,
        optimizers: list[torch.optim.Optimizer],
        options: LoopOptions,
        state: dict[str, Any] | None,
        *,
        counter: str,
        run_info: dict[str, Any],
        data_name: str,
        counter_per_step_if_missing: int = 0,
    ) -> None:
        """Restore the progress of ``state`` (from :func:`load_run_state`; ``None`` for a fresh run).

        Args:
            ctx: the process group.
            run_dir: the run folder.
            model: the unwrapped model, saved in the run state.
            optimizers: its optimisers (``base_lr`` set by :func:`build_optimizers`).
            options: the run's config.
            state: the restored run state, or ``None``.
            counter: name of the samples-seen counter in ``trainer.json`` and ``log.csv``.
            run_info: further ``trainer.json`` entries (model config, run config, data identity...).
            data_name: what to check when the loss is non-finite (named in the error).
            counter_per_step_if_missing: for run states saved before the counter existed, the
                counter is taken to be this many per step.
        """
        self.ctx, self.run_dir, self.model, self.optimizers = ctx, Path(run_dir), model, optimizers
        self.options, self.counter, self.run_info, self.data_name = options, counter, run_info, data_name
        self.step: int = state["step"] if state else 0
        # Seen over all processes and sittings (the world size may change between sittings).
        self.seen: int = state.get(counter, self.step * counter_per_step_if_missing) if state else 0
        self.clock = Stopwatch(state["elapsed_s"] if state else 0.0)
        self._saved_step = self.step  # the restored step is on disk already
        self._rewarm_from: int | None = self.step if state else None  # first step of a resumed sitting
        self._lr_factor = 1.0
        self._log: CsvLog | None = None
        self._sitting: _Sitting | None = None
        self._last_save = time.monotonic()

    @property
    def lr(self) -> float:
        """The (AdamW) learning rate of the current step, as logged."""
        return self._lr_factor * self.options.lr

    def open_log(self, columns: list[str], config: dict[str, Any]) -> None:
        """On the main rank, start ``log.csv`` and write ``train_config.json``.

        Args:
            columns: the trainer's log columns; ``step``, ``time_s`` and the counter come first.
            config: the run's options, as JSON.
        """
        if not self.ctx.main:
            return
        header = ["step", "time_s", self.counter, *columns]
        self._log = CsvLog(self.run_dir / "log.csv", header, self.step)
        (self.run_dir / "train_config.json").write_text(json.dumps(config, indent=1) + "\n")

    @contextmanager
    def running(self, desc: str) -> Iterator[None]:
        """The loop's sitting: SIGINT/SIGTERM handling and the progress bar (labelled ``desc``).

        Installed only around the loop, so an interrupt while loading data still aborts at once. A
        sitting that leaves normally with every step taken saves the finished run state.
        """
        stop = StopSignal()
        self._last_save = time.monotonic()
        bar = tqdm(
            total=self.options.steps, initial=self.step, disable=not self.ctx.main, desc=desc, unit="step"
        )
        self._sitting = _Sitting(stop, bar)
        try:
            yield
            if self.step >= self.options.steps:
                self.checkpoint()
        finally:
            bar.close()
            stop.restore()
            self._sitting = None

    def schedule_lr(self) -> None:
        """Set the learning rates of the step about to be taken (warm-up, constant, cool-down).

        A resumed sitting with ``rewarm_steps > 0`` also ramps the rate up linearly over its first
        ``rewarm_steps`` steps: a run extended past a finished cool-down (a larger ``--steps``) would
        otherwise jump from ~0 back to the full rate in one step.
        """
        o = self.options
        rewarm = self._rewarm_from is not None and o.rewarm_steps > 0
        factor = min(1.0, (self.step - self._rewarm_from + 1) / o.rewarm_steps) if rewarm else 1.0
        self._lr_factor = set_lr(
            self.optimizers, self.step, o.warmup_steps, o.steps, o.cooldown_steps, extra_factor=factor
        )

    def take_step(self, loss: torch.Tensor) -> StepOutcome:
        """Back-propagate ``loss`` (a scalar, shape ``()``), step the optimisers and advance the counts.

        Raises:
            FloatingPointError: the loss is NaN or infinite (nothing is stepped).
        """
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss at step {self.step}; lower --lr or check the {self.data_name}"
            )
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in self.optimizers:
            opt.step()
        self.step += 1
        self.seen += self.options.batch_size * self.ctx.world
        self._current().bar.update(1)
        return self._outcome()

    def _outcome(self) -> StepOutcome:
        """Decide halt/save together over all ranks, then what the main rank logs and evaluates."""
        o = self.options
        out_of_time = o.max_minutes is not None and self.clock() >= o.max_minutes * 60
        due = time.monotonic() - self._last_save >= o.checkpoint_every_minutes * 60
        halt, save = any_rank([self._current().stop.requested or out_of_time, due], self.ctx)
        last = halt or self.step == o.steps
        main = self.ctx.main
        return StepOutcome(
            halt=halt,
            save=save,
            log=main and (self.step % o.log_every == 0 or last),
            evaluate=main and (self.step % o.eval_every == 0 or last),
        )

    def end_step(self, outcome: StepOutcome, row: dict[str, Any]) -> None:
        """Write ``row`` to the log (when not empty) and save the run state when due or halting."""
        if row and self._log is not None:
            self._log.write({"step": self.step, "time_s": self.clock(), self.counter: self.seen, **row})
        if outcome.save or outcome.halt:
            self.checkpoint()
            self._last_save = time.monotonic()

    def show(self, postfix: dict[str, str]) -> None:
        """Show ``postfix`` (e.g. the last evaluation) after the progress bar."""
        self._current().bar.set_postfix(postfix)

    def checkpoint(self) -> None:
        """Save the run state (main rank only), unless the current step is saved already."""
        if not self.ctx.main or self.step == self._saved_step:
            return
        self._saved_step = self.step
        info = {"step": self.step, self.counter: self.seen, "elapsed_s": self.clock(), **self.run_info}
        save_run_state(self.run_dir, self.model, self.optimizers, info)

    def _current(self) -> _Sitting:
        """The sitting of :meth:`running`; stepping outside it is a bug."""
        if self._sitting is None:
            raise RuntimeError("TrainingLoop steps must run inside `with loop.running(...)`")
        return self._sitting


# ---------------------------------------------------------------------------------------- command line
def add_optimiser_arguments(
    parser: argparse.ArgumentParser,
    *,
    lr_default: float,
    lr_help: str,
    warmup_default: int,
    cooldown_help: str = "linear lr decay to 0 over the last N of --steps (0 = off)",
) -> None:
    """Declare the optimiser and its lr schedule: ``--lr`` ... ``--cooldown-steps``.

    What differs between the trainers (defaults, and help that names them) is a parameter; ``--help``
    lists the flags in this order (``--lr``, ``--muon-lr``, ``--optimizer``, ``--weight-decay``,
    ``--warmup-steps``, ``--cooldown-steps``).

    Args:
        parser: the trainer's parser.
        lr_default: default of ``--lr``.
        lr_help: help of ``--lr`` (it states the default).
        warmup_default: default of ``--warmup-steps``.
        cooldown_help: help of ``--cooldown-steps``.
    """
    parser.add_argument("--lr", type=float, default=lr_default, help=lr_help)
    parser.add_argument("--muon-lr", type=float, default=None, help="Muon learning rate (default: --lr)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="muon", help="muon = Muon + AdamW")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=warmup_default,
        help=f"linear warm-up steps (default {warmup_default})",
    )
    parser.add_argument("--cooldown-steps", type=int, default=0, help=cooldown_help)
    parser.add_argument(
        "--rewarm-steps",
        type=int,
        default=0,
        help="when resuming, ramp the lr up linearly over the first N steps of the sitting (use it to "
        "extend a finished run with a larger --steps; 0 = off)",
    )


def add_run_arguments(parser: argparse.ArgumentParser, *, data_flag: str) -> None:
    """Declare ``--log-every`` ... ``--device``: logging, checkpoints, time limit, data cap, process.

    Args:
        parser: the trainer's parser.
        data_flag: the trainer's dataset flag (``--data``, ``--latents``), which ``--max-videos`` caps.
    """
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every-minutes", type=float, default=10.0)
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and checkpoint) after this wall time"
    )
    parser.add_argument(
        "--max-videos", type=int, default=None, help=f"use only the first N videos of {data_flag}"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def config_options(args: argparse.Namespace) -> dict[str, Any]:
    """Apply ``--threads`` and return the other options, the fields of the trainer's config.

    ``--threads`` is a setting of this process, not of the run, so it stays out of the saved config
    (a resumed run may use another thread count).
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    return {k: v for k, v in vars(args).items() if k != "threads"}
