"""Issue 9 items 1, 10, 11: a stage never destroys what it did not write; one-line errors.

Each test reproduces a fault an operator met: ``--out`` naming the input folder, ``..``, a
file or an unrelated folder; a read-only or full output disk; an unreachable MLflow server;
a killed stage's run left RUNNING; ``.partial`` folders left by bad input.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import typer
from pydantic import Field
from twhin_bert.common import tracking
from twhin_bert.common.config import StrictModel
from twhin_bert.common.errors import ExitCode
from twhin_bert.common.stage import MARKER_FILE, OutputFolderError, partial_dir, stage
from twhin_bert_pipelines.cli import _load, app, friendly_errors
from typer.testing import CliRunner

runner = CliRunner()


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _error_lines(output: str) -> list[str]:
    """The error lines of a command's output (a first MLflow use also logs its store setup)."""
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw TwHIN (tweets.jsonl, engagements.jsonl) made by the real demo generator."""
    from twhin_bert.demo_data.generate import generate_demo

    out = tmp_path_factory.mktemp("raw")
    generate_demo(out, users=60, tweets=300, seed=3)
    return out


def _ingest(raw: Path, out: Path | str, *extra: str) -> object:
    return runner.invoke(
        app,
        [
            "ingest",
            "--tweets",
            str(raw / "tweets.jsonl"),
            "--engagements",
            str(raw / "engagements.jsonl"),
            "--out",
            str(out),
            *extra,
        ],
    )


# ----------------------------------------------------------------------------- item 1
def test_out_equal_to_the_input_folder_is_refused_and_keeps_the_raw_files(raw: Path) -> None:
    before = _digest(raw)
    res = _ingest(raw, raw)
    assert res.exit_code == ExitCode.BAD_INPUT, res.output
    (line,) = _error_lines(res.output)
    assert "contains the input" in line and str(raw) in line
    assert _digest(raw) == before and not partial_dir(raw).exists()


def test_out_inside_an_input_folder_is_refused(raw: Path) -> None:
    res = runner.invoke(app, ["ingest", "--tweets", str(raw), "--out", str(raw / "ingested")])
    assert res.exit_code == 2, res.output
    assert "lies inside the input" in res.output
    assert not (raw / "ingested").exists() and not (raw / "ingested.partial").exists()


def test_out_dotdot_is_refused_and_the_parent_folder_survives(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for out in ("..", "."):
        res = _ingest(raw, out)
        assert res.exit_code == 2, res.output
        assert "current directory or one of its parents" in res.output
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "sub").is_dir()


def test_out_naming_a_file_is_refused_and_the_file_survives(raw: Path, tmp_path: Path) -> None:
    f = tmp_path / "somefile"
    f.write_text("precious bytes")
    res = _ingest(raw, f)
    assert res.exit_code == 2 and "is an existing file" in res.output, res.output
    assert f.read_text() == "precious bytes"


def test_out_naming_an_unrelated_nonempty_folder_is_refused(raw: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    (precious / "deep").mkdir(parents=True)
    (precious / "deep" / "thesis.tex").write_text("years of work")
    res = _ingest(raw, precious)
    assert res.exit_code == 2, res.output
    (line,) = _error_lines(res.output)
    assert "no twhin-bert stage wrote" in line and MARKER_FILE in line
    assert (precious / "deep" / "thesis.tex").read_text() == "years of work"
    assert not partial_dir(precious).exists()


def test_a_foreign_partial_folder_is_not_reused(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "ingested"
    partial_dir(out).mkdir()
    (partial_dir(out) / "notes.txt").write_text("not a checkpoint")
    res = _ingest(raw, out)
    assert res.exit_code == 2 and "staging folder" in res.output, res.output
    assert (partial_dir(out) / "notes.txt").read_text() == "not a checkpoint"


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(
    raw: Path, tmp_path: Path
) -> None:
    """Two stages on one --out: the one that comes second stops with one line (exit 2) and
    touches nothing; once the first is gone (its lock dies with it) a rerun works."""
    from twhin_bert.common.lifetime import hold_dir

    out = tmp_path / "ingested"
    partial_dir(out).mkdir()
    with hold_dir(partial_dir(out), "ingest"):  # the first run, still writing
        res = _ingest(raw, out)
        assert res.exit_code == 2, res.output
        (line,) = _error_lines(res.output)
        assert "another ingest run is writing this output now" in line
        assert list(partial_dir(out).iterdir()) == [] and not out.exists()
    assert _ingest(raw, out).exit_code == 0


def test_rerun_over_its_own_output_and_into_an_empty_kfp_folder_work(
    raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "artifact"
    out.mkdir()  # KFP may create the output artifact's folder before the task runs
    assert _ingest(raw, out).exit_code == 0
    marker = (out / MARKER_FILE).read_text()
    assert '"stage": "ingest"' in marker and '"finished": null' not in marker
    first = (out / "tweets.parquet").stat().st_mtime_ns
    res = _ingest(raw, out)  # the rerun replaces the stage's own output
    assert res.exit_code == 0, res.output
    assert (out / "tweets.parquet").stat().st_mtime_ns != first
    assert not partial_dir(out).exists()


class ToyConfig(StrictModel):
    n: int = Field(2, description="Files to write.")


@stage("toy_a")
def toy_a(cfg: ToyConfig, out_dir: Path, *, src: Path | None = None, fail: str = "") -> dict:
    (out_dir / "a.txt").write_text("a")
    if fail == "value":
        raise ValueError("bad input row 3")
    if fail == "crash":
        raise RuntimeError("segfault-ish")
    if fail == "interrupt":
        raise KeyboardInterrupt
    return {"n": cfg.n}


@stage("toy_b")
def toy_b(cfg: ToyConfig, out_dir: Path) -> dict:
    return {"n": cfg.n}


def test_another_stages_output_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "x"
    toy_a(ToyConfig(), out)
    with pytest.raises(OutputFolderError, match=r"holds the output of stage 'toy_a', not 'toy_b'"):
        toy_b(ToyConfig(), out)
    assert (out / "a.txt").exists()


def test_inputs_as_lists_mappings_and_globs_are_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.jsonl").write_text("{}\n")
    for src in ([str(data / "t.jsonl")], {"m": data}, str(data / "*.jsonl")):
        with pytest.raises(OutputFolderError, match="the input"):
            toy_a(ToyConfig(), data, src=src)  # type: ignore[arg-type]
    toy_a(ToyConfig(), tmp_path / "elsewhere", src="gs://bucket/data")  # remote: no clash


# ----------------------------------------------------------------------------- item 10
def _runs(out: Path) -> list:
    tracking.configure()
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tracking.OUT_DIR_TAG}` = '{out.resolve()}'",
        order_by=["start_time ASC"],
        output_format="list",
    )


def test_bad_input_removes_the_staging_folder_it_created_and_fails_the_run(
    tmp_path: Path,
) -> None:
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="row 3"):
        toy_a(ToyConfig(), out, fail="value")
    assert not partial_dir(out).exists() and not out.exists()
    with pytest.raises(RuntimeError):
        toy_a(ToyConfig(), out, fail="crash")  # a crash keeps it for resume
    assert (partial_dir(out) / "a.txt").exists()
    with pytest.raises(ValueError):
        toy_a(ToyConfig(), out, fail="value")  # not created by this call: kept
    assert (partial_dir(out) / "a.txt").exists()
    assert [r.info.status for r in _runs(out)] == ["FAILED", "FAILED", "FAILED"]


def test_interrupted_stage_ends_its_run_killed(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        toy_a(ToyConfig(), out, fail="interrupt")
    assert [r.info.status for r in _runs(out)] == ["KILLED"]


def test_friendly_errors_maps_interrupt_to_130() -> None:
    @friendly_errors
    def cmd() -> None:
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as e:
        cmd()
    assert e.value.exit_code == 130


def test_a_killed_stages_running_run_ends_killed_when_it_starts_again(tmp_path: Path) -> None:
    out = tmp_path / "slow"
    script = tmp_path / "slow_stage.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from twhin_bert.common.stage import stage

            @stage("toy_a")
            def slow(cfg, out_dir):
                Path({str(tmp_path / "started")!r}).write_text("x")
                time.sleep(600)
                return {{}}

            slow(None, {str(out)!r})
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.kill()  # SIGKILL: the process cannot end its own run
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [r.info.status for r in _runs(out)] == ["RUNNING"]
    toy_a(ToyConfig(), out)  # the same stage on the same output: resumes the .partial
    assert [r.info.status for r in _runs(out)] == ["KILLED", "FINISHED"]


def test_a_running_run_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "live"
    with tracking.stage_run("toy_live", None, out_dir=out):
        assert tracking.end_stale_runs("toy_live", out) == []  # this very process: alive
        assert [r.info.status for r in _runs(out)] == ["RUNNING"]


@pytest.fixture
def mounted_tmpfs(tmp_path: Path) -> Iterator[callable]:
    """Mounts small real tmpfs file systems (needs root; skipped otherwise)."""
    mounts: list[Path] = []

    def mount(name: str, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / name
        target.mkdir()
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounts.append(target)
        return target

    yield mount
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], check=False)  # -l: an open file may linger


def _readonly_dir(tmp_path: Path, mounted_tmpfs: callable) -> Path:
    if os.geteuid() == 0:  # root ignores permission bits: a read-only file system instead
        return mounted_tmpfs("ro", "ro,size=1m")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_readonly_output_folder_is_one_line_and_exit_3(
    raw: Path, tmp_path: Path, mounted_tmpfs: callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWHIN_BERT_MIN_FREE_MB", "0")  # the tiny read-only tmpfs is "full"
    ro = _readonly_dir(tmp_path, mounted_tmpfs)
    res = _ingest(raw, ro / "ingested")
    assert res.exit_code == ExitCode.IO, res.output
    (line,) = _error_lines(res.output)
    assert "ingested.partial" in line and ("EROFS" in line or "EACCES" in line), line


def test_full_disk_before_start_is_one_line_and_exit_3(
    graph_dir: Path, mounted_tmpfs: callable
) -> None:
    """embed_graph on a full disk segfaulted (exit 139); now it refuses to start."""
    full = mounted_tmpfs("full", "size=1m")
    res = runner.invoke(app, ["embed_graph", "--graph", str(graph_dir), "--out", str(full / "e")])
    assert res.exit_code == ExitCode.IO, res.output
    (line,) = _error_lines(res.output)
    assert "MB free" in line and "ENOSPC" in line
    assert not any(full.iterdir())


def test_disk_full_while_writing_is_one_line_and_exit_3(
    raw: Path, mounted_tmpfs: callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = mounted_tmpfs("small", "size=8k")
    monkeypatch.setenv("TWHIN_BERT_MIN_FREE_MB", "0")  # get past the pre-check: really fill it
    res = _ingest(raw, small / "ingested")
    assert res.exit_code == ExitCode.IO, res.output
    (line,) = _error_lines(res.output)
    assert "ingested.partial" in line and "No space left on device" in line, line


def test_file_size_limit_while_writing_is_one_line_and_exit_3(raw: Path, tmp_path: Path) -> None:
    """Runs without root: RLIMIT_FSIZE makes writes past 8 KiB fail with EFBIG."""
    env = {**os.environ, "TWHIN_BERT_TRACKING": "0", "TWHIN_BERT_MIN_FREE_MB": "0"}
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192)); "
        "from twhin_bert_pipelines.cli import app; sys.argv[0] = 'twhin-bert'; app()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "ingest", "--tweets", str(raw / "tweets.jsonl"),
         "--out", str(tmp_path / "ingested")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == ExitCode.IO, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    (line,) = _error_lines(res.stderr)
    assert "ingested.partial" in line and "EFBIG" in line, line


def _closed_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mlflow_is_one_line_exit_4_within_30_seconds() -> None:
    uri = f"http://alice:s3cret@127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_TRACKING_URI"] = uri
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "twhin_bert_pipelines.cli", "registry", "list"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    took = time.monotonic() - t0
    assert res.returncode == ExitCode.REMOTE, res.stderr[-3000:]
    assert took < 30, took
    errors = _error_lines(res.stderr)
    assert len(errors) == 1 and "cannot reach the MLflow tracking server" in errors[0]
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == errors  # no retry chatter
    assert "s3cret" not in res.stderr + res.stdout


def test_http_defaults_do_not_override_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    tracking.apply_http_defaults()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


# ----------------------------------------------------------------------------- item 11
def test_stage_commands_take_builtin_config_names_and_pipeline_files(tmp_path: Path) -> None:
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.ingest.config import IngestConfig
    from twhin_bert.pretrain.config import PretrainConfig

    assert _load(PretrainConfig, "prod", "pretrain").arch.hidden_size == 768
    assert _load(PretrainConfig, "tiny", "pretrain").arch.hidden_size == 128
    assert _load(EmbedGraphConfig, "tiny", "embed_graph").dimension == 32
    # A pipeline file without the stage's section: the stage's defaults (and its seed).
    p = tmp_path / "pipe.yaml"
    p.write_text("name: mine\nseed: 5\nembed_graph: {dimension: 16}\n")
    assert _load(IngestConfig, str(p), "ingest") == IngestConfig()
    assert _load(EmbedGraphConfig, str(p), "embed_graph").dimension == 16
    res = runner.invoke(app, ["ingest", "--tweets", "x.jsonl", "--out", "o", "--config", "prdo"])
    assert res.exit_code == 2 and "prdo" in res.output and "Traceback" not in res.output


def test_ingest_runs_with_config_prod(raw: Path, tmp_path: Path) -> None:
    res = _ingest(raw, tmp_path / "ing", "--config", "prod")
    assert res.exit_code == 0, res.output
