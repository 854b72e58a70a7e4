"""Benchmark harness of `millivid bench`."""
