"""The runtime setting every stage shares: its CPUs (threads or worker processes) and device.

One meaning of 0 everywhere: ``threads`` (torch, BLAS/OpenMP, FAISS threads inside the
stage's process) and ``workers`` (ingest, build_graph, embed_graph: processes) are ``0`` =
every CPU this process may use (:func:`available_cpus`), ``n >= 1`` = ``n``;
:func:`resolve_cpus` is the one rule for both.

"May use" is the affinity mask (``os.sched_getaffinity``: a container's cpuset), lowered to a
cgroup v2 CPU quota (``cpu.max``, a Kubernetes CPU limit) when one is set, since threads or
processes beyond the quota only take turns.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

#: Where a cgroup v2 CPU quota is read (``max 100000`` when there is none).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

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


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def resolve_cpus(count: int, setting: str = "threads") -> int:
    """The CPUs of a ``threads`` or ``workers`` setting: 0 is :func:`available_cpus`.

    Args:
        count: The setting's value.
        setting: Its name, for the error message (``threads``, ``workers``).

    Raises:
        ValueError: A negative ``count``.
    """
    if count < 0:
        raise ValueError(f"{setting} must be 0 (every available CPU) or a count >= 1, got {count}")
    return count or available_cpus()


def use_threads(threads: int) -> int:
    """Sets torch's intra-op threads from a ``threads`` setting; returns the count used."""
    import torch

    n = resolve_cpus(threads)
    torch.set_num_threads(n)
    return n
