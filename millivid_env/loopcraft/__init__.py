"""Loopcraft: the ground-truth Minecraft-like voxel world (generator, renderer, physics, env, data).

Submodules are imported on demand; importing this package is cheap (no numba compilation).
"""
