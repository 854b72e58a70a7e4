"""The shown view, copied by construction: the last frame moved, a remembered view, or the model's fill.

A :class:`CopyingView` is one stream's picture of the world. Every step it dead-reckons its pose from
the action (the motion the :class:`~models.warp.homography.ActionWarp` fitted per action: blocks
forward, degrees of yaw) and builds the next frame per pixel from three sources, each with a
confidence:

1. the previous shown frame moved by the action's homography (its confidence decays a little per
   move: every resampling blurs);
2. a remembered view: the stored frame whose pose is nearest to the new pose once rotated and walked
   into it by the fitted homographies (confidence falls with the distance left over), and, further
   away, the nearest stored frame as it is (a look-up);
3. the diffusion model's frame (a low, fixed confidence): what nothing remembered explains. Without
   it (the model is run only when some pixel needs it), the previous pixel stays where it is.

Each pixel comes from the source with the highest confidence, and keeps it as its own confidence, so
pixels that are copied many times or guessed give way to better remembered views. Untrained (an
identity warp, no motion), every step returns the previous frame exactly.

The view memory is bounded (``capacity`` frames, oldest dropped) and holds the frames the stream
was shown at reset and, optionally, the frames it showed since.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from models.warp.homography import ActionWarp, apply_homographies

__all__ = [
    "CopyingView",
    "ViewSettings",
    "ViewState",
    "commit_views",
    "dead_reckon",
    "move_pose",
    "reckon",
    "to_frames",
]


@dataclass(frozen=True)
class ViewSettings:
    """How a :class:`CopyingView` weighs its sources (the defaults are the measured best, docs/results).

    Attributes:
        capacity: frames the view memory keeps (oldest dropped).
        decay: confidence a pixel keeps each time the previous frame is moved.
        fill_confidence: confidence of the diffusion model's pixels.
        fill_fraction: the model runs only when at least this fraction of the pixels would take its
            fill (0: whenever one pixel would); below it they keep their previous value.
        lookup_weight: confidence scale of the nearest stored frame shown without a warp.
        distance_scale: confidence of a remembered view is ``exp(-distance_scale * blocks off)``.
        max_turns: remembered frames at most this many turns away are rotated into view.
        max_walk: at most this many forward steps are walked into a remembered frame.
        remember: use remembered views at all (False: only the moved previous frame and the model).
        remember_shown: also store the frames shown after reset.
        draft_t: the model's fill starts from the frame the view would show without it, noised to
            this time (1: from pure noise); only where a rollout step makes that one frame.
    """

    capacity: int = 512
    decay: float = 0.8
    fill_confidence: float = 0.02
    fill_fraction: float = 0.05
    lookup_weight: float = 0.5
    distance_scale: float = 0.25
    max_turns: int = 3
    max_walk: int = 12
    remember: bool = True
    remember_shown: bool = False
    draft_t: float = 1.0

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.max_turns < 0 or self.max_walk < 0:
            raise ValueError("capacity must be >= 1 and max_turns, max_walk >= 0")
        if not 0.0 < self.draft_t <= 1.0:
            raise ValueError(f"draft_t must lie in (0, 1] (1 = the fill from noise), got {self.draft_t!r}")
        for name in ("decay", "fill_confidence", "fill_fraction", "lookup_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")


def dead_reckon(warp: ActionWarp, actions: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Poses after each action by the warp's fitted motion; action 0 leads to the first pose.

    Args:
        warp: the fitted warp (its ``motion``: blocks forward and degrees of yaw per action).
        actions: int ``(T,)``; ``actions[0]`` is the action that led to the first frame (not applied).
        start: float ``(3,)`` (x, z, yaw degrees) of the first frame; default the origin facing yaw 0.

    Returns:
        float64 ``(T, 3)`` (x, z, yaw) per frame.
    """
    return reckon(warp.motion.detach().cpu().double().numpy(), actions, start)


def reckon(motion: np.ndarray, actions: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """:func:`dead_reckon` from a motion table: float ``(A, 2)`` blocks forward, degrees turned per action."""
    pose = np.zeros(3) if start is None else np.asarray(start, dtype=np.float64).copy()
    poses = np.empty((len(actions), 3))
    for i, action in enumerate(np.asarray(actions)):
        if i > 0:
            pose = move_pose(pose, motion[int(action)])
        poses[i] = pose
    return poses


def move_pose(pose: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """``(x, z, yaw)`` after walking ``motion[0]`` blocks along the view, then turning ``motion[1]``°."""
    yaw = np.deg2rad(pose[2])
    x = pose[0] - np.sin(yaw) * motion[0]
    z = pose[1] + np.cos(yaw) * motion[0]
    return np.array([x, z, (pose[2] + motion[1] + 180.0) % 360.0 - 180.0])


@dataclass
class ViewState:
    """A :class:`CopyingView`'s whole state (for snapshots): frame, confidence, pose and memory."""

    frame: torch.Tensor  # float (3, R, R) in [0, 1]
    confidence: torch.Tensor  # float (1, R, R)
    pose: np.ndarray  # float64 (3,)
    memory: tuple[tuple[torch.Tensor, torch.Tensor, np.ndarray], ...]


@dataclass
class Proposal:
    """The sources of one step before the model's fill (:meth:`CopyingView.propose`)."""

    pose: np.ndarray
    images: list[torch.Tensor]  # float (3, R, R) each
    confidences: list[torch.Tensor]  # float (1, R, R) each

    @property
    def best_confidence(self) -> torch.Tensor:
        """The highest confidence per pixel without the model: float ``(1, R, R)``."""
        return torch.stack(self.confidences).amax(0)


class CopyingView:
    """One stream's shown view (see the module docstring).

    Args:
        warp: the fitted action warp (homographies and motion per action).
        settings: how the sources are weighed.
    """

    def __init__(self, warp: ActionWarp, settings: ViewSettings | None = None) -> None:
        self.warp = warp
        self.settings = settings or ViewSettings()
        self.frame: torch.Tensor | None = None
        self.confidence: torch.Tensor | None = None
        self.pose = np.zeros(3)
        self.memory: deque[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = deque(
            maxlen=self.settings.capacity
        )
        # The warp is fixed once loaded: its homographies and motion are read once, not every step.
        self._homographies = warp.homographies().detach()  # (A, 3, 3)
        self._motion = warp.motion.detach().cpu().double().numpy()  # (A, 2)

    # ------------------------------------------------------------------ state
    def reset(self, frames: np.ndarray, actions: np.ndarray) -> None:
        """Start from real frames: all of them remembered at their dead-reckoned poses, the last shown.

        Args:
            frames: uint8 ``(T, R, R, 3)``.
            actions: int ``(T,)`` (frame ``i`` is the view after action ``i``).
        """
        device = self.warp.delta.device
        poses = dead_reckon(self.warp, actions)
        poses -= np.array([poses[-1, 0], poses[-1, 1], 0.0])  # the shown frame at the origin
        images = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0
        ones = torch.ones_like(images[0, :1])
        self.memory.clear()
        for image, pose in zip(
            images[-self.settings.capacity :], poses[-self.settings.capacity :], strict=True
        ):
            self.memory.append((image, ones, pose))
        self.frame, self.confidence, self.pose = images[-1], ones, poses[-1].copy()

    def state(self) -> ViewState:
        """A copy of the whole state (tensors are never modified in place, so sharing them is safe)."""
        if self.frame is None or self.confidence is None:
            raise RuntimeError("reset() the view before taking its state")
        return ViewState(self.frame, self.confidence, self.pose.copy(), tuple(self.memory))

    def restore(self, state: ViewState) -> None:
        """Return to a :meth:`state`."""
        self.frame, self.confidence, self.pose = state.frame, state.confidence, state.pose.copy()
        self.memory = deque(state.memory, maxlen=self.settings.capacity)

    # ------------------------------------------------------------------ stepping
    def propose(self, action: int) -> Proposal:
        """The next frame's sources other than the model: the moved frame and remembered views."""
        if self.frame is None or self.confidence is None:
            raise RuntimeError("reset() the view before stepping it")
        s = self.settings
        pose = move_pose(self.pose, self._motion[action])
        # The previous frame unmoved, at confidence 0: shown only where no source sees a pixel and the
        # model is not run (argmax takes the first of equal confidences).
        images, confidences = [self.frame], [torch.zeros_like(self.confidence)]
        moved, moved_confidence = self._warp(self.frame, self.confidence, self._homographies[action])
        images.append(moved)
        confidences.append(moved_confidence * s.decay)
        if s.remember and self.memory:  # a memory bounded from outside may have been emptied
            offsets = self._offsets(pose)
            trust = self._log_trust()
            for source in (self._remembered(offsets, trust), self._lookup(offsets, trust)):
                if source is not None:
                    images.append(source[0])
                    confidences.append(source[1])
        return Proposal(pose, images, confidences)

    def needs_fill(self, proposal: Proposal) -> bool:
        """Whether some pixel would take the model's fill (else the model need not run)."""
        needs = proposal.best_confidence <= self.settings.fill_confidence
        if self.settings.fill_fraction <= 0:
            return bool(needs.any())
        return float(needs.float().mean()) >= self.settings.fill_fraction

    def draft(self, proposal: Proposal) -> torch.Tensor:
        """The frame shown without the model's fill, float ``(3, R, R)`` in [0, 1] (nothing is committed)."""
        return _choose(proposal.images, proposal.confidences)[0]

    def commit(self, proposal: Proposal, fill: torch.Tensor | None) -> torch.Tensor:
        """Choose each pixel's source, show and remember the result.

        Args:
            proposal: from :meth:`propose`.
            fill: float ``(3, R, R)`` in [0, 1], the model's frame; None if :meth:`needs_fill` said no.

        Returns:
            float ``(3, R, R)`` the shown frame in [0, 1].

        Raises:
            FloatingPointError: a source holds NaN/inf.
        """
        images, confidences = list(proposal.images), list(proposal.confidences)
        if fill is not None:
            images.append(fill)
            confidences.append(torch.full_like(confidences[0], self.settings.fill_confidence))
        frame, confidence = _choose(images, confidences)
        self.frame, self.confidence, self.pose = frame, confidence, proposal.pose
        if self.settings.remember_shown:
            self.memory.append((frame, confidence, proposal.pose))
        return frame

    # ------------------------------------------------------------------ memory look-ups
    def _warp(
        self, image: torch.Tensor, confidence: torch.Tensor, homography: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame and its confidence resampled together: ``(3, R, R)`` and ``(1, R, R)`` (0 outside)."""
        both = torch.cat([image, confidence])[None]  # (1, 4, R, R)
        warped, valid = apply_homographies(both, homography[None], self.warp.config.interpolation)
        return warped[0, :3], warped[0, 3:] * valid[0]

    def _offsets(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per stored frame: blocks along and across the new view and degrees of yaw to turn, ``(N,)``."""
        poses = np.stack([entry[2] for entry in self.memory])  # (N, 3)
        yaw = np.deg2rad(pose[2])
        delta = pose[None, :2] - poses[:, :2]
        along = delta @ np.array([-np.sin(yaw), np.cos(yaw)])
        across = delta @ np.array([np.cos(yaw), np.sin(yaw)])
        turn = (pose[2] - poses[:, 2] + 180.0) % 360.0 - 180.0
        return along, across, turn

    def _log_trust(self) -> np.ndarray | None:
        """Log mean confidence per stored frame ``(N,)``; None when every stored frame is a real one.

        A stored shown frame carries its pixels' confidences (the model's are low): the look-ups
        weigh each candidate by them, or the last frame shown, always the nearest, would always win.
        """
        if not self.settings.remember_shown:
            return None
        means = np.array([float(entry[1].mean()) for entry in self.memory])
        return np.log(np.maximum(means, 1e-6))

    def _remembered(
        self, offsets: tuple[np.ndarray, np.ndarray, np.ndarray], trust: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The stored frame nearest once turned and walked into the new pose, and its confidence.

        With ``trust`` (:meth:`_log_trust`) the frame of the highest expected confidence instead.
        """
        s, motion, homographies = self.settings, self._motion, self._homographies
        forward = int(np.argmax(motion[:, 0]))
        step = motion[forward, 0]
        turn_step = np.abs(motion[:, 1]).max()
        if step <= 0 or turn_step <= 0:
            return None
        along, across, turn = offsets
        turns = np.round(turn / turn_step).astype(int)
        walks = np.clip(np.round(along / step), 0, s.max_walk).astype(int)
        off = np.sqrt(across**2 + (along - walks * step) ** 2)
        cost = off + 0.02 * walks + 0.05 * np.abs(turns)
        cost = np.where(np.abs(turns) <= s.max_turns, cost, np.inf)
        j = _newest_argmin(cost if trust is None else s.distance_scale * cost - trust)
        if not np.isfinite(cost[j]):
            return None
        right = int(np.argmax(motion[:, 1]))
        left = int(np.argmin(motion[:, 1]))
        h = torch.eye(3, device=homographies.device)
        for _ in range(abs(int(turns[j]))):  # turn first, then walk along the new view
            h = h @ homographies[right if turns[j] > 0 else left]
        for _ in range(int(walks[j])):
            h = h @ homographies[forward]
        image, confidence, _ = self.memory[j]
        warped, warped_confidence = self._warp(image, confidence, h)
        return warped, warped_confidence * float(np.exp(-s.distance_scale * cost[j]))

    def _lookup(
        self, offsets: tuple[np.ndarray, np.ndarray, np.ndarray], trust: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The stored frame nearest to the pose (blocks + degrees / 30), as it is, and its confidence.

        With ``trust`` (:meth:`_log_trust`) the frame of the highest expected confidence instead.
        """
        if self.settings.lookup_weight <= 0:
            return None
        along, across, turn = offsets
        distance = np.hypot(along, across) + np.abs(turn) / 30.0
        j = _newest_argmin(distance if trust is None else distance - trust)
        image, confidence, _ = self.memory[j]
        return image, confidence * (self.settings.lookup_weight * float(np.exp(-distance[j])))


def _choose(images: list[torch.Tensor], confidences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel from its most confident source: the frame ``(3, R, R)`` in [0, 1] and its confidence.

    Raises:
        FloatingPointError: a source holds NaN/inf.
    """
    stack = torch.stack(images)  # (K, 3, R, R)
    conf = torch.stack(confidences)  # (K, 1, R, R)
    if not (bool(torch.isfinite(stack).all()) and bool(torch.isfinite(conf).all())):
        raise FloatingPointError("NaN/inf in the warped or generated frame: the checkpoint is corrupt")
    best = conf.argmax(0, keepdim=True)  # (1, 1, R, R)
    return stack.gather(0, best.expand(1, 3, -1, -1))[0].clamp(0.0, 1.0), conf.gather(0, best)[0]


def _newest_argmin(values: np.ndarray) -> int:
    """Index of the smallest value; among equals the last (the newest frame)."""
    return len(values) - 1 - int(np.argmin(values[::-1]))


def to_frames(images: torch.Tensor) -> np.ndarray:
    """Float ``(N, 3, R, R)`` images in ``[0, 1]`` ⇒ uint8 ``(N, R, R, 3)`` frames (what is shown)."""
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def commit_views(
    views: list[CopyingView], proposals: list[Proposal], decoded: np.ndarray | None, need: list[int]
) -> np.ndarray:
    """Commit one step of several views, the model's frames filling those that need them.

    Args:
        views: the views stepped.
        proposals: each view's :meth:`CopyingView.propose` of this step.
        decoded: uint8 ``(len(need), R, R, 3)`` the model's frames of the views in ``need`` (None when
            ``need`` is empty).
        need: positions in ``views`` of the views whose fill is given, in the order of ``decoded``.

    Returns:
        uint8 ``(len(views), R, R, 3)`` the shown frames.
    """
    fills: list[torch.Tensor | None] = [None] * len(views)
    if need:
        images = torch.from_numpy(np.ascontiguousarray(decoded)).permute(0, 3, 1, 2).float() / 255.0
        for k, j in enumerate(need):
            fills[j] = images[k].to(views[j].warp.delta.device)
    return to_frames(torch.stack([v.commit(p, f) for v, p, f in zip(views, proposals, fills, strict=True)]))
