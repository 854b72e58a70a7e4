"""The landmark map reward: locator labels, merging readings, the truth map, and the envs that use it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from millivid_env.landmark_map import (
    LandmarkMap,
    LandmarkMapReward,
    MapSettings,
    bearing_to,
    heading,
    locator_targets,
    map_from_readings,
    map_from_truth,
)
from millivid_env.loopcraft.task import LandmarkTask, landmark_distance
from millivid_env.registration import LANDMARK_ENV_ID
from models.checkpoints import CheckpointError
from models.landmark_locator import LandmarkLocator, LocatorConfig, load_landmark_locator

MOTION = np.array([[0.25, 0.0], [0.0, -10.0], [0.0, 10.0]])


def _landmark(x: float, z: float, radius: int = 2) -> SimpleNamespace:
    return SimpleNamespace(x=x, z=z, radius=radius)


def test_bearing_follows_the_forward_action_and_right_turns() -> None:
    # yaw 0 faces +z; the forward action moves along (-sin yaw, cos yaw); a right turn adds yaw.
    np.testing.assert_allclose(heading(0.0), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(heading(90.0), [-1.0, 0.0], atol=1e-12)
    assert bearing_to(np.array([0.0, 0.0, 0.0]), np.array([0.0, 10.0])) == pytest.approx((0.0, 10.0))
    bearing, distance = bearing_to(np.array([0.0, 0.0, 0.0]), np.array([-5.0, 5.0]))  # ahead, to the right
    assert bearing == pytest.approx(45.0) and distance == pytest.approx(math.sqrt(50))


def test_locator_targets_label_the_bin_of_each_landmark_in_view() -> None:
    config = LocatorConfig(bearing_bins=8, max_bearing_deg=40.0, max_distance=30.0)
    pose = np.array([0.0, 10.0, 0.0, 0.0, -10.0])  # x, y, z, yaw, pitch
    ahead, right = _landmark(0.0, 22.0), _landmark(-5.0, 5 * math.sqrt(3))  # bearings 0 and 30
    nearer, wide, behind, far = (
        _landmark(-0.5, 15.0),
        _landmark(-7.0, 7.0),
        _landmark(0.0, -9.0),
        _landmark(0, 90),
    )
    present, distance = locator_targets([ahead, right, nearer, wide, behind, far], pose, config)
    assert present.tolist() == [False, False, False, False, True, False, False, True]
    assert distance[4] == pytest.approx(math.hypot(0.5, 15.0))  # the nearer of the two in bin [0, 10)
    assert distance[7] == pytest.approx(10.0)
    assert config.bin_of(45.0) is None and config.bin_of(35.0) == 7 and config.bin_of(-40.0) == 0


def test_readings_of_several_frames_merge_into_one_centre() -> None:
    centres = np.array([-5.0, 5.0])
    point = np.array([2.0, 12.0])
    poses = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 4.0, 10.0]])
    probability = np.zeros((3, 2))
    distance = np.zeros((3, 2))
    for t, pose in enumerate(poses):
        bearing, d = bearing_to(pose, point)
        k = int(np.argmin(np.abs(centres - bearing)))
        # Readings point at the bin centre, so a slightly different bearing: the map averages them.
        probability[t, k], distance[t, k] = 0.9, d
    found = map_from_readings(probability, distance, poses, centres, MapSettings(min_votes=2.0))
    assert len(found) == 1 and found.votes[0] == pytest.approx(2.7)
    assert np.hypot(*(found.centres[0] - point)) < 2.0
    # Too few votes: nothing is mapped.
    assert len(map_from_readings(probability, distance, poses, centres, MapSettings(min_votes=3.0))) == 0


def test_truth_map_keeps_bearing_and_distance_from_the_reckoned_pose() -> None:
    true_pose = np.array([50.0, 12.0, 40.0, 90.0, -10.0])  # facing -x
    landmark = _landmark(40.0, 40.0, radius=3)  # 10 blocks straight ahead
    mapped = map_from_truth([landmark], true_pose, np.array([0.0, 0.0, 0.0]))  # reckoned: origin, facing +z
    np.testing.assert_allclose(mapped.centres, [[0.0, 10.0]], atol=1e-9)
    assert mapped.half_widths.tolist() == [3.5]
    assert mapped.distance(0.0, 0.0) == pytest.approx(6.5)
    assert LandmarkMap().distance(0.0, 0.0) == math.inf


def test_map_reward_tracks_the_dead_reckoned_pose_and_judges_success() -> None:
    world = SimpleNamespace(landmarks=[_landmark(0.0, 8.0)])
    reward = LandmarkMapReward("truth", MOTION, 1, LandmarkTask(shaping=0.5))
    poses = np.tile(np.array([0.0, 10.0, 0.0, 0.0, -10.0], dtype=np.float32), (3, 1))
    reward.start(0, np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3, np.int64), world, poses)
    previous = reward.evaluate([0])[2]
    assert previous[0] == pytest.approx(8.0 - 2.5)  # 5.5 blocks to the footprint (half-width 2.5)
    state = reward.state(0)
    steps = 0
    while not reward.evaluate([0])[0][0]:
        reward.advance(0, 0)
        steps += 1
    assert steps == math.ceil((5.5 - 2.0) / 0.25)  # radius 2 reached
    success, _, distance = reward.evaluate([0])
    assert reward.rewards(success, previous, distance)[0] == pytest.approx(
        1.0 + 0.5 * (previous[0] - distance[0])
    )
    reward.restore(0, state)
    assert reward.evaluate([0])[2][0] == pytest.approx(previous[0])
    with pytest.raises(ValueError, match="truth"):
        reward.start(0, np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3, np.int64))


def test_locator_shapes_roundtrip_and_input_errors(tmp_path) -> None:
    torch.manual_seed(0)
    locator = LandmarkLocator(LocatorConfig(width=8, bearing_bins=4))
    locator.save_pretrained(tmp_path / "locator")
    loaded = load_landmark_locator(tmp_path / "locator")
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    probability, distance = loaded.locate(frames)
    assert probability.shape == distance.shape == (3, 4)
    assert ((probability > 0) & (probability < 1)).all() and (distance <= 40.0).all()
    np.testing.assert_allclose(probability, locator.eval().locate(frames)[0], rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        loaded.locate(frames.astype(np.float32))


def test_env_with_the_truth_map_rewards_walking_to_a_landmark(make_env) -> None:
    from gymnasium.utils.env_checker import check_env

    from millivid_env.loopcraft.task import steer_to_landmark

    env = make_env(
        LANDMARK_ENV_ID, reward_head=None, landmark_locator="truth", ground_truth=True, shaping=0.1
    )
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=5)
    twin = env.unwrapped.ground_truth_env
    snapshot = env.unwrapped.snapshot()
    rewards, actions = [], []
    for _ in range(25):
        actions.append(steer_to_landmark(twin.world, twin.pose))
        _, reward, terminated, _, info = env.step(actions[-1])
        rewards.append(reward)
        true_distance = landmark_distance(twin.world, twin.pose)[0]
        # Dead reckoning stays within a block of the truth over these steps.
        assert abs(env.unwrapped._distance - true_distance) < 1.5
        if terminated:
            assert info["is_success"]
            break
    assert sum(rewards) > 0  # walking towards the landmark earns the shaping
    env.unwrapped.restore(snapshot)
    assert [env.step(a)[1] for a in actions[:3]] == pytest.approx(rewards[:3])


def test_env_with_a_locator_checkpoint_maps_at_reset(make_env, tmp_path) -> None:
    LandmarkLocator(LocatorConfig(width=8)).save_pretrained(tmp_path / "locator")
    env = make_env(LANDMARK_ENV_ID, reward_head=None, landmark_locator=str(tmp_path / "locator"))
    _, info = env.reset(seed=1)
    assert "is_success" in info and isinstance(env.unwrapped.reward_model.maps[0], LandmarkMap)
    env.step(0)


def test_map_reward_arguments_are_checked(make_env, tmp_path) -> None:
    with pytest.raises(ValueError, match="not both"):
        make_env(LANDMARK_ENV_ID, landmark_locator="truth")  # the id has a reward head
    with pytest.raises(ValueError, match="needs warp"):
        make_env(LANDMARK_ENV_ID, reward_head=None, landmark_locator="truth", warp=None)
    with pytest.raises(CheckpointError):
        make_env(LANDMARK_ENV_ID, reward_head=None, landmark_locator=str(tmp_path / "missing"))


def test_vector_env_judges_every_sub_env_on_its_own_map(tiny_model) -> None:
    import gymnasium as gym

    envs = gym.make_vec(
        LANDMARK_ENV_ID, num_envs=2, vectorization_mode="vector_entry_point",
        **tiny_model.kwargs, sampling_steps=2, reward_head=None, landmark_locator="truth", shaping=0.1,
    )  # fmt: skip
    envs.reset(seed=11)
    reward = envs.unwrapped.reward_model
    before = [p.copy() for p in reward.poses]
    _, rewards, *_ = envs.step(np.array([0, 1]))
    np.testing.assert_allclose(reward.poses[1][:2], before[1][:2])  # a turn does not move
    assert not np.allclose(reward.poses[0][:2], before[0][:2])
    assert rewards.shape == (2,) and rewards[1] == pytest.approx(0.0)
    envs.close()


def test_registered_map_id_passes_both_env_checkers_with_the_bundled_locator(make_env) -> None:
    from gymnasium.utils.env_checker import check_env

    from millivid_env.registration import LANDMARK_MAP_ENV_ID

    env = make_env(LANDMARK_MAP_ENV_ID)
    assert env.spec.max_episode_steps == 200
    reward = env.unwrapped.reward_model
    assert isinstance(reward, LandmarkMapReward) and reward.locator is not None
    check_env(env.unwrapped, skip_render_check=True)
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3.check_env(env.unwrapped, warn=False)
    _, info = env.reset(seed=2)
    assert isinstance(info["is_success"], bool)
