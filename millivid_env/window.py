"""A pygame window showing one or more frames side by side (``render_mode="human"``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["FrameWindow", "side_by_side"]

#: Edge of one panel of the window, in pixels.
PANEL_SIZE = 512
#: Gap between panels, in pixels.
GAP = 8


def side_by_side(frames: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Frames of equal size next to each other on a black background.

    Args:
        frames: uint8 ``(R, R, 3)`` each.
        gap: pixels between frames.

    Returns:
        uint8 ``(R, n * R + (n - 1) * gap, 3)``.
    """
    height, width = frames[0].shape[:2]
    canvas = np.zeros((height, len(frames) * width + (len(frames) - 1) * gap, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        left = i * (width + gap)
        canvas[:, left : left + width] = frame
    return canvas


class FrameWindow:
    """Lazily opened pygame window; each :meth:`show` draws frames side by side, scaled up.

    Args:
        title: window caption.
        fps: frames per second the window is paced at.
    """

    def __init__(self, title: str, fps: int) -> None:
        self.title = title
        self.fps = int(fps)
        self._window: Any = None
        self._clock: Any = None
        self._panels = 0

    def show(self, frames: Sequence[np.ndarray]) -> None:
        """Draw ``frames`` (uint8 ``(R, R, 3)`` each), left to right."""
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep stdout clean
        try:
            import pygame
        except ImportError as exc:
            raise gym.error.DependencyNotInstalled(
                'pygame is not installed; run `pip install "millivid-env[play]"` for render_mode="human"'
            ) from exc
        if self._window is None or self._panels != len(frames):
            pygame.display.init()
            pygame.display.set_caption(self.title)
            size = (len(frames) * PANEL_SIZE + (len(frames) - 1) * GAP, PANEL_SIZE)
            self._window = pygame.display.set_mode(size)
            self._clock = pygame.time.Clock()
            self._panels = len(frames)
        scale = PANEL_SIZE // frames[0].shape[0]
        image = side_by_side([np.repeat(np.repeat(f, scale, 0), scale, 1) for f in frames])
        # pygame surfaces are (width, height): transpose the (row, col) image.
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(image.transpose(1, 0, 2)))
        self._window.blit(surface, (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.fps)

    @property
    def is_open(self) -> bool:
        """Whether the window is open."""
        return self._window is not None

    def close(self) -> None:
        """Close the window if open; safe to call any number of times."""
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None
            self._clock = None
