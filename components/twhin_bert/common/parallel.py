"""Every core of the pod: an ordered process map over a stage's ``workers``.

``workers`` (ingest, build_graph) is resolved by :func:`twhin_bert.common.compute.resolve_cpus`
(0 = every CPU this process may use); ``1`` runs everything in this process (no pool).

:func:`ordered_map` runs a function over work items in forked processes and yields the
results in input order, with a bounded number in flight: the caller merges them serially,
so a parallel run makes the same decisions in the same order as a serial one. Workers are
forked, so they inherit the caller's module state (loaded models, configs set before the
map) and Python's string-hash secret: ``hash(str)`` agrees between a worker and its parent,
which the ingest dedup relies on.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from twhin_bert.common.lifetime import die_with_parent

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    window: int | None = None,
    label: Callable[[T], str] | None = None,
) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` forked processes, results in input order.

    At most ``window`` items (default ``2 * workers``) are submitted ahead of the result the
    caller is waiting for, so memory is bounded by the window, not by the input. An
    exception raised by ``fn`` is raised here, at its item's turn; the items not yet
    started are cancelled. With ``workers == 1`` everything runs in this process.

    Args:
        fn: A module-level function (it is pickled by reference).
        items: Picklable work items.
        workers: Processes (>= 1; see :func:`twhin_bert.common.compute.resolve_cpus`).
        window: Items in flight at most.
        label: Names an item in errors (e.g. its file and where in it); default its index.

    Yields:
        ``fn(item)`` for each item, in the order of ``items``.

    Raises:
        WorkerDiedError: A worker was killed (the rest of the pool is shut down). The workers
            die with this process and ignore Ctrl-C, which is this process's to handle.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(window or 2 * workers, workers)
    _import_before_fork()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context("fork"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
    pending: deque[tuple[str, Future[R]]] = deque()
    try:
        for index, item in enumerate(items):
            pending.append((label(item) if label else f"item {index}", pool.submit(fn, item)))
            if len(pending) >= window:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class WorkerDiedError(OSError):
    """A worker process ended abruptly (killed: most often by the kernel's out-of-memory
    killer at the pod's memory limit). An I/O-class failure of the machine, not a bug."""


def _result(name: str, future: Future[R]) -> R:
    try:
        return future.result()
    except BrokenProcessPool as e:
        raise WorkerDiedError(
            f"{name}: a worker process died abruptly (killed, e.g. out of memory) while this "
            "was in flight; lower the stage's workers or raise the pod's memory, then rerun"
        ) from e


def _worker_init(parent: int) -> None:
    """In each worker: die with the parent (``kill -9`` of the stage leaves no worker holding
    its output's lock) and leave Ctrl-C to the parent, which cancels the pool: a worker
    interrupted inside the result queue's lock would hang the shutdown."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def _import_before_fork() -> None:
    """Imports here, once, what every worker would otherwise import on its own: pyarrow
    imports pandas the first time it converts Python objects (``pa.array(list)``), which
    costs each freshly forked worker about half a second of CPU."""
    if "pyarrow" in sys.modules:
        with contextlib.suppress(ImportError):  # without pandas pyarrow does not look for it
            importlib.import_module("pandas")
