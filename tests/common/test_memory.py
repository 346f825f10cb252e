"""release_free_memory: what a streaming stage calls between chunks."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from twhin_bert.common.memory import _malloc_trim, release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_runs() -> None:
    assert _malloc_trim() is not None
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
