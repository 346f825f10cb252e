"""``twhin-bert bench pretrain``: training throughput of our trainer against a plain HF baseline.

Ours: the pretrain stage's DeepSpeed trainer (packed tweets, block-diagonal attention, MLM
logits only at the masked positions). Baseline, measured in the same run on the same tweets,
tokenizer and encoder config: the strongest setup a careful user would pick with
``transformers.Trainer`` -- one tweet per row, ``DataCollatorForLanguageModeling`` padding
each batch to its longest tweet (dynamic padding) and ``group_by_length`` sampling (rows of
similar length batched together, from megabatches of 50 batches over every tweet), with the
full-vocabulary MLM head of ``XLMRobertaForMaskedLM``. The figure is *non-padding* training
tokens per second (the first, warm-up step of each excluded); the goal is a speed-up of at
least 2x.

How far from the machine's limit: a large fp32 ``torch.matmul`` is timed in the same run
(same threads) for the achieved peak FLOP/s, and each trainer's model FLOP/s is
6 x non-embedding parameters x non-padding tokens/s (the MFU estimate; attention scores and
the MLM head are not counted), reported as a share of that peak.

The tweets are real ones (TweetEval + UMSAB layout: the ``data`` option or
``$TWHIN_BERT_BENCH_DATA``) when given, else generated text; the tokenizer is a BPE trained here with a realistic vocabulary (32K by
default) so that the full-vocabulary head costs what it does in reality.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: UMSAB folder -> ISO 639-1
UMSAB_LANGS = {
    "arabic": "ar",
    "english": "en",
    "french": "fr",
    "german": "de",
    "hindi": "hi",
    "italian": "it",
    "portuguese": "pt",
    "spanish": "es",
}
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
#: Goal: ours over the strongest HF Trainer setup, in non-padding training tokens/s.
GOAL = 2.0


def matmul_peak_flops(n: int = 2048, repeats: int = 3) -> float:
    """Achieved FLOP/s of an ``n x n`` fp32 ``torch.matmul`` at the current thread count (best
    of ``repeats`` after a warm-up): the measured peak the MFU is a share of."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def non_embedding_params(cfg: Any, tok_dir: Path) -> int:
    """Parameters of the encoder's transformer layers (embeddings and MLM head excluded)."""
    from transformers import XLMRobertaModel

    from twhin_bert.pretrain.data import load_tokenizer
    from twhin_bert.pretrain.model import encoder_config

    _, specials = load_tokenizer(tok_dir)
    model = XLMRobertaModel(encoder_config(cfg.arch, specials, cfg.max_seq_len))
    return sum(p.numel() for p in model.encoder.parameters())


def real_tweets(
    limit: int | None = None, seed: int = 0, data: str | Path | None = None
) -> list[tuple[str, str]]:
    """``(text, lang)`` of the real tweets (shuffled), or generated ones.

    Args:
        limit: At most this many (None: all, about 120K).
        seed: Shuffle seed.
        data: Folder in the TweetEval/UMSAB layout (default ``$TWHIN_BERT_BENCH_DATA``).
    """
    from twhin_bert.common.bench import tweets_dir

    root = tweets_dir(data)
    rows: list[tuple[str, str]] = []
    if root is not None:
        for folder, lang in UMSAB_LANGS.items():
            for f in sorted((root / "umsab" / folder).glob("*_text.txt")):
                rows += [(t, lang) for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
        for f in sorted((root / "tweeteval").glob("*/*_text.txt")):
            rows += [(t, "en") for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
    if not rows:  # no shared data: Zipf-ish generated words
        rng = random.Random(seed)
        words = [f"w{i}" for i in range(5000)]
        weights = [1.0 / (i + 1) for i in range(len(words))]
        n = limit or 20000
        rows = [
            (" ".join(rng.choices(words, weights, k=rng.randint(4, 30))), "xx") for _ in range(n)
        ]
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


def write_tweets(rows: list[tuple[str, str]], folder: Path) -> Path:
    """Writes ``rows`` as an ingest-style folder holding only tweets (schema ``tweets``)."""
    import pyarrow as pa

    from twhin_bert.common.artifacts import Ingested

    n = len(rows)
    table = pa.table(
        {
            "tweet_id": [f"t{i}" for i in range(n)],
            "author_id": [None] * n,
            "text": [t for t, _ in rows],
            "lang": [lang for _, lang in rows],
            "hashtags": [[] for _ in range(n)],
            "created_at": pa.nulls(n, pa.timestamp("ms", tz="UTC")),
        }
    )
    Ingested(folder).write(table)
    return folder


def train_tokenizer(texts: list[str], vocab_size: int, folder: Path) -> Path:
    """A quick XLM-R style fast tokenizer (BPE over Metaspace pieces) saved to ``folder``.

    Specials: ``<s>`` = CLS/BOS (0), ``<pad>`` (1), ``</s>`` = SEP/EOS (2), ``<unk>`` (3),
    ``<mask>`` (4) — the ids XLM-R uses for the first four.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2, show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )
    fast.save_pretrained(str(folder))
    return folder


DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE")


def _in_fresh_process(fn: Any, *args: Any) -> Any:
    """Runs ``fn(*args)`` in a spawned process with no distributed environment."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    saved = {k: os.environ.pop(k) for k in DIST_ENV if k in os.environ}
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(fn, *args).result()
    finally:
        os.environ.update(saved)


def _baseline(
    rows: list[tuple[str, str]],
    tok_dir: Path,
    cfg: Any,
    steps: int,
    batch_size: int,
    work: Path,
    threads: int,
) -> dict[str, float]:
    """HF Trainer + DataCollatorForLanguageModeling (dynamic padding) + group_by_length, one
    tweet per row; the sampler sees every tweet in ``rows``, the trainer runs ``steps``."""
    import torch

    from twhin_bert.common.compute import use_threads

    use_threads(threads)
    from transformers import (
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        XLMRobertaForMaskedLM,
    )

    from twhin_bert.pretrain.data import load_tokenizer
    from twhin_bert.pretrain.model import encoder_config

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    _, specials = load_tokenizer(tok_dir)
    texts = [t for t, _ in rows]
    enc = tok(texts, truncation=True, max_length=cfg.max_seq_len)  # no padding here
    data = [
        {"input_ids": i, "attention_mask": m}
        for i, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)
    ]

    counted: list[int] = []
    slots: list[int] = []
    base = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=cfg.mask_prob)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        out = base(features)  # pads to the longest row of the batch
        counted.append(int(out["attention_mask"].sum()))
        slots.append(int(out["input_ids"].numel()))
        return out

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    torch.manual_seed(cfg.seed)
    model = XLMRobertaForMaskedLM(encoder_config(cfg.arch, specials, cfg.max_seq_len))
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(work / "hf"),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=cfg.mlm.peak_lr,
        warmup_steps=1,
        weight_decay=cfg.weight_decay,
        report_to="none",
        save_strategy="no",
        logging_steps=steps,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length",
        use_cpu=not cuda,
        bf16=cuda,
        seed=cfg.seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[Clock()]
    )
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    timed = sum(counted[1 : len(stamps)])
    seconds = stamps[-1] - stamps[0] if len(stamps) > 1 else total
    return {
        "tokens_per_s": timed / seconds if len(stamps) > 1 else sum(counted) / total,
        "slot_fill": sum(counted) / sum(slots),
        "seconds": total,
    }


def main(
    quick: bool = False,
    steps: int | None = None,
    batch_size: int = 32,
    vocab_size: int | None = None,
    tweets: int | None = None,
    arch: str = "tiny",
    threads: int = 2,
    seed: int = 0,
    data: str | None = None,
) -> dict[str, Any]:
    """Measures non-padding training tokens/s of ours vs the HF Trainer baseline.

    Args:
        quick: Smoke-test sizes (a few steps, small vocabulary).
        steps: Optimizer steps per trainer (default 12; quick 3).
        batch_size: Rows per step for both (packed rows for ours, tweets for the baseline).
        vocab_size: BPE vocabulary (default 32000; quick 4000).
        tweets: Tweets used (default 60000; quick 4000).
        arch: ``tiny`` (2 x 128) or ``base`` (12 x 768).
        threads: torch CPU threads for both and for the matmul peak.
        seed: Seed of everything.
        data: Real tweets, TweetEval/UMSAB layout (default ``$TWHIN_BERT_BENCH_DATA``;
            neither: generated text).

    Returns:
        The JSON summary (see :func:`twhin_bert.common.bench.report`).
    """
    import torch

    from twhin_bert.common.bench import report
    from twhin_bert.common.compute import use_threads
    from twhin_bert.pretrain.config import BASE_ARCH, ArchConfig, ObjectiveTraining, PretrainConfig
    from twhin_bert.pretrain.inputs import PretrainInputs
    from twhin_bert.pretrain.train import train

    steps = steps or (3 if quick else 12)
    vocab_size = vocab_size or (4000 if quick else 32000)
    n_tweets = tweets or (4000 if quick else 60000)
    use_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = real_tweets(n_tweets, seed, data)
    arch_cfg = BASE_ARCH if arch == "base" else ArchConfig()
    cfg = PretrainConfig(
        arch=arch_cfg,
        mlm=ObjectiveTraining(
            micro_batch_size=batch_size, peak_lr=5e-4, warmup_steps=1, steps=steps + 1
        ),
        checkpoint_every=10**6,
        threads=threads,
        seed=seed,
        read_batch_rows=512,
        shuffle_buffer=1024,
    )
    with tempfile.TemporaryDirectory(prefix="twhin-bench-pretrain-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        tok_dir = train_tokenizer([t for t, _ in rows], vocab_size, work / "tokenizer")
        ingested = write_tweets(rows, work / "ingested")
        log.info("bench pretrain: data + tokenizer in %.1fs", time.perf_counter() - t0)
        # The baseline first, in a fresh process: HF Trainer must not see the process group
        # our DeepSpeed run creates (it would wrap the model in DDP and slow itself down).
        # It gets the same number of timed steps (its first is a warm-up too).
        peak = [matmul_peak_flops()]
        base = _in_fresh_process(
            _baseline, rows, tok_dir, cfg, steps + 1, batch_size, work, threads
        )
        prev = os.environ.get("TWHIN_BERT_TRACKING")
        os.environ["TWHIN_BERT_TRACKING"] = "0"
        try:
            t1 = time.perf_counter()
            ours = train(cfg, work / "ours", PretrainInputs("mlm", ingested, tok_dir))
            ours_s = time.perf_counter() - t1
        finally:
            if prev is None:
                os.environ.pop("TWHIN_BERT_TRACKING", None)
            else:
                os.environ["TWHIN_BERT_TRACKING"] = prev
        vocab = len(__import__("transformers").AutoTokenizer.from_pretrained(str(tok_dir)))
        params = non_embedding_params(cfg, tok_dir)
        peak.append(matmul_peak_flops())  # before and after: the best is the machine's
    ours_tps = float(ours["tokens_per_second"])
    ours_fill = ours["non_padding_tokens"] / ((steps + 1) * batch_size * cfg.max_seq_len)
    speedup = ours_tps / base["tokens_per_s"]
    peak_flops = max(peak)
    ours_mfu = 6 * params * ours_tps / peak_flops
    base_mfu = 6 * params * base["tokens_per_s"] / peak_flops
    rows_out = [
        {
            "trainer": "HF Trainer, dynamic padding, group_by_length, full-vocab head",
            "non-pad tokens/s": base["tokens_per_s"],
            "slot fill": base["slot_fill"],
            "MFU": base_mfu,
            "seconds": base["seconds"],
        },
        {
            "trainer": "ours: DeepSpeed, packed, sparse MLM head",
            "non-pad tokens/s": ours_tps,
            "slot fill": ours_fill,
            "MFU": ours_mfu,
            "seconds": ours_s,
        },
    ]
    return report(
        "pretrain",
        rows_out,
        {
            "ours_tokens_per_s": ours_tps,
            "baseline_tokens_per_s": base["tokens_per_s"],
            "speedup": speedup,
            "ours_slot_fill": ours_fill,
            "baseline_slot_fill": base["slot_fill"],
            "non_embedding_params": params,
            "matmul_peak_flops": peak_flops,
            "ours_model_flops_per_s": 6 * params * ours_tps,
            "ours_mfu": ours_mfu,
            "baseline_mfu": base_mfu,
            "threads": threads,
            "steps": steps,
            "batch_size": batch_size,
            "vocab_size": vocab,
            "arch": arch,
            "tweets": len(rows),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "quick": quick,
        },
        goal=f"speedup >= {GOAL:g}x (non-padding training tokens/s) over HF Trainer with dynamic "
        "padding and group_by_length",
        met=speedup >= GOAL,
    )
