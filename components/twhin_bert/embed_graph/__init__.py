"""The embed_graph stage."""
