"""Content fingerprints: the same bytes anywhere give the same key, changed bytes do not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from twhin_bert.common import fingerprint as fp


def _write(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_small_file_is_hashed_whole(tmp_path: Path) -> None:
    a = _write(tmp_path / "a/x.bin", b"0123456789" * 1000)
    b = _write(tmp_path / "b/y.bin", b"0123456789" * 1000)
    assert fp.file_fingerprint(a) == fp.file_fingerprint(b)  # same bytes, other path and name
    c = _write(tmp_path / "c.bin", b"0123456789" * 999 + b"0123456780")  # one byte, same size
    assert fp.file_fingerprint(c) != fp.file_fingerprint(a)


def test_large_file_sees_head_tail_samples_and_size(tmp_path: Path) -> None:
    size = fp.SMALL_FILE + 3 * fp.EDGE
    data = bytearray(range(256)) * (size // 256)
    base = fp.file_fingerprint(_write(tmp_path / "base", bytes(data)))
    for offset in (0, len(data) - 1, fp.EDGE + 10):  # head, tail, first sampled block
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        assert fp.file_fingerprint(_write(tmp_path / f"c{offset}", bytes(changed))) != base
    assert fp.file_fingerprint(_write(tmp_path / "longer", bytes(data) + b"\0")) != base
    copy = shutil.copy(tmp_path / "base", tmp_path / "elsewhere")
    assert fp.file_fingerprint(copy) == base


def test_folder_names_contents_and_ignored_reports(tmp_path: Path) -> None:
    a = tmp_path / "a"
    _write(a / "x.json", b"{}")
    _write(a / "sub/y.txt", b"y")
    _write(a / "metrics.json", b'{"wall_seconds": 1}')
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "metrics.json").write_bytes(b'{"wall_seconds": 2}')
    assert fp.folder_fingerprint(a, ignore={"metrics.json"}) == fp.folder_fingerprint(
        b, ignore={"metrics.json"}
    )
    assert fp.folder_fingerprint(a) != fp.folder_fingerprint(b)
    (b / "sub/y.txt").rename(b / "sub/z.txt")  # same bytes under another name
    assert fp.folder_fingerprint(a, ignore={"metrics.json"}) != fp.folder_fingerprint(
        b, ignore={"metrics.json"}
    )


def test_model_folder_is_config_weights_and_tokenizer(tmp_path: Path) -> None:
    m = tmp_path / "m"
    _write(m / "config.json", b'{"hidden_size": 8}')
    _write(m / "model.safetensors", b"weights")
    _write(m / "tokenizer.json", b"tok")
    _write(m / "README.md", b"card")
    key = fp.model_fingerprint(m)
    (m / "README.md").write_bytes(b"another card")  # a report, not the model
    _write(m / "training_log.json", b"[]")
    assert fp.model_fingerprint(m) == key
    (m / "model.safetensors").write_bytes(b"weightz")
    assert fp.model_fingerprint(m) != key
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        fp.model_fingerprint(tmp_path)


def test_key_combines_config_and_inputs_not_paths() -> None:
    k = fp.fingerprint({"lr": 1e-3, "steps": 10}, {"data": "abc", "model": None})
    assert k == fp.fingerprint({"steps": 10, "lr": 1e-3}, {"model": None, "data": "abc"})
    assert k != fp.fingerprint({"lr": 2e-3, "steps": 10}, {"data": "abc", "model": None})
    assert k != fp.fingerprint({"lr": 1e-3, "steps": 10}, {"data": "abd", "model": None})
    assert len(k) == 16
