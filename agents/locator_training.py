"""Data and training of the :class:`~models.landmark_locator.LandmarkLocator` (``train-landmark-locator``).

The locator reads the real context frames an imagined episode starts from, so it is trained on
exactly those: the walks that start `Loopcraft-Landmark-v0` / the world-model landmark envs
(:func:`millivid_env.loopcraft.task.walk_start`), every frame labelled from the true pose and the
world's landmarks (:func:`millivid_env.landmark_map.locator_targets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from millivid_env.landmark_map import (
    LandmarkMap,
    MapSettings,
    bearing_to,
    flat_pose,
    locator_targets,
    map_from_readings,
    map_from_truth,
)
from millivid_env.loopcraft.env import LoopcraftEnv
from millivid_env.loopcraft.landmarks import Landmark
from millivid_env.loopcraft.task import LandmarkTask, walk_start
from models.landmark_locator import LandmarkLocator, LocatorConfig
from models.warp.view import reckon

__all__ = ["LocatorData", "collect_walks", "evaluate_locator", "evaluate_maps", "train_locator"]


@dataclass
class LocatorData:
    """Labelled frames of context walks.

    Attributes:
        frames: uint8 ``(N, R, R, 3)``.
        present: bool ``(N, K)`` a landmark's centre lies in the bin.
        distance: float32 ``(N, K)`` its distance in blocks (0 where absent).
        walk: int64 ``(N,)`` which walk each frame belongs to.
        actions: int64 ``(N,)`` the action that led to each frame.
        poses: float32 ``(N, 5)`` true poses.
        world_seeds: int64 ``(W,)`` the world of each walk.
        landmarks: the landmarks of each walk's world.
    """

    frames: np.ndarray
    present: np.ndarray
    distance: np.ndarray
    walk: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    world_seeds: np.ndarray
    landmarks: list[tuple[Landmark, ...]]


def collect_walks(
    num_walks: int,
    seed: int,
    config: LocatorConfig,
    walk_frames: int = 85,
    task: LandmarkTask | None = None,
    progress: bool = True,
) -> LocatorData:
    """Walk ``num_walks`` episode starts of the landmark task and label every frame.

    Args:
        num_walks: walks (each in a fresh world drawn from ``seed``).
        seed: seed of the walks' generator.
        config: the locator's bins and range.
        walk_frames: frames per walk (the envs' context length).
        task: the task whose start rule the walks follow (default `LandmarkTask()`).
        progress: show a progress bar.
    """
    task = task or LandmarkTask()
    rng = np.random.default_rng(seed)
    env = LoopcraftEnv(resolution=config.resolution)
    frames, present, distance, walk, actions, poses, seeds, landmarks = [], [], [], [], [], [], [], []
    for w in tqdm(range(num_walks), desc="context walks", unit="walk", disable=not progress):
        start = walk_start(rng, env, walk_frames, accept=task.accepts_start)
        for pose in start.poses:
            p, d = locator_targets(env.world.landmarks, pose, config)
            present.append(p)
            distance.append(d)
        frames.append(start.frames)
        walk.append(np.full(len(start.frames), w))
        actions.append(start.actions)
        poses.append(start.poses)
        seeds.append(start.world_seed)
        landmarks.append(tuple(env.world.landmarks))
    env.close()
    return LocatorData(
        np.concatenate(frames),
        np.stack(present),
        np.stack(distance),
        np.concatenate(walk).astype(np.int64),
        np.concatenate(actions).astype(np.int64),
        np.concatenate(poses).astype(np.float32),
        np.array(seeds, dtype=np.int64),
        landmarks,
    )


def _loss(
    model: LandmarkLocator,
    frames: torch.Tensor,
    present: torch.Tensor,
    distance: torch.Tensor,
    pos_weight: float,
) -> torch.Tensor:
    """Bin classification (BCE) plus the log-distance error (L1) on the positive bins."""
    logits, log_distance = model(frames)
    weight = torch.where(present, pos_weight, 1.0)
    bce = F.binary_cross_entropy_with_logits(logits, present.float(), weight=weight)
    positives = present.sum().clamp(min=1)
    log_target = torch.log(distance.clamp(min=0.5))
    l1 = ((log_distance - log_target).abs() * present).sum() / positives
    return bce + l1


def train_locator(
    data: LocatorData,
    config: LocatorConfig,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> tuple[LandmarkLocator, list[float]]:
    """Train a locator on labelled frames (AdamW, cosine decay, random left-right flips).

    A flip mirrors the frame and its bins (bearing ``b`` becomes ``-b``), so the net sees both
    sides of every landmark equally.

    Returns:
        the trained locator (eval mode) and the training loss every 50 steps.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LandmarkLocator(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    rate = float(data.present.mean())
    pos_weight = math.sqrt((1 - rate) / max(rate, 1e-6))
    frames = torch.from_numpy(data.frames)
    present = torch.from_numpy(data.present)
    distance = torch.from_numpy(data.distance)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc="locator", unit="step", disable=not progress)
    for step in bar:
        index = torch.from_numpy(rng.integers(0, len(frames), batch_size))
        x = frames[index].permute(0, 3, 1, 2).float() / 255.0
        p, d = present[index], distance[index]
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        p = torch.where(flip[:, None], p.flip(-1), p)
        d = torch.where(flip[:, None], d.flip(-1), d)
        loss = _loss(model, x, p, d, pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            value = loss.item()
            losses.append(round(value, 4))
            bar.set_postfix(loss=f"{value:.3f}")
    model.eval()
    return model, losses


def evaluate_locator(
    model: LandmarkLocator, data: LocatorData, threshold: float = 0.5
) -> dict[str, float | int]:
    """Per-bin detection (precision, recall, F1) and distance error on the detected true bins."""
    probability, distance = model.locate(data.frames)
    called = probability >= threshold
    truth = data.present
    tp = int((called & truth).sum())
    precision = tp / max(int(called.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    hit = called & truth
    relative = np.abs(distance[hit] - data.distance[hit]) / data.distance[hit]
    absolute = np.abs(distance[hit] - data.distance[hit])
    return {
        "frames": len(data.frames),
        "positive_bins": int(truth.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "distance_median_abs_error": round(float(np.median(absolute)) if tp else math.nan, 3),
        "distance_median_rel_error": round(float(np.median(relative)) if tp else math.nan, 4),
    }


def _match(found: LandmarkMap, truth: LandmarkMap, within: float) -> tuple[int, int]:
    """(true landmarks with a mapped centre within ``within`` blocks, mapped centres near no true one)."""
    if not len(found) or not len(truth):
        return 0, len(found)
    gaps = np.hypot(*(found.centres[:, None, :] - truth.centres[None, :, :]).transpose(2, 0, 1))
    return int((gaps.min(0) <= within).sum()), int((gaps.min(1) > within).sum())


def evaluate_maps(
    model: LandmarkLocator, data: LocatorData, settings: MapSettings | None = None, within: float = 3.0
) -> dict[str, float | int]:
    """How the maps built from each walk's frames match the true landmarks (in dead-reckoned coordinates).

    The motion per action is the true Loopcraft one here (0.22 blocks, 10 degrees), so only the
    locator's errors are measured. A true landmark counts as seen when some frame of the walk has it
    in a bin within range; the map should find the seen ones.
    """
    settings = settings or MapSettings()
    motion = np.array([[0.22, 0.0], [0.0, -10.0], [0.0, 10.0]])
    found_seen = seen = false = mapped = 0
    errors: list[float] = []
    for w in np.unique(data.walk):
        rows = data.walk == w
        poses = reckon(motion, data.actions[rows])
        probability, distance = model.locate(data.frames[rows])
        found = map_from_readings(probability, distance, poses, model.config.bin_centres(), settings)
        landmarks = data.landmarks[int(w)]
        truth = map_from_truth(landmarks, data.poses[rows][-1], poses[-1])
        near = data.present[rows] & (data.distance[rows] <= settings.max_distance)
        seen_ids = _seen_landmarks(landmarks, data.poses[rows], near, model.config)
        seen_truth = LandmarkMap(truth.centres[seen_ids], truth.half_widths[seen_ids], truth.votes[seen_ids])
        hits, wrong = _match(found, seen_truth, within)
        found_seen += hits
        seen += len(seen_ids)
        false += _match(found, truth, within)[1]
        mapped += len(found)
        if len(found) and len(seen_truth):
            gaps = np.hypot(*(found.centres[:, None, :] - seen_truth.centres[None, :, :]).transpose(2, 0, 1))
            errors += [float(g) for g in gaps.min(0) if g <= within]
    return {
        "walks": int(len(np.unique(data.walk))),
        "seen_landmarks": seen,
        "found_seen": found_seen,
        "recall": round(found_seen / max(seen, 1), 4),
        "mapped": mapped,
        "false_landmarks": false,
        "precision": round(1 - false / max(mapped, 1), 4),
        "centre_median_error": round(float(np.median(errors)) if errors else math.nan, 3),
        "within_blocks": within,
    }


def _seen_landmarks(
    landmarks: tuple[Landmark, ...], poses: np.ndarray, near: np.ndarray, config: LocatorConfig
) -> list[int]:
    """Indices of the landmarks that lie in some frame's labelled bins (within range)."""
    seen: set[int] = set()
    for pose, bins in zip(poses, near, strict=True):
        for i, landmark in enumerate(landmarks):
            bearing, d = bearing_to(flat_pose(pose), np.array([landmark.x, landmark.z]))
            k = config.bin_of(bearing)
            if k is not None and bins[k] and d <= config.max_distance:
                seen.add(i)
    return sorted(seen)
