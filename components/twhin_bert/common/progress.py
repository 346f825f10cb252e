"""Progress bars (rich) that turn themselves off when output is not a terminal (CI, KFP logs).

:func:`progress` returns a :class:`Bar` with the small tqdm-like surface the stages use
(``update``, ``set_postfix``, ``close``, a context manager, iteration over an iterable),
drawn with ``rich.progress`` on stderr: description, bar, done/total, rate, time left and
the latest postfix (e.g. loss and learning rate).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def enabled() -> bool:
    """Bars show on a terminal unless ``TWHIN_BERT_PROGRESS=0``; ``=1`` forces them on."""
    flag = os.environ.get("TWHIN_BERT_PROGRESS")
    if flag is not None:
        return flag == "1"
    return sys.stderr.isatty()


class Bar:
    """One rich progress bar; a no-op when disabled."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        initial: float = 0,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
    ) -> None:
        self.iterable = iterable
        self.n = initial
        self._progress = None
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        if disable:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._unit = unit
        self._task = self._progress.add_task(
            desc, total=total, completed=initial, rate="", postfix=""
        )
        self._progress.start()

    def update(self, n: float = 1) -> None:
        """Advances the bar by ``n``."""
        self.n += n
        if self._progress is not None:
            task = self._progress.tasks[0]
            speed = task.speed
            rate = f"{speed:,.1f} {self._unit}/s" if speed else ""
            self._progress.update(self._task, advance=n, rate=rate)

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """Shows ``key=value`` pairs after the bar (the latest loss, rows read, ...)."""
        if self._progress is not None:
            text = " ".join(f"{k}={v}" for k, v in values.items())
            self._progress.update(self._task, postfix=text, refresh=refresh)

    def close(self) -> None:
        """Stops drawing (the final state stays on screen)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this bar wraps no iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Bar:
    """A :class:`Bar` with ``disable`` decided by :func:`enabled` unless given."""
    kwargs.setdefault("disable", not enabled())
    for ignored in ("dynamic_ncols", "mininterval"):  # tqdm-only knobs
        kwargs.pop(ignored, None)
    return Bar(iterable, **kwargs)
