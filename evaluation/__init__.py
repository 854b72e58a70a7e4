"""Evaluation for millivid-env: metrics, revisit-consistency protocol, recall wrappers, benchmarks."""
