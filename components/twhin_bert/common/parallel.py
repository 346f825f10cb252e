"""Every core of the pod: the one meaning of a stage's ``workers`` and an ordered process map.

``workers`` (ingest, build_graph): ``0`` means every CPU this process may use, ``n >= 1``
means ``n`` processes, and ``1`` runs everything in this process (no pool). "May use" is the
affinity mask (``os.sched_getaffinity``: a container's cpuset), lowered to a cgroup v2 CPU
quota (``cpu.max``, a Kubernetes CPU limit) when one is set, since processes beyond the quota
only take turns.

:func:`ordered_map` runs a function over work items in forked processes and yields the
results in input order, with a bounded number in flight: the caller merges them serially,
so a parallel run makes the same decisions in the same order as a serial one. Workers are
forked, so they inherit the caller's module state (loaded models, configs set before the
map) and Python's string-hash secret: ``hash(str)`` agrees between a worker and its parent,
which the ingest dedup relies on.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Where a cgroup v2 CPU quota is read (``max 100000`` when there is none).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


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


def resolve_workers(workers: int) -> int:
    """The number of processes for a ``workers`` setting (0: :func:`available_cpus`).

    Raises:
        ValueError: A negative ``workers``.
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 (every available CPU) or a count >= 1, got {workers}")
    return workers or available_cpus()


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, *, window: int | None = None
) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` forked processes, results in input order.

    At most ``window`` items (default ``2 * workers``) are submitted ahead of the result the
    caller is waiting for, so memory is bounded by the window, not by the input. An
    exception raised by ``fn`` is raised here, at its item's turn; the items not yet
    started are cancelled. With ``workers == 1`` everything runs in this process.

    Args:
        fn: A module-level function (it is pickled by reference).
        items: Picklable work items.
        workers: Processes (>= 1; see :func:`resolve_workers`).
        window: Items in flight at most.

    Yields:
        ``fn(item)`` for each item, in the order of ``items``.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(window or 2 * workers, workers)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
