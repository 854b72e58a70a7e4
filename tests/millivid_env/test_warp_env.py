"""The env's copy-by-construction step: the previous shown frame moved by the action's warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoints import save_checkpoint
from models.warp import ActionWarp, WarpConfig


def test_env_with_an_untrained_warp_shows_the_previous_frame(make_env, tmp_path) -> None:
    """Zero-initialised warp: every step returns the reset frame exactly, whatever the model draws."""
    from gymnasium.utils.env_checker import check_env

    save_checkpoint(ActionWarp(WarpConfig(resolution=64)), tmp_path / "warp")
    env = make_env(warp=str(tmp_path / "warp"))
    check_env(env.unwrapped, skip_render_check=True)
    first, _ = env.reset(seed=3)
    for action in (0, 1, 2, 0):
        frame = env.step(action)[0]
        np.testing.assert_array_equal(frame, first)


def test_env_with_a_turn_warp_moves_the_frame_and_restores(make_env, tmp_path) -> None:
    warp = ActionWarp(WarpConfig(resolution=64))
    with torch.no_grad():
        warp.delta[1, 2] = -2.0 * 2 / 64  # "left": the view moves 2 px right
    save_checkpoint(warp, tmp_path / "warp")
    env = make_env(warp=str(tmp_path / "warp"))
    first, _ = env.reset(seed=4)
    snapshot = env.unwrapped.snapshot()
    moved = env.step(1)[0]
    np.testing.assert_array_equal(moved[:, 2:], first[:, :-2])
    again = env.step(1)[0]
    env.unwrapped.restore(snapshot)
    np.testing.assert_array_equal(env.step(1)[0], moved)
    np.testing.assert_array_equal(env.step(1)[0], again)


def test_warp_of_another_resolution_is_refused(make_env, tmp_path) -> None:
    save_checkpoint(ActionWarp(WarpConfig(resolution=32)), tmp_path / "warp")
    with pytest.raises(ValueError, match="fitted on 32x32 frames"):
        make_env(warp=str(tmp_path / "warp"))
