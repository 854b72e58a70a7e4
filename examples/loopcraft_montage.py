"""Render a montage of Loopcraft views: a few worlds, four frames of a random walk through each.

Run: python examples/loopcraft_montage.py --out docs/images/loopcraft-montage.png
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio
import numpy as np

from millivid_env.loopcraft.episodes import render_episode
from millivid_env.loopcraft.trajectories import random_walk
from millivid_env.loopcraft.world import generate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="loopcraft-montage.png")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--frames", type=int, nargs=4, default=[60, 150, 250, 390], help="walk frames shown")
    args = parser.parse_args()

    rows = []
    for seed in args.worlds:
        world = generate_world(seed)
        actions = random_walk(np.random.default_rng(seed), 400)
        frames = render_episode(world, actions, args.resolution).frames
        rows.append(np.concatenate(list(frames[args.frames]), axis=1))
    iio.imwrite(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
