"""``bench scale``'s accounting: the memory of a known process tree, and the verdict logic.

Not a timed test: the children allocate known amounts and the assertions are on bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twhin_bert.bench.scale import (
    MB,
    MODELS,
    Counts,
    Usage,
    judge,
    measure,
    rows_and_verdicts,
)

#: A parent that holds 120 MB and starts a child holding 200 MB; both stay alive together.
_TREE = r"""
import subprocess, sys, time
held = bytearray(120 * 2**20)  # bytearray zero-fills: every page is touched
child = subprocess.Popen([sys.executable, "-c",
    "import time; b = bytearray(200 * 2**20); time.sleep(1.5)"])
child.wait()
print(len(held))
"""


def _measure_from_a_fresh_interpreter(log: Path) -> Usage:
    """``measure`` of ``_TREE`` run by a small new interpreter: Linux carries a process's peak
    RSS across fork and exec into ``ru_maxrss``, so measured from this (by now large) test
    process the child would report pytest's own RSS."""
    code = (
        "import dataclasses, json, sys; from pathlib import Path; "
        "from twhin_bert.bench.scale import measure; "
        f"u = measure([sys.executable, '-c', {_TREE!r}], Path({str(log)!r}), poll_s=0.05); "
        "print(json.dumps(dataclasses.asdict(u)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return Usage(**json.loads(out.stdout.strip().splitlines()[-1]))


def test_measure_counts_a_spawned_child(tmp_path: Path) -> None:
    log = tmp_path / "tree.log"
    usage = _measure_from_a_fresh_interpreter(log)
    assert usage.returncode == 0
    assert log.read_text().strip() == str(120 * MB)
    # The poll sums parent and child: at least both buffers, and no more than both plus two
    # interpreters (~20 MB each here; 100 MB allows for any Python build).
    assert 320 * MB <= usage.anon_peak <= 420 * MB
    assert usage.rss_peak >= usage.anon_peak
    assert usage.max_procs == 2
    # ru_maxrss is per process: the child's 200 MB, not the sum.
    assert 200 * MB <= usage.maxrss_single < 320 * MB
    assert usage.wall_s >= 1.5


def test_measure_reports_a_failing_command(tmp_path: Path) -> None:
    usage = measure([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "x.log")
    assert usage.returncode == 3


def test_judge_prediction_and_margin() -> None:
    # 1x: 500 MB measured, model 10 MB; Fx model 110 MB -> predicted 600 MB.
    predicted, within = judge(500 * MB, 740 * MB, 10 * MB, 110 * MB, margin=1.25)
    assert predicted == 600 * MB
    assert within  # 740 <= 750
    assert not judge(500 * MB, 760 * MB, 10 * MB, 110 * MB, margin=1.25)[1]
    # A model that shrinks never predicts less than the 1x peak.
    assert judge(500 * MB, 500 * MB, 10 * MB, 0.0)[0] == 500 * MB


def _usage(anon_mb: float, wall_s: float = 1.0) -> Usage:
    return Usage(0, wall_s, int(anon_mb * MB), int(anon_mb * MB), int(anon_mb * MB), 1)


def test_rows_flag_only_the_stage_that_outgrows_its_model() -> None:
    c1 = Counts(users=2_000, tweets=10_000, engagements=100_000)
    cf = Counts(users=200_000, tweets=1_000_000, engagements=10_000_000)
    small = {s: _usage(300, 2.0) for s in MODELS}
    # Every stage at exactly its prediction, except embed, which holds 1 GB more than at 1x
    # although its model (one chunk, memory-mapped outputs) does not grow.
    large = {s: _usage(300 + (m.bytes(cf) - m.bytes(c1)) / MB, 20.0) for s, m in MODELS.items()}
    large["embed"] = _usage(1324, 20.0)
    rows, broken = rows_and_verdicts(small, large, c1, cf)
    assert broken == ["embed"]
    by_stage = {r["stage"]: r for r in rows}
    assert list(by_stage) == list(MODELS)
    assert by_stage["embed"]["mem_growth"] == pytest.approx(1324 / 300, abs=0.01)
    assert by_stage["ingest"]["wall_growth"] == 10.0
    # ingest's model: 16 B per tweet + 8 B per engagement key, doubled while merging.
    grow = 2 * (16 * (cf.tweets - c1.tweets) + 8 * (cf.engagements - c1.engagements))
    assert by_stage["ingest"]["model_MB"] == round((300 * MB + grow) / MB)


def test_measure_kills_the_whole_tree_past_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(60)\n"
    )
    usage = measure([sys.executable, "-c", code], tmp_path / "t.log", poll_s=0.05, timeout_s=2)
    assert usage.timed_out and usage.returncode == -9
    assert usage.wall_s < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{grandchild}/stat").read_text().split()[2]
        if state == "Z":  # killed, waiting for init to reap it
            break
        time.sleep(0.05)
    else:
        assert not Path(f"/proc/{grandchild}").exists()


#: A parent that holds 200 MB and forks a child that shares those pages (copy-on-write).
_FORK = r"""
import os, time
held = bytearray(200 * 2**20)
pid = os.fork()
if pid == 0:
    time.sleep(1.5)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_measure_counts_pages_shared_by_a_fork_once(tmp_path: Path) -> None:
    usage = measure([sys.executable, "-c", _FORK], tmp_path / "fork.log", poll_s=0.05)
    assert usage.returncode == 0 and usage.max_procs == 2
    # Summing each process's resident anonymous pages would say ~400 MB.
    assert 200 * MB <= usage.anon_peak <= 260 * MB
