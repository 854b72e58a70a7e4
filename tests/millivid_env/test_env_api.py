"""The world-model ids against the Gymnasium / SB3 contracts: checkers, spaces, errors, rendering."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from millivid_env.registration import (
    DEFAULT_ENV_ID,
    ENV_CHECKPOINT,
    FAST_CHECKPOINT,
    FAST_ENV_ID,
    LANDMARK_ENV_ID,
    MILLIVID_VARIANTS,
    WARP_CHECKPOINT,
)
from millivid_env.world_model_env import MilliVidEnv
from models.checkpoints import CheckpointError

IDS = list(MILLIVID_VARIANTS)


@pytest.mark.parametrize("env_id", IDS)
def test_registered_with_vector_entry_point(env_id):
    spec = gym.spec(env_id)
    assert spec.entry_point == "millivid_env.world_model_env:MilliVidEnv"
    assert spec.vector_entry_point == "millivid_env.world_model_vector_env:MilliVidVectorEnv"
    assert spec.max_episode_steps == 512 and spec.kwargs["autoencoder"] == "loopcraft-64-perceptual"
    expected = FAST_CHECKPOINT if env_id == FAST_ENV_ID else ENV_CHECKPOINT
    assert spec.kwargs["checkpoint"] == expected and spec.kwargs["sampler_endpoint"] is False
    assert spec.kwargs["context_noise"] == 0.25 and spec.kwargs["warp"] == WARP_CHECKPOINT
    assert spec.kwargs["decode_level"] == 2  # the model's fill: its level-2 frame
    assert gym.spec(FAST_ENV_ID).kwargs["sampling_steps"] < gym.spec(IDS[0]).kwargs["sampling_steps"]


@pytest.mark.parametrize(
    ("old", "current"),
    [
        ("MilliVid-Loopcraft-v3", DEFAULT_ENV_ID),
        ("MilliVid-Loopcraft-Fast-v3", FAST_ENV_ID),
        ("MilliVid-Loopcraft-Landmark-v3", LANDMARK_ENV_ID),
        ("MilliVid-Loopcraft-v2", DEFAULT_ENV_ID),
        ("MilliVid-Loopcraft-v1", DEFAULT_ENV_ID),
        ("MilliVid-Loopcraft-v0", DEFAULT_ENV_ID),
        ("MilliVid-Loopcraft-Fast-v0", FAST_ENV_ID),
        ("MilliVid-Loopcraft-Fast-v1", FAST_ENV_ID),
        ("MilliVid-Loopcraft-Fast-v2", FAST_ENV_ID),
        ("MilliVid-Loopcraft-Landmark-v2", LANDMARK_ENV_ID),
        ("MilliVid-Loopcraft-Landmark-v1", LANDMARK_ENV_ID),
    ],
)
def test_superseded_version_names_the_current_one(old, current):
    assert old != current and current.endswith("-v4")
    with pytest.raises(gym.error.DeprecatedEnv, match=re.escape(current)):
        gym.make(old)


@pytest.mark.parametrize("frames", [{"warp": None}, {}], ids=["model-frames", "copied-view"])
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(make_env, env_id, frames):
    env = make_env(env_id, **frames)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(make_env, env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(make_env(env_id), warn=True)


def test_spaces_metadata_and_step_contract(make_env):
    env = make_env()
    assert env.metadata == {"render_modes": ["rgb_array", "human"], "render_fps": 20}
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info == {"step": 0, "memory_tokens": 313}
    obs, reward, terminated, truncated, info = env.step(np.int64(1))
    assert obs in env.observation_space and type(reward) is float and reward == 0.0
    assert terminated is False and truncated is False and info == {"step": 1, "memory_tokens": 313}
    assert env.unwrapped.spec.kwargs["sampling_steps"] == 2


def test_step_before_reset(make_env, tiny_model):
    with pytest.raises(gym.error.ResetNeeded):
        make_env().step(0)  # OrderEnforcing, applied by gym.make
    env = MilliVidEnv(**tiny_model.kwargs, render_mode="rgb_array")
    with pytest.raises(gym.error.ResetNeeded, match=r"call env.reset\(\) before env.step\(\)"):
        env.step(0)
    for method in (env.snapshot, env.render):
        with pytest.raises(gym.error.ResetNeeded, match=r"call env.reset\(\) before"):
            method()


@pytest.mark.parametrize("action", [3, -1, 0.5, "left", None, True, np.array([0, 1])])
def test_invalid_actions_name_the_valid_ones(make_env, action):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="valid actions: 0 forward, 1 left, 2 right"):
        env.unwrapped.step(action)


def test_bad_constructor_arguments(tiny_model):
    with pytest.raises(ValueError, match="render_mode must be one of"):
        MilliVidEnv(**tiny_model.kwargs, render_mode="ansi")
    with pytest.raises(ValueError, match="context_frames must be an int >= 85"):
        MilliVidEnv(**tiny_model.kwargs, context_frames=64)
    with pytest.raises(ValueError, match="sampling_steps must be a positive int"):
        MilliVidEnv(**tiny_model.kwargs, sampling_steps=0)
    with pytest.raises(ValueError, match=r"context_noise must lie in \[0, 1\]"):
        MilliVidEnv(**tiny_model.kwargs, context_noise=1.5)
    for scale in (0.0, float("nan")):
        with pytest.raises(ValueError, match=r"guidance_scale must be a finite number > 0"):
            MilliVidEnv(**tiny_model.kwargs, guidance_scale=scale)
    for level in (4, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"decode_level must be an int in \[0, 3\]"):
            MilliVidEnv(**tiny_model.kwargs, decode_level=level)


def test_bundled_default_checkpoints_step():
    env = gym.make(FAST_ENV_ID)
    obs, info = env.reset(seed=0)
    obs, *_ = env.step(0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and 20 < obs.mean() < 235
    env.close()


def test_missing_checkpoints_give_the_loader_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr("models.checkpoints.BUNDLED_DIR", tmp_path / "no-bundled-models")
    monkeypatch.setattr("models.world_model._CACHE", {})
    with pytest.raises(CheckpointError, match="unknown checkpoint 'loopcraft-64.*Bundled checkpoints"):
        gym.make(DEFAULT_ENV_ID)
    with pytest.raises(CheckpointError, match="unknown checkpoint 'no-such-model'"):
        gym.make(DEFAULT_ENV_ID, checkpoint="no-such-model", autoencoder=tiny_model.kwargs["autoencoder"])
    # The models found, the id's bundled warp is missing too.
    with pytest.raises(CheckpointError, match=f"unknown checkpoint '{WARP_CHECKPOINT}'"):
        gym.make(DEFAULT_ENV_ID, **tiny_model.kwargs)


def test_checkpoints_of_the_wrong_kind_name_the_argument_that_takes_them(tiny_model, tmp_path):
    ae, dit = tiny_model.kwargs["autoencoder"], tiny_model.kwargs["checkpoint"]
    ae_as_dit = (
        f"checkpoint={re.escape(repr(ae))} is an autoencoder checkpoint, not a diffusion one; pass it as "
        r"autoencoder=\.\.\., and give checkpoint= a diffusion checkpoint "
        r"\(bundled: .*'loopcraft-64-millivid'"
    )
    dit_as_ae = (
        f"autoencoder={re.escape(repr(dit))} is a diffusion checkpoint, not an autoencoder one; pass it as "
        r"checkpoint=\.\.\., and give autoencoder= an autoencoder checkpoint "
        r"\(bundled: .*'loopcraft-64-perceptual'"
    )
    swapped = (
        ({"checkpoint": ae, "autoencoder": ae}, ae_as_dit),
        ({"checkpoint": dit, "autoencoder": dit}, dit_as_ae),
        ({"checkpoint": "loopcraft-64", "autoencoder": ae}, "checkpoint='loopcraft-64' is an autoencoder"),
        (
            {"checkpoint": dit, "autoencoder": "loopcraft-64-millivid"},
            "autoencoder='loopcraft-64-millivid' is a ",
        ),
    )
    for kwargs, message in swapped:
        with pytest.raises(CheckpointError, match=message):
            gym.make(FAST_ENV_ID, **kwargs)
    with pytest.raises(CheckpointError, match="autoencoder=.* is a diffusion checkpoint"):
        gym.make_vec(
            FAST_ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", checkpoint=dit, autoencoder=dit
        )
    with pytest.raises(
        CheckpointError, match=r"reward_head=.* is a diffusion checkpoint.*pass it as checkpoint="
    ):
        gym.make(LANDMARK_ENV_ID, reward_head=dit, autoencoder=ae, checkpoint=dit)
    # A kind that is told by its config's own "kind" field: refused by both arguments.
    warp = tmp_path / "warp"
    warp.mkdir()
    (warp / "config.json").write_text('{"kind": "action-warp", "resolution": 64, "num_actions": 3}')
    for kwargs in (
        {"checkpoint": str(warp), "autoencoder": ae},
        {"checkpoint": dit, "autoencoder": str(warp)},
    ):
        with pytest.raises(
            CheckpointError,
            match=r"is an action-warp checkpoint, not an? (diffusion|autoencoder) one; pass it as warp=",
        ):
            gym.make(FAST_ENV_ID, **kwargs)


def test_render_modes(make_env, monkeypatch):
    env = make_env(render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    assert np.array_equal(env.render(), obs)
    silent = make_env()
    silent.reset(seed=1)
    with pytest.warns(UserWarning, match='render_mode="rgb_array"'):
        assert silent.unwrapped.render() is None


def test_human_render_shows_ground_truth_beside_the_model(make_env):
    pytest.importorskip("pygame")
    env = make_env(render_mode="human", ground_truth=True)
    env.reset(seed=2)
    env.step(0)
    window = env.unwrapped._window
    assert window.is_open and window._panels == 2
    env.close()
    env.close()  # idempotent
    assert not window.is_open


def test_keys_to_action_for_gymnasium_play(make_env):
    mapping = make_env().unwrapped.get_keys_to_action()
    assert sorted(set(mapping.values())) == [0, 1, 2] and all(isinstance(k, tuple) for k in mapping)


def test_import_does_not_load_torch():
    code = f"import sys, millivid_env, gymnasium as gym; gym.spec('{DEFAULT_ENV_ID}')\n"
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_warnings_on_make_and_steps(make_env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make_env()
        env.reset(seed=0)
        env.step(2)


def test_gymnasium_play_runs_with_the_env_keymap(make_env, monkeypatch):
    pygame = pytest.importorskip("pygame")
    from gymnasium.utils import play

    events = iter(
        [[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_d)], [], [pygame.event.Event(pygame.QUIT)]]
    )
    monkeypatch.setattr(pygame.event, "get", lambda *args, **kwargs: next(events))
    actions = []
    play.play(make_env(render_mode="rgb_array"), fps=1000, callback=lambda *step: actions.append(step[2]))
    assert actions == [2, 2]  # D held: turn right, until the window is closed
