"""The train_tokenizer stage: a SentencePiece-style Unigram tokenizer on language-resampled tweets.

The tokenizer follows XLM-R's design (Conneau et al., 2020, "Unsupervised Cross-lingual
Representation Learning at Scale", section 2; TwHIN-BERT uses XLM-R's tokenizer): NFKC
normalisation, whitespace split plus Metaspace (``▁`` marks a word start), a Unigram subword
model, special tokens ``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>`` (ids 0-4, so
``[CLS] = <s>`` and ``[SEP] = </s>``) and a post-processor that wraps every text as
``<s> text </s>``.

Languages are re-sampled before training as in XLM-R and TwHIN-BERT (:mod:`twhin_bert.common.lang`:
rare languages repeated, frequent ones sub-sampled, streamed). A seeded share of the tweets
is set aside first as the validation split, on which tokens per tweet and the unk rate are
measured.

The output is a Hugging Face fast-tokenizer folder that ``AutoTokenizer.from_pretrained``
loads offline.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from twhin_bert.common import io, schemas
from twhin_bert.common.artifacts import Ingested, TokenizerFolder
from twhin_bert.common.lang import UNKNOWN, copy_rates, count_languages
from twhin_bert.common.memory import release_free_memory
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import stage
from twhin_bert.train_tokenizer.config import TrainTokenizerConfig

log = logging.getLogger(__name__)

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
#: In XLM-R's order: <s>=0, <pad>=1, </s>=2, <unk>=3; <mask> follows.
SPECIAL_TOKENS = (BOS, PAD, EOS, UNK, MASK)


class ResampledCorpus:
    """Streams re-sampled training texts in batches and sets the validation split aside.

    Iterating it once yields lists of texts for ``Tokenizer.train_from_iterator``; afterwards
    ``valid`` holds the validation tweets and ``emitted`` the language mix actually produced.
    """

    def __init__(self, path: Path, cfg: TrainTokenizerConfig, counts: Mapping[str, int]) -> None:
        self.path = path
        self.cfg = cfg
        self.n_input = sum(counts.values())
        self.corpus_target = cfg.corpus_tweets or self.n_input
        self.rates = copy_rates(counts, cfg.alpha, self.corpus_target)
        self.valid: list[str] = []
        self.emitted: Counter[str] = Counter()

    def __iter__(self) -> Iterator[list[str]]:
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        f = schemas.open_parquet(str(self.path))
        row = 0
        bar = progress(total=self.n_input, desc="train_tokenizer: corpus", unit="tweet")
        for batch in f.iter_batches(columns=["text", "lang"], batch_size=cfg.batch_size):
            texts = batch.column(0).to_pylist()
            langs = [lang or UNKNOWN for lang in batch.column(1).to_pylist()]
            n = len(texts)
            for i, t in enumerate(texts):
                if t is None:
                    raise ValueError(
                        f"{self.path}: row {row + i + 1}: text is null (expected a string)"
                    )
            # Validation draw first, then the copies: both from one seeded stream, in file order.
            valid = rng.random(n) < cfg.valid_fraction
            rates = np.fromiter((self.rates[lang] for lang in langs), dtype=np.float64, count=n)
            copies = np.floor(rates).astype(np.int64) + (rng.random(n) < rates % 1.0)
            for i in np.flatnonzero(valid):
                if len(self.valid) < cfg.valid_max:
                    self.valid.append(texts[i])
                copies[i] = 0
            out = [t for t, c in zip(texts, copies.tolist(), strict=True) for _ in range(c)]
            for lang, c in zip(langs, copies.tolist(), strict=True):
                self.emitted[lang] += c
            row += n
            bar.update(n)
            if out:
                yield out
        bar.close()


def new_tokenizer() -> Any:
    """An untrained XLM-R-style pipeline: NFKC, whitespace + Metaspace, Unigram, <s> $A </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok


def add_post_processor(tok: Any) -> None:
    """Wraps single texts as ``<s> A </s>`` and pairs as ``<s> A </s></s> B </s>`` (RoBERTa)."""
    from tokenizers import processors

    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
        special_tokens=[(BOS, bos), (EOS, eos)],
    )


def train_unigram(
    batches: Iterable[list[str]], cfg: TrainTokenizerConfig, length: int | None = None
) -> Any:
    """Trains the Unigram model on streamed batches of texts.

    Args:
        batches: Lists of training texts (e.g. a :class:`ResampledCorpus`), read once.
        cfg: Vocabulary size and trainer settings.
        length: Expected number of texts (for progress only).

    Returns:
        The trained ``tokenizers.Tokenizer`` with its post-processor.
    """
    from tokenizers import AddedToken, trainers

    tok = new_tokenizer()
    trainer = trainers.UnigramTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        unk_token=UNK,
        max_piece_length=cfg.max_piece_length,
        shrinking_factor=cfg.shrinking_factor,
        n_sub_iterations=cfg.n_sub_iterations,
        show_progress=False,
    )
    tok.train_from_iterator(batches, trainer=trainer, length=length)
    release_free_memory()  # the trainer's tables (seed pieces, lattices) are freed by now
    # As in XLM-R, "<mask>" swallows the space before it ("a <mask>" masks the word "▁x").
    tok.add_special_tokens([AddedToken(MASK, lstrip=True, special=True, normalized=False)])
    add_post_processor(tok)
    return tok


def to_transformers(tok: Any, model_max_length: int) -> Any:
    """Wraps a ``tokenizers.Tokenizer`` as a transformers fast tokenizer with XLM-R's roles."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        cls_token=BOS,
        sep_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        model_max_length=model_max_length,
        padding_side="right",
    )


def load_pretrained(uri: str, model_max_length: int) -> Any:
    """Loads an existing tokenizer folder (local or gs://) offline and checks its roles.

    Raises:
        ValueError: The tokenizer is not a fast one or lacks a CLS/SEP/PAD/MASK/UNK token.
    """
    with io.local_path(uri) as local:
        if not Path(local).is_dir():
            raise FileNotFoundError(f"{uri}: pretrained tokenizer must be a folder")
        tok = TokenizerFolder(local).load()
    if not getattr(tok, "is_fast", False):
        raise ValueError(
            f"{uri}: expected a fast (tokenizer.json) tokenizer, got {type(tok).__name__}"
        )
    for role in ("cls_token", "sep_token", "pad_token", "mask_token", "unk_token"):
        if getattr(tok, role, None) is None:
            raise ValueError(f"{uri}: tokenizer has no {role} (needed by pretrain and embed)")
    tok.model_max_length = model_max_length
    return tok


def valid_stats(tok: Any, texts: list[str]) -> dict[str, float]:
    """Tokens per tweet (special tokens excluded) and the share of ``<unk>`` tokens."""
    if not texts:
        return {"tokens_per_tweet": math.nan, "unk_rate": math.nan, "chars_per_token": math.nan}
    enc = tok(texts, add_special_tokens=False, truncation=False)["input_ids"]
    n_tokens = sum(len(ids) for ids in enc)
    unk = tok.unk_token_id
    n_unk = sum(1 for ids in enc for i in ids if i == unk)
    return {
        "tokens_per_tweet": n_tokens / len(texts),
        "unk_rate": n_unk / max(n_tokens, 1),
        "chars_per_token": sum(len(t) for t in texts) / max(n_tokens, 1),
    }


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {lang: round(n / total, 6) for lang, n in sorted(counts.items())}


@stage("train_tokenizer")
def run_train_tokenizer(cfg: TrainTokenizerConfig, out_dir: Path, *, ingested: Path) -> dict:
    """Trains (or loads) the tokenizer and saves it as a Hugging Face fast-tokenizer folder.

    Args:
        cfg: The stage config.
        out_dir: Output folder (the staging folder when called through the stage wrapper).
        ingested: The ingest folder (or its tweets Parquet file).

    Returns:
        Metrics: vocab size, corpus tweets, tokens per tweet and unk rate on the validation
        split, language shares before and after re-sampling.
    """
    path = Ingested(ingested).tweets_path()
    counts = count_languages(path)
    if not counts:
        raise ValueError(f"{path}: no tweets to train the tokenizer on")
    corpus = ResampledCorpus(path, cfg, counts)
    if cfg.pretrained:
        log.info("train_tokenizer: using the pretrained tokenizer %s", cfg.pretrained)
        hf = load_pretrained(cfg.pretrained, cfg.model_max_length)
        for _ in corpus:  # only to draw the same validation split for the metrics
            pass
    else:
        tok = train_unigram(corpus, cfg, corpus.corpus_target)
        hf = to_transformers(tok, cfg.model_max_length)
        if len(hf) < cfg.vocab_size:
            log.warning(
                "train_tokenizer: corpus too small for %d pieces, got %d", cfg.vocab_size, len(hf)
            )
    TokenizerFolder(out_dir).save(hf)
    metrics: dict[str, Any] = {
        "vocab_size": len(hf),
        "pretrained": bool(cfg.pretrained),
        "input_tweets": corpus.n_input,
        # A pretrained tokenizer is not trained: its corpus is empty (the validation split is drawn).
        "corpus_tweets": 0 if cfg.pretrained else sum(corpus.emitted.values()),
        "valid_tweets": len(corpus.valid),
        "languages": len(counts),
        **valid_stats(hf, corpus.valid),
        "lang_share_before": _shares(counts),
    }
    if not cfg.pretrained:
        metrics["lang_share_after"] = _shares(corpus.emitted)
    log.info(
        "train_tokenizer: vocab %d, %d corpus tweets, %.2f tokens/tweet, unk rate %.4f",
        metrics["vocab_size"],
        metrics["corpus_tweets"],
        metrics["tokens_per_tweet"],
        metrics["unk_rate"],
    )
    return metrics
