"""Tweets held out of the graph for evaluation: one split, decided once, honoured everywhere.

The evaluate stage measures engagement (and hashtag) prediction on tweets split
train/valid/test. If a test tweet's engagements were in the TwHIN, the social model would
have been trained on pairs mined from exactly the co-engagement it is later asked to
predict, while its MLM-only twin never saw them: the lift would be partly leakage. So
build_graph decides the split, keeps the held-out tweets' engagements out of the graph (and
so out of the PBG user embeddings, the FAISS pairs and stage-2 training), and writes the
rule beside the graph (``artifacts.HOLDOUT_FILE``); embed_graph passes it on; mine_pairs
drops held-out tweets from every pair source and evaluate uses the same split.

The split is a pure function of the tweet id (a keyed 64-bit hash), so every stage, on any
machine, assigns any tweet, engaged or not, to the same side, and no id list is shipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from twhin_bert.common.artifacts import HOLDOUT_FILE
from twhin_bert.common.splits import TEST, TRAIN, VALID

HASH = "pandas.hash_array/siphash24"


class HoldoutError(ValueError):
    """A holdout rule file that cannot be used (names the file)."""


def split_of(tweet_ids: Any, valid_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The holdout side of each tweet id: ``int8`` TRAIN (0), VALID (1) or TEST (2).

    Args:
        tweet_ids: Tweet ids (a pyarrow array, a numpy array or a list of strings).
        valid_fraction: Expected share of ids on the VALID side.
        test_fraction: Expected share of ids on the TEST side.
        seed: The hash key: another seed gives an independent split.

    Returns:
        One side per id, deterministic for the same id, fractions and seed.
    """
    import pandas as pd

    if isinstance(tweet_ids, pa.ChunkedArray):
        tweet_ids = tweet_ids.combine_chunks()
    if isinstance(tweet_ids, pa.Array):
        tweet_ids = tweet_ids.to_numpy(zero_copy_only=False)
    ids = np.asarray(tweet_ids, dtype=object)
    out = np.zeros(ids.size, dtype=np.int8)
    if ids.size == 0 or valid_fraction + test_fraction <= 0:
        return out
    key = f"{seed & 0xFFFFFFFFFFFFFFFF:016x}"[-16:]
    u = (pd.util.hash_array(ids, hash_key=key, categorize=False) >> np.uint64(11)).astype(
        np.float64
    ) / float(1 << 53)
    out[u < test_fraction] = TEST
    out[(u >= test_fraction) & (u < test_fraction + valid_fraction)] = VALID
    return out


def write_rule(folder: Path, valid_fraction: float, test_fraction: float, seed: int) -> Path:
    """Writes the rule (not the ids) into ``folder``."""
    path = Path(folder) / HOLDOUT_FILE
    rule = {
        "hash": HASH,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
    }
    path.write_text(json.dumps(rule, indent=2) + "\n")
    return path


class Holdout:
    """The rule read back from its file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            rule = json.loads(self.path.read_text())
            hash_name = rule["hash"]
            self.seed = int(rule["seed"])
            self.valid_fraction = float(rule["valid_fraction"])
            self.test_fraction = float(rule["test_fraction"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HoldoutError(
                f"{path}: expected a JSON object with hash, seed, valid_fraction and "
                f"test_fraction (written by build_graph): {e}"
            ) from e
        if hash_name != HASH:
            raise HoldoutError(f"{path}: hash {hash_name!r}, this version reads {HASH!r}")

    def split(self, tweet_ids: Any) -> np.ndarray:
        """TRAIN / VALID / TEST per tweet id (see :func:`split_of`)."""
        return split_of(tweet_ids, self.valid_fraction, self.test_fraction, self.seed)

    def held_out(self, tweet_ids: Any) -> np.ndarray:
        """Boolean mask: the tweets no training stage may use."""
        return self.split(tweet_ids) != TRAIN

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "valid_fraction": self.valid_fraction,
            "test_fraction": self.test_fraction,
        }


def read_rule(folder: Path) -> Holdout | None:
    """The holdout rule of a build_graph or embed_graph folder, or None when it has none."""
    path = Path(folder) / HOLDOUT_FILE
    return Holdout(path) if path.exists() else None
