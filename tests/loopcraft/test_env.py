import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import millivid_env  # noqa: F401  (registers the ids)
from millivid_env.loopcraft.env import LoopcraftEnv


def test_gymnasium_check_env():
    env = gym.make("Loopcraft-v0")
    check_env(env.unwrapped)
    env.close()


def test_sb3_check_env():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make("Loopcraft-v0")
    sb3_checker.check_env(env, warn=True)
    env.close()


def test_spaces_info_and_step_contract():
    env = gym.make("Loopcraft-v0")
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    assert env.spec.max_episode_steps is not None
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["pose"].dtype == np.float32 and info["pose"].shape == (5,)
    assert isinstance(info["world_seed"], int) and info["step"] == 0
    assert info["pose"][3] % 10 == 0
    obs, reward, terminated, truncated, info = env.step(0)
    assert type(reward) is float and reward == 0.0
    assert terminated is False and truncated is False and info["step"] == 1
    assert np.array_equal(info["pose"], env.unwrapped.pose.astype(np.float32))
    assert env.unwrapped.world is not None


def test_same_seed_same_episode_and_options():
    env = gym.make("Loopcraft-v0")
    a, ia = env.reset(seed=11)
    b, ib = env.reset(seed=11)
    assert np.array_equal(a, b) and ia["world_seed"] == ib["world_seed"]
    obs, info = env.reset(seed=1, options={"world_seed": 42, "yaw": 90})
    assert info["world_seed"] == 42 and info["pose"][3] == 90
    assert env.unwrapped.world.seed == 42


def test_time_limit_truncates():
    env = gym.make("Loopcraft-v0", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(1)[3] for _ in range(3)]
    assert flags == [False, False, True]


@pytest.mark.parametrize("action", [3, -1, 0.5, "left", None, np.array([0, 1])])
def test_invalid_actions_raise_with_valid_list(action):
    env = gym.make("Loopcraft-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="valid actions: 0 forward, 1 left, 2 right"):
        env.step(action)


def test_bad_options_and_arguments():
    env = gym.make("Loopcraft-v0")
    with pytest.raises(ValueError, match="valid keys.*world_seed.*yaw"):
        env.reset(seed=0, options={"wrld_seed": 3})
    with pytest.raises(ValueError, match="multiple of 10"):
        env.reset(seed=0, options={"yaw": 15})
    with pytest.raises(ValueError, match="positive multiple of 8"):
        LoopcraftEnv(resolution=60)
    with pytest.raises(ValueError, match="render_mode"):
        LoopcraftEnv(render_mode="video")


def test_step_before_reset_is_a_clear_error():
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        LoopcraftEnv().step(0)


def test_rgb_array_render_and_resolution():
    env = gym.make("Loopcraft-v0", render_mode="rgb_array", resolution=128)
    obs, _ = env.reset(seed=2)
    frame = env.render()
    assert frame.shape == (128, 128, 3) and np.array_equal(frame, obs)
    env.close()


def test_human_render_headless(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make("Loopcraft-v0", render_mode="human")
    env.reset(seed=0)
    env.step(2)
    assert env.render() is None
    env.close()
    env.close()  # idempotent


def test_keys_to_action():
    pygame = pytest.importorskip("pygame")
    keys = LoopcraftEnv().get_keys_to_action()
    assert keys[(pygame.K_w,)] == 0 and keys[(pygame.K_UP,)] == 0
    assert keys[(pygame.K_a,)] == 1 and keys[(pygame.K_LEFT,)] == 1
    assert keys[(pygame.K_d,)] == 2 and keys[(pygame.K_RIGHT,)] == 2
