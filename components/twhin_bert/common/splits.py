"""The split codes every stage uses for train / valid / test (one definition).

build_graph splits edges and holds tweets out with them (:mod:`twhin_bert.common.holdout`),
embed_graph reads its graph's splits by name, evaluate splits its engagement tweets with
them. A split is stored as its ``int8`` code; its name is the PBG edge folder and the key in
metrics.
"""

from __future__ import annotations

TRAIN, VALID, TEST = 0, 1, 2
#: Split names, indexed by code.
NAMES = ("train", "valid", "test")
