"""The recipe end to end on CPU (tiny config, real tweets): both objectives learn, the
export is a drop-in AutoModel with the training model's weights and embeddings, and a run
killed with SIGKILL resumes to the same result."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.stage import read_metrics
from twhin_bert.pretrain.checkpoints import COMPLETE_FILE
from twhin_bert.pretrain.config import ArchConfig, ObjectiveTraining, PretrainConfig
from twhin_bert.pretrain.train import run_pretrain


def tiny_cfg(**kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        # No dropout: after a few dozen steps a CLS vector carries so little of its tweet that
        # dropout noise between two views swamps it and NT-Xent sits at its collapse plateau.
        "arch": ArchConfig(dropout=0.0),
        "max_seq_len": 64,
        "max_pair_tweet_tokens": 32,
        "mlm": ObjectiveTraining(micro_batch_size=4, peak_lr=5e-3, warmup_steps=2, steps=20),
        "mlm_social": ObjectiveTraining(micro_batch_size=8, peak_lr=1e-3, warmup_steps=5, steps=30),
        "checkpoint_every": 10,
        "shuffle_buffer": 256,
        "read_batch_rows": 256,
    }
    base.update(kw)
    return PretrainConfig.model_validate(base)


def head_tail(log: list[dict], key: str, n: int = 4) -> tuple[float, float]:
    vals = [e[key] for e in log]
    return sum(vals[:n]) / n, sum(vals[-n:]) / n


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory, pt_ingested: Path, pt_tokenizer: Path) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "mlm"
    run_pretrain(
        tiny_cfg(keep_checkpoints_after=True),
        out,
        objective="mlm",
        ingested=pt_ingested,
        tokenizer=pt_tokenizer,
    )
    return out


@pytest.fixture(scope="module")
def stage2(stage1: Path, pt_ingested: Path, pt_tokenizer: Path, pt_pairs: Path) -> Path:
    out = stage1.parent / "mlm_social"
    run_pretrain(
        tiny_cfg(),
        out,
        objective="mlm_social",
        ingested=pt_ingested,
        tokenizer=pt_tokenizer,
        pairs=pt_pairs,
        init_from=stage1,
    )
    return out


def unseen_stream_mlm_loss(model_dir: Path | None, ingested: Path, tokenizer: Path) -> float:
    """Mean MLM loss (eval mode) over 10 fixed batches of a stream the run never saw (seed 99);
    ``model_dir=None``: a freshly initialised model (the same init the run started from)."""
    from twhin_bert.pretrain import data as D
    from twhin_bert.pretrain.model import build_model

    cfg = tiny_cfg()
    tok, sp = D.load_tokenizer(tokenizer)
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.arch, sp, max_seq_len=64, projection_dims=cfg.projection_dims,
        init_from=str(model_dir) if model_dir else None,
    ).eval()  # fmt: skip
    stream = D.TweetStream(
        Ingested(ingested).tweets_path(),
        tok, sp, rows_per_batch=8, max_seq_len=64, position_offset=2,
        mask_prob=0.15, alpha=0.7, shuffle_buffer=256, read_rows=256, seed=99,
    )()  # fmt: skip
    with torch.no_grad():
        losses = [
            model.batch_losses(
                next(stream)[2],
                social=False,
                tau=cfg.tau,
                lam=cfg.lam,
                across_ranks=cfg.negatives_across_ranks,
                pooling=cfg.social_pooling,
            )[0].item()
            for _ in range(10)
        ]
    return sum(losses) / len(losses)


def test_mlm_loss_decreases(stage1: Path, pt_ingested: Path, pt_tokenizer: Path) -> None:
    m = read_metrics(stage1)
    assert m["steps"] == 20 and m["objective"] == "mlm"
    assert m["non_padding_tokens"] > 0.9 * 20 * 4 * 64  # packed rows are nearly full
    log = json.loads((stage1 / "training_log.json").read_text())
    first, last = head_tail(log, "loss")
    assert last < first, f"MLM training loss did not decrease: {first:.3f} -> {last:.3f}"
    fresh = unseen_stream_mlm_loss(None, pt_ingested, pt_tokenizer)
    trained = unseen_stream_mlm_loss(stage1, pt_ingested, pt_tokenizer)
    assert trained < fresh - 0.2, f"unseen-stream MLM loss {fresh:.3f} -> {trained:.3f}"
    assert log[1]["lr"] > log[0]["lr"]  # warmup
    assert log[-1]["lr"] < max(e["lr"] for e in log)  # decay
    # The curves went to the stage's MLflow run, one point per step.
    import mlflow

    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`twhin_bert.stage` = 'pretrain' and params.`mlm.steps` = '20'",
        output_format="list",
    )
    assert runs
    history = mlflow.MlflowClient().get_metric_history(runs[-1].info.run_id, "loss")
    assert sorted(h.step for h in history) == list(range(1, 21))


def test_social_loss_decreases_from_stage1(
    stage2: Path, pt_ingested: Path, pt_tokenizer: Path
) -> None:
    m = read_metrics(stage2)
    assert m["objective"] == "mlm_social" and m["steps"] == 30
    log = json.loads((stage2 / "training_log.json").read_text())
    first, last = head_tail(log, "social_loss")
    # NT-Xent over B pairs starts at chance, ln(2B - 1): each view against 2B - 1 candidates.
    chance = math.log(2 * tiny_cfg().mlm_social.micro_batch_size - 1)
    assert abs(first - chance) < 0.1, f"first social loss {first:.3f}, chance {chance:.3f}"
    assert last < chance - 0.25, f"social loss did not decrease: {first:.3f} -> {last:.3f}"
    for e in log:  # L = L_social + 0.05 L_MLM
        assert e["loss"] == pytest.approx(e["social_loss"] + 0.05 * e["mlm_loss"], rel=1e-4)
    # Stage 2 starts from stage 1's encoder *and* MLM head and keeps the MLM objective: its
    # the unseen stream's MLM loss stays far below a fresh model's.
    fresh = unseen_stream_mlm_loss(None, pt_ingested, pt_tokenizer)
    assert unseen_stream_mlm_loss(stage2, pt_ingested, pt_tokenizer) < fresh - 0.2
    assert not (stage2 / "checkpoints").exists()  # deleted after the run


def test_export_is_drop_in_and_matches_training_weights(stage1: Path, pt_rows: list) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer, XLMRobertaModel
    from twhin_bert.pretrain.data import encode, load_tokenizer, pack_rows
    from twhin_bert.pretrain.model import build_model

    for f in ("config.json", "model.safetensors", "README.md", "training_log.json",
              "mlm_head.safetensors", "social_head.safetensors", "tokenizer.json"):  # fmt: skip
        assert (stage1 / f).is_file(), f
    # Exported weights == the DeepSpeed engine's weights at the last step.
    ckpt = torch.load(
        stage1 / "checkpoints" / "step20" / "mp_rank_00_model_states.pt",
        map_location="cpu",
        weights_only=False,
    )["module"]
    exported = load_file(str(stage1 / "model.safetensors"))
    assert exported
    for k, v in exported.items():
        assert torch.equal(v, ckpt[f"encoder.{k}"].float()), k

    head = load_file(str(stage1 / "mlm_head.safetensors"))
    for k, v in head.items():
        assert torch.equal(v, ckpt[f"lm_head.{k}"].float()), k

    model = AutoModel.from_pretrained(str(stage1)).eval()
    tok = AutoTokenizer.from_pretrained(str(stage1))
    assert isinstance(model, XLMRobertaModel)
    texts = [t for t, _ in pt_rows[:9]]
    batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        hf_cls = model(**batch).last_hidden_state[:, 0]

    # The training model sees the same tweets packed 3 per row (block-diagonal attention,
    # positions restarting per tweet): each CLS must equal the tweet embedded alone.
    _, sp = load_tokenizer(stage1)
    ours = build_model(
        tiny_cfg().arch, sp, max_seq_len=64, projection_dims=[128, 128], init_from=str(stage1)
    ).eval()
    assert torch.equal(ours.lm_head.bias.detach(), head["bias"])  # heads come along
    toks = encode(tok, texts, 62)
    rows = [toks[i : i + 3] for i in range(0, 9, 3)]
    ids, pos, seg, cls = pack_rows(rows, sp, position_offset=sp.pad + 1)
    packed_cls = ours.tweet_embeddings(ids, pos, seg, cls, "cls")
    torch.testing.assert_close(packed_cls, hf_cls, atol=2e-4, rtol=1e-4)


RUN = """
import os, sys
from pathlib import Path
os.environ["TWHIN_BERT_TRACKING"] = "0"
sys.path.insert(0, {tests!r})
from test_train import tiny_cfg
from twhin_bert.pretrain.config import ObjectiveTraining
from twhin_bert.pretrain.train import run_pretrain
cfg = tiny_cfg(mlm=ObjectiveTraining(micro_batch_size=4, peak_lr=2e-3, warmup_steps=2, steps=24),
               checkpoint_every=4)
run_pretrain(cfg, Path({out!r}), objective="mlm", ingested=Path({ing!r}), tokenizer=Path({tok!r}))
"""


def newest_complete(ckpt: Path) -> int:
    """The step of the newest checkpoint whose save completed (0: none)."""
    return max((int(f.parent.name[4:]) for f in ckpt.glob(f"step*/{COMPLETE_FILE}")), default=0)


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path
) -> None:
    def script(out: Path) -> list[str]:
        code = RUN.format(
            tests=str(Path(__file__).parent),
            out=str(out),
            ing=str(pt_ingested),
            tok=str(pt_tokenizer),
        )
        return [sys.executable, "-c", code]

    env = dict(os.environ, TWHIN_BERT_PROGRESS="0")
    straight = tmp_path / "straight"
    subprocess.run(script(straight), env=env, check=True, timeout=900)

    killed = tmp_path / "killed"
    ckpt = killed.with_name("killed.partial") / "checkpoints"
    proc = subprocess.Popen(script(killed), env=env)
    deadline = time.time() + 600
    # Kill once a checkpoint at step 12 or later is complete (its complete.json written):
    # DeepSpeed's `latest` pointer names a checkpoint before that, while its save is cut short.
    while time.time() < deadline and newest_complete(ckpt) < 12:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = newest_complete(ckpt)  # what is on disk now is what the rerun finds
    assert not killed.exists() and at_kill >= 12
    subprocess.run(script(killed), env=env, check=True, timeout=900)

    a, b = read_metrics(straight), read_metrics(killed)
    assert b["resumed_from_step"] == at_kill  # the newest complete checkpoint at the kill
    assert a["steps"] == b["steps"] == 24
    assert b["final_loss"] == pytest.approx(a["final_loss"], abs=0.02)
    log_a = json.loads((straight / "training_log.json").read_text())
    log_b = json.loads((killed / "training_log.json").read_text())
    assert [e["step"] for e in log_b] == list(range(1, 25))
    for x, y in zip(log_a, log_b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=0.02), x["step"]


@pytest.mark.slow
def test_multi_process_launch_on_cpu(
    tmp_path: Path,
    pt_ingested: Path,
    pt_tokenizer: Path,
    pt_pairs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """num_gpus > 1 re-launches the stage under torchrun (here: 2 CPU processes over gloo);
    the social stage draws its NT-Xent negatives from both ranks."""
    from transformers import AutoModel

    monkeypatch.setenv("TWHIN_BERT_CPU_RANKS", "1")  # CPU processes in place of GPUs

    cfg = tiny_cfg(
        mlm=ObjectiveTraining(micro_batch_size=2, peak_lr=2e-3, warmup_steps=1, steps=6),
        checkpoint_every=3,
        num_gpus=2,
        threads=1,
    )
    out = tmp_path / "ddp"
    m = run_pretrain(cfg, out, objective="mlm", ingested=pt_ingested, tokenizer=pt_tokenizer)
    assert m["world_size"] == 2 and m["steps"] == 6
    # Each step sees both ranks' micro-batches: ~2 x 2 rows x 64 tokens.
    assert m["non_padding_tokens"] > 0.9 * 6 * 2 * 2 * 64
    assert read_metrics(out)["world_size"] == 2
    assert AutoModel.from_pretrained(str(out)).config.num_hidden_layers == 2
    assert not list(out.glob("_pretrain_*"))

    cfg.mlm_social = ObjectiveTraining(micro_batch_size=4, peak_lr=1e-3, warmup_steps=1, steps=4)
    social = tmp_path / "ddp_social"
    m = run_pretrain(
        cfg,
        social,
        objective="mlm_social",
        ingested=pt_ingested,
        tokenizer=pt_tokenizer,
        pairs=pt_pairs,
        init_from=out,
    )
    assert m["world_size"] == 2 and m["steps"] == 4
    # 2 ranks x 4 pairs: each anchor has 2*8-1 = 15 candidates besides its partner's 1, so
    # the loss starts near ln(15) (a rank alone would sit near ln(7)).
    log = json.loads((social / "training_log.json").read_text())
    assert log[0]["social_loss"] > math.log(7) + 0.3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_training_on_the_gpu(
    tmp_path: Path, pt_ingested: Path, pt_tokenizer: Path, pt_pairs: Path
) -> None:
    """``make test-gpu``: both objectives train in bf16 under DeepSpeed on one GPU, and the
    export loads back on the CPU in float32."""
    from transformers import AutoModel

    cfg = tiny_cfg(num_gpus=1)
    mlm = tmp_path / "mlm"
    m = run_pretrain(cfg, mlm, objective="mlm", ingested=pt_ingested, tokenizer=pt_tokenizer)
    assert m["precision"] == "bf16" and m["world_size"] == 1
    first, last = head_tail(json.loads((mlm / "training_log.json").read_text()), "loss")
    assert last < first, f"bf16 MLM loss did not decrease on the GPU: {first:.3f} -> {last:.3f}"
    social = tmp_path / "mlm_social"
    m2 = run_pretrain(
        cfg, social, objective="mlm_social", ingested=pt_ingested, tokenizer=pt_tokenizer,
        pairs=pt_pairs, init_from=mlm,
    )  # fmt: skip
    assert m2["precision"] == "bf16" and math.isfinite(m2["final_social_loss"])
    model = AutoModel.from_pretrained(str(social), local_files_only=True)
    assert next(model.parameters()).dtype == torch.float32
