"""release_free_memory: what a streaming stage calls between chunks."""

from __future__ import annotations

import platform

import pytest
from twhin_bert.common.memory import _malloc_trim, release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_runs() -> None:
    assert _malloc_trim() is not None
    release_free_memory()
