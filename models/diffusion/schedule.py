"""Variance-preserving cosine noise schedule in logSNR form (method.md section 3.4).

Time ``t in [0, 1]`` maps linearly to an angle ``theta(t) = theta_min + t * (theta_max - theta_min)``;
``logSNR(t) = -2 ln tan theta(t) + 2 ln shift``; ``alpha_t = sqrt(sigmoid(logSNR))`` and
``sigma_t = sqrt(sigmoid(-logSNR))`` (so ``alpha^2 + sigma^2 = 1``; without shift they are
``cos theta`` and ``sin theta``). The angle range is chosen so that logSNR is clipped to
``[logsnr_min, logsnr_max] = [-15, 15]``: ``t = 0`` is almost clean (``sigma ~ 5.5e-4``), ``t = 1``
almost pure noise (``alpha ~ 5.5e-4``).

Parametrisation (v-prediction): ``x_t = alpha x + sigma eps``, ``v = alpha eps - sigma x``; from a
prediction ``v_hat``: ``x_hat = alpha x_t - sigma v_hat``, ``eps_hat = alpha v_hat + sigma x_t``.

Every function takes ``t`` broadcastable to the leading dimensions of ``x`` (``(B, N)`` per-token
times for ``(B, N, C)`` tokens) and appends the channel axis itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CosineSchedule:
    """Cosine logSNR schedule.

    Attributes:
        logsnr_min: logSNR at ``t = 1``.
        logsnr_max: logSNR at ``t = 0``.
        shift: adds ``2 ln shift`` to logSNR; ``1.0`` (every config of the paper) is no shift,
            ``shift < 1`` spends more of the time axis at high noise.
    """

    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError(f"need logsnr_min < logsnr_max, got {self.logsnr_min} and {self.logsnr_max}")
        if not self.shift > 0:
            raise ValueError(f"schedule shift must be positive, got {self.shift}")

    @property
    def theta_min(self) -> float:
        """Angle at ``t = 0``: ``atan(exp(-logsnr_max / 2))``."""
        return math.atan(math.exp(-0.5 * self.logsnr_max))

    @property
    def theta_max(self) -> float:
        """Angle at ``t = 1``: ``atan(exp(-logsnr_min / 2))``."""
        return math.atan(math.exp(-0.5 * self.logsnr_min))

    def _theta(self, t: torch.Tensor) -> torch.Tensor:
        # float64: near t = 1 the angle is pi/2 - 5.5e-4 and float32 would lose ~3 digits of alpha.
        return self.theta_min + t.double() * (self.theta_max - self.theta_min)

    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        """``logSNR(t)`` (float32, same shape as ``t``)."""
        return (-2.0 * torch.log(torch.tan(self._theta(t))) + 2.0 * math.log(self.shift)).float()

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal and noise scales.

        Args:
            t: times in ``[0, 1]``, any shape.

        Returns:
            ``(alpha, sigma)``, float32, the shape of ``t``.
        """
        theta = self._theta(t)
        if self.shift == 1.0:
            return torch.cos(theta).float(), torch.sin(theta).float()
        logsnr = -2.0 * torch.log(torch.tan(theta)) + 2.0 * math.log(self.shift)
        return torch.sigmoid(logsnr).sqrt().float(), torch.sigmoid(-logsnr).sqrt().float()

    def _scales(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, sigma = self.alpha_sigma(t)
        return alpha.to(like.device).unsqueeze(-1), sigma.to(like.device).unsqueeze(-1)

    def add_noise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = alpha x + sigma eps``; ``x, eps: (..., C)``, ``t: (...)``."""
        alpha, sigma = self._scales(t, x)
        return alpha * x + sigma * eps

    def v_target(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``v = alpha eps - sigma x``; ``x, eps: (..., C)``, ``t: (...)``."""
        alpha, sigma = self._scales(t, x)
        return alpha * eps - sigma * x

    def x_eps_from_v(
        self, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean-data and noise estimates from a v prediction.

        Args:
            x_t: ``(..., C)`` noisy input.
            v: ``(..., C)`` predicted v.
            t: ``(...)`` times of ``x_t``.

        Returns:
            ``(x_hat, eps_hat)``, each ``(..., C)``.
        """
        alpha, sigma = self._scales(t, x_t)
        return alpha * x_t - sigma * v, alpha * v + sigma * x_t

    def timesteps(
        self, steps: int, device: torch.device | str = "cpu", endpoint: bool = True
    ) -> torch.Tensor:
        """Sampling times from 1 towards 0.

        Args:
            steps: number of times.
            device: of the result.
            endpoint: ``linspace(1, 0, steps)``, both ends included (``[1.0]`` for one step); False:
                ``linspace(1, 0, steps + 1)`` without the final 0 (the same grid as ``steps + 1`` with
                the endpoint, less its last time).
        """
        if steps < 1:
            raise ValueError(f"need at least one sampling step, got {steps}")
        if not endpoint:
            return torch.linspace(1.0, 0.0, steps + 1, device=device)[:-1]
        return torch.linspace(1.0, 0.0, steps, device=device)
