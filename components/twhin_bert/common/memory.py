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


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None where the C library has none: musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Hands the memory both allocators hold free back to the system (a few ms)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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
