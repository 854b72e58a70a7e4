"""A policy feature extractor that sees the frame coarsely: average-pooled before a small CNN.

Frames imagined by the world model are sharp where they are copied and blurred where the diffusion
model draws (its level-2 frame); real frames are sharp everywhere. A policy that only ever sees the
frame pooled to a coarse grid gets nearly the same input from both, so what it learns in imagination
has less to unlearn in the real world (``millivid train-agent --coarse-input POOL``). Saved inside
the policy (stable-baselines3 stores the class by import path), so ``eval-agent`` needs no option.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["CoarseCNN"]


class CoarseCNN(BaseFeaturesExtractor):
    """Average-pool the image by ``pool``, then two convolutions and a linear layer.

    Args:
        observation_space: SB3's channel-first image space ``(3, R, R)`` (``VecTransposeImage``).
        pool: pooling factor (``R`` must be a multiple of it): 4 turns 64x64 frames into 16x16.
        features_dim: output features.
    """

    def __init__(self, observation_space: gym.spaces.Box, pool: int = 4, features_dim: int = 256) -> None:
        super().__init__(observation_space, features_dim)
        channels, height, width = observation_space.shape
        if pool < 1 or height % pool or width % pool:
            raise ValueError(f"pool must be >= 1 and divide the frame size {height}x{width}, got {pool}")
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            n = self.cnn(self.pool(torch.zeros(1, *observation_space.shape))).shape[1]
        self.linear = nn.Sequential(nn.Linear(n, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` in [0, 1] (SB3 normalises images) -> ``(B, features_dim)``."""
        return self.linear(self.cnn(self.pool(observations)))
