"""The reward head: checkpoint round trip, `millivid train-reward-head`, and its use in the model envs."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from agents.reward_head_training import classification_metrics
from millivid_env import cli
from millivid_env.registration import DEFAULT_ENV_ID, LANDMARK_ENV_ID, MILLIVID_TASK_VARIANTS, WARP_CHECKPOINT
from models.checkpoints import CheckpointError, save_checkpoint
from models.reward_head import RewardHead, RewardHeadConfig, load_reward_head

ID = LANDMARK_ENV_ID


def test_registered_task_id():
    spec = gym.spec(ID)
    assert spec.max_episode_steps == 200 and spec.kwargs["reward_head"] == "loopcraft-64-landmark"
    assert spec.vector_entry_point == "millivid_env.world_model_vector_env:MilliVidVectorEnv"
    assert spec.kwargs["warp"] == WARP_CHECKPOINT


def test_save_load_round_trip(tmp_path):
    head = RewardHead(RewardHeadConfig(hidden=8, levels=(2, 3)))
    save_checkpoint(head, tmp_path / "head")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    assert config["levels"] == [2, 3] and config["task"] == "landmark"
    loaded = load_reward_head(tmp_path / "head")
    assert loaded.config == head.config and not loaded.training
    latents = torch.randn(3, 85, 32)
    prob, distance = loaded.predict(latents)
    assert prob.shape == distance.shape == (3,) and (distance >= 0).all()
    assert torch.equal(head.eval()(latents), loaded(latents))
    with pytest.raises(ValueError, match=r"\(B, 85, 32\)"):
        loaded(torch.randn(3, 21, 32))
    (tmp_path / "head" / "config.json").write_text(json.dumps({**config, "hidden": 16}))
    with pytest.raises(CheckpointError, match="does not match"):
        load_reward_head(tmp_path / "head")


def test_classification_metrics_known_case():
    m = classification_metrics(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 0, 1, 1], bool))
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (2, 1, 1)
    assert m["accuracy"] == pytest.approx(0.6) and m["precision"] == m["recall"] == pytest.approx(2 / 3)


def test_train_reward_head_cli(tiny_model, tmp_path, capsys):
    out = tmp_path / "head"
    argv = ["train-reward-head", "--autoencoder", str(tiny_model.autoencoder), "--out", str(out)]
    argv += ["--episodes", "4", "--max-steps", "30", "--epochs", "2", "--hidden", "16", "--no-progress"]
    argv += ["--scripted-fraction", "1.0", "--test-fraction", "0.25"]
    argv += ["--imagination-episodes", "2", "--imagination-max-steps", "3"]
    argv += ["--diffusion", str(tiny_model.diffusion)]
    assert cli.main(argv) == 0
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "README.md",
        "metrics.json",
    }
    head = load_reward_head(out)
    assert head.config.hidden == 16 and head.config.radius == 2.0
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("train", "test"):
        assert {"accuracy", "precision", "recall", "f1", "distance_mae_blocks"} <= set(metrics[split])
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    assert metrics["data"]["episodes"] == 4 and metrics["data"]["test_episodes"] == 1
    assert metrics["data"]["scripted_episodes"] == 4
    judged = metrics["imagination"]
    landmark = MILLIVID_TASK_VARIANTS[LANDMARK_ENV_ID]
    assert judged["episodes"] == 2 and 2 <= judged["frames"] <= 6
    assert judged["sampling_steps"] == landmark["sampling_steps"]
    card = (out / "README.md").read_text()
    assert "held-out" in card and "## In imagination" in card and "| --- |" not in card
    printed = capsys.readouterr().out
    assert "held-out: accuracy" in printed and "in imagination (2 episodes" in printed


def test_train_reward_head_on_imagined_frames(tiny_model, tmp_path):
    out = tmp_path / "head"
    argv = ["train-reward-head", "--autoencoder", str(tiny_model.autoencoder), "--out", str(out)]
    argv += ["--episodes", "4", "--max-steps", "20", "--epochs", "2", "--hidden", "16", "--no-progress"]
    argv += ["--scripted-fraction", "1.0", "--test-fraction", "0.25"]
    argv += [
        "--diffusion",
        str(tiny_model.diffusion),
        "--imagined-episodes",
        "4",
        "--imagined-max-steps",
        "5",
    ]
    assert cli.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    imagined = metrics["imagined_data"]
    assert imagined["episodes"] == 4 and imagined["test_episodes"] == 1 and imagined["env"] == LANDMARK_ENV_ID
    assert 4 <= imagined["frames"] <= 4 * 6  # the start frame and at most 5 steps per episode
    real, shown = metrics["test_real"], metrics["test_imagined"]
    assert real["frames"] + shown["frames"] == metrics["test"]["frames"]
    assert "imagined frames" in (out / "README.md").read_text()


def test_imagined_frames_are_labelled_by_the_twin(tiny_model):
    from agents.landmark_data import collect_imagined_landmark_frames

    kwargs = {**tiny_model.kwargs, "reward_head": str(tiny_model.head_always)}  # it must not end episodes
    data = collect_imagined_landmark_frames(
        kwargs, 2, max_steps=4, seed=7, scripted_fraction=1.0, progress=False
    )
    assert data.frames.shape[1:] == (64, 64, 3) and data.frames.dtype == np.uint8
    assert len(data.frames) == len(data.success) == len(data.distance) == len(data.episode)
    assert np.bincount(data.episode).tolist() == [5, 5] or data.reached.any()
    real = gym.make("Loopcraft-Landmark-v0")
    _, info = real.reset(seed=7)  # the imagined episode 0 starts as the real task env with seed 7
    assert data.distance[0] == pytest.approx(info["landmark_distance"], abs=1e-4)
    with pytest.raises(ValueError, match="reward_head"):
        collect_imagined_landmark_frames(tiny_model.kwargs, 1)


def make_task_env(tiny_model, head, **overrides):
    return gym.make(ID, **{**tiny_model.kwargs, "reward_head": str(head), **overrides})


def test_model_env_with_head_passes_checkers(tiny_model):
    env = make_task_env(tiny_model, tiny_model.head_never)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(make_task_env(tiny_model, tiny_model.head_never), warn=True)


def test_head_decides_reward_and_termination(tiny_model):
    never = make_task_env(tiny_model, tiny_model.head_never)
    _, info = never.reset(seed=0)
    assert info["is_success"] is False and info["success_prob"] < 0.01
    _, reward, terminated, truncated, info = never.step(0)
    assert (reward, terminated, truncated) == (0.0, False, False)
    always = make_task_env(tiny_model, tiny_model.head_always)
    always.reset(seed=0)
    _, reward, terminated, _, info = always.step(0)
    assert (reward, terminated, info["is_success"]) == (1.0, True, True)


def test_model_env_starts_where_the_real_task_env_starts(tiny_model):
    imagined = make_task_env(tiny_model, tiny_model.head_never, ground_truth=True)
    real = gym.make("Loopcraft-Landmark-v0")
    for seed in (0, 1):
        _, info = imagined.reset(seed=seed)
        obs, real_info = real.reset(seed=seed)
        assert np.array_equal(info["pose"], real_info["pose"])
        assert np.array_equal(info["ground_truth"]["frame"], obs)


def test_vector_env_resets_terminated_sub_envs(tiny_model):
    envs = gym.make_vec(
        ID,
        num_envs=2,
        vectorization_mode="vector_entry_point",
        **{**tiny_model.kwargs, "reward_head": str(tiny_model.head_always)},
    )
    envs.reset(seed=0)
    _, rewards, terminations, truncations, infos = envs.step(np.array([0, 1]))
    assert rewards.tolist() == [1.0, 1.0] and terminations.all() and not truncations.any()
    assert infos["_final_obs"].all() and infos["step"].tolist() == [0, 0]
    envs.close()


def test_mismatched_head_is_rejected(tiny_model, tmp_path):
    save_checkpoint(RewardHead(RewardHeadConfig(layout="paper-256", hidden=4)), tmp_path / "wrong")
    with pytest.raises(CheckpointError, match="layout"):
        make_task_env(tiny_model, tmp_path / "wrong")
    with pytest.raises(ValueError, match="success_threshold"):
        make_task_env(tiny_model, tiny_model.head_never, success_threshold=1.5)


def test_shaping_overrides_the_heads_task(tiny_model):
    env = make_task_env(tiny_model, tiny_model.head_never, shaping=0.25)
    assert env.unwrapped.reward_model.task.shaping == 0.25
    assert make_task_env(tiny_model, tiny_model.head_never).unwrapped.reward_model.task.shaping == 0.0
    with pytest.raises(ValueError, match="shaping must be >= 0"):
        make_task_env(tiny_model, tiny_model.head_never, shaping=-1.0)
    with pytest.raises(ValueError, match="shaping needs a task: pass reward_head"):
        gym.make(DEFAULT_ENV_ID, **tiny_model.kwargs, shaping=0.1)


def test_regularised_training_is_reproducible_and_checks_its_arguments():
    from agents.reward_head_training import train_reward_head

    g = torch.Generator().manual_seed(0)
    latents = torch.rand(64, 85, 32, generator=g) * 2 - 1
    success = (latents[:, 84, 0] > 0.3).numpy()
    distance = np.linspace(0.0, 20.0, 64)
    test_mask = np.arange(64) >= 48
    config = RewardHeadConfig(hidden=8)
    kwargs = {"epochs": 2, "batch_size": 16, "weight_decay": 0.1, "latent_noise": 0.2, "progress": False}
    first, metrics = train_reward_head(latents, success, distance, test_mask, config, **kwargs)
    second, _ = train_reward_head(latents, success, distance, test_mask, config, **kwargs)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    quiet, _ = train_reward_head(
        latents, success, distance, test_mask, config, **{**kwargs, "latent_noise": 0.0}
    )
    assert not all(torch.equal(a, b) for a, b in zip(first.parameters(), quiet.parameters(), strict=True))
    assert metrics["train"]["frames"] == 48 and metrics["test"]["frames"] == 16
    with pytest.raises(ValueError, match="latent_noise must be >= 0"):
        train_reward_head(latents, success, distance, test_mask, config, **{**kwargs, "latent_noise": -0.1})


def test_imagined_judgement_counts_steps_and_needs_a_head(tiny_model):
    from agents.imagined_judgement import judge_in_imagination

    kwargs = {**tiny_model.kwargs, "reward_head": str(tiny_model.head_always)}
    judged = judge_in_imagination(kwargs, episodes=2, max_steps=5, progress=False)
    # the head calls success at once, so every episode ends after its first step
    assert judged.predicted.tolist() == [True, True] and judged.episode.tolist() == [0, 1]
    assert (judged.probability > 0.99).all() and not judged.truth.any()  # starts are >= 4 blocks away
    metrics = judged.metrics()
    assert metrics["precision"] == 0.0 and metrics["episodes_predicted_reached"] == 2
    assert metrics["episodes_called_wrongly"] == 2 and metrics["episodes_called_rightly"] == 0
    assert judged.frame_error.shape == judged.distance.shape == judged.drawn.shape == (2,)
    assert (judged.frame_error >= 0).all() and (judged.distance > 2.0).all()
    assert 0.0 <= metrics["drawn_fraction"] <= 1.0 and metrics["frame_error_mean"] >= 0.0
    control = judge_in_imagination(kwargs, episodes=1, max_steps=2, progress=False, true_frames=True)
    assert control.true_frame_probability.shape == (1,) and control.true_frame_probability[0] > 0.99
    assert control.metrics()["true_frames"]["frames"] == 1 and judged.true_frame_probability is None
    never = judge_in_imagination({**kwargs, "reward_head": str(tiny_model.head_never)}, 1, max_steps=4)
    assert len(never.predicted) == 4 and not never.predicted.any()
    with pytest.raises(ValueError, match="needs env_kwargs\\['reward_head'\\]"):
        judge_in_imagination(tiny_model.kwargs, episodes=1)
