import subprocess
import sys

import numpy as np
import pytest

from millivid_env.loopcraft.physics import initial_pose, step_pose
from millivid_env.loopcraft.renderer import render, validate_resolution
from millivid_env.loopcraft.world import generate_world

# sha256 over 20 frames (64x64) of world 7, yaw 30, the action sequence below. Any change to the
# world generator, textures, physics or renderer changes it: then bump the env version (-vN).
REFERENCE_DIGEST = "7aea717bbfc0fdd9b5017cca4c351bb8edeb977f640de592512760073108005e"
DIGEST_CODE = """
import hashlib
from millivid_env.loopcraft.physics import initial_pose, step_pose
from millivid_env.loopcraft.renderer import render
from millivid_env.loopcraft.world import generate_world

world = generate_world(7)
pose = initial_pose(world, 30)
h = hashlib.sha256()
for a in [0, 0, 0, 1, 0, 0, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, 2, 0, 0]:
    pose = step_pose(world, pose, a)
    h.update(render(world, pose, 64).tobytes())
print(h.hexdigest())
"""


def digest_here() -> str:
    namespace: dict = {}
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(DIGEST_CODE, namespace)
    return out.getvalue().strip()


def test_frames_match_stored_digest_in_this_and_a_fresh_process():
    assert digest_here() == REFERENCE_DIGEST
    fresh = subprocess.run([sys.executable, "-c", DIGEST_CODE], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == REFERENCE_DIGEST


@pytest.fixture(scope="module")
def world():
    return generate_world(3)


@pytest.mark.parametrize("resolution", [8, 64, 128, 256])
def test_render_shapes_and_sky(world, resolution):
    frame = render(world, initial_pose(world, 0), resolution)
    assert frame.shape == (resolution, resolution, 3) and frame.dtype == np.uint8
    assert frame.flags.c_contiguous
    if resolution >= 64:
        assert frame.reshape(-1, 3).std(axis=0).max() > 10  # not a constant image
        top = frame[: resolution // 16].reshape(-1, 3).astype(int)
        sky = top[:, 2] > top[:, 0] + 20  # bluish: blue clearly above red
        assert sky.mean() > 0.5


def test_resolutions_agree_coarsely(world):
    pose = initial_pose(world, 120)
    small = render(world, pose, 64).astype(float)
    big = render(world, pose, 256).astype(float).reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - big).mean() < 25


@pytest.mark.parametrize("bad", [0, -8, 63, 100, 64.0, "64", None, True])
def test_bad_resolution_raises(world, bad):
    with pytest.raises(ValueError, match="positive multiple of 8"):
        validate_resolution(bad)
    with pytest.raises(ValueError, match="positive multiple of 8"):
        render(world, initial_pose(world, 0), bad)


def test_36_left_turns_return_the_starting_frame(world):
    pose = initial_pose(world, 40)
    for _ in range(7):
        pose = step_pose(world, pose, 0)
    start_pose, start_frame = pose.copy(), render(world, pose, 64)
    frames = []
    for _ in range(36):
        pose = step_pose(world, pose, 1)
        frames.append(render(world, pose, 64))
    assert np.array_equal(pose, start_pose)
    assert np.array_equal(frames[-1], start_frame)
    assert not np.array_equal(frames[0], start_frame)  # turning does change the view


def test_render_is_deterministic_and_does_not_depend_on_history(world):
    pose = initial_pose(world, 200)
    a = render(world, pose, 64)
    render(world, initial_pose(world, 10), 128)
    assert np.array_equal(a, render(world, pose, 64))
