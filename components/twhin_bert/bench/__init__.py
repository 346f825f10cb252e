"""Benchmarks: `twhin-bert bench <name>`."""
