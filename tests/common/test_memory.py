"""release_free_memory: what a streaming stage calls between chunks."""

from __future__ import annotations

import platform

import numpy as np
import pyarrow as pa
import pytest
from twhin_bert.common.memory import _malloc_trim, release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trim_is_found() -> None:
    assert _malloc_trim() is not None


def test_arrow_pages_are_returned() -> None:
    pool = pa.default_memory_pool()
    table = pa.table({"x": np.arange(4_000_000)})
    assert pool.bytes_allocated() >= 32_000_000
    del table
    release_free_memory()  # never fails, whatever the allocators hold
    assert pool.bytes_allocated() < 32_000_000
