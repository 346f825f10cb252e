"""The mine_pairs stage."""
