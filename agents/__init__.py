"""Agents for millivid-env: human play (pygame) and RL trained in imagination (stable-baselines3)."""
