"""Gymnasium's recording wrappers on a world-model id: a real mp4 (MoviePy comes with the extras)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np

from millivid_env.registration import FAST_ENV_ID

STEPS = 3


def test_record_video_and_episode_statistics_on_the_fast_id(tmp_path: Path) -> None:
    env = gym.make(FAST_ENV_ID, render_mode="rgb_array", max_episode_steps=STEPS)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda episode: True)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    try:
        first, _ = env.reset(seed=0)
        shown = [first]
        for _ in range(STEPS):
            obs, reward, terminated, truncated, info = env.step(0)
            shown.append(obs)
    finally:
        env.close()
    assert truncated and not terminated
    assert info["episode"]["l"] == STEPS and info["episode"]["r"] == reward == 0.0

    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["rl-video-episode-0.mp4"]
    assert videos[0].stat().st_size > 0
    frames = np.stack(list(iio.imiter(videos[0], plugin="FFMPEG")))
    assert frames.shape == (STEPS + 1, 64, 64, 3) and frames.dtype == np.uint8
    # The video shows the episode's frames (lossy: close, not equal).
    error = np.abs(frames.astype(np.int16) - np.stack(shown).astype(np.int16)).mean()
    assert error < 12, f"mean absolute difference {error:.1f} between the video and the frames shown"
