"""`millivid play`, headless: synthetic key events and a patched key state drive the real loop."""

from __future__ import annotations

import json
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import warnings

import gymnasium as gym
import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

import millivid_env  # noqa: E402,F401  (registers the ids)
from agents import play as play_module  # noqa: E402
from agents.keys import choose_held_action, parse_held_keys  # noqa: E402
from agents.play import ManualControl  # noqa: E402
from agents.play_env import make_env, make_recorder  # noqa: E402
from agents.recording import episode_folders  # noqa: E402
from millivid_env import cli  # noqa: E402
from millivid_env.loopcraft.dataset import open_dataset  # noqa: E402
from millivid_env.loopcraft.episodes import render_episode  # noqa: E402
from millivid_env.loopcraft.world import generate_world  # noqa: E402

SMALL_WORLD = (48, 32, 48)  # the smallest world: keeps every reset well under a second


class HeldKeys:
    """Stands in for ``pygame.key.get_pressed()``: indexable by key code."""

    def __init__(self) -> None:
        self.codes: set[int] = set()

    def __getitem__(self, code: int) -> bool:
        return code in self.codes


@pytest.fixture
def held(monkeypatch):
    keys = HeldKeys()
    monkeypatch.setattr(pygame.key, "get_pressed", lambda: keys)
    return keys


def small_env() -> gym.Env:
    return gym.make("Loopcraft-v0", render_mode="rgb_array", world_size=SMALL_WORLD)


def make_control(env=None, **kwargs) -> ManualControl:
    kwargs = {"seed": 5, "fps": 1000, "size": 96, **kwargs}
    control = ManualControl(env or small_env(), **kwargs)
    control.reset()
    return control


def press(*keys: int) -> None:
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))


def ticks(control: ManualControl, n: int) -> None:
    for _ in range(n):
        control.tick()


def test_holding_w_advances_frames_and_moves_pose(held):
    control = make_control()
    start = control.info["pose"].copy()
    held.codes = {pygame.K_w}
    ticks(control, 6)
    assert control.steps == 6
    assert np.hypot(*(control.info["pose"][[0, 2]] - start[[0, 2]])) > 0.5
    # No idle action exists: with no key held nothing steps and the frame stays.
    held.codes = set()
    frame = control.obs.copy()
    ticks(control, 4)
    assert control.steps == 6 and np.array_equal(control.obs, frame)
    held.codes = {pygame.K_RIGHT}
    ticks(control, 3)
    assert control.steps == 9 and control.info["pose"][3] == (start[3] + 30) % 360
    control.close()


def test_held_key_combinations():
    assert [choose_held_action({0, 1}, t) for t in range(4)] == [0, 1, 0, 1]  # W+A walks an arc
    assert choose_held_action({1, 2}, 0) is None  # left + right cancel
    assert choose_held_action({0, 1, 2}, 1) == 0
    assert choose_held_action(set(), 0) is None


def test_a_tap_between_ticks_still_steps_once(held):
    control = make_control()
    press(pygame.K_a)  # pressed and released before the tick polls the keys
    ticks(control, 3)
    assert control.steps == 1 and control.keys.last_action == 1
    control.close()


def test_wait_mode_steps_once_per_press(held):
    control = make_control(wait=True)
    held.codes = {pygame.K_w}
    ticks(control, 5)
    assert control.steps == 0  # holding does nothing in turn-based mode
    press(pygame.K_w)
    ticks(control, 5)
    assert control.steps == 1
    press(pygame.K_d, pygame.K_UP)
    ticks(control, 5)
    assert control.steps == 3
    control.close()


def test_pause_stops_stepping_and_single_step(held):
    control = make_control()
    held.codes = {pygame.K_w}
    ticks(control, 2)
    press(pygame.K_SPACE)
    ticks(control, 5)
    assert control.paused and control.steps == 2
    press(pygame.K_w)  # movement presses are ignored while paused
    ticks(control, 2)
    assert control.steps == 2
    held.codes = {pygame.K_d}
    press(pygame.K_e)  # one step with the held key
    ticks(control, 3)
    assert control.steps == 3 and control.keys.last_action == 2
    held.codes = set()
    press(pygame.K_PERIOD)  # no key held: repeats the last action
    ticks(control, 2)
    assert control.steps == 4 and control.keys.last_action == 2
    press(pygame.K_p)
    held.codes = {pygame.K_w}
    ticks(control, 2)
    assert not control.paused and control.steps == 6
    control.close()


def test_reset_keys_start_a_new_episode(held):
    control = make_control()
    held.codes = {pygame.K_w}
    ticks(control, 3)
    held.codes = set()
    first_world = control.info["world_seed"]
    press(pygame.K_BACKSPACE)
    ticks(control, 1)
    assert control.episode == 1 and control.steps == 0 and control.info["step"] == 0
    assert control.info["world_seed"] != first_world  # a new world, from the seeded stream
    press(pygame.K_r)
    ticks(control, 1)
    assert control.episode == 2
    control.close()


@pytest.mark.parametrize("quit_event", ["escape", "q", "window"])
def test_quit_ends_the_loop(quit_event):
    control = ManualControl(small_env(), seed=1, fps=1000, size=64)
    if quit_event == "window":
        pygame.event.post(pygame.event.Event(pygame.QUIT))
    else:
        press(pygame.K_ESCAPE if quit_event == "escape" else pygame.K_q)
    control.start()  # returns once the quit event is handled
    assert not control.running and not pygame.display.get_init()


def test_ground_truth_panel_and_memory_tokens(held):
    class FakeModelEnv(gym.Env):
        """A stand-in world-model env: Loopcraft's spaces, memory tokens and a ground-truth frame."""

        metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

        def __init__(self):
            self.inner = small_env()
            self.action_space, self.observation_space = self.inner.action_space, self.inner.observation_space

        def _info(self, info):
            truth = {"frame": np.full((64, 64, 3), (250, 0, 250), np.uint8), "pose": info["pose"]}
            return {"memory_tokens": 123 + info["step"], "ground_truth": truth}

        def reset(self, *, seed=None, options=None):
            obs, info = self.inner.reset(seed=seed)
            return obs, self._info(info)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.inner.step(action)
            return obs, reward, terminated, truncated, self._info(info)

    control = make_control(FakeModelEnv(), env_id="Fake-v0", show_ground_truth=True, size=64)
    assert control.screen.get_width() == 128  # game view + ground-truth view
    held.codes = {pygame.K_w}
    ticks(control, 2)
    assert control.stats.memory_tokens == 125
    assert control.stats.lines()[2] == ("memory", "125 tokens")
    truth_view, game_view = control.hud.view_rect(1), control.hud.view_rect(0)
    assert tuple(control.screen.get_at(truth_view.center))[:3] == (250, 0, 250)
    assert tuple(control.screen.get_at(game_view.center))[:3] != (250, 0, 250)
    control.close()
    # The real world *is* the ground truth: no second view, a note instead.
    control = make_control(show_ground_truth=True, size=64)
    assert control.screen.get_width() == 64 and "ground truth" in control.hud.notes[0]
    control.close()


def test_record_reads_back_with_matching_frames_actions_and_poses(held, tmp_path):
    env = small_env()
    control = make_control(env, recorder=make_recorder(env, "Loopcraft-v0", tmp_path, wait=False, fps=1000))
    seen = [[]]
    for codes, n in [({pygame.K_w}, 4), ({pygame.K_d}, 3), (None, 1), ({pygame.K_a}, 2)]:
        if codes is None:
            held.codes = set()
            press(pygame.K_r)  # ends episode 0
            control.tick()
            seen.append([])
            continue
        held.codes = codes
        for _ in range(n):
            control.tick()
            seen[-1].append((control.obs.copy(), control.keys.last_action, control.info["pose"].copy()))
    control.close()
    folders = episode_folders(tmp_path)
    assert [f.name for f in folders] == ["episode-000000", "episode-000001"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    for folder, steps, actions in zip(folders, seen, [[0, 0, 0, 0, 2, 2, 2], [1, 1]], strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a complete dataset: no "incomplete"/"index" warnings
            dataset = open_dataset(folder)
        video = dataset[0]  # verifies the checksum
        assert np.array_equal(video.frames, np.stack([s[0] for s in steps]))
        assert video.actions.tolist() == [s[1] for s in steps] == actions
        assert np.array_equal(video.poses, np.stack([s[2] for s in steps]))
        assert video.meta["source"] == "millivid play" and video.meta["env_id"] == "Loopcraft-v0"
        # world seed + start pose + actions replay to exactly the recorded frames.
        world = generate_world(tuple(video.meta["world_seed"]), SMALL_WORLD)
        replay = render_episode(world, video.actions, 64, np.array(video.meta["poses"]["start"]))
        assert np.array_equal(replay.frames, video.frames)
    sidecar = json.loads((folders[0] / "videos" / "000000.json").read_text())
    assert sidecar["ended"] == "reset" and sidecar["action_counts"] == [4, 0, 3]
    assert sidecar["poses"]["path_length_xz"] > 0.5
    assert open_dataset(folders[1])[0].meta["ended"] == "quit"


def test_keyboard_interrupt_mid_episode_leaves_a_valid_recording(held, tmp_path):
    class InterruptAfter(gym.Wrapper):
        def __init__(self, env, steps):
            super().__init__(env)
            self.left = steps

        def step(self, action):
            if self.left == 0:
                raise KeyboardInterrupt
            self.left -= 1
            return super().step(action)

    env = InterruptAfter(small_env(), steps=3)
    recorder = make_recorder(env, "Loopcraft-v0", tmp_path / "rec", wait=False, fps=1000)
    control = ManualControl(env, seed=2, fps=1000, size=64, recorder=recorder)
    held.codes = {pygame.K_w}
    with pytest.raises(KeyboardInterrupt):
        control.start()
    (folder,) = episode_folders(tmp_path / "rec")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        video = open_dataset(folder)[0]
    assert video.actions.tolist() == [0, 0, 0] and video.frames.shape == (3, 64, 64, 3)
    assert video.meta["ended"] == "interrupted"
    assert not pygame.display.get_init()


def test_cli_play_records_until_the_window_closes(held, tmp_path, monkeypatch, capsys):
    assert cli.COMMANDS["play"].module == "agents.play"
    calls = {"n": 0}

    def events():
        calls["n"] += 1
        return [pygame.event.Event(pygame.QUIT)] if calls["n"] > 4 else []

    monkeypatch.setattr(pygame.event, "get", events)
    monkeypatch.setattr(play_module, "make_env", lambda env_id, ground_truth=False: small_env())
    held.codes = {pygame.K_UP}
    args = ["play", "--seed", "3", "--fps", "500", "--size", "64", "--record", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "W / Up" in out and "Esc / Q" in out  # the keymap is printed at start
    (folder,) = episode_folders(tmp_path)
    video = open_dataset(folder)[0]
    assert video.actions.tolist() == [0, 0, 0, 0] and video.meta["play_mode"] == "real time"


def test_cli_hold_frames_and_screenshot_script_a_run(held, tmp_path, monkeypatch, capsys):
    # No key is pressed: --hold w walks forward, --frames ends the run, --screenshot saves the window.
    monkeypatch.setattr(play_module, "make_env", lambda env_id, ground_truth=False: small_env())
    shot = tmp_path / "shots" / "play.png"
    args = ["play", "--seed", "3", "--fps", "1000", "--size", "64", "--hold", "w", "--frames", "5"]
    assert cli.main([*args, "--screenshot", str(shot)]) == 0
    out = capsys.readouterr().out
    assert "5 steps" in out and "frames/s" in out and f"window saved to {shot}" in out
    image = pygame.image.load(str(shot))
    control = ManualControl(small_env(), seed=3, size=64)
    assert image.get_size() == control.hud.window_size
    control.close()


def test_held_and_frames_in_the_control(held):
    control = make_control(hold={1}, frames=3)
    control.start()  # turns left three times, then stops by itself
    assert control.total_steps == 3 and not control.running
    assert control.keys.last_action == 1
    summary = control.summary()
    assert summary["steps"] == 3 and summary["frames_per_s"] > 0
    with pytest.raises(ValueError, match="frames"):
        ManualControl(small_env(), frames=0)


def test_parse_held_keys():
    assert parse_held_keys("w") == {0} and parse_held_keys("WaD") == {0, 1, 2}
    with pytest.raises(ValueError, match="W, A, D"):
        parse_held_keys("x")
    with pytest.raises(SystemExit, match="--hold"):
        cli.main(["play", "--hold", "x"])


def test_missing_pygame_names_the_extra(monkeypatch):
    monkeypatch.setattr(play_module, "pygame", None)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"millivid-env\[play\]"):
        cli.main(["play"])


def test_rejects_envs_with_other_spaces():
    with pytest.raises(ValueError, match="Discrete\\(3\\)"):
        ManualControl(gym.make("CartPole-v1"))


def test_make_env_ignores_ground_truth_for_the_real_world():
    env = make_env("Loopcraft-v0", ground_truth=True)
    assert env.unwrapped.render_mode == "rgb_array"
    env.close()


@pytest.mark.parametrize(
    ("keys", "wait_on_player", "expected"),
    [
        ([pygame.K_d], False, [2, 2, 2]),  # D held: turn right every frame
        ([pygame.K_d], True, [2, 2, 2]),
        ([], True, []),  # no key: no step (Loopcraft has no idle action)
        ([], False, [0, 0, 0]),  # play() steps with noop=0 when no key is held, which is forward
    ],
)
def test_gymnasium_play_runs_headless(monkeypatch, keys, wait_on_player, expected):
    from gymnasium.utils.play import play

    first = [pygame.event.Event(pygame.KEYDOWN, key=key) for key in keys]
    batches = [first, [], [], [pygame.event.Event(pygame.QUIT)]]
    monkeypatch.setattr(pygame.event, "get", lambda: batches.pop(0) if batches else [])
    taken = []
    env = small_env()
    # No keys_to_action: play() takes the env's get_keys_to_action(). The first frame only resets.
    play(env, zoom=2, seed=0, wait_on_player=wait_on_player, callback=lambda *a: taken.append(a[2]))
    assert taken == expected


def test_recorder_takes_poses_from_the_ground_truth_twin_or_leaves_nan(tmp_path):
    from agents.recording import EpisodeRecorder

    recorder = EpisodeRecorder(
        tmp_path, env_id="Fake-v0", resolution=8, world_size=SMALL_WORLD, generator_version="env:Fake-v0"
    )
    frame = np.zeros((8, 8, 3), np.uint8)
    assert recorder.finish("quit") is None  # nothing played, nothing written
    recorder.begin({}, reset_seed=None)
    recorder.add(frame, 1, 0.5, {"ground_truth": {"pose": np.arange(5)}})
    recorder.add(frame, 2, 0.0, {})
    with pytest.raises(ValueError, match="uint8"):
        recorder.add(np.zeros((8, 8, 3), np.float32), 0, 0.0, {})
    folder = recorder.finish("quit")
    video = open_dataset(folder)[0]
    assert video.poses[0].tolist() == [0, 1, 2, 3, 4] and np.isnan(video.poses[1]).all()
    assert video.meta["rewards"] == [0.5, 0.0] and video.meta["poses"] == {"start": None}
    assert open_dataset(folder).config.generator_version == "env:Fake-v0"
