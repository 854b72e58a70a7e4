"""The reach-the-landmark reward in imagination, from a map of the landmarks seen in the context.

A reward head on the imagined frame cannot tell that a landmark was reached: close up, the imagined
frames are the furthest from the truth (docs/results/landmark-agents-v4). So the reward is judged
by construction instead, the way the shown frames are copied by construction:

1. at reset, a :class:`~models.landmark_locator.LandmarkLocator` reads every real context frame and
   says in which directions landmarks stand and how far away;
2. each reading is placed in the episode's dead-reckoned coordinates (the motion the action warp
   fitted per action, :func:`models.warp.view.reckon`), and the readings of all frames are
   merged into a :class:`LandmarkMap` of landmark centres with their votes;
3. every step moves the stream's dead-reckoned pose by its action, and the task is judged on the
   distance from that pose to the nearest mapped footprint (success within the task's radius;
   shaping on the change of that distance).

``locator="truth"`` builds the map from the world's true landmarks instead (a diagnostic upper bound:
what a perfect locator would give, with the same dead reckoning).

Geometry: a pose is ``(x, z, yaw degrees)``; yaw 0 faces +z, the forward action moves along
``(-sin yaw, cos yaw)`` and a right turn adds yaw, so a bearing is positive to the right
(:func:`millivid_env.loopcraft.task.steer_to_landmark` uses the same convention).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from millivid_env.loopcraft.landmarks import Landmark
from millivid_env.loopcraft.task import LandmarkTask
from millivid_env.loopcraft.world import World
from models.landmark_locator import LocatorConfig, load_landmark_locator
from models.warp.view import move_pose, reckon

__all__ = [
    "LandmarkMap",
    "LandmarkMapReward",
    "MapSettings",
    "bearing_to",
    "flat_pose",
    "heading",
    "locator_targets",
    "map_from_readings",
    "map_from_truth",
]

#: Half-width (blocks) given to a mapped landmark's footprint: the footprint of a radius-2 landmark.
DEFAULT_HALF_WIDTH = 2.5


def heading(yaw_deg: float) -> np.ndarray:
    """float64 ``(2,)``: the unit (x, z) direction of the forward action at ``yaw_deg``."""
    yaw = math.radians(yaw_deg)
    return np.array([-math.sin(yaw), math.cos(yaw)])


def bearing_to(pose: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """Bearing (degrees, right positive, in ``[-180, 180)``) and distance (blocks) of ``point`` from ``pose``.

    Args:
        pose: float ``(3,)`` (x, z, yaw degrees).
        point: float ``(2,)`` (x, z).
    """
    v = np.asarray(point, dtype=np.float64) - np.asarray(pose[:2], dtype=np.float64)
    forward, right = heading(float(pose[2])), heading(float(pose[2]) + 90.0)
    bearing = math.degrees(math.atan2(float(v @ right), float(v @ forward)))
    return bearing, float(math.hypot(v[0], v[1]))


def flat_pose(pose5: np.ndarray) -> np.ndarray:
    """A Loopcraft pose ``(x, y, z, yaw, pitch)`` as ``(x, z, yaw)``."""
    return np.array([pose5[0], pose5[2], pose5[3]], dtype=np.float64)


def locator_targets(
    landmarks: Sequence[Landmark], pose: np.ndarray, config: LocatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """What a :class:`~models.landmark_locator.LandmarkLocator` should read from the frame at ``pose``.

    A bin is positive when a landmark's centre within ``config.max_distance`` blocks lies in its
    bearings; its distance is that centre's (the nearest one when two share a bin).

    Args:
        landmarks: the true world's landmarks.
        pose: float ``(5,)`` Loopcraft pose (x, y, z, yaw, pitch).
        config: the locator's bins and range.

    Returns:
        present bool ``(bearing_bins,)`` and distance float32 ``(bearing_bins,)`` (0 where absent).
    """
    present = np.zeros(config.bearing_bins, dtype=np.bool_)
    distance = np.zeros(config.bearing_bins, dtype=np.float32)
    flat = flat_pose(pose)
    for landmark in landmarks:
        bearing, d = bearing_to(flat, np.array([landmark.x, landmark.z]))
        k = config.bin_of(bearing)
        if k is None or d > config.max_distance or (present[k] and distance[k] <= d):
            continue
        present[k], distance[k] = True, d
    return present, distance


@dataclass(frozen=True)
class MapSettings:
    """How locator readings are merged into a :class:`LandmarkMap`.

    Attributes:
        min_probability: a bin's reading counts when its probability is at least this.
        merge_distance: a reading within this many blocks of a mapped centre votes for it (else it
            starts a new one).
        min_votes: a centre is kept when its readings' probabilities sum to at least this.
        max_distance: readings further away than this many blocks are ignored (far is vague).
        half_width: half-width in blocks of a mapped landmark's footprint.
    """

    min_probability: float = 0.5
    merge_distance: float = 4.0
    min_votes: float = 3.0
    max_distance: float = 30.0
    half_width: float = DEFAULT_HALF_WIDTH

    def __post_init__(self) -> None:
        if not 0.0 < self.min_probability <= 1.0:
            raise ValueError(f"min_probability must lie in (0, 1], got {self.min_probability!r}")
        if self.merge_distance <= 0 or self.min_votes < 0 or self.max_distance <= 0 or self.half_width < 0:
            raise ValueError("merge_distance and max_distance must be > 0, min_votes and half_width >= 0")


@dataclass
class LandmarkMap:
    """Landmark centres in an episode's dead-reckoned coordinates.

    Attributes:
        centres: float64 ``(N, 2)`` (x, z) per landmark.
        half_widths: float64 ``(N,)`` half-width of each square footprint (blocks).
        votes: float64 ``(N,)`` summed reading probabilities behind each centre (truth: 1 each).
    """

    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    half_widths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    votes: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.centres)

    def distance(self, x: float, z: float) -> float:
        """Horizontal distance from ``(x, z)`` to the nearest footprint (0 inside; inf for an empty map)."""
        if not len(self):
            return math.inf
        dx = np.maximum(np.abs(self.centres[:, 0] - x) - self.half_widths, 0.0)
        dz = np.maximum(np.abs(self.centres[:, 1] - z) - self.half_widths, 0.0)
        return float(np.hypot(dx, dz).min())


def map_from_readings(
    probability: np.ndarray,
    distance: np.ndarray,
    poses: np.ndarray,
    bin_centres: np.ndarray,
    settings: MapSettings | None = None,
) -> LandmarkMap:
    """Merge the locator's readings of frames into landmark centres (greedy, strongest reading first).

    Args:
        probability: float ``(T, K)`` per frame and bearing bin.
        distance: float ``(T, K)`` blocks.
        poses: float ``(T, 3)`` (x, z, yaw) of each frame, dead-reckoned.
        bin_centres: float ``(K,)`` bearing of each bin's centre (degrees, right positive).
        settings: merge rules.

    Returns:
        the map; centres are the probability-weighted means of their readings.
    """
    settings = settings or MapSettings()
    frame, k = np.nonzero((probability >= settings.min_probability) & (distance <= settings.max_distance))
    weights = probability[frame, k]
    order = np.argsort(-weights, kind="stable")
    sums: list[np.ndarray] = []  # probability-weighted sums of (x, z) per centre
    votes: list[float] = []
    for j in order.tolist():
        t, b = int(frame[j]), int(k[j])
        point = poses[t, :2] + distance[t, b] * heading(float(poses[t, 2] + bin_centres[b]))
        w = float(weights[j])
        if sums:
            centres = np.stack(sums) / np.array(votes)[:, None]
            gaps = np.hypot(*(centres - point).T)
            nearest = int(gaps.argmin())
            if gaps[nearest] <= settings.merge_distance:
                sums[nearest] = sums[nearest] + w * point
                votes[nearest] += w
                continue
        sums.append(w * point)
        votes.append(w)
    keep = [i for i, v in enumerate(votes) if v >= settings.min_votes]
    if not keep:
        return LandmarkMap()
    centres = np.stack([sums[i] / votes[i] for i in keep])
    return LandmarkMap(centres, np.full(len(keep), settings.half_width), np.array([votes[i] for i in keep]))


def map_from_truth(
    landmarks: Sequence[Landmark], true_pose: np.ndarray, reckoned_pose: np.ndarray
) -> LandmarkMap:
    """The world's true landmarks placed in dead-reckoned coordinates (the diagnostic upper bound).

    Each landmark keeps its bearing and distance from ``true_pose`` when seen from ``reckoned_pose``.

    Args:
        landmarks: the true world's landmarks.
        true_pose: float ``(5,)`` the true Loopcraft pose of the last context frame.
        reckoned_pose: float ``(3,)`` the dead-reckoned (x, z, yaw) of the same frame.
    """
    flat = flat_pose(true_pose)
    centres, half_widths = [], []
    for landmark in landmarks:
        bearing, d = bearing_to(flat, np.array([landmark.x, landmark.z]))
        centres.append(reckoned_pose[:2] + d * heading(float(reckoned_pose[2]) + bearing))
        half_widths.append(landmark.radius + 0.5)
    if not centres:
        return LandmarkMap()
    return LandmarkMap(np.stack(centres), np.array(half_widths), np.ones(len(centres)))


class LandmarkMapReward:
    """The landmark task judged on a map of the context's landmarks (see the module docstring).

    Keeps, per stream, the map built at reset and the dead-reckoned pose of the newest frame.

    Args:
        locator: a landmark-locator checkpoint (bundled name, local directory or Hub repo id), or
            ``"truth"`` for the world's true landmarks.
        motion: float ``(num_actions, 2)`` blocks walked and degrees turned per action (the action
            warp's fitted ``motion``).
        num_streams: streams (sub-envs) judged.
        task: the task's radius, start distance, success reward and shaping.
        settings: how readings are merged.
        device: where the locator runs.
    """

    def __init__(
        self,
        locator: str | os.PathLike[str],
        motion: np.ndarray,
        num_streams: int,
        task: LandmarkTask | None = None,
        settings: MapSettings | None = None,
        device: str = "cpu",
    ) -> None:
        self.task = task or LandmarkTask()
        self.settings = settings or MapSettings()
        self.motion = np.asarray(motion, dtype=np.float64)
        self.locator = None if str(locator) == "truth" else load_landmark_locator(locator, device=device)
        self.maps = [LandmarkMap() for _ in range(num_streams)]
        self.poses = [np.zeros(3) for _ in range(num_streams)]

    def start(
        self,
        stream: int,
        frames: np.ndarray,
        actions: np.ndarray,
        world: World | None = None,
        true_poses: np.ndarray | None = None,
    ) -> None:
        """Map a stream's context: uint8 frames ``(T, R, R, 3)`` and their int actions ``(T,)``.

        ``world`` and ``true_poses`` (float ``(T, 5)``) are needed only with ``locator="truth"``.
        """
        poses = reckon(self.motion, np.asarray(actions))
        if self.locator is None:
            if world is None or true_poses is None:
                raise ValueError("locator='truth' needs the episode's world and true context poses")
            self.maps[stream] = map_from_truth(world.landmarks, np.asarray(true_poses)[-1], poses[-1])
        else:
            probability, distance = self.locator.locate(np.asarray(frames, dtype=np.uint8))
            self.maps[stream] = map_from_readings(
                probability, distance, poses, self.locator.config.bin_centres(), self.settings
            )
        self.poses[stream] = poses[-1]

    def state(self, stream: int) -> tuple[LandmarkMap, np.ndarray]:
        """A stream's map and dead-reckoned pose (for env snapshots; the map is never modified in place)."""
        return self.maps[stream], self.poses[stream].copy()

    def restore(self, stream: int, state: tuple[LandmarkMap, np.ndarray]) -> None:
        """Return a stream to a :meth:`state`."""
        self.maps[stream], pose = state
        self.poses[stream] = pose.copy()

    def advance(self, stream: int, action: int) -> None:
        """Move a stream's dead-reckoned pose by one action."""
        self.poses[stream] = move_pose(self.poses[stream], self.motion[int(action)])

    def judge(
        self, memories: Sequence[object], streams: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`evaluate` (the latent memories are not read: the map and the pose say it all)."""
        return self.evaluate(streams)

    def evaluate(self, streams: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Judge the newest pose of each stream.

        Returns:
            ``(success bool (B,), success probability float64 (B,): 1.0 or 0.0, distance float64 (B,))``.
        """
        distance = np.array([self.maps[i].distance(*self.poses[i][:2]) for i in streams], dtype=np.float64)
        success = distance <= self.task.radius
        return success, success.astype(np.float64), distance

    def rewards(self, success: np.ndarray, previous: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """float64 ``(B,)`` rewards (see `LandmarkTask.reward`)."""
        return np.array(
            [
                self.task.reward(float(p), float(d), bool(s))
                for s, p, d in zip(success, previous, distance, strict=True)
            ],
            dtype=np.float64,
        )
