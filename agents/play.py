"""`millivid play`: walk through Loopcraft (or a world model of it) with the keyboard in a pygame window.

Contents: `ManualControl` (the event loop, key handling and stepping), `require_pygame` and the
command line (`add_arguments`, `run`, `main`). Env set-up is in `agents.play_env`, keys in
`agents.keys`, drawing in `agents.hud`, recording in `agents.recording`.

The Loopcraft worlds have no idle action, so nothing moves while no movement key is held: in real-time
mode the held keys are polled every tick and give one step per tick at ``--fps``; with ``--wait`` every
key press gives exactly one step. Any registered id with Loopcraft's spaces can be played (``--env``);
a model env may report ``info["memory_tokens"]`` (shown in the HUD) and, made with
``ground_truth=True``, ``info["ground_truth"]["frame"]`` (shown beside the game view).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.hud import Hud, PlayStats, RateMeter
from agents.keys import KEYMAP_TEXT, KeyInput, choose_held_action, parse_held_keys
from agents.play_env import GROUND_TRUTH_ID, check_spaces, is_ground_truth_env, make_env, make_recorder
from agents.recording import EpisodeRecorder

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
try:
    import pygame
except ImportError:  # reported by `require_pygame` with the extra to install
    pygame = None  # type: ignore[assignment]

__all__ = ["ManualControl", "add_arguments", "main", "require_pygame", "run"]

#: Seconds a status message (e.g. "episode 2 truncated") stays in the HUD.
_MESSAGE_S = 3.0


def require_pygame() -> Any:
    """The pygame module; `gymnasium.error.DependencyNotInstalled` naming the extra when it is missing."""
    if pygame is None:
        raise gym.error.DependencyNotInstalled(
            'pygame is not installed; run `pip install "millivid-env[play]"` to use `millivid play`'
        )
    return pygame


class ManualControl:
    """Play an env with Loopcraft's spaces from the keyboard (`start` runs until quit).

    Attributes:
        running: False once quit was asked (key, window close) or the loop ended.
        paused: whether stepping is paused.
        steps: steps of the current episode.
        episode: number of the current episode (0 first).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        env_id: str | None = None,
        seed: int | None = None,
        fps: float = 20.0,
        wait: bool = False,
        size: int = 512,
        show_ground_truth: bool = False,
        recorder: EpisodeRecorder | None = None,
        hold: frozenset[int] | set[int] = frozenset(),
        frames: int | None = None,
        screenshot: str | Path | None = None,
    ) -> None:
        """Open the window (``pygame.display.init`` and ``pygame.font.init`` only, no audio).

        Args:
            env: the env, made with ``render_mode="rgb_array"`` or None (frames come from observations).
            env_id: name shown in the HUD (default: the env's spec id).
            seed: seed of the first reset; later episodes continue the env's random stream.
            fps: steps per second while a movement key is held (and redraw rate).
            wait: turn-based: one step per key press instead of stepping while keys are held.
            size: edge of the game view in pixels.
            show_ground_truth: show ``info["ground_truth"]["frame"]`` beside the game view.
            recorder: writes every episode in the dataset format.
            hold: movement actions held for the whole run (scripted play, e.g. ``{0}``: W held).
            frames: quit after this many steps in all (None: run until quit).
            screenshot: save the window (as last drawn) to this image file when the loop ends.
        """
        require_pygame()
        if fps <= 0 or size < 16:
            raise ValueError(f"fps must be > 0 and size >= 16, got fps={fps} size={size}")
        if frames is not None and frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.env = env
        self.resolution = check_spaces(env)
        self.env_id = env_id or (env.spec.id if env.spec else type(env.unwrapped).__name__)
        self.fps = float(fps)
        self.wait = wait
        self.recorder = recorder
        self.running = True
        self.paused = False
        self.steps = 0
        self.episode = -1
        #: steps over all episodes, and the times of the first and latest of them (`summary`).
        self.total_steps = 0
        self._first_step_at: float | None = None
        self._last_step_at: float | None = None
        self.frames = frames
        self.screenshot = None if screenshot is None else Path(screenshot)
        self.obs: np.ndarray | None = None
        self.info: dict[str, Any] = {}
        self._next_seed = seed
        self._meter = RateMeter()
        self._step_ms: float | None = None
        self._message, self._message_until = "", 0.0
        self._closed = False
        is_truth = is_ground_truth_env(env)
        # The real world needs no comparison panel: it *is* the ground truth, so say so instead.
        self._side_panel = show_ground_truth and not is_truth
        notes = (
            ("ground truth: this env is the real Loopcraft world (no model to compare)",)
            if (show_ground_truth and is_truth)
            else ()
        )
        self._label = f"{self.env_id} (ground truth)" if is_truth else self.env_id
        limit = env.spec.max_episode_steps if env.spec else None
        self.stats = PlayStats(
            env_id=self.env_id, mode="turn-based" if wait else f"real time, {fps:g} steps/s", max_steps=limit
        )
        pygame.font.init()
        self.hud = Hud(size, self._side_panel, notes)
        try:
            pygame.display.init()  # not pygame.init(): no audio or joystick in headless runs
            self.screen = pygame.display.set_mode(self.hud.window_size)
        except pygame.error as error:
            raise RuntimeError(
                f"cannot open the play window ({error}); millivid play needs a display: on a headless "
                "machine run it under a virtual one, e.g. `xvfb-run millivid play`"
            ) from error
        pygame.display.set_caption(f"millivid play: {self.env_id}")
        self.keys = KeyInput(pygame, always_held=frozenset(hold))

    def start(self) -> None:
        """Reset, then loop at ``fps`` until quit; the recording is written however the loop ends."""
        reason = "quit"
        try:
            self.reset()
            clock = pygame.time.Clock()
            while self.running:
                self.tick()
                clock.tick(self.fps)
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        except BaseException:
            reason = "error"
            raise
        finally:
            self.close(reason)

    def tick(self) -> None:
        """One iteration: handle events, take at most one step, redraw."""
        for event in pygame.event.get():
            self.process_event(event)
        if not self.running:
            return
        action = self._next_action()
        if action is not None:
            self.step(action)
        self.draw()

    def process_event(self, event: Any) -> None:
        """Handle one pygame event: window close, movement presses and command keys."""
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN:
            self.handle_key(event.key)

    def handle_key(self, key: int) -> None:
        """React to one key press (held keys are polled separately, in `tick`)."""
        action = self.keys.move_action(key)
        if action is not None:
            if not self.paused:
                self.keys.queue(action)
            return
        command = self.keys.command(key)
        if command == "pause":
            self.paused = not self.paused
            self.keys.clear()
        elif command == "step" and self.paused:
            held = choose_held_action(self.keys.held(), self.steps)
            self.keys.queue(self.keys.last_action if held is None else held)
        elif command == "reset":
            self.reset("reset")
        elif command == "quit":
            self.running = False

    def _next_action(self) -> int | None:
        # Held keys step only in real time and unpaused; queued presses always step.
        return self.keys.next_action(poll_held=not (self.wait or self.paused), turn=self.steps)

    def reset(self, reason: str | None = None) -> None:
        """End the current episode (recording it, when ``reason`` is given) and start a new one."""
        if reason is not None:
            self._end_episode(reason)
        self.obs, self.info = self.env.reset(seed=self._next_seed)
        if self.recorder is not None:
            self.recorder.begin(self.info, self._next_seed)
        self._next_seed = None  # later episodes continue the seeded stream: new worlds, reproducibly
        self.episode += 1
        self.steps = 0
        self.keys.clear()
        self._meter.clear()
        self.stats.episode_return, self.stats.last_reward = 0.0, None

    def step(self, action: int) -> None:
        """Step the env once; a finished episode is recorded and a new one starts."""
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        now = time.perf_counter()
        elapsed_ms = 1000.0 * (now - start)
        # A moving average, so the HUD shows the env's own speed without flickering.
        self._step_ms = elapsed_ms if self._step_ms is None else 0.8 * self._step_ms + 0.2 * elapsed_ms
        self._meter.tick(now)
        self.obs, self.info = obs, info
        self.steps += 1
        self.total_steps += 1
        if self._first_step_at is None:
            self._first_step_at = now
        self._last_step_at = now
        if self.frames is not None and self.total_steps >= self.frames:
            self.running = False  # this tick still draws the frame; the loop ends after it
        self.keys.last_action = int(action)
        self.stats.last_reward = float(reward)
        self.stats.episode_return += float(reward)
        if self.recorder is not None:
            self.recorder.add(obs, action, reward, info)
        if terminated or truncated:
            self.reset("terminated" if terminated else "truncated")

    def _end_episode(self, reason: str) -> None:
        text = f"episode {self.episode} ended ({reason}): {self.steps} steps, "
        text += f"return {self.stats.episode_return:+.2f}"
        if self.recorder is not None:
            folder = self.recorder.finish(reason)
            if folder is not None:
                text += f"; saved to {folder}"
        print(text, flush=True)
        self._say(f"episode {self.episode} {reason}")

    def _say(self, message: str) -> None:
        self._message, self._message_until = message, time.perf_counter() + _MESSAGE_S

    def draw(self) -> None:
        """Redraw the window from the latest observation and info."""
        stats = self.stats
        stats.episode, stats.step, stats.paused = self.episode, self.steps, self.paused
        stats.fps, stats.step_ms = self._meter.rate(), self._step_ms
        tokens = self.info.get("memory_tokens")
        stats.memory_tokens = None if tokens is None else int(tokens)
        stats.pose = self.info.get("pose")
        stats.recording = None if self.recorder is None else self.recorder.status()
        stats.message = self._message if time.perf_counter() < self._message_until else ""
        stats.world_seed = self.info.get("world_seed")
        labels = (self._label, f"ground truth ({GROUND_TRUTH_ID})")
        self.hud.draw(self.screen, self.obs, stats, labels, self._side_view())
        pygame.display.flip()

    def _side_view(self) -> np.ndarray | str | None:
        if not self._side_panel:
            return None
        truth = self.info.get("ground_truth")
        if isinstance(truth, Mapping) and isinstance(truth.get("frame"), np.ndarray):
            return truth["frame"]
        return (
            f"{self.env_id} reports no ground-truth frame (info['ground_truth']['frame']); "
            "make it with ground_truth=True to compare."
        )

    def summary(self) -> dict[str, float | int | None]:
        """Steps taken, their mean rate (first to latest step, drawing included) and the HUD's rate now."""
        mean = None
        if self._first_step_at is not None and self._last_step_at is not None and self.total_steps > 1:
            span = self._last_step_at - self._first_step_at
            mean = (self.total_steps - 1) / span if span > 0 else None
        return {"steps": self.total_steps, "frames_per_s": mean, "hud_frames_per_s": self.stats.fps}

    def save_screenshot(self, path: str | Path) -> Path:
        """Save the window as last drawn to ``path`` (format from the suffix, e.g. ``.png``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.screen, str(path))
        return path

    def close(self, reason: str = "quit") -> None:
        """Write the current episode and close the window; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.running = False
        try:
            if self.recorder is not None and self.recorder.pending_frames:
                self._end_episode(reason)
            if self.screenshot is not None:
                print(f"window saved to {self.save_screenshot(self.screenshot)}", flush=True)
        finally:
            pygame.display.quit()
            pygame.font.quit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `millivid play`."""
    parser.add_argument("--env", default=GROUND_TRUTH_ID, help="registered env id with Loopcraft's spaces")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode")
    parser.add_argument("--size", type=int, default=512, help="edge of the game view in pixels")
    parser.add_argument(
        "--fps", type=float, default=None, help="steps/s while a key is held (default: the env's render_fps)"
    )
    parser.add_argument("--wait", action="store_true", help="turn-based: one step per key press")
    parser.add_argument(
        "--ground-truth", action="store_true", help="show the ground-truth frame beside the view"
    )
    parser.add_argument(
        "--record", metavar="DIR", default=None, help="write every episode to DIR (dataset format)"
    )
    scripted = parser.add_argument_group("scripted runs (measuring speed, screenshots)")
    scripted.add_argument(
        "--hold", metavar="KEYS", default=None, help="movement keys held throughout, e.g. w (W/A/D)"
    )
    scripted.add_argument("--frames", type=int, default=None, help="quit after this many steps")
    scripted.add_argument(
        "--screenshot", metavar="PATH", default=None, help="save the window to PATH when play ends"
    )


def run(args: argparse.Namespace) -> int:
    """Run `millivid play`; returns the exit status (130 after Ctrl-C)."""
    require_pygame()
    try:
        hold = parse_held_keys(args.hold) if getattr(args, "hold", None) else frozenset()
    except ValueError as error:
        raise SystemExit(f"millivid play: --hold: {error}") from None
    env = make_env(args.env, ground_truth=args.ground_truth)
    try:
        fps = float(args.fps if args.fps is not None else env.metadata.get("render_fps") or 20)
        recorder = make_recorder(env, args.env, args.record, wait=args.wait, fps=fps) if args.record else None
        control = ManualControl(
            env,
            env_id=args.env,
            seed=args.seed,
            fps=fps,
            wait=args.wait,
            size=args.size,
            show_ground_truth=args.ground_truth,
            recorder=recorder,
            hold=hold,
            frames=getattr(args, "frames", None),
            screenshot=getattr(args, "screenshot", None),
        )
        mode = (
            "turn-based (one step per key press)"
            if args.wait
            else f"real time at {fps:g} steps/s while a key is held"
        )
        print(f"millivid play: {args.env}, {mode}")
        print(KEYMAP_TEXT, flush=True)
        if recorder is not None:
            print(f"recording every episode to {recorder.root}/episode-NNNNNN (Loopcraft dataset format)")
        try:
            control.start()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return 130
        finally:
            _print_summary(control.summary())
    finally:
        env.close()
    return 0


def _print_summary(summary: Mapping[str, Any]) -> None:
    if not summary["steps"]:
        return
    rate, hud = summary["frames_per_s"], summary["hud_frames_per_s"]
    text = f"{summary['steps']} steps"
    if rate is not None:
        text += f", {rate:.2f} frames/s from the first step to the last (drawing included)"
    if hud is not None:
        text += f"; the HUD showed {hud:.2f} frames/s at the end"
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m agents.play``."""
    parser = argparse.ArgumentParser(prog="millivid play", description="play an env with the keyboard")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
