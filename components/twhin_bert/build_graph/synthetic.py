"""Moved to :mod:`twhin_bert.demo_data.synthetic`; this alias goes once
``bench/embed_graph.py`` imports it from there."""

from twhin_bert.demo_data.synthetic import SyntheticGraph, write_synthetic_ingest

__all__ = ["SyntheticGraph", "write_synthetic_ingest"]
