"""common.memory: handing freed memory back (Arrow's pool, glibc's heap and thresholds)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from twhin_bert.common.memory import _libc_function, release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_runs() -> None:
    assert _libc_function("malloc_trim") is not None
    release_free_memory()


def test_a_streaming_parquet_pass_frees_what_it_read(tmp_path: Path) -> None:
    """schemas.open_parquet: Arrow memory after a pass over a file stays at about one batch.
    With pyarrow's default (pre_buffer on) the reader kept every column chunk it had read,
    so memory grew with the file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from twhin_bert.common.schemas import open_parquet

    rng = np.random.default_rng(0)
    # Random hex: 40 row groups of 0.5 MB of text each, about 10 MB compressed.
    texts = [rng.bytes(500).hex() for _ in range(20_000)]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": texts}), path, row_group_size=500, compression="zstd")
    assert path.stat().st_size > 8 << 20
    release_free_memory()
    before = pa.total_allocated_bytes()
    rows, held = 0, 0
    for batch in open_parquet(path).iter_batches(batch_size=500, columns=["text"]):
        rows += batch.num_rows
        del batch
        held = max(held, pa.total_allocated_bytes() - before)  # while the reader is open
    assert rows == 20_000
    assert held < 4 << 20


@pytest.mark.parametrize(("preset", "backend"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_arrow_allocates_with_malloc_unless_the_operator_chose(
    preset: str | None, backend: str
) -> None:
    """``import twhin_bert`` picks Arrow's pool before pyarrow loads: its default (mimalloc)
    kept 45 MB of freed pages over a streaming pass that malloc_trim gives back under malloc."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = "import twhin_bert, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == backend


_LARGE_BLOCK_PROBE = """
import ctypes, ctypes.util, json, os, subprocess, sys
import numpy as np
from twhin_bert.common import memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2

def second_block_mapped():
    # glibc maps a 13 MB block, and on freeing it raises its threshold above that size
    # unless the threshold was fixed: the next such block then comes from the heap.
    a = np.ones(13 << 20, np.uint8)
    del a
    before = libc.mallinfo2().hblkhd  # bytes in mapped blocks
    b = np.ones(13 << 20, np.uint8)
    mapped = libc.mallinfo2().hblkhd - before >= 13 << 20
    del b
    return mapped

if sys.argv[1] == "child":
    print(json.dumps(second_block_mapped()))
    sys.exit()
before = dict(os.environ)
with memory.large_blocks_returned():
    here = second_block_mapped()
    child = json.loads(subprocess.run([sys.executable, sys.argv[0], "child"],
                                      capture_output=True, text=True, check=True).stdout)
print(json.dumps({"here": here, "child": child, "env_restored": dict(os.environ) == before}))
"""


def _glibc_at_least(version: tuple[int, int]) -> bool:
    name, found = platform.libc_ver()
    return name == "glibc" and tuple(int(x) for x in found.split(".")[:2]) >= version


@pytest.mark.skipif(not _glibc_at_least((2, 33)), reason="mallopt is glibc's; mallinfo2 2.33's")
@pytest.mark.parametrize("operator_threshold", [None, str(32 << 20)])
def test_large_blocks_go_back_unless_the_operator_chose(
    operator_threshold: str | None, tmp_path: Path
) -> None:
    """large_blocks_returned (why: its docstring): inside, a freed large block's successor of
    the same size has its own mapping again, here and in a process started inside (PBG's
    workers); the environment is restored afterwards."""
    import json
    import os
    import subprocess
    import sys

    from twhin_bert.common.memory import MMAP_THRESHOLD_ENV, TRIM_THRESHOLD_ENV

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (MMAP_THRESHOLD_ENV, TRIM_THRESHOLD_ENV, "GLIBC_TUNABLES")
    }
    if operator_threshold:
        env[MMAP_THRESHOLD_ENV] = operator_threshold
    probe = tmp_path / "probe.py"
    probe.write_text(_LARGE_BLOCK_PROBE)
    out = subprocess.run(
        [sys.executable, str(probe), "parent"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    mapped = operator_threshold is None  # the operator's 32 MiB keeps a 13 MB block on the heap
    assert got == {"here": mapped, "child": mapped, "env_restored": True}
