"""Returning freed memory to the system between the chunks of a streaming stage.

Both allocators under a stage keep what it frees for reuse: Arrow's pool keeps the pages of
every decoded batch, and glibc's malloc keeps heap the tokenizer and torch released.
Neither is a leak, but a stage's resident memory then creeps up chunk after chunk to a
plateau well above what one chunk needs (embed over 100K tweets: +70 MB; a streaming pass over
10M engagements: +260 MB). A stage calls :func:`release_free_memory` after each chunk.

pyarrow's default pool on Linux is mimalloc, whose freed pages ``release_unused`` does not give
back: streaming the 1M tweets of a 100x scale run in 2,000-row batches held 45 MB of them
while Arrow's live bytes stayed under 1 MB. So ``import twhin_bert`` sets
``ARROW_DEFAULT_MEMORY_POOL=system`` (unless it is set): Arrow then allocates with the C
library's malloc, the same pass holds 8 MB, and ``malloc_trim`` returns what it frees.
``pyarrow.set_memory_pool`` after the import did less (train_tokenizer at 100x peaked at 106
MB with it, 76 MB with the variable): some of Arrow's allocations keep to the pool it chose
at start.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from typing import Any

#: oneDNN's setting (some of torch's CPU kernels, GELU among them, are oneDNN's): how many
#: compiled kernels it keeps. It also reads the name of its older releases.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_ENV_OLD = "DNNL_PRIMITIVE_CACHE_CAPACITY"


#: glibc's settings for where large blocks come from (``mallopt`` and the environment a
#: process starts with): blocks of at least MMAP_THRESHOLD bytes get their own mapping, which
#: goes back to the system when freed; the heap's free top goes back past TRIM_THRESHOLD.
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
TRIM_THRESHOLD_ENV = "MALLOC_TRIM_THRESHOLD_"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
LARGE_BLOCK_BYTES = 4 << 20
HEAP_TOP_KEPT_BYTES = 32 << 20


@functools.cache
def _libc_function(name: str) -> Any:
    """A glibc function (None where the C library has none: musl, macOS)."""
    lib = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(lib), name, None) if lib else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Hands the memory both allocators hold free back to the system (a few ms)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _operator_set_malloc() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return bool(
        os.environ.get(MMAP_THRESHOLD_ENV)
        or os.environ.get(TRIM_THRESHOLD_ENV)
        or "malloc.mmap_threshold" in tunables
        or "malloc.trim_threshold" in tunables
    )


@contextlib.contextmanager
def large_blocks_returned() -> Iterator[None]:
    """Inside: freed blocks of 4 MiB or more go back to the system, in this process and in
    the processes it starts (PBG's Hogwild! workers).

    glibc gives a large block its own mapping, but when such a block is freed it raises its
    threshold to that block's size (up to 32 MiB), so blocks of that size then come from the
    heap, and the heap hands back only its free top. embed_graph loads each chunk of edges
    as tensors of 13.6 MB (1.7M edges): at 100x the demo, PBG's parent process grew by about
    a chunk's edges at each chunk in some runs (246 -> 559 MB over 8 chunks) and stayed flat in
    others (298 MB), and each worker held 70-130 MB of free heap; the stage's peak moved
    between 1,163 and 1,422 MB from run to run. With the threshold fixed the parent stays at
    243-250 MB, a worker's free heap at 15-20 MB, and the peak at 1,030-1,057 MB, at the same
    edges/s within the run-to-run spread.

    This process keeps the fixed threshold afterwards (glibc cannot go back to adjusting
    it); the environment is restored, so processes started later do not inherit it. An
    operator's own setting (either variable, or ``GLIBC_TUNABLES``) stands.
    """
    mallopt = _libc_function("mallopt")
    if _operator_set_malloc() or mallopt is None:
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
    mallopt(_M_TRIM_THRESHOLD, HEAP_TOP_KEPT_BYTES)
    os.environ[MMAP_THRESHOLD_ENV] = str(LARGE_BLOCK_BYTES)
    os.environ[TRIM_THRESHOLD_ENV] = str(HEAP_TOP_KEPT_BYTES)
    try:
        yield
    finally:
        os.environ.pop(MMAP_THRESHOLD_ENV, None)
        os.environ.pop(TRIM_THRESHOLD_ENV, None)


@contextlib.contextmanager
def no_kernel_cache_per_shape() -> Iterator[None]:
    """Inside: oneDNN keeps no compiled kernel per input shape, for work whose shapes vary.

    oneDNN keeps up to 1,024 kernels by default, one per shape. embed's batches come in
    hundreds of shapes (rows x padded width); over 200K tweets the holes the kept kernels
    left in malloc's heap grew chunk after chunk, from 40 MB of free heap after the first
    chunk of 8,192 tweets to 105 MB after the 25th (32 MB without the cache), and the peak
    was 422 MB against 383 MB without it, at the same speed (2,045 and 1,991 tweets/s).

    oneDNN reads the setting once, when it makes its first kernel in the process, so this
    works only around a process's first oneDNN work (the embed command's); afterwards the
    environment is as it was, and processes started later keep their cache. An operator's
    own setting (either name) stands.
    """
    if os.environ.get(ONEDNN_CACHE_ENV) or os.environ.get(ONEDNN_CACHE_ENV_OLD):
        yield
        return
    os.environ[ONEDNN_CACHE_ENV] = "0"
    try:
        yield
    finally:
        os.environ.pop(ONEDNN_CACHE_ENV, None)
