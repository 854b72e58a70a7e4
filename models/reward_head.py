"""A reward/termination head on a world model's latents (DESIGN §7).

In imagination there is no ground-truth pose, so the reward of a task has to be read off the model's
own state. :class:`RewardHead` is a small MLP over the coarse-level latent tokens of one frame
(``loopcraft-64``: levels 1-3, 16 + 4 + 1 tokens of 32 channels) that predicts whether the frame is
a task success (a logit; success also ends the episode) and how far the nearest goal is (a
regression, used only for optional reward shaping). It is trained on autoencoder latents of
ground-truth rollouts (``millivid train-reward-head``) and saved like every other checkpoint:
``config.json`` + ``model.safetensors`` through :class:`~huggingface_hub.PyTorchModelHubMixin`.

The task parameters used to label the training data (success radius, start distance, reward) are
stored in the config, so an env that loads the head also knows which task it rewards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.checkpoints import load_checkpoint
from models.tokens import TokenLayout, get_layout

__all__ = ["RewardHead", "RewardHeadConfig", "load_reward_head"]


@dataclass(frozen=True)
class RewardHeadConfig:
    """Architecture and task of a :class:`RewardHead` (saved as ``config.json``).

    Attributes:
        layout: token layout of the autoencoder whose latents it reads.
        latent_channels: channels per latent token (must equal the layout's).
        levels: pyramid levels whose tokens are read (coarse ones: cheap, and robust to the
            fine-detail errors of generated frames).
        hidden: width of the two hidden layers.
        dropout: dropout after each hidden layer (training only).
        distance_scale: distances (blocks) are predicted divided by this.
        max_distance: distance targets are clipped to this many blocks (far is far).
        task: name of the task it was trained for.
        radius: the task's success radius in blocks.
        min_start_distance: the task's minimum start distance in blocks.
        success_reward: the task's reward for a success.
        shaping: the task's shaping coefficient (0: sparse reward).
    """

    layout: str = "loopcraft-64"
    latent_channels: int = 32
    levels: tuple[int, ...] = (1, 2, 3)
    hidden: int = 256
    dropout: float = 0.1
    distance_scale: float = 10.0
    max_distance: float = 30.0
    task: str = "landmark"
    radius: float = 2.0
    min_start_distance: float = 4.0
    success_reward: float = 1.0
    shaping: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(int(level) for level in self.levels))  # JSON gives a list
        layout = get_layout(self.layout)
        if not self.levels or any(not 0 <= lv < layout.num_levels for lv in self.levels):
            raise ValueError(
                f"levels must be a non-empty subset of 0..{layout.num_levels - 1}, got {self.levels}"
            )
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must not repeat, got {self.levels}")
        if self.latent_channels != layout.latent_channels:
            raise ValueError(
                f"latent_channels {self.latent_channels} differs from layout {self.layout!r} "
                f"({layout.latent_channels})"
            )
        if self.hidden < 1 or not 0.0 <= self.dropout < 1.0 or self.distance_scale <= 0:
            raise ValueError("hidden must be >= 1, dropout in [0, 1) and distance_scale > 0")


class RewardHead(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="millivid-env",
    tags=["millivid", "reward-model", "world-model"],
    license="mit",
):
    """MLP: latents of one frame ⇒ (success logit, scaled distance to the goal).

    Args:
        config: the architecture (or its dict, as read back from ``config.json``).
    """

    def __init__(self, config: RewardHeadConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = RewardHeadConfig(**config)
        self.config = config
        self.layout: TokenLayout = get_layout(config.layout)
        index = torch.cat(
            [torch.arange(self.layout.num_tokens)[self.layout.level_slice(lv)] for lv in config.levels]
        )
        self.register_buffer("token_ids", index, persistent=False)
        features = len(index) * config.latent_channels
        self.net = nn.Sequential(
            nn.LayerNorm(features),
            nn.Linear(features, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 2),
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        map_location: str = "cpu",
        revision: str | None = None,
        **_: object,
    ) -> RewardHead:
        """Load from a bundled name, local directory or Hub repo id (strict, safetensors only)."""
        return load_reward_head(pretrained_model_name_or_path, device=map_location, revision=revision)

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``latents`` is float ``(B, num_tokens, C)`` of this layout."""
        expected = (self.layout.num_tokens, self.config.latent_channels)
        if latents.ndim != 3 or tuple(latents.shape[1:]) != expected or not latents.is_floating_point():
            raise ValueError(
                f"expected float latents of shape (B, {expected[0]}, {expected[1]}) (all levels of "
                f"layout {self.config.layout!r}), got {tuple(latents.shape)} {latents.dtype}"
            )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw outputs.

        Args:
            latents: float ``(B, num_tokens, C)`` latents of all levels, level 0 first.

        Returns:
            float ``(B, 2)``: column 0 the success logit, column 1 the distance / ``distance_scale``.
        """
        self.check_latents(latents)
        selected = latents.index_select(1, self.token_ids.to(latents.device))  # (B, n_sel, C)
        return self.net(selected.flatten(1).float())

    @torch.no_grad()
    def predict(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Success probability ``(B,)`` and distance in blocks ``(B,)`` (>= 0), in eval mode."""
        out = self(latents)
        distance = out[:, 1].clamp(min=0.0) * self.config.distance_scale
        return torch.sigmoid(out[:, 0]), distance


def load_reward_head(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", revision: str | None = None
) -> RewardHead:
    """Load a :class:`RewardHead` in eval mode.

    Args:
        name_or_path: bundled name, local directory, or Hub repo id.
        device: where to put the model.
        revision: Hub revision for repo ids.

    Raises:
        models.checkpoints.CheckpointError: missing, corrupted or mismatched checkpoint.
    """
    return load_checkpoint(RewardHead, RewardHeadConfig, name_or_path, device, revision)
