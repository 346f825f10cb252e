"""The local runner drops KFP's executor boilerplate from task logs, and only that."""

from __future__ import annotations

import io
import json

from twhin_bert_pipelines.local import ExecutorChatterFilter

EXECUTOR_INPUT = {"inputs": {"parameterValues": {"config_json": "{}"}}, "outputs": {"a": [1, 2]}}


def _task_log() -> str:
    """What kfp.local streams for one task (its print indents every line by 4 spaces)."""
    body = json.dumps(EXECUTOR_INPUT, indent=4)
    lines = [
        "[KFP Executor 2026-11-22 07:55:18,168 INFO]: Looking for component `ingest` in x.py",
        '[KFP Executor 2026-11-22 07:55:18,168 INFO]: Loading KFP component "ingest" from x.py',
        "[KFP Executor 2026-11-22 07:55:18,169 INFO]: Got executor_input:",
        *body.splitlines(),
        "ingest: 100 rows in, 98 out, 2 quarantined",
        "  }",
        "[KFP Executor 2026-11-22 07:55:19,000 INFO]: Wrote executor output file to /tmp/o.json.",
        "Traceback (most recent call last):",
    ]
    return "".join("    " + line + "\n" for line in lines)


def test_filter_drops_executor_chatter_and_keeps_task_output() -> None:
    out = io.StringIO()
    stream = ExecutorChatterFilter(out)
    text = _task_log()
    for i in range(0, len(text), 7):  # arrives in arbitrary chunks
        stream.write(text[i : i + 7])
    stream.write("    partial line without newline")
    stream.flush()
    assert out.getvalue().splitlines() == [
        "    ingest: 100 rows in, 98 out, 2 quarantined",
        "      }",
        "    Traceback (most recent call last):",
        "    partial line without newline",
    ]


def test_filter_drops_the_runner_outputs_listing() -> None:
    out = io.StringIO()
    stream = ExecutorChatterFilter(out)
    stream.write(
        "03:06:38.657 - INFO - Task \x1b[96m'evaluate'\x1b[0m finished with status SUCCESS\n"
        "03:06:38.659 - INFO - Task \x1b[96m'evaluate'\x1b[0m outputs:\n"
        "    evaluation: Dataset( name='evaluation',\n"
        "                         metadata={'a': 1, 'b': 2} )\n"
        "--------------------------------------------------------------------------------\n"
        "03:06:38.663 - INFO - Executing task 'register-model'\n"
    )
    stream.flush()
    assert out.getvalue().splitlines() == [
        "03:06:38.657 - INFO - Task \x1b[96m'evaluate'\x1b[0m finished with status SUCCESS",
        "-" * 80,
        "03:06:38.663 - INFO - Executing task 'register-model'",
    ]
