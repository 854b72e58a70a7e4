"""`millivid eval-agent`: confidence intervals on known cases, reproducible real-world episodes."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from agents.eval_agent import EpisodeResult, random_policy, run_episodes, summarize
from agents.stats import bootstrap_mean_interval, wilson_interval
from millivid_env import cli


def test_wilson_interval_known_values():
    # 8/10 at 95%: the textbook Wilson interval (0.4902, 0.9433).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_bootstrap_interval():
    assert bootstrap_mean_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    x = np.random.default_rng(0).normal(1.0, 1.0, 400)
    low, high = bootstrap_mean_interval(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # normal theory: the bootstrap should agree closely
    assert low == pytest.approx(x.mean() - half, abs=0.02) and high == pytest.approx(
        x.mean() + half, abs=0.02
    )
    assert bootstrap_mean_interval(x) == (low, high)  # fixed resampling seed


def test_summarize_known_case():
    results = [EpisodeResult(i, 1.0 if i < 8 else 0.0, 10, i < 8) for i in range(10)]
    summary = summarize(results)
    assert summary["success_rate"] == 0.8 and summary["successes"] == 8
    assert summary["success_rate_ci"] == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert summary["mean_return"] == 0.8 and summary["mean_length"] == 10.0
    low, high = summary["mean_return_ci"]
    assert 0.4 <= low < 0.8 < high <= 1.0


def test_random_policy_episodes_are_reproducible():
    env = gym.make("Loopcraft-Landmark-v0", world_size=(48, 32, 48), max_episode_steps=30)
    policy = random_policy(env.action_space)
    first = run_episodes(env, policy, [3, 4], progress=False)
    assert first == run_episodes(env, policy, [3, 4], progress=False)
    assert all(r.length <= 30 and (r.episode_return > 0) == r.success for r in first)


def test_eval_agent_cli_random_and_ppo(tmp_path, capsys):
    out = tmp_path / "eval.json"
    base = ["eval-agent", "--env", "Loopcraft-Landmark-v0", "--seeds", "1", "2", "3", "--no-progress"]
    base += ["--env-kwarg", "world_size=[48, 32, 48]", "--env-kwarg", "max_episode_steps=20"]
    assert cli.main([*base, "--policy", "random", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["episodes"] == 3 and report["seeds"] == [1, 2, 3] and len(report["per_episode"]) == 3
    assert report["success_rate_ci"][0] <= report["success_rate"] <= report["success_rate_ci"][1]
    assert "success" in capsys.readouterr().out
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("Loopcraft-Landmark-v0", world_size=(48, 32, 48))
    sb3.PPO("CnnPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu").save(tmp_path / "policy.zip")
    assert cli.main([*base, "--policy", str(tmp_path), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 3
    with pytest.raises(FileNotFoundError, match="random"):
        cli.main([*base, "--policy", str(tmp_path / "missing")])
