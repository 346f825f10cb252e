"""`twhin-bert bench embed`: tweets/s of ``embed_texts`` against ``transformers.pipeline``.

Both sides embed the same real tweets (``../shared/data`` when present, else generated text)
with the same randomly initialised XLM-R-style encoder (made locally, no download) and end
with the same pooled vectors: CLS, mean of the tweet's own tokens, and Combined. The
``feature-extraction`` pipeline returns token vectors per tweet, which the baseline pools the
same way (its padded rows cut to each tweet's length). Measured in one run, one thread
setting, fp32, after a warm-up; the vectors of both sides are compared.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GOAL = 3.0
_WORDS = (  # noqa: SIM905 - a readable word list for the generated fallback text
    "the a new game today love great music team win match vote city rain sun coffee work "
    "happy sad news people time day night world life best good bad really just like "
    "bonjour merci gracias hola ciao danke obrigado amor fútbol música noche día"
).split()


def find_shared_data() -> Path | None:
    """``../shared/data`` beside the working dir or the checkout, if there."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        cand = base.parent / "shared" / "data"
        if (cand / "umsab").is_dir() or (cand / "tweeteval").is_dir():
            return cand
    return None


def load_tweets(n: int, data_dir: Path | None, seed: int = 0) -> tuple[list[str], str]:
    """``n`` tweets: a seeded sample of the real multilingual tweets, else generated text.

    Returns:
        The texts and where they came from.
    """
    rng = random.Random(seed)
    if data_dir is not None:
        files = sorted(data_dir.glob("umsab/*/train_text.txt")) + sorted(
            data_dir.glob("tweeteval/emoji/train_text.txt")
        )
        texts = [t for f in files for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
        if texts:
            rng.shuffle(texts)
            while len(texts) < n:
                texts = texts + texts
            return texts[:n], str(data_dir)
    texts = []
    for _ in range(n):
        words = rng.choices(_WORDS, k=rng.randint(3, 40))
        texts.append(" ".join(words) + rng.choice(["", " #news", " @user", " http"]))
    return texts, "generated"


def make_model(
    texts: list[str], folder: Path, *, layers: int, hidden: int, vocab: int, seed: int
) -> None:
    """Trains our tokenizer on ``texts`` and saves a random XLM-R-style encoder beside it."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
    from twhin_bert.train_tokenizer.tokenizer import to_transformers, train_unigram

    tcfg = TrainTokenizerConfig(vocab_size=vocab, seed=seed)
    batches = (texts[i : i + 1000] for i in range(0, len(texts), 1000))
    tok = to_transformers(train_unigram(batches, tcfg, len(texts)), 128)
    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        max_position_embeddings=130,  # 128 + XLM-R's padding offset
        type_vocab_size=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))


def pipeline_embed(pipe: Any, tokenizer: Any, texts: list[str], batch_size: int) -> dict:
    """The baseline: pipeline token vectors, pooled to CLS / mean of own tokens / Combined."""
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=128)["input_ids"]]
    out = pipe(
        texts, batch_size=batch_size, tokenize_kwargs={"truncation": True, "max_length": 128}
    )
    cls, mean = [], []
    for vecs, n in zip(out, lengths, strict=True):
        a = np.asarray(vecs[0], dtype=np.float32)[:n]  # rows past n are batch padding
        cls.append(a[0])
        mean.append(a[1 : n - 1].mean(0) if n > 2 else np.zeros_like(a[0]))
    cls_a, mean_a = np.stack(cls), np.stack(mean)
    return {"cls": cls_a, "mean": mean_a, "combined": np.concatenate([cls_a, mean_a], 1)}


def main(
    quick: bool = False,
    n: int = 2000,
    layers: int = 4,
    hidden: int = 256,
    vocab: int = 8000,
    batch_size: int = 64,
    threads: int = 2,
    default_n: int | None = None,
    data: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs the benchmark and reports tweets/s and the speed-ups over the pipeline.

    Args:
        quick: Smoke-test sizes (200 tweets, 40 for the slow pipeline run, 2 x 128, vocab 1000).
        n: Tweets embedded by each side.
        layers: Encoder layers.
        hidden: Hidden size (heads = hidden / 64, FFN = 4 x hidden).
        vocab: Tokenizer vocabulary trained on the tweets.
        batch_size: Batch size of ``embed_texts`` and of the batched pipeline run.
        threads: torch CPU threads for every side.
        default_n: Tweets for the slow one-at-a-time pipeline run (its first ``default_n``
            tweets; default all ``n``); its tweets/s is compared as a rate.
        data: Folder of the real tweets (default: ``../shared/data`` if found).
        seed: Seed of the tweet sample and the model weights.

    Returns:
        The JSON summary (``met``: speed-up over the best pipeline setting >= 3).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer, pipeline

    from twhin_bert.common.bench import report
    from twhin_bert.embed.embed import KINDS, embed_texts, load_encoder

    if quick:
        n, layers, hidden, vocab = min(n, 200), 2, 128, 1000
        default_n = min(default_n or 40, n)
    default_n = min(default_n or n, n)
    torch.set_num_threads(threads)
    texts, source = load_tweets(n, Path(data) if data else find_shared_data(), seed)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        folder = Path(tmp)
        make_model(texts, folder, layers=layers, hidden=hidden, vocab=vocab, seed=seed)
        model, tok = load_encoder(folder, "cpu")
        pipe = pipeline(
            "feature-extraction",
            model=AutoModel.from_pretrained(str(folder)),
            tokenizer=AutoTokenizer.from_pretrained(str(folder)),
            device="cpu",
        )
        warm = texts[:16]
        embed_texts(None, warm, model=model, tokenizer=tok, batch_size=batch_size)
        pipeline_embed(pipe, tok, warm, 1)
        pipeline_embed(pipe, tok, warm, batch_size)

        rows, results = [], {}
        sides = {
            "embed_texts (ours)": (
                n,
                lambda: embed_texts(None, texts, model=model, tokenizer=tok, batch_size=batch_size),
            ),
            "pipeline, batch_size=1 (default)": (
                default_n,
                lambda: pipeline_embed(pipe, tok, texts[:default_n], 1),
            ),
            f"pipeline, batch_size={batch_size}": (
                n,
                lambda: pipeline_embed(pipe, tok, texts, batch_size),
            ),
        }
        for name, (count, fn) in sides.items():
            t0 = time.perf_counter()
            results[name] = fn()
            secs = time.perf_counter() - t0
            rows.append(
                {"method": name, "tweets": count, "seconds": secs, "tweets/s": count / secs}
            )

    ours = results["embed_texts (ours)"]
    # The same pooled vectors on every side (on the tweets each side embedded).
    diff = max(
        float(np.abs(ours[k][: len(res[k])] - res[k]).max())
        for res in results.values()
        for k in KINDS
    )
    speed = {r["method"]: r["tweets/s"] for r in rows}
    ours_tps = rows[0]["tweets/s"]
    vs_default = ours_tps / rows[1]["tweets/s"]
    vs_batched = ours_tps / rows[2]["tweets/s"]
    for r in rows:
        r["speedup of ours"] = ours_tps / r["tweets/s"]
    figures = {
        "tweets": n,
        "default_pipeline_tweets": default_n,
        "data": source,
        "model": f"xlm-r random {layers}x{hidden}, vocab {len(tok)}",
        "threads": threads,
        "ours_tweets_per_s": ours_tps,
        "pipeline_default_tweets_per_s": speed["pipeline, batch_size=1 (default)"],
        "pipeline_batched_tweets_per_s": rows[2]["tweets/s"],
        "speedup_vs_pipeline_default": vs_default,
        "speedup_vs_pipeline_batched": vs_batched,
        "speedup": min(vs_default, vs_batched),
        "max_abs_diff": diff,
    }
    return report(
        "embed",
        rows,
        figures,
        goal=f"tweets/s >= {GOAL:g}x transformers.pipeline('feature-extraction') (best setting), "
        "same pooled vectors",
        met=min(vs_default, vs_batched) >= GOAL and diff < 1e-3,
    )


if __name__ == "__main__":
    main(quick=True)
