"""env.imagine: open-loop rollouts from the env's state (needs models/rollout/open_loop.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from millivid_env.world_model_env import MilliVidEnv


def test_imagine_checks_its_input_first(tiny_model):
    env = MilliVidEnv(**tiny_model.kwargs, sampling_steps=1)
    with pytest.raises(gym.error.ResetNeeded):
        env.imagine([0, 1])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        env.imagine([])
    with pytest.raises(ValueError, match="valid actions"):
        env.imagine([0, 3])


@pytest.mark.parametrize("frames", [{"warp": None}, {}], ids=["model-frames", "copied-view"])
def test_imagine_is_deterministic_and_leaves_the_env_unchanged(make_env, frames):
    """Every frame the model's (warp=None) or the id's copied view: imagining moves neither."""
    pytest.importorskip("models.rollout.open_loop")
    env = make_env(sampling_steps=1, **frames).unwrapped
    env.reset(seed=0)
    env.step(0)
    state = env.snapshot()
    expected_next = env.step(1)[0]
    env.restore(state)
    frames = env.imagine([0, 1, 2, 0])
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(env.imagine([0, 1, 2, 0]), frames)
    assert np.array_equal(env.step(1)[0], expected_next)  # imagining did not move the env
