import numpy as np
import pytest

from millivid_env.loopcraft.blocks import Block
from millivid_env.loopcraft.physics import (
    BODY_RADIUS,
    DEFAULT_PITCH,
    WALK_SPEED,
    Action,
    collides,
    initial_pose,
    step_pose,
    validate_action,
)
from millivid_env.loopcraft.world import flat_world, generate_world

# Facing +z (yaw 0) from the middle of a flat world, feet on y = 4.
START = np.array([16.5, 4.0, 10.5, 0.0, DEFAULT_PITCH])


def walk(world, pose, n):
    for _ in range(n):
        pose = step_pose(world, pose, Action.forward)
    return pose


@pytest.mark.parametrize("action", [0, 1, 2, np.int64(2), np.uint8(1), np.array(0), Action.left])
def test_valid_actions(action):
    assert validate_action(action) == int(action)


@pytest.mark.parametrize("action", [-1, 3, 1.0, np.float32(0), "0", None, True, np.array([1]), [0]])
def test_invalid_actions_raise(action):
    with pytest.raises(ValueError, match="valid actions: 0 forward, 1 left, 2 right"):
        validate_action(action)


def test_turns_are_exact_and_do_not_move():
    world = flat_world()
    pose = START.copy()
    for _ in range(36):
        nxt = step_pose(world, pose, Action.left)
        assert np.array_equal(nxt[:3], pose[:3])
        pose = nxt
        assert pose[3] == int(pose[3]) and 0 <= pose[3] < 360
    assert np.array_equal(pose, START)
    assert step_pose(world, START, Action.right)[3] == 10.0
    assert step_pose(world, START, Action.left)[3] == 350.0


def test_forward_follows_heading():
    world = flat_world()
    for yaw, direction in [(0, (0, 1)), (90, (-1, 0)), (180, (0, -1)), (270, (1, 0))]:
        pose = START.copy()
        pose[3] = yaw
        pose[2] = 16.5
        moved = step_pose(world, pose, Action.forward)
        assert np.allclose(moved[[0, 2]] - pose[[0, 2]], np.array(direction) * WALK_SPEED, atol=1e-9)
        assert moved[1] == pose[1]


def test_two_block_wall_stops_forward_motion():
    world = flat_world()
    world.blocks[1:-1, 4:6, 14] = Block.STONE  # a wall two blocks high across the path at z = 14
    pose = walk(world, START, 40)
    assert pose[1] == 4.0
    assert pose[2] == pytest.approx(14 - BODY_RADIUS, abs=WALK_SPEED)
    assert pose[2] <= 14 - BODY_RADIUS


def test_one_block_step_is_climbed_and_walked_off():
    world = flat_world()
    world.blocks[1:-1, 4, 14:17] = Block.STONE  # a 1-block ledge three blocks deep
    pose = walk(world, START, 20)
    assert pose[1] == 5.0 and pose[2] > 14
    pose = walk(world, pose, 20)
    assert pose[1] == 4.0 and pose[2] > 17  # dropped back down on the other side


def test_drop_into_hole_lands_on_ground():
    world = flat_world()
    world.blocks[5:28, 1:4, 13:30] = Block.AIR  # a three-block pit
    pose = walk(world, START, 30)
    assert pose[1] == 1.0


def test_diagonal_push_slides_along_wall():
    world = flat_world()
    world.blocks[1:-1, 4:6, 14] = Block.STONE
    pose = START.copy()
    pose[3] = 30  # heading mostly +z, drifting towards -x
    pose = walk(world, pose, 60)
    assert pose[2] <= 14 - BODY_RADIUS
    assert pose[0] < START[0] - 3  # kept sliding along the wall


def test_water_is_walkable_and_world_border_holds():
    world = flat_world()
    world.blocks[1:-1, 3, 12:20] = Block.WATER
    pose = walk(world, START, 200)  # straight into the +z border
    assert pose[1] == 4.0
    assert pose[2] <= world.blocks.shape[2] - 1 - BODY_RADIUS


def test_random_walk_never_leaves_world_or_enters_blocks():
    world = generate_world(5)
    rng = np.random.default_rng(0)
    pose = initial_pose(world, 0)
    nx, ny, nz = world.blocks.shape
    for action in rng.choice(3, size=1500, p=[0.7, 0.15, 0.15]):
        pose = step_pose(world, pose, int(action))
        x, y, z = pose[:3]
        assert 1 + BODY_RADIUS <= x <= nx - 1 - BODY_RADIUS and 1 + BODY_RADIUS <= z <= nz - 1 - BODY_RADIUS
        assert 0 < y < ny and y == int(y)
        assert not collides(world.blocks, x, y, z)
        assert collides(world.blocks, x, y - 0.5, z)  # standing on something


def test_step_pose_does_not_modify_input():
    world = flat_world()
    pose = START.copy()
    step_pose(world, pose, 0)
    assert np.array_equal(pose, START)
