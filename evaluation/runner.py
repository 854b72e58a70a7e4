"""Run the revisit-consistency protocol: roll out every system on every test loop, score every frame.

For each test video (``C`` context + ``T`` future frames of a Loopcraft test loop) and each *entry*:

- a **system** (``millivid``, ``framepack``, ``full-resolution``): open-loop rollout of ``T`` frames
  from the ground-truth context with the video's ground-truth actions (sampling seed ``seed`` for
  every video, so a video's frames do not depend on the batch it is rolled out in);
- ``autoencoded-<ae>`` (**upper bound**): the true future frames through the system's autoencoder
  (encode, decode level 0), once per distinct autoencoder;
- ``random-frames`` (**lower bound**): for every rollout frame ``i`` the raw frame ``C + i`` of a
  random *other* test video (drawn per video from a seeded generator; realistic but unrelated);
- ``last-context-frame`` (**baseline**): the last true context frame, held for all ``T`` frames (the
  trivial predictor of video prediction: a world model that does not beat it has not learnt motion);
- ``oracle-lookup`` (**baseline**): for every rollout frame, the context frame whose *true* pose is
  nearest to that frame's true pose (:func:`evaluation.baselines.nearest_pose_frames`; the index stored
  as ``context_index``): how far a model is from a perfect look-up of what it was shown;
- ``ground-truth``: the true future frames' features (reference of the Fréchet distance) and the
  revisit frames chosen for the report's strips.

Per frame the entry gets PSNR, SSIM and LPIPS against the true frame plus Fréchet features, written to
``DIR/per_video/<entry>/<video>.npz`` (:mod:`evaluation.store`). Videos are rolled out ``batch_size``
at a time; finished files are skipped, so a killed run continues where it stopped.

Work goes in rounds: round ``r`` runs every entry on its ``r``-th batch of pending videos (in a fresh
run, the same videos for every entry), so the true frames' LPIPS features (one AlexNet pass) are
computed once per video and round and shared by all entries, within ``metric_cache_mb``; the Fréchet
features come from the same pass when the network is the same. Results do not depend on the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from evaluation.baselines import held_frames, oracle_lookup_frames
from evaluation.metric_setup import build_metrics
from evaluation.metrics import PreparedTarget
from evaluation.protocol import OPEN_LOOP_STEPS, Protocol
from evaluation.revisits import RevisitTolerance, context_revisits, spread
from evaluation.store import (
    GROUND_TRUTH,
    LAST_CONTEXT_FRAME,
    ORACLE_LOOKUP,
    RANDOM_FRAMES,
    ResultStore,
    autoencoded_key,
)
from evaluation.systems import (
    VIEW_MEMORIES,
    SystemError_,
    SystemSpec,
    check_layouts,
    check_strategy,
    file_sha256,
    layout_reach,
    load_system,
    resolve_files,
)
from evaluation.testset import TestSet
from models.rollout.copied import imagine_copied
from models.rollout.open_loop import imagine

#: Seed stream of the random-frame bound's donor choice (independent of the sampling seed's use).
_DONOR_STREAM = 7
#: Display name of the oracle look-up baseline.
ORACLE_LABEL = "context frame nearest to the true pose (oracle look-up)"


@dataclass
class EvaluationSettings:
    """Everything besides the protocol, systems and test set that shapes the results.

    Attributes:
        steps: sampler evaluations per rollout step.
        seed: sampling seed (every video uses a generator seeded with it) and donor seed of the
            random-frame bound.
        batch_size: videos rolled out together.
        device: ``auto``, ``cpu`` or ``cuda``.
        lpips: LPIPS variant choice (see :mod:`evaluation.metric_setup`).
        alexnet_weights: AlexNet trunk file for standard LPIPS-Alex / FD-Alex.
        frechet: Fréchet feature space choice.
        strips: revisit frames per video kept for the report's strips.
        strip_tolerance: what counts as a revisit of a context pose for the strips.
        allow_strategy_mismatch: evaluate checkpoints trained for another strategy.
        context_noise: noise time the context latents are presented at (0 = clean, the paper).
        guidance_scale: classifier-free guidance scale of the sampler (1.0 = none, the paper).
        metric_cache_mb: memory for the true frames' LPIPS features of the videos in progress (reused
            by every entry; what does not fit is recomputed). Not part of the config: results do not
            depend on it.
        warp: copy frames by construction for every system (an action-warp checkpoint: bundled name,
            directory or Hub id; see :mod:`models.rollout.copied`); None: show the model's frames.
        view: with a warp, :class:`models.warp.view.ViewSettings` field overrides shared by all systems.
        fill_level: with a warp, the generated level decoded where the model's pixels are needed.
        view_memory: with a warp, what each system's view remembers: ``shared`` (the view settings'
            capacity of context frames for every system, the env's rule) or ``layout`` (only the frames
            its token layout's steps read for the frame shown, :func:`evaluation.systems.layout_reach`,
            so that the memory is bounded by the same token budget as the model's).
    """

    steps: int = OPEN_LOOP_STEPS
    seed: int = 0
    batch_size: int = 4
    device: str = "auto"
    lpips: str = "auto"
    alexnet_weights: str | None = None
    frechet: str = "st-alex"
    strips: int = 3
    strip_tolerance: RevisitTolerance = field(default_factory=lambda: RevisitTolerance(1.0, 15.0, 32))
    allow_strategy_mismatch: bool = False
    context_noise: float = 0.0
    guidance_scale: float = 1.0
    metric_cache_mb: int = 1024
    warp: str | None = None
    view: dict[str, Any] | None = None
    fill_level: int = 0
    view_memory: str = "shared"


@dataclass
class Entry:
    """One row of the results: a system, a bound or the ground-truth reference.

    Attributes:
        key: folder name under ``per_video``.
        kind: ``system``, ``upper-bound``, ``lower-bound``, ``baseline`` or ``reference``.
        label: display name in tables and plots.
        spec: the system (systems only; for ``upper-bound`` the first system using that autoencoder).
    """

    key: str
    kind: str
    label: str
    spec: SystemSpec | None = None


def plan_entries(systems: list[SystemSpec], files: dict[str, dict[str, Any]]) -> list[Entry]:
    """The entries: systems, one autoencoded bound per autoencoder, bounds, baselines, the reference.

    The bound without a model is the random frames; the baselines are the held last context frame and
    the oracle look-up (the context frame nearest to each true pose).
    """
    entries = [Entry(s.name, "system", s.name, s) for s in systems]
    seen: dict[str, Entry] = {}
    for spec in systems:
        digest = files[spec.name]["autoencoder"]["sha256"]
        if digest not in seen:
            seen[digest] = Entry(autoencoded_key(digest), "upper-bound", "autoencoded GT", spec)
    if len(seen) > 1:
        for entry in seen.values():
            entry.label = f"autoencoded GT ({entry.spec.autoencoder})"  # type: ignore[union-attr]
    entries += list(seen.values())
    entries.append(Entry(RANDOM_FRAMES, "lower-bound", "random frames"))
    entries.append(Entry(LAST_CONTEXT_FRAME, "baseline", "last context frame held"))
    entries.append(Entry(ORACLE_LOOKUP, "baseline", ORACLE_LABEL))
    entries.append(Entry(GROUND_TRUTH, "reference", "ground truth"))
    return entries


def strip_plan(
    poses: np.ndarray, context: int, count: int, tolerance: RevisitTolerance
) -> dict[str, np.ndarray]:
    """Revisit frames of a test video: a mask over rollout frames and ``count`` picks for the strips.

    Args:
        poses: float ``(C + T, 5)``.
        context: ``C``.
        count: strip frames to pick (evenly over the revisits).
        tolerance: revisit tolerance against context poses.

    Returns:
        ``revisit_mask`` bool ``(T,)``, ``strip_index`` int64 ``(K,)`` rollout frame indices and
        ``strip_context`` int64 ``(K,)`` the context frame each one revisits (``K <= count``).
    """
    found = context_revisits(poses, context, tolerance)
    mask = np.zeros(len(poses) - context, dtype=bool)
    mask[[i for i, _ in found]] = True
    picks = spread(found, count)
    return {
        "revisit_mask": mask,
        "strip_index": np.array([i for i, _ in picks], dtype=np.int64),
        "strip_context": np.array([m.index for _, m in picks], dtype=np.int64),
    }


def donors(number: int, position: int, videos: int, horizon: int, seed: int) -> np.ndarray:
    """Positions of the other test videos the random-frame bound takes each rollout frame from.

    Args:
        number: dataset number of the video (seeds the choice, so it does not depend on the run).
        position: its position in the test set (never chosen).
        videos: test set size ``N >= 2``.
        horizon: ``T``.
        seed: the evaluation seed.

    Returns:
        int64 ``(T,)`` positions in ``[0, N)``, all different from ``position``.
    """
    rng = np.random.default_rng([seed, _DONOR_STREAM, number])
    picks = rng.integers(0, videos - 1, horizon)
    return picks + (picks >= position)


class Evaluation:
    """One evaluation run over a test set (build, then :meth:`run`).

    Args:
        protocol: the protocol.
        systems: compared systems.
        test_set: the test loops (checked against the protocol).
        out: the output folder.
        settings: sampling and metric settings.
        progress: show a progress bar.

    Raises:
        evaluation.systems.SystemError_: a checkpoint is missing or does not fit.
        evaluation.metric_setup.MetricWeightsError: metric weights are missing.
        evaluation.store.ConfigMismatchError: ``out`` holds another config's results.
    """

    def __init__(
        self,
        protocol: Protocol,
        systems: list[SystemSpec],
        test_set: TestSet,
        out: str,
        settings: EvaluationSettings | None = None,
        progress: bool = True,
    ) -> None:
        from models.world_model import resolve_device

        self.protocol, self.systems, self.test_set = protocol, systems, test_set
        self.settings = settings or EvaluationSettings()
        self.progress = progress
        self.device = resolve_device(self.settings.device)
        self.files = {spec.name: resolve_files(spec) for spec in systems}
        for spec in systems:
            check_layouts(spec, self.files[spec.name], protocol)
            check_strategy(spec, self.files[spec.name], self.settings.allow_strategy_mismatch)
        self.suite, self.features = build_metrics(
            self.settings.lpips, self.settings.alexnet_weights, self.settings.frechet, self.device
        )
        self.entries = plan_entries(systems, self.files)
        self.warp, self.view = self._load_warp()
        self.store = ResultStore(out, self.config())
        self.seconds: dict[str, float] = {}
        #: Prepared true future frames of the videos of the current round, by test-set position.
        self._truth: dict[int, PreparedTarget] = {}

    def config(self) -> dict[str, Any]:
        """The config whose fingerprint guards the output folder (everything that changes results)."""
        s = self.settings
        tol = s.strip_tolerance
        return {
            "protocol": self.protocol.to_json(),
            "test_set": self.test_set.describe(),
            "systems": {
                spec.name: {
                    "checkpoint": spec.checkpoint,
                    "autoencoder": spec.autoencoder,
                    "files": self.files[spec.name],
                    # Only for controls, so that earlier result folders keep their fingerprint.
                    **({"memory_window": spec.memory_window} if spec.memory_window is not None else {}),
                }
                for spec in self.systems
            },
            **({"copying": self._copying_config()} if self.warp is not None else {}),
            # context_noise only when set, so that earlier result folders keep their fingerprint.
            "sampling": {
                "steps": s.steps,
                "seed": s.seed,
                "guidance_scale": s.guidance_scale,
                **({"context_noise": s.context_noise} if s.context_noise else {}),
            },
            "metrics": {
                "lpips": self.suite.labels["lpips"],
                "frechet": self.features.name if self.features is not None else None,
            },
            "strips": {
                "count": s.strips,
                "max_distance": tol.max_distance,
                "max_yaw": tol.max_yaw,
                "min_gap": tol.min_gap,
            },
        }

    def _load_warp(self) -> tuple[Any, Any]:
        """The shared action warp and view settings (``(None, None)`` without ``settings.warp``).

        Raises:
            evaluation.systems.SystemError_: the warp cannot be loaded, or bad view settings / level.
        """
        s = self.settings
        if s.view_memory not in VIEW_MEMORIES:
            choices = ", ".join(VIEW_MEMORIES)
            raise SystemError_(f"--view-memory must be one of {choices}, got {s.view_memory!r}")
        if s.warp is None:
            if s.view is not None:
                raise SystemError_("--view weighs the copied frames of a warp: pass --warp too")
            if s.view_memory != "shared":
                raise SystemError_("--view-memory bounds the copying view's memory: pass --warp too")
            return None, None
        from models.checkpoints import CheckpointError, require_kind
        from models.warp import load_warp
        from models.warp.view import ViewSettings

        try:
            require_kind(s.warp, "action-warp", "--warp", {})
            warp = load_warp(s.warp, device=self.device)
        except (CheckpointError, ValueError, OSError) as error:
            raise SystemError_(
                f"--warp {s.warp!r} cannot be loaded: {error}. Pass a bundled action warp (e.g. "
                "loopcraft-64-warp) or a `millivid fit-warp --out` directory"
            ) from error
        if warp.config.resolution != self.protocol.resolution:
            raise SystemError_(
                f"--warp {s.warp!r} was fitted on {warp.config.resolution}px frames but protocol "
                f"{self.protocol.name!r} is {self.protocol.resolution}px; fit one (millivid fit-warp)"
            )
        fields = set(ViewSettings.__dataclass_fields__)
        unknown = sorted(set(s.view or {}) - fields)
        if unknown:
            raise SystemError_(f"--view: unknown settings {unknown}; valid: {sorted(fields)}")
        levels = [0] if any(spec.strategy == "full-resolution" for spec in self.systems) else range(4)
        if s.fill_level not in levels:
            raise SystemError_(
                f"--fill-level {s.fill_level}: full-resolution generates level 0 only; pass --fill-level 0"
                if s.fill_level in range(4)
                else f"--fill-level must lie in [0, 3], got {s.fill_level}"
            )
        return warp, ViewSettings(**(s.view or {}))

    def _copying_config(self) -> dict[str, Any]:
        """What shapes the copied frames: the warp's weights, the view settings, the fill level."""
        from dataclasses import asdict

        from models.checkpoints import resolve_checkpoint

        weights = resolve_checkpoint(self.settings.warp) / "model.safetensors"
        view = asdict(self.view)
        if view["draft_t"] == 1.0:  # the default: earlier result folders keep their fingerprint
            del view["draft_t"]
        return {
            "warp": self.settings.warp,
            "warp_sha256": file_sha256(weights),
            "view": view,
            "fill_level": self.settings.fill_level,
            # Only when not the default, so that earlier result folders keep their fingerprint.
            **({"view_memory": self.settings.view_memory} if self.settings.view_memory != "shared" else {}),
        }

    def pending(self) -> dict[str, list[int]]:
        """``{entry key: positions of the test videos it still lacks}``."""
        return {
            e.key: [k for k, n in enumerate(self.test_set.numbers) if not self.store.done(e.key, n)]
            for e in self.entries
        }

    def run(self, on_saved: Callable[[str, int], None] | None = None) -> dict[str, list[int]]:
        """Compute every missing (entry, video) result; returns what was computed.

        Args:
            on_saved: called as ``on_saved(entry_key, video_number)`` after each file is written.
        """
        todo = self.pending()
        total = sum(len(v) for v in todo.values())
        done: dict[str, list[int]] = {key: [] for key in todo}
        bar = tqdm(
            total=total, desc=f"evaluate {self.protocol.name}", unit="result", disable=not self.progress
        )

        def saved(key: str, k: int, arrays: dict[str, np.ndarray]) -> None:
            number = self.test_set.numbers[k]
            self.store.save(key, number, arrays)
            done[key].append(number)
            bar.update(1)
            if on_saved is not None:
                on_saved(key, number)

        # Round r: every entry's r-th batch of pending videos (the same videos for all entries in a
        # fresh run), so the true frames' metric features are shared by all entries of a round.
        b = max(1, self.settings.batch_size)
        batches = {key: [p[i : i + b] for i in range(0, len(p), b)] for key, p in todo.items()}
        rounds = max((len(v) for v in batches.values()), default=0)
        seconds = {key: 0.0 for key in todo}
        try:
            for r in range(rounds):
                self._truth.clear()
                for entry in self.entries:
                    if r >= len(batches[entry.key]):
                        continue
                    positions = batches[entry.key][r]
                    bar.set_postfix_str(entry.key)
                    start = time.perf_counter()
                    if entry.kind == "system":
                        self._run_system(entry, positions, saved)
                    elif entry.kind == "upper-bound":
                        self._run_autoencoded(entry, positions, saved)
                    elif entry.kind == "lower-bound":
                        self._run_random(entry, positions, saved)
                    elif entry.key == ORACLE_LOOKUP:
                        self._run_oracle_lookup(entry, positions, saved)
                    elif entry.kind == "baseline":
                        self._run_held_frame(entry, positions, saved)
                    else:
                        self._run_reference(entry, positions, saved)
                    seconds[entry.key] += time.perf_counter() - start
                    self.seconds[entry.key] = seconds[entry.key]
        finally:
            self._truth.clear()
            bar.close()
        return done

    # ------------------------------------------------------------------ entries
    def _strip(self, k: int) -> dict[str, np.ndarray]:
        video = self.test_set.video(k)
        s = self.settings
        return strip_plan(video.poses, self.protocol.context, s.strips, s.strip_tolerance)

    def _prepared_truth(self, k: int) -> PreparedTarget:
        """Video ``k``'s true future prepared for scoring: computed once per round, within the budget."""
        if k not in self._truth:
            used = sum(t.nbytes for t in self._truth.values())
            budget = max(0, self.settings.metric_cache_mb * 2**20 - used)
            truth = self.test_set.video(k).frames[self.protocol.context :]
            self._truth[k] = self.suite.prepare(truth, self.features, max_bytes=budget)
        return self._truth[k]

    def _score(self, k: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Per-frame metrics of ``frames`` uint8 ``(T, R, R, 3)`` against video ``k``'s true future.

        Returns:
            ``psnr``, ``ssim``, ``lpips`` float32 ``(T,)``, ``features`` float32 ``(T, 256)`` (with a
            Fréchet feature space) and ``strip_frames`` uint8 ``(K, R, R, 3)``.
        """
        c = self.protocol.context
        truth = self.test_set.video(k).frames[c:]
        if frames.shape != truth.shape or frames.dtype != np.uint8:
            raise ValueError(
                f"generated frames are {frames.dtype}{frames.shape}, expected uint8{truth.shape}"
            )
        scored = self.suite.score(frames, self._prepared_truth(k), self.features)
        values = {name: v.numpy().astype(np.float32) for name, v in scored.items()}
        values["strip_frames"] = frames[self._strip(k)["strip_index"]]
        return values

    def _run_system(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        spec = entry.spec
        assert spec is not None
        world = load_system(spec, self.files[spec.name], self.protocol, str(self.device))
        c, b = self.protocol.context, max(1, self.settings.batch_size)
        for first in range(0, len(positions), b):
            batch = positions[first : first + b]
            videos = [self.test_set.video(k) for k in batch]
            frames = np.stack([v.frames[:c] for v in videos])
            actions = np.stack([v.actions for v in videos])
            generators = [torch.Generator().manual_seed(self.settings.seed) for _ in batch]
            start = time.perf_counter()
            if self.warp is None:
                generated = imagine(
                    world, frames, actions[:, :c], actions[:, c:], spec.strategy, self.settings.steps,
                    generators, context_t=self.settings.context_noise,
                    guidance_scale=self.settings.guidance_scale, context_window=spec.memory_window,
                )  # fmt: skip
                filled = None
            else:
                rollout = imagine_copied(
                    world, self.warp, frames, actions[:, :c], actions[:, c:], spec.strategy,
                    self.settings.steps, generators, view=self._view_of(spec),
                    fill_level=self.settings.fill_level, context_window=spec.memory_window,
                    layout_memory=self.settings.view_memory == "layout",
                    guidance_scale=self.settings.guidance_scale, context_t=self.settings.context_noise,
                )  # fmt: skip
                generated, filled = rollout.frames, rollout.filled
            seconds = (time.perf_counter() - start) / len(batch)
            for j, (k, out) in enumerate(zip(batch, generated, strict=True)):
                extra = {} if filled is None else {"model_filled": filled[j]}
                saved(entry.key, k, {**self._score(k, out), "rollout_seconds": np.float64(seconds), **extra})

    def _view_of(self, spec: SystemSpec) -> Any:
        """The view settings of a system: the shared ones, the memory cut for the short-memory control.

        With ``view_memory="layout"`` the rollout also bounds the memory by the layout
        (``imagine_copied``'s ``layout_memory``).
        """
        from dataclasses import replace

        if spec.memory_window is None:
            return self.view
        return replace(self.view, capacity=min(self.view.capacity, spec.memory_window))

    def memory_description(self, spec: SystemSpec) -> str:
        """What a system's copying view may remember, in words for the report."""
        view = self._view_of(spec)
        if spec.memory_window is not None:
            return f"the last {view.capacity} frames"
        if self.settings.view_memory == "layout":
            fewest, most = layout_reach(self.protocol.layout, spec.strategy)
            return f"{fewest} frames back" if fewest == most else f"{fewest}-{most} frames back"
        return f"up to {view.capacity} context frames"

    def _run_autoencoded(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        spec = entry.spec
        assert spec is not None
        world = load_system(spec, self.files[spec.name], self.protocol, str(self.device))
        c = self.protocol.context
        for k in positions:
            truth = self.test_set.video(k).frames[c:]
            parts = [
                world.decode_frames(world.encode_frames(p), 0)
                for p in np.array_split(truth, -(-len(truth) // 64))
            ]
            saved(entry.key, k, self._score(k, np.concatenate(parts)))

    def _run_random(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        n, t = len(self.test_set), self.protocol.horizon
        for k in positions:
            number = self.test_set.numbers[k]
            source = donors(number, k, n, t, self.settings.seed)
            frames = np.empty_like(self.test_set.video(k).frames[self.protocol.context :])
            for d in np.unique(source):
                where = np.flatnonzero(source == d)
                frames[where] = self.test_set.rollout_frames(int(d), where)
            numbers = np.asarray(self.test_set.numbers, dtype=np.int64)[source]
            saved(entry.key, k, {**self._score(k, frames), "donor": numbers})

    def _run_held_frame(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        for k in positions:
            frames = held_frames(self.test_set.video(k).frames, self.protocol.context)
            saved(entry.key, k, self._score(k, frames))

    def _run_oracle_lookup(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        for k in positions:
            video = self.test_set.video(k)
            frames, index = oracle_lookup_frames(video.frames, video.poses, self.protocol.context)
            saved(entry.key, k, {**self._score(k, frames), "context_index": index})

    def _run_reference(self, entry: Entry, positions: list[int], saved: Callable) -> None:
        c = self.protocol.context
        for k in positions:
            video = self.test_set.video(k)
            plan = self._strip(k)
            arrays: dict[str, np.ndarray] = dict(plan)
            arrays["strip_frames"] = video.frames[c + plan["strip_index"]]
            arrays["strip_context_frames"] = video.frames[plan["strip_context"]]
            if self.features is not None:
                # From the scoring pass over the truth when there was one (the same numbers).
                prepared = self._truth.get(k)
                pooled = prepared.pooled if prepared is not None else None
                if pooled is None:
                    pooled = self.features(video.frames[c:])
                arrays["features"] = pooled.cpu().numpy().astype(np.float32)
            saved(entry.key, k, arrays)
