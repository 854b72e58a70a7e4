"""`MilliVid-Loopcraft-v4` as a Gymnasium vector env: all sub-envs stepped in one batched model call.

Made by ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` (the default mode
for the ids of this package). One copy of the weights serves every sub-env and every sampler
evaluation runs the ``N`` streams as one batch, instead of ``N`` separate envs each running the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from millivid_env.context import check_context_frames, start_episode
from millivid_env.latent_reward import task_reward_or_none
from millivid_env.loopcraft.env import LoopcraftEnv, check_render_mode
from millivid_env.loopcraft.physics import validate_action
from millivid_env.memory import HierarchicalMemory
from millivid_env.simulator import StreamingSimulator, load_warp_or_none, view_settings
from millivid_env.world_model_env import (
    DEFAULT_AUTOENCODER,
    DEFAULT_CHECKPOINT,
    DEFAULT_CONTEXT_NOISE,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_SAMPLER_ENDPOINT,
    DEFAULT_SAMPLING_STEPS,
    episode_info,
)
from models.world_model import WorldModel

__all__ = ["MilliVidVectorEnv"]


class MilliVidVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~millivid_env.world_model_env.MilliVidEnv` sharing one batched model.

    Sub-env ``i`` behaves exactly like a single ``MilliVidEnv`` reset with seed ``seed + i`` (same
    worlds, walks, noise and frames; see :func:`models.rollout.streaming.generate_next_frame` for the
    floating-point conditions of bit equality). Spaces, options and info keys are the single env's,
    batched.

    **Autoreset: same step** (``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``). When a sub-env
    is truncated (after ``max_episode_steps`` steps) or terminated (only with a ``reward_head``, when
    it predicts success), the step that ends its episode also resets it: the returned observation is
    the first of the new episode, the last one is in ``info["final_obs"][i]`` and its info in
    ``info["final_info"]`` (masks ``_final_obs``, ``_final_info``), and the info of the new episode is
    in ``info`` itself. Same-step was chosen
    over Gymnasium's default next-step mode because every call then advances every sub-env (a
    next-step reset would spend a whole batched model call on some sub-envs doing nothing), and
    because it is what stable-baselines3 expects (``agents.sb3_vec_env`` only renames keys).

    Args:
        num_envs: number of sub-envs ``N``.
        max_episode_steps: truncation length (from the registered spec; None: never truncate).
        checkpoint: diffusion checkpoint (bundled name, local directory or Hub repo id).
        autoencoder: autoencoder checkpoint.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        sampling_steps: sampler evaluations per sub-step.
        sampler_endpoint: the sampler's last evaluation is at noise time 0 (see the single env).
        context_noise: noise time of the remembered latents shown to the model (see the single env).
        guidance_scale: classifier-free guidance scale of the sampler (see the single env).
        decode_level: level of the generated latents the frames are decoded from (see the single env).
        context_frames: real frames of each starting walk (>= 85).
        ground_truth: step a ``Loopcraft-v0`` twin per sub-env (``info["ground_truth"]``, ``info["pose"]``).
        render_mode: None or ``"rgb_array"`` (``render()`` returns a tuple of the sub-envs' frames).
        reward_head: reward-head checkpoint of a task (see the single env); all sub-envs are judged in
            one batched head call.
        success_threshold: success probability above which the head's prediction counts.
        shaping: shaping coefficient of the task (None: the head's own; see the single env).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        checkpoint: str = DEFAULT_CHECKPOINT,
        autoencoder: str = DEFAULT_AUTOENCODER,
        device: str = "auto",
        sampling_steps: int = DEFAULT_SAMPLING_STEPS,
        context_frames: int = 85,
        ground_truth: bool = False,
        render_mode: str | None = None,
        reward_head: str | None = None,
        success_threshold: float = 0.5,
        shaping: float | None = None,
        sampler_endpoint: bool = DEFAULT_SAMPLER_ENDPOINT,
        context_noise: float = DEFAULT_CONTEXT_NOISE,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        decode_level: int = 0,
        warp: str | None = None,
        view: dict[str, Any] | None = None,
        landmark_locator: str | None = None,
    ) -> None:
        """Load the model (once per process) and build the batched spaces; see the class docstring."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        check_render_mode(render_mode, self.metadata["render_modes"])
        if max_episode_steps is not None and max_episode_steps != -1 and max_episode_steps < 1:
            raise ValueError(
                f"max_episode_steps must be >= 1, -1 or None (no limit), got {max_episode_steps}"
            )
        self.num_envs = num_envs
        self.max_episode_steps = None if max_episode_steps in (None, -1) else int(max_episode_steps)
        self.render_mode = render_mode
        self.world_model = WorldModel.load(autoencoder, checkpoint, device)
        self.simulator = StreamingSimulator(
            self.world_model, num_envs, sampling_steps, endpoint=sampler_endpoint,
            context_noise=context_noise, guidance_scale=guidance_scale, decode_level=decode_level,
            warp=load_warp_or_none(warp, self.world_model), view=view_settings(view, warp),
        )  # fmt: skip
        self.reward_model = task_reward_or_none(
            reward_head, landmark_locator, self.world_model, self.simulator.warp, success_threshold, shaping,
            num_envs,
        )  # fmt: skip
        self.context_frames = check_context_frames(context_frames, self.simulator.min_context)
        self.ground_truth = bool(ground_truth)
        size = self.world_model.layout.image_size
        self.single_action_space = spaces.Discrete(3)
        self.single_observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._twins = [LoopcraftEnv(resolution=size) for _ in range(num_envs)]
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._obs = np.zeros((num_envs, size, size, 3), dtype=np.uint8)
        self._truth = np.zeros_like(self._obs)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        # Reward-head state per sub-env: predicted distance, success and its probability.
        self._distance = np.full(num_envs, np.inf)
        self._success = np.zeros(num_envs, dtype=np.bool_)
        self._prob = np.zeros(num_envs, dtype=np.float64)
        self._started = False

    @property
    def memories(self) -> list[HierarchicalMemory]:
        """The sub-envs' hierarchical latent memories."""
        return self.simulator.memories

    def _info(self, i: int) -> dict[str, Any]:
        judgement = None if self.reward_model is None else (bool(self._success[i]), float(self._prob[i]))
        twin = self._twins[i] if self.ground_truth else None
        return episode_info(int(self._steps[i]), self.memories[i], judgement, twin, self._truth[i])

    def _reset_one(self, i: int, options: dict[str, Any] | None) -> dict[str, Any]:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random()
        start = start_episode(
            self._rngs[i],
            options,
            context_frames=self.context_frames,
            min_frames=self.simulator.min_context,
            twin=self._twins[i],
            ground_truth=self.ground_truth,
            accept=None if self.reward_model is None else self.reward_model.task.accepts_start,
        )
        self.simulator.reset_stream(i, start.frames, start.actions, start.torch_seed)
        if self.reward_model is not None:
            self.reward_model.start(i, start.frames, start.actions, self._twins[i].world, start.poses)
        self._obs[i] = start.frames[-1]
        self._truth[i] = start.frames[-1]
        self._steps[i] = 0
        if self.reward_model is not None:
            success, prob, distance = self.reward_model.judge(self.memories, [i])
            self._success[i], self._prob[i], self._distance[i] = success[0], prob[0], distance[0]
        return self._info(i)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the sub-envs (all, or those of ``options["reset_mask"]``).

        Args:
            seed: None (keep / draw fresh generators), an int (sub-env ``i`` gets ``seed + i``) or one
                seed per sub-env.
            options: the single env's reset options, applied to every reset sub-env, plus the optional
                ``reset_mask`` (bool ``(num_envs,)``).

        Returns:
            ``(observations uint8 (N, R, R, 3), info)``.
        """
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=None if seed is None else int(seed))
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        elif not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a bool numpy array of shape ({self.num_envs},)")
        elif not self._started and not mask.all():
            raise ValueError("the first reset must reset every sub-env (no reset_mask, or an all-True one)")
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask).tolist():
            if seeds[i] is not None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
            infos = self._add_info(infos, self._reset_one(i, options or None), i)
        self._started = True
        return self._obs.copy(), infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env in one batched model call; finished sub-envs reset in the same step."""
        if not self._started:
            raise gym.error.ResetNeeded("call envs.reset() before envs.step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},), one per sub-env; got {actions.shape}"
            )
        acts = [validate_action(a) for a in actions]
        self._obs[:] = self.simulator.step(acts)
        if self.reward_model is not None:
            for i, act in enumerate(acts):
                self.reward_model.advance(i, act)
        if self.ground_truth:
            for i, (twin, act) in enumerate(zip(self._twins, acts, strict=True)):
                self._truth[i] = twin.step(act)[0]
        self._steps += 1
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        if self.reward_model is not None:
            success, self._prob[:], distance = self.reward_model.judge(self.memories, range(self.num_envs))
            rewards = self.reward_model.rewards(success, self._distance, distance)
            self._success[:], self._distance[:] = success, distance
            terminations = success.copy()
        if self.max_episode_steps is None:
            truncations = np.zeros(self.num_envs, dtype=np.bool_)
        else:
            truncations = self._steps >= self.max_episode_steps
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            info = self._info(i)
            if truncations[i] or terminations[i]:
                infos = self._add_info(infos, {"final_obs": self._obs[i].copy(), "final_info": info}, i)
                info = self._reset_one(i, None)
            infos = self._add_info(infos, info, i)
        return self._obs.copy(), rewards, terminations, truncations, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The sub-envs' current frames (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. You can specify the "
                'render_mode at initialization, e.g. gym.make_vec(id, num_envs, render_mode="rgb_array")'
            )
            return None
        return tuple(frame.copy() for frame in self._obs)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release (the weights are shared through the per-process cache)."""
        for twin in self._twins:
            twin.close()
