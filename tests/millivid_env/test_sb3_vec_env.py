"""agents/sb3_vec_env.py: the SB3 adapter over the batched env equals DummyVecEnv over single envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.sb3_vec_env import SB3VecEnv, unbatch_info  # noqa: E402
from millivid_env.registration import DEFAULT_ENV_ID  # noqa: E402

N, LIMIT = 3, 3
ACTIONS = np.array([[0, 1, 2], [1, 0, 0], [2, 2, 0], [0, 0, 1], [1, 2, 0]])


@pytest.fixture
def pair(tiny_model):
    kwargs = {**tiny_model.kwargs, "sampling_steps": 2, "max_episode_steps": LIMIT}
    dummy = DummyVecEnv([lambda: gym.make(DEFAULT_ENV_ID, **kwargs) for _ in range(N)])
    batched = SB3VecEnv(
        gym.make_vec(DEFAULT_ENV_ID, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)
    )
    yield dummy, batched
    dummy.close()
    batched.close()


def test_adapter_equals_dummy_vec_env(pair):
    dummy, batched = pair
    for vec in pair:
        vec.seed(21)
    assert np.array_equal(dummy.reset(), batched.reset())
    assert [i["step"] for i in dummy.reset_infos] == [i["step"] for i in batched.reset_infos] == [0] * N
    for actions in ACTIONS:
        d_obs, d_rew, d_done, d_infos = dummy.step(actions)
        b_obs, b_rew, b_done, b_infos = batched.step(actions)
        assert np.array_equal(d_obs, b_obs) and np.array_equal(d_done, b_done)
        assert np.array_equal(d_rew, b_rew) and b_rew.dtype == np.float32
        for d, b in zip(d_infos, b_infos, strict=True):
            assert set(d) == set(b)
            assert d["step"] == b["step"] and d["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            if "terminal_observation" in d:
                assert np.array_equal(d["terminal_observation"], b["terminal_observation"])
        assert [i.get("step") for i in dummy.reset_infos] == [i.get("step") for i in batched.reset_infos]
    assert d_done.sum() == 0 and b_infos[0]["step"] == 2  # truncated at step 3, two steps into the next


def test_adapter_basics(pair):
    _, batched = pair
    assert batched.num_envs == N and batched.observation_space.shape == (64, 64, 3)
    assert batched.get_attr("render_mode") == [None] * N
    assert batched.env_is_wrapped(gym.Wrapper) == [False] * N
    batched.set_options({"world_seed": 3})
    batched.reset()
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


def test_unbatch_info_follows_masks():
    infos = {
        "a": np.array([1, 2]),
        "_a": np.array([True, False]),
        "d": {"x": np.array([3, 4]), "_x": np.array([False, True])},
        "_d": np.array([False, True]),
    }
    assert unbatch_info(infos, 2) == [{"a": 1}, {"d": {"x": 4}}]


def test_ppo_trains_in_imagination_smoke(tiny_model):
    ppo = pytest.importorskip("stable_baselines3").PPO
    kwargs = {**tiny_model.kwargs, "sampling_steps": 1}
    envs = SB3VecEnv(
        gym.make_vec(DEFAULT_ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    )
    model = ppo("CnnPolicy", envs, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(16)
    envs.close()
