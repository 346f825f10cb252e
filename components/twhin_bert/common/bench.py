"""How every ``twhin-bert bench <name>`` reports: a readable table, then one JSON line.

The last line a benchmark prints is a JSON object with its figures, its goal and
``"met": true|false`` so results compare across machines and runs.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from twhin_bert.common.compute import available_cpus

#: Folder of real tweets in the TweetEval/UMSAB layout that benchmarks read when no ``data``
#: option is given (``make bench-quick`` points it at the project's sample data).
BENCH_DATA_ENV = "TWHIN_BERT_BENCH_DATA"


def cli_argv() -> list[str]:
    """The ``twhin-bert`` command of this interpreter's environment: the console script beside
    the interpreter (a virtual environment's ``bin``), else ``python -m`` of its module."""
    beside = Path(sys.executable).parent / "twhin-bert"
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "twhin_bert_pipelines.cli"]


def tweets_dir(given: str | Path | None = None) -> Path | None:
    """The real-tweets folder a benchmark reads: ``given``, else ``$TWHIN_BERT_BENCH_DATA``;
    None (the benchmark generates text) when neither names an existing folder."""
    where = given or os.environ.get(BENCH_DATA_ENV)
    return Path(where) if where and Path(where).is_dir() else None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform's answer below
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """The machine's physical memory in GiB (None where the platform does not say)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, CPUs online and available to this
    process (affinity and cgroup quota), RAM, Python, platform, torch and any GPU."""
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_available": available_cpus(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def _busy(n: int) -> float:
    """Pure-Python work (string formatting and dict updates, like parsing rows); returns
    its wall seconds."""
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    for i in range(n):
        s = str(i * 7919)
        counts[s[-3:]] = counts.get(s[-3:], 0) + len(s)
    return time.perf_counter() - t0


def parallel_ceiling(processes: int = 2, repeats: int = 5, n: int = 1_000_000) -> float:
    """The speedup this machine gives ``processes`` independent, CPU-bound Python processes
    over one process doing their work in turn: the ceiling for any process-parallel stage,
    measured in the same run as the stage (a virtual machine's cores may share physical
    cores or be throttled when all are busy, so it is often below ``processes``). The
    median over ``repeats`` back-to-back pairs of a serial and a parallel run (a shared
    machine's speed drifts; a pair sees one state of it); each pair takes about
    1.5 s per million ``n`` on a 2.6 GHz core.
    """
    ratios = []
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        list(pool.map(_busy, [1000] * processes))  # the workers are started
        for _ in range(repeats):
            serial = sum(_busy(n) for _ in range(processes))
            t0 = time.perf_counter()
            list(pool.map(_busy, [n] * processes))
            ratios.append(serial / max(time.perf_counter() - t0, 1e-9))
    return statistics.median(ratios)


def report(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    goal: str,
    met: bool,
) -> dict[str, Any]:
    """Prints the table of ``rows`` and, last, the JSON summary line.

    Args:
        name: Benchmark name.
        rows: Table rows (same keys in each), e.g. one per configuration measured.
        figures: The headline numbers (ratios against the same-run baseline included).
        goal: The goal in words, e.g. ``"speedup >= 3x"``.
        met: Whether the goal was met.

    Returns:
        The JSON summary as a dict.
    """
    print_table(f"twhin-bert bench {name}", rows)
    summary = {
        "bench": name,
        **{k: _round(v) for k, v in figures.items()},
        "goal": goal,
        "met": bool(met),
        "machine": machine(),
    }
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)
    return summary


def print_table(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Prints ``rows`` (same keys in each) as a table titled ``title``; nothing if empty."""
    if not rows:
        return
    table = Table(title=title)
    for col, first in rows[0].items():
        table.add_column(str(col), justify="left" if isinstance(first, str) else "right")
    for r in rows:
        table.add_row(*(_fmt(v) for v in r.values()))
    # As wide as the table's natural width (a record in docs/RESULTS.md must not wrap its
    # numbers), up to a limit past which long text cells wrap instead.
    natural = Console(width=1000).measure(table).maximum
    Console(file=sys.stdout, width=max(80, min(natural, 200))).print(table)


def _round(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_round(x) for x in v]
    return round(v, 4) if isinstance(v, float) else v


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
