"""millivid_env/memory.py: ring buffers per level, bounded size, snapshot/restore."""

from __future__ import annotations

import pytest
import torch

from millivid_env.memory import HierarchicalMemory
from millivid_env.simulator import memory_depths

TOKENS = (64, 16, 4, 1)
DEPTHS = (1, 5, 21, 85)


def frame(value: float) -> torch.Tensor:
    """Latents of one frame whose every token of level l holds ``value + l / 10``."""
    return torch.cat([torch.full((n, 32), value + level / 10) for level, n in enumerate(TOKENS)])


def test_depths_of_the_loopcraft_layout():
    assert memory_depths("loopcraft-64") == DEPTHS


def test_each_level_keeps_its_last_frames_oldest_first():
    memory = HierarchicalMemory(DEPTHS, TOKENS, 32)
    memory.clear(seed=0)
    for t in range(200):
        memory.push(frame(t), action=t % 3)
    for level, depth in enumerate(DEPTHS):
        kept = memory.level(level)[:, 0, 0]
        assert torch.allclose(kept, torch.arange(200 - depth, 200) + level / 10)
    assert memory.actions(4).tolist() == [t % 3 for t in range(196, 200)]
    past, past_actions = memory.context((1, 5, 21, 64), reach=64)
    assert [tuple(p.shape) for p in past] == [(1, 1, 64, 32), (1, 5, 16, 32), (1, 21, 4, 32), (1, 64, 1, 32)]
    assert past_actions.shape == (1, 64)


def test_size_is_bounded_however_long_the_episode():
    memory = HierarchicalMemory(DEPTHS, TOKENS, 32)
    memory.clear(seed=0)
    sizes = set()
    for t in range(1000):
        memory.push(frame(t % 7), action=0)
        if t >= max(DEPTHS):
            sizes.add((memory.tokens, memory.nbytes, memory.frames_per_level))
    assert sizes == {(64 + 5 * 16 + 21 * 4 + 85, memory.nbytes, DEPTHS)}
    summary = memory.summary()
    assert summary["tokens"] == 313 and summary["frames_seen"] == 1000 and summary["nbytes"] < 50_000


def test_extend_equals_pushing_one_by_one():
    latents = torch.stack([frame(t) for t in range(120)])
    a, b = HierarchicalMemory(DEPTHS, TOKENS, 32), HierarchicalMemory(DEPTHS, TOKENS, 32)
    a.clear(1)
    b.clear(1)
    a.extend(latents, [t % 3 for t in range(120)])
    for t in range(120):
        b.push(latents[t], t % 3)
    for level in range(4):
        assert torch.equal(a.level(level), b.level(level))
    assert torch.equal(a.actions(85), b.actions(85)) and a.frames_seen == b.frames_seen == 120


def test_snapshot_restore_covers_latents_actions_and_generator():
    memory = HierarchicalMemory(DEPTHS, TOKENS, 32)
    memory.clear(seed=5)
    memory.extend(torch.stack([frame(t) for t in range(90)]), [0] * 90)
    state = memory.snapshot()
    expected_noise = torch.randn(3, generator=memory.generator)
    memory.push(frame(-1), 2)
    for _ in range(2):  # a snapshot can be restored more than once
        memory.restore(state)
        assert torch.equal(torch.randn(3, generator=memory.generator), expected_noise)
        assert memory.frames_seen == 90 and memory.actions(1).tolist() == [0]
        assert torch.allclose(memory.level(0)[0, 0, 0], torch.tensor(89.0))
        memory.push(frame(-1), 2)


def test_errors():
    with pytest.raises(ValueError, match="depth >= 1"):
        HierarchicalMemory((1, 5, 21), TOKENS, 32)
    with pytest.raises(ValueError, match="must not decrease"):
        HierarchicalMemory((5, 1, 21, 85), TOKENS, 32)
    memory = HierarchicalMemory(DEPTHS, TOKENS, 32)
    memory.clear(0)
    memory.push(frame(0), 0)
    with pytest.raises(ValueError, match="holds 1 frame"):
        memory.level(1)
    with pytest.raises(ValueError, match="85 tokens"):
        memory.push(torch.zeros(84, 32), 0)
    other = HierarchicalMemory((1, 5, 21, 64), TOKENS, 32)
    with pytest.raises(ValueError, match="other depths"):
        memory.restore(other.snapshot())
