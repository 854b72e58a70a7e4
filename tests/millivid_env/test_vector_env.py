"""The vector env of the world-model ids: batched stepping equals single envs, same-step autoreset."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from millivid_env.registration import DEFAULT_ENV_ID
from millivid_env.world_model_vector_env import MilliVidVectorEnv

STEPS = 2
ACTIONS = np.array([[0, 1, 2], [0, 0, 1], [2, 0, 0], [1, 1, 0], [0, 2, 2], [0, 0, 0]])


@pytest.fixture
def make_vec(tiny_model):
    made = []

    def factory(num_envs=3, **overrides):
        kwargs = {**tiny_model.kwargs, "sampling_steps": STEPS, **overrides}
        envs = gym.make_vec(
            DEFAULT_ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
        )
        made.append(envs)
        return envs

    yield factory
    for envs in made:
        envs.close()


def test_made_by_make_vec_with_batched_spaces(make_vec):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # make_vec warns when autoreset metadata is missing
        envs = make_vec(num_envs=2)
    assert isinstance(envs.unwrapped, MilliVidVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.single_observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert envs.observation_space.shape == (2, 64, 64, 3) and envs.action_space == gym.spaces.MultiDiscrete(
        [3, 3]
    )
    assert envs.unwrapped.max_episode_steps == 512  # from the spec
    # One memory per sub-env, one model for all of them.
    assert len({id(m) for m in envs.unwrapped.memories}) == 2
    assert envs.unwrapped.simulator.world_model is envs.unwrapped.world_model


@pytest.mark.parametrize("frames", [{"warp": None}, {}], ids=["model-frames", "copied-view"])
def test_vector_equals_single_envs_through_truncation(make_vec, make_env, frames):
    """Bit for bit, every frame the model's (warp=None) and with the id's warp (copied view)."""
    envs = make_vec(num_envs=3, max_episode_steps=4, ground_truth=True, **frames)
    singles = [make_env(max_episode_steps=4, ground_truth=True, **frames) for _ in range(3)]
    obs, infos = envs.reset(seed=10)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=10 + i)
        assert np.array_equal(obs[i], single_obs)
        assert np.array_equal(infos["pose"][i], single_info["pose"])
    for actions in ACTIONS:
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for i, env in enumerate(singles):
            s_obs, s_reward, s_term, s_trunc, s_info = env.step(actions[i])
            assert (truncated[i], terminated[i], rewards[i]) == (s_trunc, s_term, s_reward)
            if s_trunc:  # same-step autoreset: the vector env already shows the next episode
                assert infos["_final_obs"][i] and np.array_equal(infos["final_obs"][i], s_obs)
                assert infos["final_info"]["step"][i] == s_info["step"] == 4
                s_obs, s_info = env.reset()
            assert np.array_equal(obs[i], s_obs), f"sub-env {i} differs from its single env"
            assert infos["step"][i] == s_info["step"]
            assert np.array_equal(infos["ground_truth"]["frame"][i], s_info["ground_truth"]["frame"])
            assert np.array_equal(infos["pose"][i], s_info["pose"])
    assert truncated.sum() == 0 and infos["step"].tolist() == [2, 2, 2]


def test_reset_mask_and_seed_lists(make_vec):
    envs = make_vec(num_envs=2)
    first, _ = envs.reset(seed=[3, 4])
    again, _ = envs.reset(seed=3)
    assert np.array_equal(first, again)
    stepped, *_ = envs.step(np.array([0, 0]))
    obs, infos = envs.reset(seed=[None, 5], options={"reset_mask": np.array([False, True])})
    assert infos["_step"].tolist() == [False, True] and infos["step"][1] == 0
    assert np.array_equal(obs[0], stepped[0])  # not reset
    assert not np.array_equal(obs[1], first[1])  # seed 5, not 4: another world
    assert envs.unwrapped._steps.tolist() == [1, 0]


def test_vector_record_episode_statistics(make_vec):
    envs = gym.wrappers.vector.RecordEpisodeStatistics(make_vec(num_envs=2, max_episode_steps=2))
    envs.reset(seed=0)
    envs.step(np.array([0, 1]))
    *_, infos = envs.step(np.array([0, 1]))
    assert infos["_episode"].all() and infos["episode"]["l"].tolist() == [2, 2]
    assert len(envs.length_queue) == 2


def test_vector_errors(make_vec, tiny_model):
    envs = make_vec(num_envs=2)
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.array([0, 0]))
    with pytest.raises(ValueError, match="first reset must reset every sub-env"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        envs.step(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="valid actions"):
        envs.step(np.array([0, 5]))
    with pytest.raises(ValueError, match="unknown reset option"):
        envs.reset(options={"bad": 1})
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        MilliVidVectorEnv(num_envs=0, **tiny_model.kwargs)
    with pytest.warns(UserWarning, match="render_mode"):
        assert envs.render() is None


def test_vector_decode_level_equals_single_envs(make_vec, make_env):
    # warp=None: the decoded level is the shown frame (with a warp it is rarely shown).
    envs = make_vec(num_envs=2, decode_level=2, warp=None)
    singles = [make_env(decode_level=2, warp=None) for _ in range(2)]
    envs.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    obs = envs.step(np.array([0, 1]))[0]
    for i, env in enumerate(singles):
        assert np.array_equal(obs[i], env.step(i)[0]), f"sub-env {i} differs from its single env"


def test_vector_copied_view_equals_single_envs_when_some_streams_need_the_model(make_vec, make_env):
    """With the id's warp, a step runs the model only for the sub-envs whose view it must fill.

    Sub-env 0 (seed 11) keeps turning left into what its context walk never saw; sub-env 1 (seed 12)
    turns back and forth within it, so the later steps fill sub-env 0 alone: a batch of one stream.
    """
    steps = 12
    actions = np.stack([np.ones(steps, np.int64), np.tile([1, 2], steps // 2)], axis=1)
    envs = make_vec(num_envs=2)
    singles = [make_env() for _ in range(2)]
    obs, _ = envs.reset(seed=11)
    for i, env in enumerate(singles):
        assert np.array_equal(obs[i], env.reset(seed=11 + i)[0])
    for step_actions in actions:
        obs = envs.step(step_actions)[0]
        for i, env in enumerate(singles):
            assert np.array_equal(obs[i], env.step(step_actions[i])[0]), f"sub-env {i} differs"
    filled = [env.unwrapped.simulator.frames_filled for env in singles]
    assert filled[0] > 0 and filled[1] == 0, filled  # the case this test is for
    assert envs.unwrapped.simulator.frames_filled == sum(filled)
