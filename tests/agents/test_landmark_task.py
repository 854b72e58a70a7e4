"""The landmark task in the real world: checkers, reward/termination from the pose, starts, validation."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from millivid_env.loopcraft.blocks import Block
from millivid_env.loopcraft.landmark_env import LoopcraftLandmarkEnv
from millivid_env.loopcraft.landmarks import Landmark
from millivid_env.loopcraft.physics import WALK_SPEED, initial_pose
from millivid_env.loopcraft.task import LandmarkTask, landmark_distance, steer_to_landmark
from millivid_env.loopcraft.world import flat_world

SMALL_WORLD = (48, 32, 48)


def make_small(**kwargs):
    return gym.make("Loopcraft-Landmark-v0", world_size=SMALL_WORLD, **kwargs)


def place_in_flat_world(env: LoopcraftLandmarkEnv, yaw: int = 0):
    """Put the player at the centre of a flat world facing +z, a landmark 10 blocks ahead."""
    world = flat_world((32, 16, 32))
    # Footprint: x in [15, 18), z in [25, 28) (radius 1 => half-width 1.5 around (16.5, 26.5)).
    world.landmarks.append(Landmark("tower", Block.BRICK, 16.5, 26.5, 4, 12, 1))
    inner = env.world_env
    inner.world, inner.world_seed = world, 0
    inner.pose = initial_pose(world, yaw)
    inner.steps = 0
    env._started, env._steps = True, 0
    env._distance = landmark_distance(world, inner.pose)[0]
    return world


def test_registered():
    spec = gym.spec("Loopcraft-Landmark-v0")
    assert spec.max_episode_steps == 200
    assert spec.entry_point == "millivid_env.loopcraft.landmark_env:LoopcraftLandmarkEnv"


def test_gymnasium_and_sb3_checkers():
    env = make_small(render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(make_small(), warn=True)


def test_reward_and_termination_within_radius():
    env = LoopcraftLandmarkEnv(radius=2.0)
    world = place_in_flat_world(env)
    assert landmark_distance(world, env.world_env.pose)[0] == pytest.approx(8.5)
    # Success needs z >= 25 - 2 = 23: (23 - 16.5) / 0.22 = 29.5 steps -> the 30th step.
    needed = math.ceil((23.0 - 16.5) / WALK_SPEED)
    for t in range(1, needed):
        _, reward, terminated, truncated, info = env.step(0)
        assert (reward, terminated, truncated) == (0.0, False, False), t
        assert info["landmark_distance"] > 2.0 and not info["is_success"]
    _, reward, terminated, truncated, info = env.step(0)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["is_success"] and info["landmark_distance"] <= 2.0 and info["landmark"] == "brick tower"


def test_turning_changes_nothing_and_shaping_rewards_progress():
    env = LoopcraftLandmarkEnv(shaping=0.5)
    place_in_flat_world(env)
    assert env.step(1)[1] == 0.0  # a turn: no progress
    env.step(2)
    reward = env.step(0)[1]
    assert reward == pytest.approx(0.5 * WALK_SPEED)


def test_scripted_policy_reaches_the_landmark():
    env = LoopcraftLandmarkEnv()
    place_in_flat_world(env, yaw=150)  # facing away: must turn around first
    for _ in range(200):
        action = steer_to_landmark(env.world_env.world, env.world_env.pose)
        _, _, terminated, _, _ = env.step(action)
        if terminated:
            break
    assert terminated


def test_starts_are_far_enough_and_seeded():
    env = make_small()
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        assert info["landmark_distance"] >= 4.0 and not info["is_success"] and info["step"] == 0
        again, info2 = env.reset(seed=seed)
        assert np.array_equal(obs, again) and np.array_equal(info["pose"], info2["pose"])
    _, info = env.reset(seed=0, options={"world_seed": 5})
    assert info["world_seed"] == 5


def test_bad_input():
    with pytest.raises(ValueError, match="radius"):
        LandmarkTask(radius=0.0)
    with pytest.raises(ValueError, match="min_start_distance"):
        LandmarkTask(radius=3.0, min_start_distance=2.0)
    with pytest.raises(ValueError, match="walk_frames"):
        LoopcraftLandmarkEnv(walk_frames=0)
    env = make_small()
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.step(0)
    with pytest.raises(ValueError, match="valid keys"):
        env.reset(seed=0, options={"yaw": 10})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(3)
    env.close()
    env.close()


def test_walk_equals_stepping():
    from millivid_env.loopcraft.env import LoopcraftEnv

    actions = np.array([0, 0, 1, 0, 2, 0, 0])
    a, b, c = (LoopcraftEnv(world_size=SMALL_WORLD) for _ in range(3))
    for env in (a, b, c):
        env.reset(options={"world_seed": 1, "yaw": 0})
    stepped = np.stack([a.step(int(x))[0] for x in actions])
    assert np.array_equal(b.walk(actions), stepped)
    assert c.walk(actions, render_frames=False) is None
    assert np.array_equal(c.frame, stepped[-1]) and np.array_equal(c.pose, a.pose) and c.steps == a.steps
