"""Loopcraft: the ground-truth Minecraft-like voxel world (generator, renderer, physics, env, data).

Submodules are imported on demand; importing this package is cheap (no numba compilation). It points
numba's on-disk cache at the user cache folder first (:mod:`millivid_env._cache`), so the jitted
renderer never writes into the installed package.
"""

from millivid_env._cache import configure_numba_cache

configure_numba_cache()
