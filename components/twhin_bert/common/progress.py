"""Progress bars that turn themselves off when output is not a terminal (CI, KFP logs)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """Bars show on a terminal unless ``TWHIN_BERT_PROGRESS=0``; ``=1`` forces them on."""
    flag = os.environ.get("TWHIN_BERT_PROGRESS")
    if flag is not None:
        return flag == "1"
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Iterator[T] | Any:
    """``tqdm`` with ``disable`` decided by :func:`enabled` (pass-through kwargs)."""
    kwargs.setdefault("disable", not enabled())
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)
