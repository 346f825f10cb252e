"""Reading and writing local paths and ``gs://`` URIs with one set of functions.

Every stage takes inputs as local paths or ``gs://bucket/prefix`` URIs (files, folders or
globs). Google Cloud Storage is reached through ``google-cloud-storage``; when
``STORAGE_EMULATOR_HOST`` is set (tests, local emulators) the client talks to it anonymously.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

GCS_PREFIX = "gs://"


def is_gcs(uri: str | os.PathLike[str]) -> bool:
    """True for ``gs://`` URIs."""
    return str(uri).startswith(GCS_PREFIX)


def split_gcs(uri: str) -> tuple[str, str]:
    """Splits ``gs://bucket/key`` into ``(bucket, key)``."""
    if not is_gcs(uri):
        raise ValueError(f"{uri}: not a gs:// URI")
    rest = uri[len(GCS_PREFIX) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri}: gs:// URI without a bucket")
    return bucket, key


@lru_cache(maxsize=1)
def gcs_client() -> Any:
    """A cached ``google.cloud.storage.Client`` (anonymous when an emulator is configured)."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"),
            credentials=AnonymousCredentials(),
        )
    return storage.Client()


def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def expand_uris(patterns: list[str] | tuple[str, ...] | str) -> list[str]:
    """Expands files, folders and globs (local or gs://) into a sorted list of file URIs.

    Args:
        patterns: One or more paths, folders, globs or gs:// URIs of any of these.

    Returns:
        The matching files, each pattern's matches sorted, patterns in the given order,
        duplicates removed. Hidden files and ``_SUCCESS``-style markers are skipped.

    Raises:
        FileNotFoundError: A pattern matches nothing (the message names it).
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    out: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        matches = _expand_gcs(pattern) if is_gcs(pattern) else _expand_local(pattern)
        if not matches:
            raise FileNotFoundError(f"{pattern}: no such file, folder or matching glob")
        for m in matches:
            if m not in seen:
                seen.add(m)
                out.append(m)
    return out


def _visible(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return bool(base) and not base.startswith((".", "_"))


def _expand_local(pattern: str) -> list[str]:
    p = Path(pattern).expanduser()
    if _has_glob(pattern):
        hits = [Path(h) for h in glob.glob(str(p), recursive=True)]
    elif p.is_dir():
        hits = [h for h in p.rglob("*")]
    elif p.exists():
        hits = [p]
    else:
        hits = []
    return sorted(str(h) for h in hits if h.is_file() and _visible(h.name))


def _expand_gcs(pattern: str) -> list[str]:
    bucket, key = split_gcs(pattern)
    client = gcs_client()
    if _has_glob(key):
        prefix = key[: min(key.index(c) for c in "*?[" if c in key)]
        names = [b.name for b in client.list_blobs(bucket, prefix=prefix)]
        names = [n for n in names if fnmatch.fnmatchcase(n, key)]
    else:
        blob = client.bucket(bucket).blob(key)
        if key and blob.exists():
            names = [key]
        else:
            prefix = key.rstrip("/") + "/" if key else ""
            names = [b.name for b in client.list_blobs(bucket, prefix=prefix)]
    return sorted(f"{GCS_PREFIX}{bucket}/{n}" for n in names if _visible(n) and not n.endswith("/"))


@contextlib.contextmanager
def open_uri(uri: str, mode: str = "rb") -> Iterator[IO[Any]]:
    """Opens a local file or a gs:// object for streaming reads or writes."""
    if is_gcs(uri):
        bucket, key = split_gcs(uri)
        blob = gcs_client().bucket(bucket).blob(key)
        with blob.open(mode) as f:
            yield f
    else:
        if "w" in mode:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        with open(uri, mode) as f:
            yield f


@contextlib.contextmanager
def local_path(uri: str) -> Iterator[Path]:
    """Yields a local path for ``uri``: the path itself, or a temporary download of a gs:// file
    or prefix (removed afterwards)."""
    if not is_gcs(uri):
        yield Path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="twhin-gcs-") as tmp:
        yield download(uri, Path(tmp))


def download(uri: str, dest_dir: Path) -> Path:
    """Downloads a gs:// object or every object under a gs:// prefix into ``dest_dir``.

    Returns:
        The local file (for an object) or folder (for a prefix).
    """
    bucket, key = split_gcs(uri)
    client = gcs_client()
    blob = client.bucket(bucket).blob(key)
    if key and not key.endswith("/") and blob.exists():
        target = dest_dir / Path(key).name
        blob.download_to_filename(str(target))
        return target
    prefix = key.rstrip("/") + "/" if key else ""
    root = dest_dir / (Path(key.rstrip("/")).name or bucket)
    found = False
    for b in client.list_blobs(bucket, prefix=prefix):
        if b.name.endswith("/"):
            continue
        found = True
        target = root / b.name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        b.download_to_filename(str(target))
    if not found:
        raise FileNotFoundError(f"{uri}: no such gs:// object or prefix")
    return root


def upload(local: str | Path, uri: str) -> None:
    """Uploads a local file, or a folder recursively, to a gs:// URI (object or prefix)."""
    bucket_name, key = split_gcs(uri)
    bucket = gcs_client().bucket(bucket_name)
    src = Path(local)
    if src.is_file():
        bucket.blob(key).upload_from_filename(str(src))
        return
    for f in sorted(src.rglob("*")):
        if f.is_file():
            rel = f.relative_to(src).as_posix()
            bucket.blob(f"{key.rstrip('/')}/{rel}" if key else rel).upload_from_filename(str(f))


def copy_tree(src: str, dest: str) -> None:
    """Copies a folder between any two of local and gs:// (used for exports and models)."""
    if is_gcs(src):
        with tempfile.TemporaryDirectory(prefix="twhin-gcs-") as tmp:
            local = download(src, Path(tmp))
            copy_tree(str(local), dest)
        return
    if is_gcs(dest):
        upload(src, dest)
        return
    shutil.copytree(src, dest, dirs_exist_ok=True)
