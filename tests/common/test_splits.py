"""Split codes, defined once (common/splits.py) and used by the holdout rule."""

from __future__ import annotations

import numpy as np
from twhin_bert.common import holdout, splits


def test_codes_index_names_and_holdout_sides_use_them() -> None:
    assert [splits.NAMES[c] for c in (splits.TRAIN, splits.VALID, splits.TEST)] == [
        "train",
        "valid",
        "test",
    ]
    ids = np.array([f"t{i}" for i in range(20_000)], dtype=object)
    side = holdout.split_of(ids, valid_fraction=0.3, test_fraction=0.1, seed=3)
    share = {splits.NAMES[c]: float((side == c).mean()) for c in range(len(splits.NAMES))}
    assert abs(share["valid"] - 0.3) < 0.02 and abs(share["test"] - 0.1) < 0.02
    assert abs(share["train"] - 0.6) < 0.02
