"""World-model env behaviour: determinism, bounded memory, branching, ground truth, options."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from millivid_env.loopcraft.env import LoopcraftEnv
from millivid_env.loopcraft.episodes import render_episode
from millivid_env.loopcraft.renderer import render
from millivid_env.loopcraft.world import generate_world

ACTIONS = [0, 0, 1, 0, 2, 2, 0, 1]
#: Both ways frames are made: every frame the diffusion model's (``warp=None``) and the id's copied
#: view (the default: the model fills only what nothing seen explains).
FRAMES = pytest.mark.parametrize("frames", [{"warp": None}, {}], ids=["model-frames", "copied-view"])


def rollout(env, actions, seed=None, options=None):
    frames = [env.reset(seed=seed, options=options)[0]] if seed is not None or options else []
    frames += [env.step(a)[0] for a in actions]
    return np.stack(frames)


@FRAMES
def test_same_seed_same_frames_different_seeds_differ(make_env, frames):
    a, b = make_env(**frames), make_env(**frames)
    first, second = rollout(a, ACTIONS, seed=7), rollout(b, ACTIONS, seed=7)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, rollout(b, ACTIONS, seed=8))
    # The generated frames differ from one another (the model is not stuck on its context).
    assert len({frame.tobytes() for frame in first}) == len(first)


def test_context_noise_changes_frames_deterministically(make_env):
    # warp=None: every frame is the model's (with the id's warp these steps need none of its pixels).
    actions = [0, 1, 2, 0]
    clean = rollout(make_env(context_noise=0.0, warp=None), actions, seed=3)
    noisy = [rollout(make_env(context_noise=0.25, warp=None), actions, seed=3) for _ in range(2)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.array_equal(clean, noisy[0])


def test_guidance_changes_frames_deterministically_and_imagine_uses_it(make_env):
    actions = [0, 1, 2]
    plain = rollout(make_env(warp=None), actions, seed=3)
    guided = [make_env(guidance_scale=2.0, warp=None) for _ in range(2)]
    frames = [rollout(env, actions, seed=3) for env in guided]
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(plain, frames[0])
    assert guided[0].unwrapped.simulator.guidance_scale == 2.0
    envs = (*guided, make_env(warp=None))
    for env in envs:
        env.reset(seed=3)
    imagined = [env.unwrapped.imagine([0, 0]) for env in envs]
    assert np.array_equal(imagined[0], imagined[1]) and not np.array_equal(imagined[0], imagined[2])


def test_memory_is_bounded_over_a_long_episode(make_env):
    env = make_env(sampling_steps=1, max_episode_steps=-1)
    env.reset(seed=0)
    memory = env.unwrapped.memory
    start = (memory.tokens, memory.nbytes, memory.frames_per_level)
    for t in range(300):
        _, _, _, truncated, info = env.step(t % 3)
        assert info["memory_tokens"] == start[0] and not truncated
    assert (
        (memory.tokens, memory.nbytes, memory.frames_per_level)
        == start
        == (313, memory.nbytes, (1, 5, 21, 85))
    )
    assert memory.frames_seen == 85 + 300


@FRAMES
def test_snapshot_restore_replays_identically(make_env, frames):
    env = make_env(ground_truth=True, **frames).unwrapped
    env.reset(seed=3)
    rollout(env, ACTIONS[:3])
    state = env.snapshot()
    first = [env.step(a) for a in ACTIONS]
    env.step(1)
    for _ in range(2):  # a state can be restored more than once
        env.restore(state)
        again = [env.step(a) for a in ACTIONS]
        for (obs_a, *_, info_a), (obs_b, *_, info_b) in zip(first, again, strict=True):
            assert np.array_equal(obs_a, obs_b) and info_a["step"] == info_b["step"]
            assert np.array_equal(info_a["pose"], info_b["pose"])
            assert np.array_equal(info_a["ground_truth"]["frame"], info_b["ground_truth"]["frame"])
    # The RNG is part of the state: a seedless reset after restoring draws the same episode.
    env.restore(state)
    reset_a = env.reset()[0]
    env.restore(state)
    assert np.array_equal(env.reset()[0], reset_a)


def test_copied_view_filled_by_the_model_is_deterministic_and_replays(make_env):
    """With the id's warp, steps whose pixels the model fills are seeded and restored too.

    Turning left from seed 11's start leaves what its context walk saw after about 10 steps: from
    there the model draws the new pixels (the short walks above never need it).
    """
    actions = [1] * 14
    a, b = make_env(), make_env()
    first = rollout(a, actions, seed=11)
    assert np.array_equal(first, rollout(b, actions, seed=11))
    assert a.unwrapped.simulator.frames_filled > 0  # the case this test is for
    env = a.unwrapped
    env.reset(seed=11)
    rollout(env, actions[:6])
    state = env.snapshot()
    filled = env.simulator.frames_filled
    after = rollout(env, actions[6:])
    assert env.simulator.frames_filled > filled and np.array_equal(after, first[7:])
    env.step(0)
    env.restore(state)
    assert np.array_equal(rollout(env, actions[6:]), after)


def test_fork_is_independent(make_env):
    env = make_env().unwrapped
    env.reset(seed=4)
    rollout(env, ACTIONS[:2])
    child = env.fork()
    assert child.world_model is env.world_model  # weights shared, not copied
    expected = rollout(child, ACTIONS)
    child.step(2)  # the fork moving on does not move the parent
    assert np.array_equal(rollout(env, ACTIONS), expected)
    assert child.memory is not env.memory and child.memory.frames_seen == env.memory.frames_seen + 1
    child.close()


def test_ground_truth_twin_follows_the_actions(make_env):
    env = make_env(ground_truth=True)
    obs, info = env.reset(seed=5, options={"world_seed": 1234})
    assert np.array_equal(info["ground_truth"]["frame"], obs)  # the context is real
    # An independent Loopcraft env in the same world, placed at the pose the context walk ended at.
    real = LoopcraftEnv()
    real.reset(options={"world_seed": 1234, "yaw": 0})
    twin = env.unwrapped.ground_truth_env
    assert np.array_equal(twin.pose.astype(np.float32), info["pose"])
    real.pose = twin.pose.copy()
    poses = []
    for action in ACTIONS:
        _, _, _, _, info = env.step(action)
        truth, _, _, _, real_info = real.step(action)
        assert np.array_equal(info["ground_truth"]["frame"], truth)
        assert np.array_equal(info["pose"], real_info["pose"]) and info["pose"].dtype == np.float32
        assert np.array_equal(info["ground_truth"]["pose"], info["pose"])
        poses.append(info["pose"])
    assert not np.array_equal(poses[0], poses[-1])


def test_reset_renders_a_walk_in_the_seeds_world(make_env):
    env = make_env(ground_truth=True, context_frames=90)
    obs, info = env.reset(seed=6, options={"world_seed": 77})
    twin = env.unwrapped.ground_truth_env
    assert twin.world_seed == 77 and twin.steps == 90
    assert np.array_equal(twin.world.blocks, generate_world(77).blocks)
    assert np.array_equal(obs, render(twin.world, twin.pose))  # the last frame of the walk
    # The walk's actions are the memory's: a Loopcraft random walk of 9-frame runs.
    actions = env.unwrapped.memory.actions(85).numpy()
    assert set(np.unique(actions)) <= {0, 1, 2} and len(np.flatnonzero(np.diff(actions))) <= 85 // 9 + 1


def test_context_from_options(make_env):
    world = generate_world(9)
    actions = np.array(([0] * 9 + [1] * 9) * 5, dtype=np.int64)
    video = render_episode(world, actions)
    env = make_env()
    options = {"context_frames": video.frames, "context_actions": actions}
    obs, info = env.reset(seed=0, options=options)
    assert np.array_equal(obs, video.frames[-1]) and info["step"] == 0
    first = rollout(env, ACTIONS)
    assert np.array_equal(rollout(env, ACTIONS, seed=0, options=options)[1:], first)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"prompt": 1},
            r"unknown reset option\(s\) \['prompt'\]; valid keys: "
            r"\['context_frames', 'context_actions', 'world_seed'\]",
        ),
        ({"context_frames": np.zeros((90, 64, 64, 3), np.uint8)}, "must be given together"),
        (
            {"context_frames": np.zeros((90, 64, 64, 3), np.float32), "context_actions": np.zeros(90, int)},
            "got dtype float32",
        ),
        (
            {"context_frames": np.zeros((90, 32, 32, 3), np.uint8), "context_actions": np.zeros(90, int)},
            r"shape \(T, 64, 64, 3\) with T >= 85; got shape \(90, 32, 32, 3\)",
        ),
        (
            {"context_frames": np.zeros((10, 64, 64, 3), np.uint8), "context_actions": np.zeros(10, int)},
            "T >= 85; got shape",
        ),
        ({"context_frames": [[0]], "context_actions": [0]}, "must be a numpy uint8 array"),
        (
            {"context_frames": np.zeros((90, 64, 64, 3), np.uint8), "context_actions": np.zeros(89, int)},
            r"shape \(90,\) .*got shape \(89,\)",
        ),
        (
            {"context_frames": np.zeros((90, 64, 64, 3), np.uint8), "context_actions": np.full(90, 3)},
            "outside",
        ),
        ({"world_seed": -1}, "non-negative int"),
        (
            {
                "world_seed": 1,
                "context_frames": np.zeros((90, 64, 64, 3), np.uint8),
                "context_actions": np.zeros(90, int),
            },
            "exclude each other",
        ),
    ],
)
def test_bad_options(make_env, options, match):
    env = make_env()
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


def test_given_context_with_ground_truth_is_refused(make_env):
    env = make_env(ground_truth=True)
    options = {"context_frames": np.zeros((90, 64, 64, 3), np.uint8), "context_actions": np.zeros(90, int)}
    with pytest.raises(ValueError, match="ground_truth=True needs a context walked"):
        env.reset(seed=0, options=options)


def test_time_limit_and_record_episode_statistics(make_env):
    env = gym.wrappers.RecordEpisodeStatistics(make_env(max_episode_steps=3))
    env.reset(seed=0)
    steps = [env.step(0) for _ in range(3)]
    assert [s[3] for s in steps] == [False, False, True]
    episode = steps[-1][4]["episode"]
    assert episode["l"] == 3 and episode["r"] == 0.0 and steps[-1][4]["step"] == 3


def test_decode_level_changes_only_the_shown_frame(make_env):
    actions = [0, 1, 2]
    # warp=None: the decoded frame is the shown one (with the id's warp these steps show none of it).
    fine, coarse = make_env(decode_level=0, warp=None), make_env(decode_level=2, warp=None)
    fine_frames, coarse_frames = rollout(fine, actions, seed=3), rollout(coarse, actions, seed=3)
    assert np.array_equal(fine_frames[0], coarse_frames[0])  # reset shows the real context frame
    assert not np.array_equal(fine_frames[1:], coarse_frames[1:])
    # Same generation and memory: the coarse frame is the newest remembered level-2 latents decoded.
    a, b = fine.unwrapped.memory, coarse.unwrapped.memory
    for level in range(4):
        assert torch.equal(a.level(level, 1), b.level(level, 1))
    world = coarse.unwrapped.world_model
    assert np.array_equal(coarse_frames[-1], world.decode_frames(b.level(2, 1), level=2)[0])
    assert np.array_equal(fine_frames[-1], world.decode_frames(a.level(0, 1), level=0)[0])
