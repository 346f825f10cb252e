"""pretrain resume and ownership (issue 9 items 8-10): checkpoints keyed by input content and
config (not paths), a torn newest checkpoint falls back to the one before, one writer per
checkpoint folder, num_gpus checked against the devices, workers die with their launcher."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twhin_bert.common.lifetime import LOCK_FILE
from twhin_bert.pretrain.checkpoints import COMPLETE_FILE, checkpoint_folder, fingerprint
from twhin_bert.pretrain.config import ArchConfig, ObjectiveTraining, PretrainConfig
from twhin_bert.pretrain.inputs import PretrainInputs
from twhin_bert.pretrain.train import run_pretrain

CLI = [sys.executable, "-m", "twhin_bert_pipelines.cli"]


def small_cfg(**kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        "arch": ArchConfig(dropout=0.0),
        "max_seq_len": 32,
        "max_pair_tweet_tokens": 16,
        "mlm": ObjectiveTraining(micro_batch_size=2, peak_lr=2e-3, warmup_steps=1, steps=6),
        "checkpoint_every": 3,
        "shuffle_buffer": 64,
        "read_batch_rows": 64,
        "threads": 1,
    }
    base.update(kw)
    return PretrainConfig.model_validate(base)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_fingerprint_follows_content_not_paths(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path, pt_pairs: Path
) -> None:
    cfg = PretrainConfig()
    key = fingerprint(cfg, PretrainInputs("mlm", pt_ingested, pt_tokenizer))
    ing2, tok2 = _copy(pt_ingested, tmp_path / "run2/ingest"), _copy(pt_tokenizer, tmp_path / "t")
    moved = PretrainInputs("mlm", ing2, tok2)
    # A resubmitted run: the same artifacts under new paths, bookkeeping fields changed.
    assert key == fingerprint(PretrainConfig(threads=7, num_gpus=2), moved)
    assert key != fingerprint(cfg, PretrainInputs("mlm_social", ing2, tok2, pairs=pt_pairs))
    assert key != fingerprint(PretrainConfig(lam=0.5), moved)
    (tok2 / "tokenizer.json").write_text((tok2 / "tokenizer.json").read_text().replace("▁", "_"))
    assert key != fingerprint(cfg, moved)


def test_resume_by_content_and_torn_checkpoint_falls_back(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "claim"  # the persistent volume that outlives pods and runs
    cfg = small_cfg(checkpoint_dir=str(shared), keep_checkpoints_after=True)
    first = run_pretrain(
        cfg, tmp_path / "run1/mlm", objective="mlm", ingested=pt_ingested, tokenizer=pt_tokenizer
    )
    assert first["resumed_from_step"] == 0 and first["steps"] == 6
    (folder,) = shared.iterdir()
    assert sorted(p.name for p in folder.glob("step*")) == ["step3", "step6"]

    # A resubmitted pipeline: new run folder, inputs copied to new paths -> resumes at the end.
    ing2 = _copy(pt_ingested, tmp_path / "run2/ingest")
    tok2 = _copy(pt_tokenizer, tmp_path / "run2/tok")
    again = run_pretrain(cfg, tmp_path / "run2/mlm", objective="mlm", ingested=ing2, tokenizer=tok2)
    assert again["resumed_from_step"] == 6 and again["final_loss"] == first["final_loss"]

    # Truncate a file of the newest checkpoint: the retry falls back to step 3 and says so.
    newest = max((folder / "step6").glob("*model_states.pt"))
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="twhin_bert.pretrain.train"):
        third = run_pretrain(
            cfg, tmp_path / "run3/mlm", objective="mlm", ingested=ing2, tokenizer=tok2
        )
    torn = [r.getMessage() for r in caplog.records if "step6" in r.getMessage()]
    assert len(torn) == 1 and "torn" in torn[0] and "\n" not in torn[0]
    assert third["resumed_from_step"] == 3 and third["steps"] == 6
    assert third["final_loss"] == pytest.approx(first["final_loss"], abs=1e-4)


def test_other_inputs_in_the_staging_folder_restart_and_say_so(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = small_cfg(mlm=ObjectiveTraining(micro_batch_size=2, warmup_steps=1, steps=3))
    out = tmp_path / "mlm"
    run_pretrain(
        cfg.model_copy(update={"keep_checkpoints_after": True}),
        out,
        objective="mlm",
        ingested=pt_ingested,
        tokenizer=pt_tokenizer,
    )
    out.rename(tmp_path / "mlm.partial")  # what a run killed after its checkpoint leaves
    # Same path, other content: a changed tweets file.
    ing2 = _copy(pt_ingested, tmp_path / "ingest2")
    import pyarrow.parquet as pq

    table = pq.read_table(ing2 / "tweets.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), ing2 / "tweets.parquet")
    with caplog.at_level(logging.WARNING, logger="twhin_bert.pretrain.train"):
        m = run_pretrain(cfg, out, objective="mlm", ingested=ing2, tokenizer=pt_tokenizer)
    said = [r.getMessage() for r in caplog.records if "starting over" in r.getMessage()]
    assert len(said) == 1 and m["resumed_from_step"] == 0 and m["steps"] == 3


def _cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TWHIN_BERT_PROGRESS="0", COLUMNS="200")
    env.pop("TWHIN_BERT_CPU_RANKS", None)
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if "error" in line]


def test_prod_num_gpus_on_a_cpu_machine_fails_fast(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only refusal")
    prod = Path(__file__).parents[2] / "pipelines/configs/prod.yaml"
    t0 = time.perf_counter()
    done = _cli(
        ["pretrain", "--config", str(prod), "--objective", "mlm", "--out", str(tmp_path / "o"),
         "--ingested", str(pt_ingested), "--tokenizer", str(pt_tokenizer)],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = _error_lines(done)
    assert "num_gpus is 8" in line and "no CUDA device" in line
    assert "Traceback" not in done.stderr and time.perf_counter() - t0 < 60


def test_second_writer_of_a_checkpoint_folder_is_refused(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path
) -> None:
    """A retried pod whose predecessor still writes the claim's checkpoint folder."""
    cfg = small_cfg(checkpoint_dir=str(tmp_path / "claim"))
    cfg_file = tmp_path / "pretrain.yaml"
    cfg_file.write_text(cfg.model_dump_json())
    ckpt = checkpoint_folder(
        cfg, tmp_path / "x", PretrainInputs("mlm", pt_ingested, pt_tokenizer)
    ).path
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from twhin_bert.common.lifetime import hold_folder\n"
         f"with hold_folder({str(ckpt)!r}, 'pretrain'):\n"
         "    print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = _cli(
            ["pretrain", "--config", str(cfg_file), "--objective", "mlm",
             "--out", str(tmp_path / "retry"),
             "--ingested", str(pt_ingested), "--tokenizer", str(pt_tokenizer)],
            tmp_path,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = _error_lines(done)
    assert f"pid {holder.pid}" in line and ckpt.name in line
    assert (ckpt / LOCK_FILE).is_file() and not list(ckpt.glob("step*"))


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_kill_9_of_the_launchers_group_kills_its_workers(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path
) -> None:
    """Two CPU ranks under torchrun; SIGKILL to the launcher's process group (torchrun puts
    its workers in sessions of their own) must leave no worker alive, and free the lock."""
    cfg = small_cfg(
        mlm=ObjectiveTraining(micro_batch_size=2, warmup_steps=1, steps=400),
        checkpoint_every=1,
        num_gpus=2,
    )
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.model_dump_json())
    code = (
        "from pathlib import Path\n"
        "from twhin_bert.pretrain.config import PretrainConfig\n"
        "from twhin_bert.pretrain.train import run_pretrain\n"
        f"cfg = PretrainConfig.model_validate_json(Path({str(cfg_file)!r}).read_text())\n"
        f"run_pretrain(cfg, Path({str(tmp_path / 'ddp')!r}), objective='mlm',\n"
        f"             ingested=Path({str(pt_ingested)!r}), tokenizer=Path({str(pt_tokenizer)!r}))\n"
    )
    env = dict(os.environ, TWHIN_BERT_PROGRESS="0", TWHIN_BERT_CPU_RANKS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    ckpt = tmp_path / "ddp.partial" / "checkpoints"
    # The first multi-process CPU run on a machine JIT-builds DeepSpeed's shm op (minutes).
    deadline = time.time() + 600
    try:
        while not list(ckpt.glob(f"step*/{COMPLETE_FILE}")):
            assert proc.poll() is None and time.time() < deadline, "no checkpoint before the kill"
            time.sleep(0.5)
        tree = _descendants(proc.pid)
        assert len(tree) >= 3  # torchrun and its two workers
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 20
    while any(_alive(p) for p in tree) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in tree if _alive(p)], "workers outlived their launcher"
    from twhin_bert.common.lifetime import hold_folder

    with hold_folder(ckpt, "pretrain"):  # nobody holds it any more
        pass
