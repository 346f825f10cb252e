"""The build_graph stage."""
