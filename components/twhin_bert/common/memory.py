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
``pyarrow.set_memory_pool`` would not do: Parquet's reader keeps allocating from the pool
Arrow chose at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


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
