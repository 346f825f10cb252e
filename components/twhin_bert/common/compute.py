"""The runtime setting every stage shares: its CPU threads (and its torch device).

One meaning of 0 everywhere: ``threads`` (torch, BLAS/OpenMP, FAISS threads inside the
stage's process) and ``workers`` (ingest, build_graph, embed_graph: processes) are ``0`` =
every CPU this process may use (:func:`twhin_bert.common.parallel.available_cpus`: the
affinity mask, capped by a cgroup CPU limit), ``n >= 1`` = ``n``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from twhin_bert.common.parallel import resolve_workers

THREADS_DESCRIPTION = (
    "CPU threads of the stage's torch, BLAS/OpenMP and FAISS work: 0 = every CPU the process "
    "may use (its affinity mask, capped by a cgroup CPU limit), n = n."
)
#: A stage config's ``threads`` field: ``threads: Threads = 2``.
Threads = Annotated[int, Field(ge=0, description=THREADS_DESCRIPTION)]
#: A stage config's ``device`` field: ``device: Device = "auto"``.
Device = Annotated[
    Literal["auto", "cpu", "cuda"],
    Field(description="Where torch runs: auto = CUDA when available, else the CPU."),
]


def resolve_threads(threads: int) -> int:
    """The thread count of a ``threads`` setting (0: every CPU this process may use).

    Raises:
        ValueError: A negative ``threads``.
    """
    if threads < 0:
        raise ValueError(f"threads must be 0 (every available CPU) or a count >= 1, got {threads}")
    return resolve_workers(threads)


def use_threads(threads: int) -> int:
    """Sets torch's intra-op threads from a ``threads`` setting; returns the count used."""
    import torch

    n = resolve_threads(threads)
    torch.set_num_threads(n)
    return n
