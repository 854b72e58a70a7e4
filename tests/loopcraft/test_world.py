import numpy as np
import pytest

from millivid_env.loopcraft.blocks import LANDMARK_BLOCKS, NUM_BLOCKS, Block, make_mipmaps, make_textures
from millivid_env.loopcraft.world import WORLD_SIZE, flat_world, generate_world


def test_same_seed_gives_identical_blocks():
    a, b = generate_world(123), generate_world(123)
    assert a.blocks.dtype == np.uint8 and a.blocks.shape == WORLD_SIZE
    assert a.blocks.tobytes() == b.blocks.tobytes()
    assert np.array_equal(a.spawn, b.spawn)
    assert a.landmarks == b.landmarks


def test_seed_sequences_are_accepted_and_differ():
    a, b = generate_world([1, 2]), generate_world([1, 3])
    assert a.blocks.tobytes() != b.blocks.tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_world_structure(seed):
    world = generate_world(seed)
    blocks = world.blocks
    nx, ny, nz = blocks.shape
    # Solid bedrock border over the full height, and a bedrock floor.
    for wall in (blocks[0], blocks[-1], blocks[:, :, 0], blocks[:, :, -1]):
        assert np.all(wall == Block.BEDROCK)
    assert np.all(blocks[:, 0, :] == Block.BEDROCK)
    assert blocks.max() < NUM_BLOCKS
    # Spawn at the centre, standing on a solid block with two air blocks above.
    x, y, z = world.spawn
    i, j, k = int(x), int(y), int(z)
    assert (i, k) == (nx // 2, nz // 2)
    assert blocks[i, j - 1, k] != Block.AIR and not blocks[i, j : j + 2, k].any()
    # 3-5 landmarks of distinct unusual blocks, tall, near the spawn.
    assert 3 <= len(world.landmarks) <= 5
    assert len({lm.block for lm in world.landmarks}) == len(world.landmarks)
    for lm in world.landmarks:
        assert lm.block in LANDMARK_BLOCKS
        assert 8 <= lm.top_y - lm.base_y
        assert np.hypot(lm.x - x, lm.z - z) <= 30
        assert np.any(
            blocks[int(lm.x) - lm.radius : int(lm.x) + lm.radius + 1, lm.top_y - 1] == lm.block
        ) or (
            np.any(
                blocks[int(lm.x) - lm.radius : int(lm.x) + lm.radius + 1, lm.base_y : lm.top_y] == lm.block
            )
        )
    # Varied content: trees and several surface materials.
    present = set(np.unique(blocks).tolist())
    assert {Block.STONE, Block.DIRT} <= present
    assert Block.WOOD in present or Block.CACTUS in present


def test_worlds_differ_between_seeds():
    digests = {generate_world(s).blocks.tobytes() for s in range(4)}
    assert len(digests) == 4


def test_textures_are_fixed_and_distinct():
    tex = make_textures()
    assert tex.shape == (NUM_BLOCKS, 3, 16, 16, 3) and tex.dtype == np.uint8
    assert np.array_equal(tex, make_textures())
    solid = tex[1:, 1].reshape(NUM_BLOCKS - 1, -1).astype(np.int64)
    for a in range(len(solid)):
        for b in range(a + 1, len(solid)):
            assert np.abs(solid[a] - solid[b]).mean() > 4, (Block(a + 1), Block(b + 1))
    # Grass: green top, a side that is not the top, dirt bottom.
    grass = tex[Block.GRASS].astype(np.int64)
    assert grass[0, ..., 1].mean() > grass[0, ..., 0].mean()
    assert not np.array_equal(grass[0], grass[1])
    mips = make_mipmaps()
    assert mips.shape == (NUM_BLOCKS, 3, 5, 16, 16, 3)
    # Level 4 (1x1) is the mean colour of the face.
    mean = tex[Block.STONE, 0].reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(mips[Block.STONE, 0, 4, 0, 0].astype(float) - mean) <= 2)


def test_flat_world_helper():
    world = flat_world((24, 12, 24), ground=3)
    assert world.blocks.shape == (24, 12, 24)
    assert np.all(world.blocks[1:-1, :3, 1:-1] != Block.AIR) and not world.blocks[1:-1, 3:, 1:-1].any()
    assert world.spawn.tolist() == [12.5, 3.0, 12.5]


def test_bad_world_size():
    with pytest.raises(ValueError, match="world size"):
        generate_world(0, (16, 16, 16))
