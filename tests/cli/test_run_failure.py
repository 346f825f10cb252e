"""A failed local pipeline run ends in one line and exit code 5, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twhin_bert.common.errors import ExitCode


def test_failed_task_is_one_line_and_exit_5(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"id": "1", "text": "hi", "created_at": "2020"}\n')
    (tmp_path / "e.jsonl").write_text("")  # no engagements: ingest refuses (nothing kept)
    cli = Path(sys.executable).with_name("twhin-bert")
    p = subprocess.run(
        [str(cli), "run", "--config", "tiny", "--no-ablation", "--workdir", str(tmp_path / "w"),
         "--tweets", str(tmp_path / "t.jsonl"), "--engagements", str(tmp_path / "e.jsonl")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == ExitCode.RUN_FAILED, p.stderr[-2000:]
    errors = [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert "Inner task failed: 'ingest'" in errors[0]
    assert "\x1b[" not in errors[0]
    # the failed task's own log (kfp prints it) may hold its traceback; the command's does not
    assert "in run_cmd" not in p.stdout + p.stderr
    assert (p.stdout + p.stderr).rstrip().splitlines()[-1] == errors[0]
