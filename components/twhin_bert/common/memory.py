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

glibc's moving threshold for large blocks is fixed where a stage frees blocks of the same
large size again and again (:func:`large_blocks_returned`), and oneDNN's kernel cache is off
where shapes vary (:func:`no_kernel_cache_per_shape`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator
from typing import Any

#: oneDNN's setting (some of torch's CPU kernels, GELU among them, are oneDNN's): how many
#: compiled kernels it keeps. It also reads the name of its older releases.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_ENV_OLD = "DNNL_PRIMITIVE_CACHE_CAPACITY"


#: glibc's settings for where large blocks come from (``mallopt``, or the environment a
#: process starts with): a block of at least the mmap threshold gets its own mapping, which
#: goes back to the system when freed; the heap's free top goes back once it passes the trim
#: threshold. See :func:`large_blocks_returned`.
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
TRIM_THRESHOLD_ENV = "MALLOC_TRIM_THRESHOLD_"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
LARGE_BLOCK_BYTES = 4 << 20
HEAP_TOP_KEPT_BYTES = 32 << 20


@functools.cache
def _libc_function(name: str) -> Any:
    """A function of the C library this process runs on (None where it has none: glibc's
    ``malloc_trim`` and ``mallopt`` are not in musl or macOS's library)."""
    try:
        # The symbols already loaded into this process: found without ldconfig or a compiler
        # (ctypes.util.find_library needs one of them, and slim images have neither).
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


def release_free_memory() -> None:
    """Hands the memory both allocators hold free back to the system (a few ms)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _operator_chose_thresholds() -> bool:
    """Whether the operator set glibc's mmap or trim threshold (either way glibc reads it)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return bool(
        os.environ.get(MMAP_THRESHOLD_ENV)
        or os.environ.get(TRIM_THRESHOLD_ENV)
        or "malloc.mmap_threshold" in tunables
        or "malloc.trim_threshold" in tunables
    )


@contextlib.contextmanager
def large_blocks_returned() -> Iterator[None]:
    """Inside: blocks of 4 MiB or more allocated here, or in a process started here (PBG's
    Hogwild! workers), get their own mapping and go back to the system when freed.

    By default glibc maps blocks of 128 KiB or more, but when it frees such a block it raises
    that threshold to the block's size (glibc's ceiling: 32 MiB), so the next blocks of that
    size come from the heap, and the heap hands back only its free top. embed_graph at 100x
    the demo's scale trains 8 chunks of 1.7M edges, each loaded as four tensors of 13.6 MB
    (lhs, rhs, relation, shuffle order): in some runs PBG's parent process grew by about those
    52 MB at each chunk (246 -> 559 MB), in others it stayed flat (298 MB), and each worker
    held 70-130 MB of free heap. The stage's peak moved between 1,163 and 1,422 MB from run to
    run (4 runs). With the thresholds fixed the parent stays at 243-250 MB, a worker's free
    heap at 15-20 MB and the peak at 1,030-1,078 MB (5 runs), at the same edges/s within the
    run-to-run spread. The heap's free top is handed back past 32 MiB, not glibc's fixed
    default of 128 KiB, so that it is not handed back and taken again batch after batch (the
    moving setting kept it at twice the largest freed block, here 27 MB).

    This process keeps the fixed thresholds afterwards (glibc cannot go back to moving
    them), so blocks between 128 KiB and 4 MiB then come from its heap; the environment is
    restored, so processes started later do not inherit them. An operator's own setting
    (either variable, or ``GLIBC_TUNABLES``) stands.
    """
    mallopt = _libc_function("mallopt")
    if _operator_chose_thresholds() or mallopt is None:
        yield
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)  # 1 on success; nothing to do otherwise
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
