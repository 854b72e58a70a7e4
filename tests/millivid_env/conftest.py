"""Fixtures of the world-model env tests: tiny random checkpoints, one torch thread, env factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import millivid_env  # noqa: F401  (first: registers the ids and asks MKL for batch-invariant kernels)
from millivid_env.registration import DEFAULT_ENV_ID

#: Sampler evaluations per sub-step in the tests: the structure is what is tested, not image quality.
TEST_STEPS = 2


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread (the machine is shared; timings and results must not depend on threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny random autoencoder + diffusion checkpoints and the env kwargs that use them."""
    from models.testing import save_tiny_world_model

    # Width 64 (not tiny's 48): batched == single bit for bit needs vector-aligned rows (see
    # save_tiny_world_model), as every trained size has.
    ae, dit = save_tiny_world_model(tmp_path_factory.mktemp("tiny_world_model"), dit_width=64)
    kwargs = {"checkpoint": str(ae.parent / "diffusion"), "autoencoder": str(ae), "device": "cpu"}
    assert Path(kwargs["checkpoint"]) == dit
    return SimpleNamespace(autoencoder=ae, diffusion=dit, kwargs=kwargs)


@pytest.fixture
def make_env(tiny_model: SimpleNamespace) -> Iterator[Callable[..., object]]:
    """``make_env(**overrides)``: ``gym.make(DEFAULT_ENV_ID)`` on the tiny model; closed after.

    The id's warp (`WARP_CHECKPOINT`) is kept unless overridden: ``warp=None`` tests the diffusion path,
    where every frame is the model's.
    """
    import gymnasium as gym

    made = []

    def factory(env_id: str = DEFAULT_ENV_ID, **overrides: object):
        kwargs = {**tiny_model.kwargs, "sampling_steps": TEST_STEPS, **overrides}
        env = gym.make(env_id, **kwargs)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()
