"""Keyboard input of `millivid play`: the keymap, and key presses and held keys turned into actions.

Loopcraft has no idle action, so "no key" must mean "no step": `KeyInput.next_action` returns None
then. A press always yields one step, even when the key is released before the next tick, and held
keys yield one step per tick in real-time mode.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["COMMAND_KEYS", "KEYMAP_TEXT", "MOVE_KEYS", "KeyInput", "choose_held_action", "parse_held_keys"]

#: pygame key constant suffix (``pygame.K_<name>``) -> Loopcraft action (0 forward, 1 left, 2 right).
MOVE_KEYS = {"w": 0, "UP": 0, "a": 1, "LEFT": 1, "d": 2, "RIGHT": 2}
#: pygame key constant suffix -> command of the play window.
COMMAND_KEYS = {
    "SPACE": "pause",
    "p": "pause",
    "e": "step",
    "PERIOD": "step",
    "BACKSPACE": "reset",
    "r": "reset",
    "ESCAPE": "quit",
    "q": "quit",
}
KEYMAP_TEXT = """keys:
  W / Up          move forward       (hold to keep moving; nothing moves while no key is held)
  A / Left        turn left 10 degrees
  D / Right       turn right 10 degrees
  Space / P       pause / resume
  E / .           one step while paused (the held movement key, else the last action)
  Backspace / R   new episode
  Esc / Q         quit (closing the window quits too)"""
#: Most key presses kept waiting for a step, so a slow env does not replay a long backlog.
MAX_PENDING = 8


def choose_held_action(held: set[int], turn: int) -> int | None:
    """The action for a set of held movement actions, or None when none is held or they cancel out.

    Left and right together cancel. Forward with a turn alternates between the two (by ``turn``, e.g.
    the step count), which walks an arc: the worlds allow only one action per step.
    """
    turns = held & {1, 2}
    candidates = ([0] if 0 in held else []) + ([] if len(turns) == 2 else sorted(turns))
    return candidates[turn % len(candidates)] if candidates else None


def parse_held_keys(text: str) -> frozenset[int]:
    """Movement actions named by ``text``: letters of W/A/D (any case), e.g. ``"w"`` or ``"wa"``."""
    letters = {"w": 0, "a": 1, "d": 2}
    unknown = sorted({c for c in text.lower() if c not in letters})
    if unknown or not text:
        raise ValueError(f"held keys must be letters of W, A, D, got {text!r}")
    return frozenset(letters[c] for c in text.lower())


class KeyInput:
    """Key codes -> actions and commands, with a queue of presses that have not been stepped yet."""

    def __init__(self, pygame: Any, always_held: set[int] | frozenset[int] = frozenset()) -> None:
        """Resolve the keymap to the key codes of ``pygame`` (the module, passed in so it stays optional).

        ``always_held``: movement actions that count as held whatever the keyboard says (scripted play,
        ``millivid play --hold``).
        """
        self._pygame = pygame
        self.always_held = frozenset(int(action) for action in always_held)
        self._moves = {getattr(pygame, f"K_{name}"): action for name, action in MOVE_KEYS.items()}
        self._commands = {getattr(pygame, f"K_{name}"): command for name, command in COMMAND_KEYS.items()}
        self._pending: deque[int] = deque(maxlen=MAX_PENDING)
        #: the action of the latest step (used by single-step when no movement key is held).
        self.last_action = 0

    def move_action(self, key: int) -> int | None:
        """The action of a movement key, else None."""
        return self._moves.get(key)

    def command(self, key: int) -> str | None:
        """The command ("pause", "step", "reset", "quit") of a key, else None."""
        return self._commands.get(key)

    def held(self) -> set[int]:
        """Actions whose keys are held now (polled from ``pygame.key.get_pressed``)."""
        pressed = self._pygame.key.get_pressed()
        return {action for code, action in self._moves.items() if pressed[code]} | self.always_held

    def queue(self, action: int) -> None:
        """Ask for one step with ``action`` at the next tick."""
        self._pending.append(int(action))

    def clear(self) -> None:
        """Drop every press not stepped yet (on pause and reset)."""
        self._pending.clear()

    def next_action(self, poll_held: bool, turn: int) -> int | None:
        """The action for this tick: a queued press first, then (with ``poll_held``) the held keys."""
        if self._pending:
            return self._pending.popleft()
        return choose_held_action(self.held(), turn) if poll_held else None
