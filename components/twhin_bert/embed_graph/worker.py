"""What runs in PBG's worker processes at their start.

PBG starts its Hogwild! workers with ``spawn``: each is a fresh interpreter that imports
the parent's main module, torch and torchbiggraph, and every module its initialiser lives
in. This module imports nothing of ours beyond the package root (importing the stage's
module, :mod:`twhin_bert.embed_graph.pbg`, would add pyarrow, pydantic and the rest, about
a quarter of a second of CPU per worker per training run).
"""

from __future__ import annotations

import multiprocessing as mp


def seed_worker(seed: int) -> None:
    """Seeds torch in a PBG worker process: ``seed`` + the worker's pool index."""
    import torch

    identity = getattr(mp.current_process(), "_identity", ()) or (0,)
    torch.manual_seed(seed * 1000 + identity[0])
