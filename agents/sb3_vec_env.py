"""A stable-baselines3 ``VecEnv`` over a same-step-autoreset Gymnasium vector env (batched world model).

SB3 does not take Gymnasium vector envs: its ``VecEnv`` returns ``(obs, rewards, dones, infos)`` with
``infos`` a list of dicts, resets finished sub-envs in the same step and puts the last observation
in ``infos[i]["terminal_observation"]`` (``docs/guide/vec_envs.md``). A Gymnasium vector env with
``AutoresetMode.SAME_STEP`` (such as ``MilliVid-Loopcraft-v4`` made with ``gym.make_vec``) already
resets in the same step, so this adapter only renames: ``final_obs`` -> ``terminal_observation``,
``final_info`` -> the step's info, the new episode's info -> ``reset_infos[i]``.

    envs = gym.make_vec("MilliVid-Loopcraft-v4", num_envs=8, vectorization_mode="vector_entry_point")
    model = PPO("CnnPolicy", SB3VecEnv(envs))

Sub-envs are not separate objects here: ``get_attr`` / ``set_attr`` / ``env_method`` reach the batched
env, once per requested index.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["SB3VecEnv", "unbatch_info"]


def unbatch_info(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """A Gymnasium vector info (arrays + ``_key`` masks, nested dicts) as one dict per sub-env.

    Args:
        infos: the vector env's info dict.
        num_envs: number of sub-envs.

    Returns:
        ``num_envs`` dicts; a key appears in dict ``i`` only where its mask is True (no mask: always).
    """
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(num_envs, dtype=bool))
        values = unbatch_info(value, num_envs) if isinstance(value, dict) else value
        for i in np.flatnonzero(mask).tolist():
            out[i][key] = values[i]
    return out


class SB3VecEnv(VecEnv):
    """SB3 view of a Gymnasium ``VectorEnv`` whose ``metadata["autoreset_mode"]`` is ``SAME_STEP``.

    Args:
        venv: the vector env (its observation/action spaces are the single env's, batched).

    Raises:
        ValueError: the vector env does not autoreset in the same step.
    """

    def __init__(self, venv: VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"SB3VecEnv needs a vector env with AutoresetMode.SAME_STEP (SB3 resets in the same step); "
                f"got {mode!r}. Use stable_baselines3's DummyVecEnv over single envs for other modes"
            )
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        """Reset every sub-env with the seeds of :meth:`seed` and the options of :meth:`set_options`."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options
        if all(o == options[0] for o in options):
            obs, infos = self.venv.reset(seed=seeds, options=deepcopy(options[0]) or None)
            self.reset_infos = unbatch_info(infos, self.num_envs)
        else:  # different options per sub-env: one masked reset each (the env must have been reset)
            for i in range(self.num_envs):
                obs, infos = self.venv.reset(
                    seed=None if seeds is None else [s if j == i else None for j, s in enumerate(seeds)],
                    options={**deepcopy(options[i]), "reset_mask": np.arange(self.num_envs) == i},
                )
                self.reset_infos[i] = unbatch_info(infos, self.num_envs)[i]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step the vector env and convert its same-step autoreset output to SB3's conventions."""
        obs, rewards, terminations, truncations, infos = self.venv.step(self._actions)
        listed = unbatch_info(infos, self.num_envs)
        dones = np.logical_or(terminations, truncations)
        step_infos = []
        for i, info in enumerate(listed):
            if dones[i]:
                final = dict(info.pop("final_info", {}))
                final["terminal_observation"] = info.pop("final_obs")
                self.reset_infos[i] = info  # what is left is the new episode's reset info
                info = final
            info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            step_infos.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, step_infos

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The sub-envs' frames (needs ``render_mode="rgb_array"``)."""
        frames = self.venv.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the batched env, once per index."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by all sub-envs)."""
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        """Call a method of the batched env once; its result is repeated per index."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Sub-envs of a batched env are never wrapped individually."""
        return [False for _ in self._get_indices(indices)]
