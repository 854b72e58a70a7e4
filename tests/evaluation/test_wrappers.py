"""Recall wrapper: revisit detection on a constructed trajectory, and on the world-model env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from evaluation.revisits import RevisitTolerance, match_pose, yaw_difference
from evaluation.wrappers import RecallWrapper

#: Out and back along x: poses 0..9 then 9..0 (step t is at x = 9 - |t - 9|); yaw 0 all the way.
XS = np.r_[np.arange(10), np.arange(9)[::-1]].astype(np.float32)


class ScriptedEnv(gym.Env):
    """Follows the poses of :data:`XS`; the true frame encodes x, the 'model' adds a fixed offset."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, shadow: bool = True) -> None:
        self.shadow, self.t = shadow, 0

    def _frames(self) -> tuple[np.ndarray, np.ndarray]:
        truth = np.full((8, 8, 3), 20 * XS[self.t], np.uint8)
        return truth + 5, truth  # model frame, true frame

    def _info(self) -> dict[str, Any]:
        pose = np.array([XS[self.t], 10, 0, 0, 0], np.float32)
        return {"ground_truth": {"frame": self._frames()[1], "pose": pose}} if self.shadow else {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._frames()[0], self._info()

    def step(self, action):
        self.t += 1
        return self._frames()[0], 0.0, False, self.t == len(XS) - 1, self._info()


def test_yaw_and_pose_matching():
    assert yaw_difference(355, 5) == 10 and yaw_difference(0, 180) == 180
    earlier = np.array([[0, 0, 0, 350, 0], [0.5, 0, 0, 0, 0], [3, 0, 0, 0, 0]], float)
    match = match_pose(np.array([0, 0, 0, 0, 0.0]), earlier, RevisitTolerance(1.0, 15.0, 1))
    assert match is not None and match.index == 1 and match.distance == 0.5
    assert match_pose(np.array([10, 0, 0, 0, 0.0]), earlier, RevisitTolerance()) is None


def test_wrapper_detects_revisits_on_a_constructed_trajectory():
    env = RecallWrapper(ScriptedEnv(), max_distance=0.5, max_yaw=10, min_gap=4, metric="psnr")
    _, info = env.reset()
    assert info["recall"]["revisit"] is False and info["recall"]["metric"] == "PSNR (dB)"
    seen = {}
    for _ in range(len(XS) - 1):
        _, _, _, truncated, info = env.step(0)
        if info["recall"]["revisit"]:
            seen[info["recall"]["step"]] = info["recall"]
    # Step t >= 10 is at x = 18 - t, first seen at step 18 - t; the gap 2t - 18 must be >= 4.
    assert sorted(seen) == [11, 12, 13, 14, 15, 16, 17, 18]
    assert all(r["matched_step"] == 18 - t and r["pose_distance"] == 0 for t, r in seen.items())
    first = seen[11]
    truth_psnr = -10 * np.log10((5 / 255) ** 2)
    assert first["to_truth"] == pytest.approx(truth_psnr, abs=1e-3)  # model = truth + 5 everywhere
    assert first["to_earlier"] == 100.0 and first["truth_to_earlier"] == 100.0  # identical pictures
    assert truncated and info["recall_summary"]["revisits"] == 8 and info["recall_summary"]["steps"] == 18
    assert info["recall_summary"]["to_truth"]["mean"] == pytest.approx(truth_psnr, abs=1e-3)
    assert len(env.revisits) == 8 and env.summary()["tolerance"]["min_gap"] == 4


class ContextEnv(ScriptedEnv):
    """:class:`ScriptedEnv` that also reports three context frames at x = 2, 1 (then the reset frame 0)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        xs = np.array([2.0, 1.0, 0.0])
        info["ground_truth"]["context_poses"] = np.stack([[x, 10, 0, 0, 0] for x in xs]).astype(np.float32)
        info["ground_truth"]["context_frames"] = np.stack([np.full((8, 8, 3), 20 * x, np.uint8) for x in xs])
        return obs, info


def test_wrapper_scores_returns_to_the_context():
    """Context frames are steps -2, -1 (x = 2, 1) and 0; ``against='context'`` matches only those."""
    env = RecallWrapper(
        ContextEnv(), max_distance=0.5, max_yaw=10, min_gap=3, metric="psnr", against="context"
    )
    env.reset()
    seen = {}
    for _ in range(len(XS) - 1):
        _, _, _, _, info = env.step(0)
        if info["recall"]["revisit"]:
            seen[info["recall"]["step"]] = info["recall"]["matched_step"]
    # Step 1 (x = 1) is 2 steps after the context frame at x = 1: too close; x = 2 at step 2 is 4 after.
    assert seen == {2: -2, 16: -2, 17: -1, 18: 0}
    assert env.summary()["against"] == "context" and env.summary()["revisits"] == 4
    offset = -10 * np.log10((5 / 255) ** 2)  # the model's frame is the truth + 5, the context the truth
    # ... and the reset frame (step 0) is the env's own observation.
    assert [r["to_earlier"] for r in env.revisits] == pytest.approx([offset, offset, offset, 100.0], abs=1e-3)
    everything = RecallWrapper(ContextEnv(), max_distance=0.5, max_yaw=10, min_gap=3, metric="psnr")
    everything.reset()
    for _ in range(len(XS) - 1):
        everything.step(0)
    assert everything.summary()["revisits"] > 4  # also returns to places first seen after the reset
    with pytest.raises(ValueError, match="needs the true context"):
        RecallWrapper(ScriptedEnv(), metric="psnr", against="context").reset()
    with pytest.raises(ValueError, match="against must be"):
        RecallWrapper(ScriptedEnv(), metric="psnr", against="later")


def test_wrapper_needs_the_ground_truth_shadow():
    with pytest.raises(ValueError, match="ground_truth=True"):
        RecallWrapper(ScriptedEnv(shadow=False), metric="psnr").reset()
    with pytest.raises(ValueError, match="metric must be"):
        RecallWrapper(ScriptedEnv(), metric="fid")


@pytest.mark.parametrize("frames", [{"warp": None}, {}], ids=["model-frames", "copied-view"])
def test_wrapper_on_the_world_model_env(tmp_path, frames):
    """Every frame the model's (warp=None), or the id's copied view, which may show the start exactly."""
    import torch

    import millivid_env  # noqa: F401  (registers the ids)
    from millivid_env.registration import DEFAULT_ENV_ID
    from models.testing import save_tiny_world_model

    ae, dit = save_tiny_world_model(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inner = gym.make(DEFAULT_ENV_ID, checkpoint=str(dit), autoencoder=str(ae), device="cpu",
                         sampling_steps=1, ground_truth=True, **frames)  # fmt: skip
        env = RecallWrapper(inner, max_distance=0.1, max_yaw=5, min_gap=30)  # LPIPS (the default)
        _, info = env.reset(seed=0)
        poses, context = info["ground_truth"]["context_poses"], info["ground_truth"]["context_frames"]
        assert poses.shape == (len(context), 5) and poses.dtype == np.float32
        np.testing.assert_array_equal(poses[-1], info["ground_truth"]["pose"])
        np.testing.assert_array_equal(context[-1], info["ground_truth"]["frame"])
        for _ in range(36):  # 36 turns of 10 degrees: back to the start pose, facing the same way
            _, _, _, _, info = env.step(1)
        recall = info["recall"]
        # The start pose (step 0) or the same pose earlier in the context walk (steps < 0).
        assert recall["revisit"] and recall["matched_step"] <= 0 and recall["yaw_difference"] == 0
        assert recall["truth_to_earlier"] == pytest.approx(0, abs=1e-6)  # same place, same true view
        assert recall["metric"].startswith(("LPIPS", "ST-LPIPS"))
        # The model's frame is not the truth; the copied view may show the remembered start as it was.
        assert recall["to_truth"] > 0 if frames else recall["to_truth"] >= 0
        inner.close()
    finally:
        torch.set_num_threads(threads)
