"""`twhin-bert results`: dated records of real benchmark subprocesses, a pipeline run's
evaluation, and the page rendered from them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from twhin_bert.bench import results
from twhin_bert.common.artifacts import ArtifactError
from twhin_bert.common.metrics import (
    ENGAGEMENT_HITS,
    HASHTAG_MACRO_F1,
    engagement_hits_key,
    write_metrics,
)
from twhin_bert.evaluate.results import EvaluationResult, Score, TaskResult
from twhin_bert_pipelines.cli import app
from typer.testing import CliRunner

# A stand-in for `twhin-bert bench NAME`: a real subprocess printing a table and, last, the
# JSON summary; "bad" misses its goal (exit 1 as the CLI does), "crash" dies before its
# summary, "slow" outlives its timeout.
FAKE_BENCH = textwrap.dedent(
    """
    import json, sys, time
    name = sys.argv[1]
    if name == "crash":
        print("half a table")
        print("Traceback: ValueError: no data in /nowhere", file=sys.stderr)
        sys.exit(3)
    if name == "slow":
        time.sleep(60)
    print("| size | rows/s |")
    print("| 10 | 123.5 |")
    met = name == "good"
    print(json.dumps({"bench": name, "speedup": 2.5, "goal": "speedup >= 2x", "met": met}))
    sys.exit(0 if met else 1)
    """
)


def _fake_argv(name: str, quick: bool) -> list[str]:
    return [sys.executable, "-c", FAKE_BENCH, name, *(["--quick"] if quick else [])]


def _sections(page: str) -> dict[str, str]:
    """The page's ``## name`` sections by name."""
    parts = page.split("\n## ")[1:]
    return {p.split("\n", 1)[0]: p for p in parts}


def test_run_records_each_bench_as_it_ended(tmp_path: Path) -> None:
    records = results.run(
        ["good", "bad", "crash"], tmp_path, quick=True, argv_for=_fake_argv, echo=False
    )
    by = {r["name"]: r for r in records}
    assert [by[n]["status"] for n in ("good", "bad", "crash")] == ["met", "not met", "failed"]
    assert [by[n]["exit_code"] for n in ("good", "bad", "crash")] == [0, 1, 3]
    assert by["good"]["summary"]["speedup"] == 2.5 and by["good"]["met"] is True
    assert by["bad"]["goal"] == "speedup >= 2x" and by["bad"]["met"] is False
    assert by["good"]["table"] == "| size | rows/s |\n| 10 | 123.5 |"  # JSON line removed
    assert by["crash"]["summary"] is None and by["crash"]["table"] == "half a table"
    assert "no data in /nowhere" in by["crash"]["stderr_tail"]
    good = by["good"]
    assert good["command"].endswith("-c " + results.shlex.quote(FAKE_BENCH) + " good --quick")
    assert good["machine"]["cpus_available"] >= 1 and good["machine"]["ram_gib"] > 0
    assert len(good["load_before"]) == 3 and len(good["load_after"]) == 3
    assert good["git"]["commit"] is None or len(good["git"]["commit"]) == 40
    assert good["date"].endswith("Z") and good["wall_s"] >= 0
    stored = {p.stem for p in (tmp_path / results.RECORDS_DIR).glob("*.json")}
    assert stored == {"good", "bad", "crash"}
    page = _sections((tmp_path / results.RESULTS_MD).read_text())
    assert set(page) == {"good", "bad", "crash"}
    assert "**not met**" in page["bad"] and "| 10 | 123.5 |" in page["good"]


def test_rerunning_one_bench_keeps_the_others(tmp_path: Path) -> None:
    results.run(["good", "bad"], tmp_path, argv_for=_fake_argv, echo=False)
    bad_before = (tmp_path / results.RECORDS_DIR / "bad.json").read_text()
    good_before = json.loads((tmp_path / results.RECORDS_DIR / "good.json").read_text())
    (new,) = results.run(["good"], tmp_path, argv_for=_fake_argv, echo=False)
    assert (tmp_path / results.RECORDS_DIR / "bad.json").read_text() == bad_before
    assert new["date"] >= good_before["date"] and "--quick" not in new["command"]
    assert set(_sections((tmp_path / results.RESULTS_MD).read_text())) == {"good", "bad"}


def test_a_bench_past_its_timeout_is_recorded_as_timed_out(tmp_path: Path) -> None:
    (r,) = results.run(["slow"], tmp_path, argv_for=_fake_argv, timeout=1.0, echo=False)
    assert (r["status"], r["exit_code"], r["met"]) == ("timed out", None, False)
    assert r["wall_s"] < 30


def _record(name: str, date: str, status: str, **extra: object) -> dict[str, object]:
    return {
        "version": results.RECORD_VERSION,
        "name": name,
        "kind": "bench",
        "date": date,
        "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True},
        "command": f"twhin-bert bench {name} --quick",
        "machine": {"cpu_model": "Test CPU", "cpus": 4, "cpus_available": 2, "ram_gib": 7.5},
        "load_before": [3.5, 2.0, 1.0],
        "load_after": [5.25, 3.0, 1.5],
        "wall_s": 12.5,
        "exit_code": 0 if status == "met" else 1,
        "status": status,
        "table": f"table of {name}",
        "summary": {"bench": name, "goal": f"goal of {name}", "met": status == "met"},
        "goal": f"goal of {name}",
        "met": status == "met",
        **extra,
    }


def test_render_from_hand_written_records(tmp_path: Path) -> None:
    results.write_record(tmp_path, _record("mine", "2026-11-30T10:00:00Z", "met"))
    results.write_record(
        tmp_path, _record("ingest", "2026-12-01T09:30:00Z", "failed", stderr_tail="boom")
    )
    results.write_record(tmp_path, _record("zeta", "2026-11-01T00:00:00Z", "not met"))
    res = CliRunner().invoke(app, ["results", "render", "--docs", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert list(_sections((tmp_path / results.RESULTS_MD).read_text())) == [
        "ingest",
        "mine",
        "zeta",
    ]
    page = results.render(tmp_path, order=["ingest", "mine"]).read_text()
    assert "Newest record: 2026-12-01T09:30:00Z." in page
    sections = _sections(page)
    assert list(sections) == ["ingest", "mine", "zeta"]  # the given order, then by name
    mine = sections["mine"]
    assert "2026-11-30T10:00:00Z" in mine and "`twhin-bert bench mine --quick`" in mine
    assert "0123456789 (with uncommitted changes)" in mine
    assert "Test CPU; 2 of 4 CPUs available; 7.5 GiB RAM" in mine
    assert "3.50 -> 5.25" in mine and "goal of mine" in mine and "**met**" in mine
    assert "table of mine" in mine and "boom" not in mine
    assert "**failed**" in sections["ingest"] and "boom" in sections["ingest"]


def test_a_record_without_its_fields_names_the_file(tmp_path: Path) -> None:
    bad = _record("mine", "2026-11-30T10:00:00Z", "met")
    del bad["status"]
    results.write_record(tmp_path, bad)
    with pytest.raises(ArtifactError, match=r"results/mine\.json: record lacks \['status'\]"):
        results.render(tmp_path)


def _pipeline_run(root: Path, passed: bool) -> Path:
    """A finished run's folder as `twhin-bert run` leaves it: summary.json, the evaluate
    stage's metrics.json (built by evaluate's own result classes) and the registration."""
    run = root / "twhin-bert-pretrain-1"
    ev = run / "evaluate" / "evaluation"
    reg = run / "register-model" / "registration"
    ev.mkdir(parents=True)
    reg.mkdir(parents=True)
    engagement = TaskResult(
        "engagement",
        "engagement",
        "hits@10",
        models={"twhin_bert": Score(0.30), "mlm_only": Score(0.20), "base": Score(0.10)},
        floors={"random": Score(0.013), "popularity": Score(0.14)},
        references={"text_topic": Score(0.16)},
    )
    hashtag = TaskResult(
        "hashtag",
        "hashtag",
        "macro_f1",
        models={"twhin_bert": Score(0.5), "mlm_only": Score(0.4), "base": Score(0.3)},
        floors={"tfidf": Score(0.2)},
    )
    result = EvaluationResult(
        ["twhin_bert", "mlm_only", "base"], "twhin_bert", "mlm_only", "base",
        tasks=[engagement, hashtag],
    )  # fmt: skip
    write_metrics(ev, {**result.metrics(), "wall_seconds": 321.0})
    (reg / "registration.json").write_text(
        json.dumps(
            {"passed": passed, "verdict": "passed" if passed else "failed", "reasons": ["r"]}
        )
    )
    summary = {
        "run_dir": str(run),
        "tasks": {
            "evaluate": {"evaluation": str(ev)},
            "register-model": {"registration": str(reg)},
        },
        "tracking_uri": "sqlite:///x.db",
        "seconds": 654.3,
    }
    (run / results.RUN_SUMMARY).write_text(json.dumps(summary))
    return run


def test_a_pipeline_run_is_recorded_through_the_cli(tmp_path: Path) -> None:
    run = _pipeline_run(tmp_path, passed=True)
    docs = tmp_path / "docs"
    res = CliRunner().invoke(
        app, ["results", "run", "--pipeline-run", str(run), "--name", "demo", "--docs", str(docs)]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads((docs / results.RECORDS_DIR / "demo.json").read_text())
    figures = rec["summary"]
    assert rec["kind"] == "pipeline" and rec["status"] == "met" and rec["wall_s"] == 654.3
    assert figures["candidate.model"] == "twhin_bert"
    assert figures[f"candidate.{ENGAGEMENT_HITS}"] == 0.30
    assert (figures["baseline.model"], figures[f"baseline.{ENGAGEMENT_HITS}"]) == ("mlm_only", 0.2)
    assert figures[f"base.{HASHTAG_MACRO_F1}"] == 0.3
    assert figures["floor.random.engagement.hits@10"] == 0.013
    assert figures["floor.tfidf.hashtag.macro_f1"] == 0.2
    assert figures["reference.text_topic.engagement.hits@10"] == 0.16
    assert figures["evaluate_wall_s"] == 321.0 and figures["pipeline_wall_s"] == 654.3
    assert list(_sections((docs / results.RESULTS_MD).read_text())) == ["demo"]


def test_a_failed_gate_is_recorded_not_met(tmp_path: Path) -> None:
    rec = results.pipeline_record(_pipeline_run(tmp_path, passed=False))
    assert (rec["status"], rec["met"], rec["summary"]["gate"]) == ("not met", False, "failed")
    assert rec["summary"][f"candidate.{engagement_hits_key()}"] == 0.30


def test_a_run_without_evaluation_names_its_summary(tmp_path: Path) -> None:
    (tmp_path / results.RUN_SUMMARY).write_text(json.dumps({"tasks": {}, "seconds": 1.0}))
    res = CliRunner().invoke(
        app, ["results", "run", "--pipeline-run", str(tmp_path), "--docs", str(tmp_path / "d")]
    )
    assert res.exit_code == 2
    assert "summary.json: no evaluate task output" in res.output


def test_only_rejects_an_unknown_bench(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["results", "run", "--only", "ingest,nope", "--docs", str(tmp_path)]
    )
    assert res.exit_code == 2 and "expected benchmarks among ingest" in res.output
    assert not (tmp_path / results.RECORDS_DIR).exists()


def test_plain_run_leaves_out_the_hour_long_scale_and_passes_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twhin_bert_pipelines.cli import BENCHES, SLOW_BENCHES

    seen: list[tuple[list[str], list[str]]] = []

    def fake_run(names, docs, *, argv_for, **kw):  # records what would run, runs nothing
        seen.append((list(names), [w for n in names for w in argv_for(n, False)]))
        return []

    monkeypatch.setattr(results, "run", fake_run)
    res = CliRunner().invoke(app, ["results", "run", "--docs", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen[-1][0] == [n for n in BENCHES if n not in SLOW_BENCHES] and "scale" in BENCHES
    res = CliRunner().invoke(
        app, ["results", "run", "--docs", str(tmp_path), "--only", "scale", "--set", "stages=none"]
    )
    assert res.exit_code == 0, res.output
    names, argv = seen[-1]
    assert names == ["scale"] and argv[-4:] == ["bench", "scale", "--set", "stages=none"]
