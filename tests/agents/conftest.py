"""Fixtures of the agent tests: one torch thread, tiny random world model and reward head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import millivid_env  # noqa: F401  (first: registers the ids and asks MKL for batch-invariant kernels)

#: The smallest world: keeps every reset fast.
SMALL_WORLD = (48, 32, 48)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread (the machine is shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def save_head(directory: Path, success_bias: float) -> Path:
    """A tiny random reward head whose success logit is pushed by ``success_bias``."""
    from models.checkpoints import save_checkpoint
    from models.reward_head import RewardHead, RewardHeadConfig

    with torch.random.fork_rng():
        torch.manual_seed(0)
        head = RewardHead(RewardHeadConfig(hidden=8))
    with torch.no_grad():
        head.net[-1].weight[0].zero_()
        head.net[-1].bias[0] = success_bias
    return save_checkpoint(head, directory)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny random autoencoder + diffusion checkpoints, two reward heads (never / always success)."""
    from models.testing import save_tiny_world_model

    root = tmp_path_factory.mktemp("agents_tiny_model")
    ae, dit = save_tiny_world_model(root, dit_width=64)
    kwargs = {"checkpoint": str(dit), "autoencoder": str(ae), "device": "cpu", "sampling_steps": 1}
    never = save_head(root / "head_never", -20.0)
    always = save_head(root / "head_always", 20.0)
    return SimpleNamespace(autoencoder=ae, diffusion=dit, kwargs=kwargs, head_never=never, head_always=always)
