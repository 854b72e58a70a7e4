"""`millivid train-agent` on the real env and in imagination; resume; env kwargs; missing extras."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import pytest

pytest.importorskip("stable_baselines3")

from agents import deps  # noqa: E402
from agents.train_agent import latest_checkpoint, parse_env_kwargs  # noqa: E402
from millivid_env import cli  # noqa: E402
from millivid_env.registration import LANDMARK_ENV_ID  # noqa: E402

PPO_SMALL = ["--n-steps", "32", "--batch-size", "32", "--n-epochs", "1", "--verbose", "0"]


def test_parse_env_kwargs():
    assert parse_env_kwargs(["a=1", "b=true", "c=dir/x", "d=[1, 2]"]) == {
        "a": 1,
        "b": True,
        "c": "dir/x",
        "d": [1, 2],
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_env_kwargs(["nokey"])


def test_train_on_the_real_env_and_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "real"
    argv = ["train-agent", "--env", "Loopcraft-Landmark-v0", "--num-envs", "2", "--out", str(out)]
    argv += ["--checkpoint-every", "128", "--env-kwarg", "world_size=[48, 32, 48]", *PPO_SMALL]
    assert cli.main([*argv, "--steps", "256"]) == 0
    assert (out / "policy.zip").is_file() and (out / "logs" / "progress.csv").is_file()
    record = json.loads((out / "agent.json").read_text())
    assert record["steps"] == 256 and record["env_kwargs"] == {"world_size": [48, 32, 48]}
    assert latest_checkpoint(out).name == "ppo_256_steps.zip"
    assert any((out / "logs").glob("events.out.tfevents.*")) == deps.has_tensorboard()
    monkeypatch.setattr("agents.train_agent.has_tensorboard", lambda: False)  # CSV-only fallback
    assert cli.main([*argv, "--steps", "320", "--resume"]) == 0
    assert "tensorboard is not installed" in capsys.readouterr().out
    record = json.loads((out / "agent.json").read_text())
    assert record["steps"] == 320 and record["resumed_from"].endswith("ppo_256_steps.zip")


def test_train_in_imagination_through_the_batched_env(tiny_model, tmp_path):
    out = tmp_path / "imagined"
    argv = ["train-agent", "--env", LANDMARK_ENV_ID, "--num-envs", "2", "--out", str(out)]
    for key, value in {
        **tiny_model.kwargs,
        "reward_head": tiny_model.head_never,
        "max_episode_steps": 24,
    }.items():
        argv += ["--env-kwarg", f"{key}={value}"]
    assert cli.main([*argv, "--steps", "192", *PPO_SMALL]) == 0
    assert (out / "policy.zip").is_file() and (out / "monitor" / "monitor.csv").is_file()
    assert json.loads((out / "agent.json").read_text())["steps"] == 192


def test_unknown_env_id(tmp_path):
    with pytest.raises(ValueError, match="Loopcraft-Landmark-v0"):
        cli.main(["train-agent", "--env", "Nope-v0", "--steps", "8", "--out", str(tmp_path)])


def test_missing_stable_baselines3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"millivid-env\[agents\]"):
        deps.require_sb3()
