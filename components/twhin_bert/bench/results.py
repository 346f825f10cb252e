"""Measured results: run each benchmark, keep one dated record per benchmark, render a page.

``twhin-bert results run`` runs every ``twhin-bert bench <name>`` as a subprocess, keeps the
table it prints and the JSON object of its last line, and stores one record per benchmark
(``<docs>/results/<name>.json``) with the UTC time, the git commit (and whether the tree had
uncommitted changes), the exact command, the machine and its load average before and after,
the wall seconds and the exit code. A benchmark that fails or misses its goal is recorded as
such. A finished pipeline run (the folder holding the ``summary.json`` that ``twhin-bert run``
prints) is recorded the same way: the evaluate stage's key metrics, floors and references,
the promotion gate's verdict and the wall time. ``twhin-bert results render`` writes ``<docs>/RESULTS.md``
from the stored records; re-running one benchmark replaces only its own record.

The figures live in the records and the page, not in comments: a figure taken on a busy
2-core machine says so beside it (the load average).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from twhin_bert.common.artifacts import ArtifactError, Evaluation, Registration, read_json_object
from twhin_bert.common.bench import BENCH_DATA_ENV, cli_argv, machine
from twhin_bert.common.metrics import (
    BASE,
    BASELINE,
    FLOORS,
    MODELS,
    PRIMARY,
    REFERENCES,
    flat_numeric,
)

#: The page ``render`` writes, and the folder of records beside it (both under ``docs``).
RESULTS_MD = "RESULTS.md"
RECORDS_DIR = "results"
#: A pipeline run's summary file (``twhin-bert run`` writes it into the run folder).
RUN_SUMMARY = "summary.json"
#: The record name of a pipeline run unless another is given.
PIPELINE = "pipeline"
#: Version of the record layout.
RECORD_VERSION = 1
#: Lines of a failed benchmark's stderr kept in its record.
STDERR_TAIL = 20

#: Makes the argv that runs one benchmark: ``(name, quick) -> argv``.
ArgvFor = Callable[[str, bool], list[str]]


def bench_argv(name: str, quick: bool, sets: Sequence[str] = ()) -> list[str]:
    """The argv of ``twhin-bert bench <name> [--quick] [--set K=V ...]``, with this
    environment's command."""
    extra = [w for kv in sets for w in ("--set", kv)]
    return [*cli_argv(), "bench", name, *(["--quick"] if quick else []), *extra]


def shown_command(argv: Sequence[str]) -> str:
    """The command as a user types it: the program's base name, and the benchmark data folder
    when ``$TWHIN_BERT_BENCH_DATA`` names one (the benchmarks read it)."""
    exe = cli_argv()
    rest = argv[len(exe) :] if list(argv[: len(exe)]) == exe else argv[1:]
    words = ["twhin-bert", *rest]
    data = os.environ.get(BENCH_DATA_ENV)
    prefix = f"{BENCH_DATA_ENV}={shlex.quote(data)} " if data else ""
    return prefix + shlex.join(words)


def now_utc() -> str:
    """The current UTC time, ``2026-12-01T04:16:15Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_state(where: Path | None = None) -> dict[str, Any]:
    """The commit checked out at ``where`` (default: this process's folder) and whether the
    tree has uncommitted changes; ``{"commit": None}`` outside a git checkout."""
    cwd = str(where or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def split_output(stdout: str) -> tuple[str, dict[str, Any] | None]:
    """A benchmark's printed table and its summary: the JSON object on its last non-empty
    line (None when that line is not a JSON object)."""
    lines = stdout.rstrip().splitlines()
    if not lines:
        return "", None
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        return stdout.rstrip(), None
    if not isinstance(summary, dict):
        return stdout.rstrip(), None
    return "\n".join(lines[:-1]).rstrip(), summary


def status_of(exit_code: int | None, summary: Mapping[str, Any] | None) -> str:
    """``met``, ``not met`` (a summary with ``"met": false``), ``timed out`` or ``failed``
    (no summary line)."""
    if summary is not None and "met" in summary:
        return "met" if summary["met"] is True else "not met"
    return "timed out" if exit_code is None else "failed"


def _pump(stream: IO[str], keep: list[str], echo: IO[str] | None) -> None:
    for line in stream:
        keep.append(line)
        if echo is not None:
            echo.write(line)
            echo.flush()


def run_bench(
    name: str,
    *,
    quick: bool = False,
    argv_for: ArgvFor = bench_argv,
    timeout: float | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Runs one benchmark as a subprocess and returns its record (nothing written).

    Args:
        name: The benchmark (``twhin-bert bench <name>``).
        quick: Its ``--quick`` mode.
        argv_for: Makes the argv; tests give a small script of their own.
        timeout: Seconds before the benchmark is killed and recorded as timed out.
        echo: Show its output while it runs.

    Returns:
        The record: ``name``, ``kind``, ``date``, ``git``, ``command``, ``machine``,
        ``load_before``, ``load_after``, ``wall_s``, ``exit_code``, ``status``, ``table``,
        ``summary``, ``goal``, ``met`` and, when it failed, ``stderr_tail``.
    """
    argv = argv_for(name, quick)
    date, git, load_before = now_utc(), git_state(), load_average()
    out: list[str] = []
    err: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out, sys.stdout if echo else None)),
        threading.Thread(target=_pump, args=(proc.stderr, err, sys.stderr if echo else None)),
    ]
    for p in pumps:
        p.start()
    try:
        exit_code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        exit_code = None
    for p in pumps:
        p.join()
    wall = time.perf_counter() - t0
    table, summary = split_output("".join(out))
    status = status_of(exit_code, summary)
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "name": name,
        "kind": "bench",
        "date": date,
        "git": git,
        "command": shown_command(argv),
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_average(),
        "wall_s": round(wall, 1),
        "exit_code": exit_code,
        "status": status,
        "table": table,
        "summary": summary,
        "goal": (summary or {}).get("goal"),
        "met": status == "met",
    }
    if status in ("failed", "timed out"):
        record["stderr_tail"] = "".join(err[-STDERR_TAIL:]).rstrip()
    return record


def _role_rows(metrics: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows ``(role, model, metric, value)`` of evaluate's key metrics per model role, its
    floors and references, and the same as figures for the summary."""
    named = {
        role: metrics.get(role) or {}
        for role in (BASELINE, BASE)
        if isinstance(metrics.get(role), Mapping)
    }
    others = {str(section.get("name")) for section in named.values()}
    # The candidate is the one evaluated model that is neither the baseline nor the base.
    rest = [m for m in metrics.get(MODELS) or {} if m not in others]
    roles: dict[str, tuple[str, Mapping[str, Any]]] = {
        "candidate": (rest[0] if len(rest) == 1 else "candidate", metrics.get(PRIMARY) or {}),
        **{r: (str(s.get("name")), s.get(PRIMARY) or {}) for r, s in named.items()},
    }
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for role, (model, primary) in roles.items():
        for metric, value in flat_numeric(primary).items():
            rows.append({"role": role, "model": model, "metric": metric, "value": value})
            figures[f"{role}.{metric}"] = value
        figures[f"{role}.model"] = model
    # floors.<task>.<floor>.<metric> and references.<task>.<reference>.<metric> (demo data):
    # the headline values (per-language values lie deeper).
    for role, section in (("floor", FLOORS), ("reference", REFERENCES)):
        for key, value in flat_numeric(metrics.get(section) or {}).items():
            parts = key.split(".")
            if len(parts) == 3:
                task, name, metric = parts
                rows.append({"role": role, "model": name, "metric": f"{task}.{metric}", "value": value})  # fmt: skip
                figures[f"{role}.{name}.{task}.{metric}"] = value
    return rows, figures


def pipeline_record(run_dir: str | Path, name: str = PIPELINE) -> dict[str, Any]:
    """The record of a finished ``twhin-bert run``: evaluate's key metrics of the candidate,
    its baseline (the MLM-only twin) and the base encoder, the floors and references, the
    promotion gate's verdict (the goal) and the wall time.

    Args:
        run_dir: The run folder holding ``summary.json`` (``twhin-bert run`` prints it).
        name: The record's name (e.g. one per demo config).

    Raises:
        ArtifactError: No ``summary.json``, or the run has no evaluation (names the file).
    """
    run_dir = Path(run_dir)
    summary = read_json_object(run_dir / RUN_SUMMARY)
    tasks = summary.get("tasks") or {}
    ev_dir = (tasks.get("evaluate") or {}).get("evaluation")
    if not ev_dir:
        raise ArtifactError(f"{run_dir / RUN_SUMMARY}: no evaluate task output (evaluation)")
    metrics = Evaluation(ev_dir).metrics()
    reg_dir = (tasks.get("register-model") or {}).get("registration")
    registration = Registration(reg_dir).read() if reg_dir else {}
    rows, figures = _role_rows(metrics)
    figures["pipeline_wall_s"] = summary.get("seconds")
    if isinstance(metrics.get("wall_seconds"), int | float):
        figures["evaluate_wall_s"] = round(float(metrics["wall_seconds"]), 1)
    met = registration.get("passed") is True
    goal = "the promotion gate (register_model) passes"
    figures["gate"] = registration.get("verdict") or "no registration in this run"
    figures["gate_reasons"] = registration.get("reasons") or []
    finished = (run_dir / RUN_SUMMARY).stat().st_mtime
    return {
        "version": RECORD_VERSION,
        "name": name,
        "kind": "pipeline",
        "date": datetime.fromtimestamp(finished, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # The run's own commit is in its MLflow runs, not in its artifacts: not claimed here.
        "git": {"commit": None, "dirty": None},
        "command": f"twhin-bert results run --pipeline-run {shlex.quote(str(run_dir))}",
        "source": str(run_dir),
        "machine": machine(),
        "load_before": None,
        "load_after": None,
        "wall_s": summary.get("seconds"),
        "exit_code": 0,
        "status": "met" if met else "not met",
        "table": _text_table(rows),
        "summary": {**figures, "goal": goal, "met": met},
        "goal": goal,
        "met": met,
    }


def _text_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (same keys in each) as an aligned plain-text table."""
    if not rows:
        return ""
    cols = list(rows[0])
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def records_dir(docs: str | Path) -> Path:
    """``<docs>/results``: one JSON record per benchmark or pipeline run."""
    return Path(docs) / RECORDS_DIR


def write_record(docs: str | Path, record: Mapping[str, Any]) -> Path:
    """Writes ``<docs>/results/<name>.json`` (replacing that name's record only)."""
    folder = records_dir(docs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['name']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


REQUIRED = ("name", "date", "command", "status")


def read_records(docs: str | Path) -> list[dict[str, Any]]:
    """Every stored record, by file name.

    Raises:
        ArtifactError: A record that is not a JSON object or lacks a required field (names
            the file and the field).
    """
    out = []
    for path in sorted(records_dir(docs).glob("*.json")):
        record = read_json_object(path)
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise ArtifactError(f"{path}: record lacks {missing} (expected {list(REQUIRED)})")
        out.append(record)
    return out


def _load(record: Mapping[str, Any]) -> str:
    before, after = record.get("load_before"), record.get("load_after")
    if before is None and after is None:
        return "not recorded"
    shown = [f"{x[0]:.2f}" if x else "-" for x in (before, after)]
    return f"{shown[0]} -> {shown[1]} (1-min load average, before -> after)"


def _machine(record: Mapping[str, Any]) -> str:
    m = record.get("machine") or {}
    return (
        f"{m.get('cpu_model', '?')}; {m.get('cpus_available', '?')} of "
        f"{m.get('cpus', '?')} CPUs available; {m.get('ram_gib', '?')} GiB RAM"
    )


def _git(record: Mapping[str, Any]) -> str:
    g = record.get("git") or {}
    if not g.get("commit"):
        return "not recorded"
    return g["commit"][:10] + (" (with uncommitted changes)" if g.get("dirty") else "")


def render_markdown(records: Iterable[Mapping[str, Any]], order: Sequence[str] = ()) -> str:
    """The text of ``RESULTS.md`` from the records: a header saying how it is made, an index,
    then per record its date, command, machine and load, table, goal and status.

    Args:
        records: The stored records.
        order: Names shown first, in this order (the benchmarks as the CLI lists them);
            the others follow by name.
    """
    rank = {n: i for i, n in enumerate(order)}
    recs = sorted(records, key=lambda r: (rank.get(r["name"], len(rank)), r["name"]))
    lines = [
        "# Measured results",
        "",
        "Generated by `twhin-bert results render` from the records in `docs/results/`; do not",
        "edit by hand. `make results` (`twhin-bert results run`) runs every benchmark",
        "(`twhin-bert bench NAME`) as a subprocess, stores one record per benchmark and",
        "renders this page; `--only a,b` re-runs some and keeps the others' records, each",
        "with its own date. `twhin-bert results run --pipeline-run DIR` records a finished",
        "`twhin-bert run` (its evaluation and promotion gate) the same way.",
        "",
        "Timings depend on the machine and on what else ran on it: each section gives the",
        "CPUs available to the benchmark and the load average before and after it. A load",
        "above the available CPUs means the machine was shared while it ran.",
        "",
    ]
    if not recs:
        return "\n".join([*lines, "No records yet: run `make results`.", ""])
    lines += [f"Newest record: {max(r['date'] for r in recs)}.", ""]
    lines += ["| name | date (UTC) | status | wall s | goal |", "|---|---|---|---|---|"]
    for r in recs:
        goal = str(r.get("goal") or "-").replace("|", "\\|")
        lines.append(
            f"| [{r['name']}](#{r['name']}) | {r['date']} | {r['status']} | "
            f"{r.get('wall_s', '-')} | {goal} |"
        )
    for r in recs:
        lines += [
            "",
            f"## {r['name']}",
            "",
            f"- date: {r['date']} (UTC); commit {_git(r)}",
            f"- command: `{r['command']}`",
            f"- machine: {_machine(r)}",
            f"- load: {_load(r)}",
            f"- wall: {r.get('wall_s', '-')} s; exit code {r.get('exit_code', '-')}",
            f"- goal: {r.get('goal') or '-'}",
            f"- status: **{r['status']}**",
        ]
        if r.get("source"):
            lines.append(f"- source: `{r['source']}`")
        if r.get("table"):
            table = "\n".join(line.rstrip() for line in r["table"].splitlines())
            lines += ["", "```text", table, "```"]
        if r.get("summary"):
            lines += ["", "```json", json.dumps(r["summary"], sort_keys=True), "```"]
        if r.get("stderr_tail"):
            lines += ["", "Last lines of its stderr:", "", "```text", r["stderr_tail"], "```"]
    return "\n".join(lines) + "\n"


def render(docs: str | Path, order: Sequence[str] = ()) -> Path:
    """Writes ``<docs>/RESULTS.md`` from ``<docs>/results/*.json``; returns its path."""
    path = Path(docs) / RESULTS_MD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(read_records(docs), order))
    return path


def run(
    names: Sequence[str],
    docs: str | Path,
    *,
    quick: bool = False,
    order: Sequence[str] = (),
    timeout: float | None = None,
    argv_for: ArgvFor = bench_argv,
    echo: bool = True,
) -> list[dict[str, Any]]:
    """Runs the benchmarks ``names`` one after another, stores each one's record as soon as
    it ends, then renders ``RESULTS.md``.

    Args:
        names: Benchmark names (``twhin-bert bench <name>``).
        docs: The folder of ``RESULTS.md`` and ``results/``.
        quick: Run each in ``--quick`` mode.
        order: The order of the page's sections (see :func:`render_markdown`).
        timeout: Seconds each benchmark may take.
        argv_for: Makes each benchmark's argv (tests give their own small script).
        echo: Show the benchmarks' output while they run.

    Returns:
        The new records, in run order.
    """
    records = []
    for name in names:
        record = run_bench(name, quick=quick, argv_for=argv_for, timeout=timeout, echo=echo)
        write_record(docs, record)
        records.append(record)
    render(docs, order)
    return records
