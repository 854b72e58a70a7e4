"""PyTorch side of millivid-env: token layout, hierarchical autoencoder, video DiT, training, checkpoints.

This package imports nothing from ``millivid_env``, ``agents`` or ``evaluation``.
"""
