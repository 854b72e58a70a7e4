"""The `millivid play` window: game view, optional ground-truth view, and the text HUD.

Contents: `RateMeter` (measured frames/s), `PlayStats` (what the HUD shows, as plain data, so it can
be tested without a display) and `Hud` (layout and drawing with pygame).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
try:
    import pygame
except ImportError:  # checked with a helpful message by `agents.play.require_pygame`
    pygame = None  # type: ignore[assignment]

__all__ = ["KEY_HELP", "Hud", "PlayStats", "RateMeter"]

#: Short key help drawn in the HUD (the full keymap is printed on the terminal at start).
KEY_HELP = (
    ("W / Up", "forward"),
    ("A / Left", "turn left"),
    ("D / Right", "turn right"),
    ("Space / P", "pause"),
    ("E / .", "step (paused)"),
    ("Bksp / R", "new episode"),
    ("Esc / Q", "quit"),
)

_BACKGROUND = (24, 26, 30)
_PANEL = (36, 39, 45)
_TEXT = (225, 228, 232)
_DIM = (140, 146, 155)
_ACCENT = (120, 200, 255)
_WARN = (255, 190, 90)
_RECORD = (235, 70, 70)
_HEADER_H = 26
_HUD_H = 190
_PAD = 10
_LINE_H = 21


class RateMeter:
    """Frames per second measured from the times of the most recent steps.

    Only steps of the last `window_s` seconds count, so the rate reads "idle" soon after the player
    lets go of the keys instead of decaying slowly towards zero.
    """

    def __init__(self, window_s: float = 2.0, max_samples: int = 64) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_samples)

    def tick(self, now: float | None = None) -> None:
        """Record one step at ``now`` (default: the current `time.perf_counter`)."""
        self._times.append(time.perf_counter() if now is None else now)

    def rate(self, now: float | None = None) -> float | None:
        """Steps per second over the recent window, or None with fewer than two recent steps."""
        now = time.perf_counter() if now is None else now
        recent = [t for t in self._times if now - t <= self.window_s]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def clear(self) -> None:
        """Forget every step (a new episode starts)."""
        self._times.clear()


@dataclass
class PlayStats:
    """Everything the HUD displays, refreshed by the controller after each step."""

    env_id: str
    mode: str  # "real time" or "turn-based"
    episode: int = 0
    step: int = 0
    max_steps: int | None = None
    fps: float | None = None
    step_ms: float | None = None  # mean time of one env.step call: the speed the env could reach
    memory_tokens: int | None = None
    last_reward: float | None = None
    episode_return: float = 0.0
    pose: np.ndarray | None = None
    world_seed: int | None = None
    paused: bool = False
    recording: str | None = None  # short recorder status, None when not recording
    message: str = ""

    def lines(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows of the stats column."""
        limit = f" / {self.max_steps}" if self.max_steps else ""
        fps = "idle" if self.fps is None else f"{self.fps:5.1f}"
        if self.step_ms is not None:
            fps += f"   (step {self.step_ms:.1f} ms)"
        memory = "n/a" if self.memory_tokens is None else f"{self.memory_tokens:,} tokens"
        reward = "-" if self.last_reward is None else f"{self.last_reward:+.2f}"
        rows = [("episode", f"{self.episode}   step {self.step}{limit}")]
        if self.world_seed is not None:
            rows.append(("world", str(self.world_seed)))
        rows += [
            ("frames/s", fps),
            ("memory", memory),
            ("reward", f"{reward}   return {self.episode_return:+.2f}"),
        ]
        if self.pose is not None and len(self.pose) >= 4:
            x, _, z, yaw = (float(v) for v in self.pose[:4])
            rows.append(("pose", f"x {x:.1f}   z {z:.1f}   yaw {yaw:.0f}"))
        return rows


class Hud:
    """Lays out and draws the play window.

    Layout: a header line, then the game view (``size`` x ``size``) and, with ``side_panel``, a second
    view of the same size to its right (ground truth), then the HUD panel with stats and key help.
    """

    def __init__(self, size: int, side_panel: bool, notes: tuple[str, ...] = ()) -> None:
        """Create the HUD (needs ``pygame.font.init()``).

        Args:
            size: edge of the game view in pixels.
            side_panel: whether a second view (ground truth) sits right of the game view.
            notes: fixed lines shown under the status line (e.g. about the ground truth).
        """
        self.size = size
        self.side_panel = side_panel
        self.notes = tuple(notes)
        self._font = pygame.font.Font(None, 22)
        self._small = pygame.font.Font(None, 19)

    @property
    def window_size(self) -> tuple[int, int]:
        """``(width, height)`` of the window in pixels."""
        width = self.size * (2 if self.side_panel else 1)
        return width, _HEADER_H + self.size + _HUD_H + _LINE_H * len(self.notes)

    def view_rect(self, column: int = 0) -> pygame.Rect:
        """Where a view is drawn: column 0 is the game view, 1 the ground-truth view."""
        return pygame.Rect(column * self.size, _HEADER_H, self.size, self.size)

    def draw(
        self,
        screen: pygame.Surface,
        frame: np.ndarray | None,
        stats: PlayStats,
        labels: tuple[str, str],
        side: np.ndarray | str | None = None,
    ) -> None:
        """Draw one whole window (the caller flips the display).

        Args:
            screen: the window surface.
            frame: the observation, uint8 (H, W, 3).
            stats: the HUD content.
            labels: header text over the game view and over the side view.
            side: the ground-truth frame, or a note to show in its place (only with ``side_panel``).
        """
        screen.fill(_BACKGROUND)
        self._text(screen, labels[0], (_PAD, 5), _ACCENT)
        if stats.recording is not None:
            text = f"REC  {stats.recording}"
            self._text(screen, text, (self.size - _PAD, 5), _RECORD, align="right")
            dot_x = self.size - _PAD - self._font.size(text)[0] - 12
            pygame.draw.circle(screen, _RECORD, (dot_x, _HEADER_H // 2), 6)
        self._blit_frame(screen, frame, self.view_rect(0))
        if stats.paused:
            self._banner(screen, "PAUSED", self.view_rect(0))
        if self.side_panel:
            rect = self.view_rect(1)
            self._text(screen, labels[1], (self.size + _PAD, 5), _ACCENT)
            if isinstance(side, np.ndarray):
                self._blit_frame(screen, side, rect)
            else:
                pygame.draw.rect(screen, _PANEL, rect)
                self._paragraph(screen, side or "", rect.inflate(-4 * _PAD, -4 * _PAD))
        self._draw_panel(screen, stats, _HEADER_H + self.size)

    def _draw_panel(self, screen: pygame.Surface, stats: PlayStats, top: int) -> None:
        width = screen.get_width()
        pygame.draw.rect(screen, _PANEL, pygame.Rect(0, top, width, screen.get_height() - top))
        y = top + _PAD
        for label, value in stats.lines():
            self._text(screen, label, (_PAD, y), _DIM)
            self._text(screen, value, (_PAD + 78, y), _TEXT)
            y += _LINE_H
        state = "PAUSED" if stats.paused else stats.mode
        status = f"{state}   {stats.message}" if stats.message else state
        self._text(screen, status, (_PAD, y + 4), _WARN if stats.paused or stats.message else _DIM)
        for note in self.notes:
            y += _LINE_H
            self._text(screen, note, (_PAD, y + 4), _ACCENT, font=self._small)
        help_y = top + _PAD
        for keys, action in KEY_HELP:
            self._text(screen, keys, (width - 175, help_y), _TEXT, font=self._small)
            self._text(screen, action, (width - 95, help_y), _DIM, font=self._small)
            help_y += 19

    def _blit_frame(self, screen: pygame.Surface, frame: np.ndarray | None, rect: pygame.Rect) -> None:
        if frame is None:
            pygame.draw.rect(screen, _PANEL, rect)
            return
        # pygame surfaces are indexed (x, y): swap the (row, column) axes of the image.
        surface = pygame.surfarray.make_surface(
            np.ascontiguousarray(np.asarray(frame)[..., :3].swapaxes(0, 1))
        )
        # Nearest-neighbour scaling keeps the 64-pixel frames crisp instead of blurred.
        screen.blit(pygame.transform.scale(surface, rect.size), rect.topleft)

    def _banner(self, screen: pygame.Surface, text: str, rect: pygame.Rect) -> None:
        image = self._font.render(text, True, _WARN)
        box = image.get_rect(center=rect.center).inflate(24, 12)
        shade = pygame.Surface(box.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, 170))
        screen.blit(shade, box.topleft)
        screen.blit(image, image.get_rect(center=rect.center))

    def _paragraph(self, screen: pygame.Surface, text: str, rect: pygame.Rect) -> None:
        """Word-wrapped text inside ``rect``."""
        y = rect.top
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}".strip()
                if line and self._font.size(candidate)[0] > rect.width:
                    self._text(screen, line, (rect.left, y), _TEXT)
                    y += _LINE_H
                    candidate = word
                line = candidate
            self._text(screen, line, (rect.left, y), _TEXT)
            y += _LINE_H + 6

    def _text(
        self,
        screen: pygame.Surface,
        text: str,
        position: tuple[int, int],
        color: tuple[int, int, int],
        align: str = "left",
        font: pygame.font.Font | None = None,
    ) -> None:
        image = (font or self._font).render(text, True, color)
        x, y = position
        screen.blit(image, (x - image.get_width(), y) if align == "right" else (x, y))
