"""Local URI expansion and the schema checks of artifacts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from twhin_bert.common import schemas
from twhin_bert.common.io import expand_uris, is_gcs, split_gcs


def test_expand_files_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/a.jsonl", "d/sub/b.jsonl.gz", "d/.hidden", "d/_SUCCESS", "c.csv"]:
        (tmp_path / name).write_text("x")
    got = expand_uris([str(tmp_path / "d"), str(tmp_path / "*.csv"), str(tmp_path / "d/a.jsonl")])
    assert got == [
        str(tmp_path / "d/a.jsonl"),
        str(tmp_path / "d/sub/b.jsonl.gz"),
        str(tmp_path / "c.csv"),
    ]
    with pytest.raises(FileNotFoundError, match="nope"):
        expand_uris([str(tmp_path / "nope*.json")])


def test_gcs_uri_parsing() -> None:
    assert is_gcs("gs://b/k/x") and not is_gcs("/tmp/x")
    assert split_gcs("gs://bucket/a/b.txt") == ("bucket", "a/b.txt")
    with pytest.raises(ValueError):
        split_gcs("gs:///x")


def test_write_and_check_schema_versions(tmp_path: Path) -> None:
    t = pa.table({"id": ["a", "b"]})
    schemas.write_table(t, tmp_path / "ids.parquet", "ids")
    assert schemas.read_table(tmp_path / "ids.parquet", "ids").column("id").to_pylist() == [
        "a",
        "b",
    ]
    with pytest.raises(schemas.SchemaError, match="expected a 'pairs/1' artifact, found 'ids/1'"):
        schemas.check(tmp_path / "ids.parquet", "pairs")
    with pytest.raises(schemas.SchemaError, match="cannot write as tweets"):
        schemas.write_table(t, tmp_path / "t.parquet", "tweets")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(schemas.SchemaError, match=r"bad\.parquet: not a readable Parquet"):
        schemas.check(tmp_path / "bad.parquet", "ids")
