"""The copied view of the v4 envs: recall by construction, bad warps and bad view settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from millivid_env.loopcraft.env import LoopcraftEnv
from models.checkpoints import save_checkpoint
from models.warp import ActionWarp, WarpConfig, load_warp
from models.warp.view import CopyingView, ViewSettings, dead_reckon


def walk(actions: list[int], seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """True Loopcraft frames ``(T, 64, 64, 3)`` and actions ``(T,)`` (the first action is a placeholder)."""
    env = LoopcraftEnv(resolution=64)
    first, _ = env.reset(seed=seed)
    frames = [first] + [env.step(a)[0] for a in actions]
    return np.stack(frames), np.array([0, *actions], dtype=np.int64)


def test_dead_reckoning_follows_the_fitted_motion() -> None:
    warp = load_warp("loopcraft-64-warp")
    poses = dead_reckon(warp, np.array([0, 0, 2, 2, 0, 1]))
    step = float(warp.motion[0, 0])
    assert poses[1] == pytest.approx([0.0, step, 0.0], abs=1e-9)
    assert poses[3][2] == pytest.approx(20.0)
    assert poses[4][:2] == pytest.approx(
        [-np.sin(np.deg2rad(20)) * step, step + np.cos(np.deg2rad(20)) * step]
    )
    assert poses[5][2] == pytest.approx(10.0)


def test_turning_back_recalls_the_frame_seen_there_exactly() -> None:
    """Three turns right, one left: the pose is one already seen, so its true frame is shown unchanged."""
    frames, actions = walk([0] * 6 + [2, 2, 2])
    view = CopyingView(load_warp("loopcraft-64-warp"))
    view.reset(frames, actions)
    shown = view.commit(view.propose(1), None)
    recalled = (shown.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(recalled, frames[-2])


def test_a_turn_is_closer_to_the_truth_than_the_held_frame() -> None:
    frames, actions = walk([0] * 6 + [2])
    view = CopyingView(load_warp("loopcraft-64-warp"), ViewSettings(remember=False))
    view.reset(frames[:-1], actions[:-1])
    shown = view.commit(view.propose(2), None).permute(1, 2, 0).numpy()
    truth = frames[-1] / 255.0
    assert np.abs(shown - truth).mean() < 0.5 * np.abs(frames[-2] / 255.0 - truth).mean()


def test_state_and_restore_replay_identically() -> None:
    frames, actions = walk([0] * 6 + [1, 1])
    view = CopyingView(load_warp("loopcraft-64-warp"))
    view.reset(frames, actions)
    state = view.state()
    first = [view.commit(view.propose(a), None) for a in (0, 2, 2)]
    view.restore(state)
    again = [view.commit(view.propose(a), None) for a in (0, 2, 2)]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)


def test_memory_is_bounded() -> None:
    frames, actions = walk([0] * 20)
    view = CopyingView(load_warp("loopcraft-64-warp"), ViewSettings(capacity=8, remember_shown=True))
    view.reset(frames, actions)
    for _ in range(5):
        view.commit(view.propose(0), None)
    assert len(view.memory) == 8


def test_remembered_shown_frames_are_weighed_by_their_confidence() -> None:
    """A stored shown frame of the model's low-confidence pixels loses to a real frame a step away."""
    frames, actions = walk([0] * 3)
    view = CopyingView(load_warp("loopcraft-64-warp"), ViewSettings(remember_shown=True))
    view.reset(frames, actions)
    guessed = torch.full_like(view.memory[0][1], 0.02)  # as if the model had drawn every pixel
    view.memory.append((torch.zeros_like(view.memory[0][0]), guessed, view.pose.copy()))
    offsets = view._offsets(view.pose)
    trust = view._log_trust()
    assert trust is not None and trust[-1] == pytest.approx(np.log(0.02))
    image, _ = view._lookup(offsets, trust)
    assert torch.equal(image, view.memory[-2][0])  # the real frame at the same pose, not the guess
    image, _ = view._lookup(offsets)  # by distance alone the newest wins
    assert torch.equal(image, view.memory[-1][0])
    # Real frames only: no weighing, so the rule of the env's default is unchanged.
    view.settings = ViewSettings()
    assert view._log_trust() is None


def test_the_draft_is_the_frame_shown_without_the_model() -> None:
    frames, actions = walk([0] * 6 + [2, 2])
    view = CopyingView(load_warp("loopcraft-64-warp"), ViewSettings(remember_shown=True, draft_t=0.5))
    view.reset(frames, actions)
    proposal = view.propose(1)
    draft = view.draft(proposal)
    assert torch.equal(draft, view.commit(proposal, None))


def test_nan_warp_is_an_error_not_a_frame(make_env, tmp_path) -> None:
    warp = ActionWarp(WarpConfig(resolution=64))
    with torch.no_grad():
        warp.delta[0, 0] = float("nan")
    save_checkpoint(warp, tmp_path / "warp")
    env = make_env(warp=str(tmp_path / "warp"))
    env.reset(seed=0)
    with pytest.raises(FloatingPointError):
        env.step(0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"view": {"decay": 0.9}, "warp": None}, ValueError, "pass warp="),
        ({"view": {"deacy": 0.9}}, ValueError, r"unknown view settings \['deacy'\]"),
        ({"view": {"decay": 1.5}}, ValueError, "decay must lie in"),
        ({"view": {"draft_t": 0.0}}, ValueError, "draft_t must lie in"),
        ({"view": {"draft_t": 0.5}}, ValueError, "open-loop rollouts"),
        ({"view": [0.9]}, TypeError, "view must be a dict"),
        ({"warp": "loopcraft-64-millivid"}, Exception, "diffusion"),
    ],
)
def test_bad_view_and_warp_kwargs(make_env, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        make_env(**kwargs)
