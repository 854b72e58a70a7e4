"""`MilliVid-Loopcraft-v4`: the learned simulator of Loopcraft as a Gymnasium environment."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from millivid_env.context import check_context_frames, start_episode
from millivid_env.latent_reward import task_reward_or_none
from millivid_env.loopcraft.env import LoopcraftEnv, check_render_mode
from millivid_env.loopcraft.physics import validate_action
from millivid_env.memory import HierarchicalMemory, MemorySnapshot
from millivid_env.registration import DEFAULT_ENV_ID, MILLIVID_VARIANTS
from millivid_env.simulator import StreamingSimulator, load_warp_or_none, view_settings
from millivid_env.window import FrameWindow
from models.warp.view import ViewState
from models.world_model import WorldModel

__all__ = ["DEFAULT_AUTOENCODER", "DEFAULT_CHECKPOINT", "EnvSnapshot", "MilliVidEnv"]

#: Defaults: those of the default id (`MilliVid-Loopcraft-v4`, but without its warp: ``warp=None``);
#: ``-Fast-`` uses fewer sampler steps.
DEFAULT_AUTOENCODER = str(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["autoencoder"])
DEFAULT_CHECKPOINT = str(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["checkpoint"])
DEFAULT_SAMPLING_STEPS = int(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["sampling_steps"])  # type: ignore[call-overload]
DEFAULT_SAMPLER_ENDPOINT = bool(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["sampler_endpoint"])
DEFAULT_CONTEXT_NOISE = float(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["context_noise"])  # type: ignore[arg-type]
DEFAULT_GUIDANCE_SCALE = float(MILLIVID_VARIANTS[DEFAULT_ENV_ID]["guidance_scale"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class EnvSnapshot:
    """Everything a :class:`MilliVidEnv` episode depends on (see :meth:`MilliVidEnv.snapshot`)."""

    memory: MemorySnapshot
    np_random: np.random.Generator
    steps: int
    observation: np.ndarray
    history: tuple[tuple[np.ndarray, int], ...]
    world_seed: int | None
    twin: tuple[Any, np.ndarray, int] | None  # (world, pose, steps) of the ground-truth twin
    truth_frame: np.ndarray | None
    # The task reward's: distance, verdict, and its own per-stream state (the landmark map's pose).
    reward_state: tuple[float, tuple[bool, float] | None, Any] = (float("inf"), None, None)
    view: ViewState | None = None  # the copied view (envs with a warp)


def episode_info(
    steps: int,
    memory: HierarchicalMemory,
    judgement: tuple[bool, float] | None,
    twin: LoopcraftEnv | None,
    truth_frame: np.ndarray | None,
) -> dict[str, Any]:
    """The ``info`` of one episode (the single env's, and each sub-env's of the vector env).

    Args:
        steps: frames generated this episode.
        memory: the episode's hierarchical latent memory.
        judgement: the reward head's ``(is_success, success_prob)`` on the newest frame; None without one.
        twin: the ground-truth twin when it is stepped alongside (``ground_truth=True``), else None.
        truth_frame: uint8 ``(R, R, 3)`` the twin's current frame (read only with ``twin``).
    """
    info: dict[str, Any] = {"step": steps, "memory_tokens": memory.tokens}
    if judgement is not None:
        info["is_success"], info["success_prob"] = judgement
    if twin is not None:
        pose = np.asarray(twin.pose, dtype=np.float32)
        info["ground_truth"] = {"frame": truth_frame.copy(), "pose": pose}
        info["pose"] = pose.copy()
    return info


class MilliVidEnv(gym.Env):
    """A MilliVid world model of Loopcraft, stepped one imagined frame at a time.

    ## Description

    Every observation is *generated*: a hierarchical autoencoder + video diffusion model trained on
    Loopcraft videos imagines the next frame from a hierarchical latent memory of the past (recent
    frames at fine levels, older frames at coarse ones; `env.unwrapped.memory`). An episode starts
    from real frames: a Loopcraft world is built from the reset seed and `context_frames` frames of a
    Loopcraft random walk are rendered and encoded into the memory. `step` then runs the *streaming*
    layout: the next frame is generated coarse to fine (level 3, then 2, 1, 0) with the packed past as
    context, and level 0 is decoded. `imagine(actions)` runs the paper's open-loop rollout for a known
    action sequence. `snapshot()` / `restore(state)` / `fork()` branch the simulator for planning.

    ## Action Space

    `Discrete(3)`, as `Loopcraft-v0`:

    | action | meaning |
    |---|---|
    | 0 | walk forward (~0.22 blocks) |
    | 1 | turn left 10 degrees |
    | 2 | turn right 10 degrees |

    ## Observation Space

    `Box(0, 255, (64, 64, 3), uint8)`: an RGB frame (HWC), the model's level-0 decoding.

    ## Rewards

    0.0 without a task. With `landmark_locator`, from the landmark map (see Arguments). With
    `reward_head` (e.g. `MilliVid-Loopcraft-Landmark-v4`), a small head on the
    generated frame's coarse latents (`models.reward_head`) judges each step: the task's success reward
    (1.0) when it predicts success (probability > `success_threshold`), plus optional shaping on its
    predicted distance when the head's task has `shaping > 0`.

    ## Starting State

    The last of `context_frames` real frames of a random walk in the world of the reset seed
    (`options={"world_seed": s}` fixes the world), or of frames given with
    `options={"context_frames": uint8 (T, 64, 64, 3), "context_actions": int (T,)}` (e.g. a dataset
    video; `T >= 85`).

    ## Episode End

    Never terminates without a task; with `reward_head`, terminates when the head predicts success.
    Truncated by `TimeLimit` at `max_episode_steps`. With a task, starts closer than the task's
    `min_start_distance` to a landmark are redrawn, as in `Loopcraft-Landmark-v0` (same seed, same
    start).

    ## Info

    `step` (frames generated this episode) and `memory_tokens` (latent tokens held); with
    `reward_head` also `is_success` (predicted) and `success_prob`. With
    `ground_truth=True` a `Loopcraft-v0` twin takes the same actions: `info["ground_truth"]` holds its
    `frame` and `pose`, and `info["pose"]` its pose (float32 x, y, z, yaw, pitch); at reset it also
    holds the true `context_frames` (uint8 `(T, R, R, 3)`) and `context_poses` (float32 `(T, 5)`) of
    the walk the episode starts from.

    ## Arguments

    - `checkpoint`: diffusion checkpoint (bundled name, local directory or Hub repo id).
    - `autoencoder`: autoencoder checkpoint the diffusion model was trained on (same forms).
    - `device`: `"auto"` (CUDA when available, bf16 autocast there; else CPU fp32), `"cpu"`, `"cuda"`.
    - `sampling_steps`: sampler evaluations per sub-step (4 sub-steps per frame; default 7).
    - `sampler_endpoint`: the sampler's last evaluation is at noise time 0, as in the paper; it
      changes the latents by less than 1e-3, so False (the default) skips it: `sampling_steps`
      evaluations then do the work of `sampling_steps + 1`.
    - `context_noise`: noise time at which the memory's latents are shown to the model (default 0.25;
      0.0 is clean, as the paper; the bundled models were trained with context noise up to 0.3, and
      0.25 measured closer to the true frames than 0, docs/results/env-quality/report.md).
    - `guidance_scale`: classifier-free guidance scale of the sampler (1.0: none; above 1 pushes each
      frame further towards what the memory and the action imply, at the cost of a second,
      unconditional model branch: about 1.3x the time per frame).
    - `warp`: action-warp checkpoint (bundled name, local directory or Hub repo id; the ids use
      `loopcraft-64-warp`): frames are copied by construction, the model draws only what nothing seen
      explains (see v4 below). None: every frame is the model's decoded frame (as v3).
    - `view`: with `warp`, a dict of `models.warp.view.ViewSettings` fields that weigh the copied,
      remembered and generated pixels (default: the measured best).
    - `decode_level`: level of the generated latents that `step` decodes its frame from (0, the
      default: the finest, 64 tokens; 1: 16 tokens; 2: 4 tokens; 3: one). Generation and memory are the
      same at every value. With the bundled models the coarser frames are perceptually closer to the
      truth (ST-LPIPS over 16 test loops −0.030 at level 1, −0.068 at level 2, same PSNR): they keep
      more of the scene's layout and colours where level 0 washes them into an average landscape, at
      the cost of fine texture (docs/results/env-quality/report.md).
    - `context_frames`: real frames of the starting walk (at least 85, the memory's depth).
    - `ground_truth`: step a `Loopcraft-v0` twin alongside (see Info).
    - `render_mode`: `"rgb_array"` (the observation) or `"human"` (pygame window; the ground truth is
      shown beside the model's frame when `ground_truth=True`).
    - `reward_head`: reward-head checkpoint of a task (bundled name, local directory or Hub repo id),
      trained with `millivid train-reward-head` on this autoencoder; None: no task.
    - `success_threshold`: success probability above which the head's prediction counts (0.5).
    - `shaping`: reward per block of progress towards a landmark on the head's predicted distance
      (as `Loopcraft-Landmark-v0`'s `shaping`); None: the value the head was trained for.
    - `landmark_locator`: judge the landmark task on a map of the context instead of a head on each
      frame (pass `reward_head=None`; needs `warp`, whose fitted motion dead-reckons the pose): a
      landmark-locator checkpoint (e.g. the bundled `loopcraft-64-locator`, `millivid
      train-landmark-locator`) reads every real context frame at reset, its readings are merged into
      landmark centres, and each step succeeds when the dead-reckoned pose is within 2 blocks of a
      mapped footprint, with `shaping` on that distance (`millivid_env.landmark_map`). `"truth"`: the
      world's true landmarks (a diagnostic bound). Over 20 steered imagined episodes its step calls
      reach F1 0.78 (truth 0.93; the head on the frames 0.012; docs/results/landmark-map).

    ## Registered Configurations

    | id | sampler evaluations per sub-step | max episode steps |
    |---|---|---|
    | `MilliVid-Loopcraft-v4` | 7 (the grid of 8 without its t = 0 end) | 512 |
    | `MilliVid-Loopcraft-Fast-v4` | 3 (the grid of 4), frame-causal model; faster, lower quality | 512 |
    | `MilliVid-Loopcraft-Landmark-v4` | 3, reward head `loopcraft-64-landmark` | 200 |

    All copy frames with the bundled `loopcraft-64-warp` (`warp`; see Version History, v4). All decode
    with the bundled `loopcraft-64-perceptual` autoencoder (the `loopcraft-64` of v3, renamed when a
    decoder that reconstructs true frames better took that name; `models.defaults` says why) and read
    the `loopcraft-64-millivid` diffusion model, except `-Fast-`: `loopcraft-64-millivid-framecausal`
    (fine-tuned to frame-causal context attention, so the past is encoded once per frame instead of
    once per level). Any change that alters frames (checkpoint, sampler, resolution) gets a new id or
    version.

    ## Version History

    - v4: frames copied by construction (`warp="loopcraft-64-warp"`, `models.warp.view`): each pixel
      is the previous frame moved by the action's fitted homography, a remembered frame rotated and
      walked into the pose the actions lead to, or, where nothing seen explains it, the diffusion
      model's pixel; the shown frame is encoded into the latent memory. Over the 16 standard test
      loops the frames are closer to the truth than the last frame held still at every horizon
      (docs/results/faithful-frames/). Other frames than v3, which `gym.make` refuses with
      `DeprecatedEnv` naming v4.
    - v3: the `loopcraft-64` autoencoder's decoder fine-tuned (encoder frozen, so the latents, the
      diffusion models and the reward head are unchanged): true frames reconstruct at 26.3 instead of
      25.6 dB; generated frames are a little closer to the truth (ST-LPIPS −0.004, paired). Other frames
      than v2, which `gym.make` now refuses with `DeprecatedEnv` naming v3.
    - v2: diffusion model trained to 7,200 steps on millivid's own layout only (no streaming-layout
      mixture), run with the exact GELU; `-Fast-` runs its frame-causal fine-tune. Open-loop rollouts
      (`imagine`) much closer to the truth, env steps about as close as v1 (docs/training-runs.md).
      Other frames than v1; `gym.make("...-v1")` raises `DeprecatedEnv` naming v2.
    - v1: diffusion model trained twice as long (4,400 steps, context-noise augmentation); the sampler
      skips its evaluation at noise time 0; the memory is shown at noise time 0.25; `-Fast-` runs a
      frame-causal fine-tune of the model.
      Faster per frame; other frames than v0.
    - v0: initial release (streaming layout, hierarchical memory depths 1 / 5 / 21 / 85). No longer
      registered: `gym.make("...-v0")` raises Gymnasium's `DeprecatedEnv` naming v1.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 20}

    def __init__(
        self,
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
        """Load the world model (once per process) and build the spaces; see the class docstring."""
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self._kwargs = dict(
            checkpoint=checkpoint,
            autoencoder=autoencoder,
            device=device,
            sampling_steps=sampling_steps,
            context_frames=context_frames,
            ground_truth=ground_truth,
            render_mode=render_mode,
            reward_head=reward_head,
            success_threshold=success_threshold,
            shaping=shaping,
            sampler_endpoint=sampler_endpoint,
            context_noise=context_noise,
            guidance_scale=guidance_scale,
            decode_level=decode_level,
            warp=warp,
            view=view,
            landmark_locator=landmark_locator,
        )
        self.world_model = WorldModel.load(autoencoder, checkpoint, device)
        self._distance = float("inf")
        self._judgement: tuple[bool, float] | None = None
        self.simulator = StreamingSimulator(
            self.world_model, 1, sampling_steps, endpoint=sampler_endpoint,
            context_noise=context_noise, guidance_scale=guidance_scale, decode_level=decode_level,
            warp=load_warp_or_none(warp, self.world_model), view=view_settings(view, warp),
        )  # fmt: skip
        self.reward_model = task_reward_or_none(
            reward_head,
            landmark_locator,
            self.world_model,
            self.simulator.warp,
            success_threshold,
            shaping,
            1,
        )
        self.context_frames = check_context_frames(context_frames, self.simulator.min_context)
        self.ground_truth = bool(ground_truth)
        size = self.world_model.layout.image_size
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self._twin = LoopcraftEnv(resolution=size)
        self._obs: np.ndarray | None = None
        self._truth_frame: np.ndarray | None = None
        self._history: deque[tuple[np.ndarray, int]] = deque(maxlen=self.simulator.min_context)
        self._steps = 0
        self._world_seed: int | None = None
        self._window = FrameWindow("MilliVid-Loopcraft", self.metadata["render_fps"])

    @property
    def memory(self) -> HierarchicalMemory:
        """The hierarchical latent memory of the current episode."""
        return self.simulator.memories[0]

    @property
    def ground_truth_env(self) -> LoopcraftEnv | None:
        """The `Loopcraft-v0` twin stepped alongside (``ground_truth=True``), else None."""
        return self._twin if self.ground_truth else None

    def _info(self) -> dict[str, Any]:
        return episode_info(
            self._steps, self.memory, self._judgement, self.ground_truth_env, self._truth_frame
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode from real context frames; see the class docstring for ``options``."""
        super().reset(seed=seed)
        start = start_episode(
            self.np_random,
            options,
            context_frames=self.context_frames,
            min_frames=self.simulator.min_context,
            twin=self._twin,
            ground_truth=self.ground_truth,
            accept=None if self.reward_model is None else self.reward_model.task.accepts_start,
        )
        self.simulator.reset_stream(0, start.frames, start.actions, start.torch_seed)
        if self.reward_model is not None:
            self.reward_model.start(0, start.frames, start.actions, self._twin.world, start.poses)
        keep = self.simulator.min_context
        self._history = deque(
            zip(start.frames[-keep:], start.actions[-keep:].tolist(), strict=True), maxlen=keep
        )
        self._obs = start.frames[-1].copy()
        self._truth_frame = self._obs.copy() if self.ground_truth else None
        self._world_seed = start.world_seed
        self._steps = 0
        self._distance = float("inf")
        self._judge()
        if self.render_mode == "human":
            self.render()
        info = self._info()
        if self.ground_truth and start.poses is not None:
            # What the model was shown and where: the recall wrapper scores returns to these places.
            info["ground_truth"]["context_frames"] = start.frames.copy()
            info["ground_truth"]["context_poses"] = start.poses.copy()
        return self._obs.copy(), info

    def _judge(self) -> tuple[bool, float]:
        """Reward-head verdict on the newest frame: (success, reward); (False, 0.0) without a head."""
        if self.reward_model is None:
            return False, 0.0
        success, prob, distance = self.reward_model.judge([self.memory], [0])
        reward = self.reward_model.rewards(success, np.array([self._distance]), distance)[0]
        self._distance = float(distance[0])
        self._judgement = (bool(success[0]), float(prob[0]))
        return bool(success[0]), float(reward)

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Generate the next frame for ``action`` (0 forward, 1 left, 2 right)."""
        act = validate_action(action)
        if self._obs is None:
            raise gym.error.ResetNeeded("call env.reset() before env.step() (no episode has started)")
        frame = self.simulator.step([act])[0]
        if self.reward_model is not None:
            self.reward_model.advance(0, act)
        if self.ground_truth:
            self._truth_frame = self._twin.step(act)[0]
        self._obs = frame
        self._history.append((frame, act))
        self._steps += 1
        terminated, reward = self._judge()
        if self.render_mode == "human":
            self.render()
        return frame.copy(), reward, terminated, False, self._info()

    def imagine(self, actions: Any) -> np.ndarray:
        """Open-loop rollout of a known action sequence from the current state (the env is unchanged).

        Runs the paper's coarse-to-fine millivid schedule (``models.rollout.open_loop.imagine``) with
        the last frames of the episode as context and a copy of the env's noise generator.

        Args:
            actions: int ``(T,)`` future actions.

        Returns:
            uint8 ``(T, R, R, 3)`` imagined frames.
        """
        if self._obs is None:
            raise gym.error.ResetNeeded("call env.reset() before env.imagine()")
        actions = np.asarray(actions)
        if actions.ndim != 1 or len(actions) == 0:
            raise ValueError(f"actions must be a non-empty 1-D sequence of ints, got shape {actions.shape}")
        for value in actions:
            validate_action(value)
        from models.rollout.open_loop import imagine

        frames = np.stack([frame for frame, _ in self._history])  # (min_context, R, R, 3) newest last
        past_actions = np.array([a for _, a in self._history], dtype=np.int64)
        # A copy of the stream's generator: imagining is deterministic and does not move the env's RNG.
        generator = torch.Generator().set_state(self.memory.generator.get_state())
        return imagine(
            self.world_model,
            frames,
            past_actions,
            actions.astype(np.int64),
            strategy="millivid",
            steps=self.simulator.sampling_steps,
            generator=generator,
            endpoint=self.simulator.endpoint,
            context_t=self.simulator.context_noise,
            guidance_scale=self.simulator.guidance_scale,
        )

    # ------------------------------------------------------------------ branching
    def snapshot(self) -> EnvSnapshot:
        """The whole simulator state: memory, RNGs, step count, twin pose (deep copies)."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call env.reset() before env.snapshot()")
        twin = None
        if self.ground_truth:
            twin = (self._twin.world, self._twin.pose.copy(), self._twin.steps)
        return EnvSnapshot(
            memory=self.memory.snapshot(),
            np_random=copy.deepcopy(self.np_random),
            steps=self._steps,
            observation=self._obs.copy(),
            history=tuple(self._history),
            world_seed=self._world_seed,
            twin=twin,
            truth_frame=None if self._truth_frame is None else self._truth_frame.copy(),
            reward_state=(
                self._distance,
                self._judgement,
                None if self.reward_model is None else self.reward_model.state(0),
            ),
            view=None if self.simulator.views is None else self.simulator.views[0].state(),
        )

    def restore(self, state: EnvSnapshot) -> None:
        """Return to a :meth:`snapshot`; the following steps replay exactly (the state stays reusable)."""
        if (state.twin is None) == self.ground_truth:
            raise ValueError("the snapshot comes from an env with a different ground_truth setting")
        self.memory.restore(state.memory)
        self._np_random = copy.deepcopy(state.np_random)
        self._steps = state.steps
        self._obs = state.observation.copy()
        if self.simulator.views is not None:
            self.simulator.views[0].restore(state.view)
        self._history = deque(state.history, maxlen=self._history.maxlen)
        self._world_seed = state.world_seed
        self._truth_frame = None if state.truth_frame is None else state.truth_frame.copy()
        self._distance, self._judgement, reward_stream = state.reward_state
        if self.reward_model is not None:
            self.reward_model.restore(0, reward_stream)
        if state.twin is not None:
            world, pose, steps = state.twin
            self._twin.world, self._twin.world_seed = world, self._world_seed
            self._twin.pose, self._twin.steps = pose.copy(), steps

    def fork(self) -> MilliVidEnv:
        """An independent env (same constructor arguments, shared weights) in this env's state."""
        other = type(self)(**self._kwargs)
        if self._obs is not None:
            other.restore(self.snapshot())
        other.spec = self.spec
        return other

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        """The current frame for ``"rgb_array"``; draws the pygame window for ``"human"``."""
        if self.render_mode is None:
            env_id = self.spec.id if self.spec is not None else DEFAULT_ENV_ID
            gym.logger.warn(
                "You are calling render method without specifying any render mode. You can specify the "
                f'render_mode at initialization, e.g. gym.make("{env_id}", render_mode="rgb_array")'
            )
            return None
        if self._obs is None:
            raise gym.error.ResetNeeded("call env.reset() before env.render()")
        if self.render_mode == "rgb_array":
            return self._obs.copy()
        self._window.show([self._obs] if self._truth_frame is None else [self._obs, self._truth_frame])
        return None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Keys for `gymnasium.utils.play.play`: W / up = forward, A / left = left, D / right = right."""
        return self._twin.get_keys_to_action()

    def close(self) -> None:
        """Close the window if one is open; safe to call any number of times."""
        self._window.close()
        self._twin.close()
