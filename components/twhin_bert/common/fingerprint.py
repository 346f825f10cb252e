"""Content fingerprints of a stage's inputs and config: the key of every resume and checkpoint.

A resume is valid when the inputs hold the same bytes and the settings are the same, wherever
the inputs lie: a retried pod or a resubmitted pipeline mounts the same artifacts under new
paths, and a different model copied to the old path must not be resumed. So a key is built
from contents and the config (canonical JSON), never from paths.

Cheap enough for multi-GB inputs: a small file (< :data:`SMALL_FILE` bytes) is hashed whole; a
large one by its size, its first and last MiB (a Parquet footer, a safetensors header) and
:data:`SAMPLES` blocks spread evenly between them. A change that touches none of the sampled
bytes and keeps the size is not seen -- retrained weights or rewritten data always are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

#: Files below this size are hashed whole.
SMALL_FILE = 4 << 20
#: Head and tail read from a large file.
EDGE = 1 << 20
#: Evenly spaced blocks sampled between head and tail of a large file.
SAMPLES = 16
BLOCK = 64 << 10
#: Files of a Hugging Face model folder that ``from_pretrained`` reads (config, weights,
#: tokenizer); run reports beside them (a model card, a training log) are not the model.
MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model")
MODEL_NAMES = (
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no whitespace (one text per value)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def file_fingerprint(path: str | Path) -> str:
    """The content hash of one file (whole if small, size + sampled blocks if large).

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file to fingerprint")
    size = p.stat().st_size
    h = hashlib.sha256(f"{size}:".encode())
    with p.open("rb") as f:
        if size < SMALL_FILE:
            h.update(f.read())
            return h.hexdigest()
        h.update(f.read(EDGE))
        span = size - 2 * EDGE - BLOCK
        for i in range(SAMPLES):
            f.seek(EDGE + span * i // max(SAMPLES - 1, 1))
            h.update(f.read(BLOCK))
        f.seek(size - EDGE)
        h.update(f.read(EDGE))
    return h.hexdigest()


def folder_fingerprint(path: str | Path, ignore: Collection[str] = ()) -> str:
    """The hash of a folder: its files' sorted relative names and their fingerprints.

    Args:
        path: The folder.
        ignore: File names (at any depth) left out, e.g. a stage's metrics report whose
            timings differ between two runs that wrote the same data.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder to fingerprint")
    files = sorted(
        f.relative_to(root).as_posix()
        for f in root.rglob("*")
        if f.is_file() and f.name not in ignore
    )
    return _combine({name: file_fingerprint(root / name) for name in files})


def model_fingerprint(path: str | Path) -> str:
    """The hash of a Hugging Face model folder: config, weights and tokenizer files only.

    Raises:
        FileNotFoundError: ``path`` has no ``config.json``.
    """
    root = Path(path)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{root}: not a Hugging Face model folder (no config.json)")
    files = sorted(
        f.name
        for f in root.iterdir()
        if f.is_file()
        and (
            f.name in MODEL_NAMES
            or f.suffix in MODEL_SUFFIXES
            or f.name.startswith("tokenizer")
            or f.name.endswith(".index.json")
        )
    )
    return _combine({name: file_fingerprint(root / name) for name in files})


def path_fingerprint(path: str | Path, ignore: Collection[str] = ()) -> str:
    """:func:`file_fingerprint` of a file, :func:`folder_fingerprint` of a folder."""
    p = Path(path)
    return folder_fingerprint(p, ignore) if p.is_dir() else file_fingerprint(p)


def fingerprint(config: Any, inputs: Mapping[str, str | None]) -> str:
    """The resume key: the config (canonical JSON) with the named inputs' content hashes.

    Args:
        config: Whatever settings a resumed run must share (JSON-serialisable).
        inputs: Input role -> content fingerprint (``None`` for an input not given).

    Returns:
        A 16-hex-digit key (a folder name suffix).
    """
    return _combine({"config": config, "inputs": dict(inputs)})[:16]


def _combine(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
