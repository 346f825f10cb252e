"""Classifiers shared by the hashtag task and the external benchmarks.

Three ways to score one train/val/test split:
- feature-based: logistic regression on frozen, z-scored encoder features (C chosen on val);
- the floor: TF-IDF (character 2-4-grams, language-agnostic) + logistic regression;
- fine-tuned: a linear layer on the [CLS] output, encoder unfrozen, best epoch on validation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twhin_bert.common.encoder import resolve_device
from twhin_bert.evaluate.config import FinetuneConfig
from twhin_bert.evaluate.features import zscore
from twhin_bert.evaluate.scoring import classification_score

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Texts and integer labels of one task's train / val / test splits."""

    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_names: list[str]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Examples per split."""
        return {
            "train": len(self.train_texts),
            "val": len(self.val_texts),
            "test": len(self.test_texts),
        }


@dataclass
class Scored:
    """One classifier's result on one split set."""

    test: float
    val: float
    y_pred: np.ndarray
    curve: list[dict[str, float]] = field(default_factory=list)


def _lr(c: float, max_iter: int, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=max_iter, random_state=seed)


def limit_threads(n: int) -> Any:
    """Caps BLAS and OpenMP threads of scikit-learn fits (a context manager)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def _fit_best_c(
    xtr: Any,
    ytr: np.ndarray,
    xva: Any,
    yva: np.ndarray,
    xte: Any,
    yte: np.ndarray,
    *,
    metric: str,
    c_grid: Sequence[float],
    max_iter: int,
    seed: int,
    threads: int = 1,
) -> Scored:
    best: Scored | None = None
    for c in c_grid:
        with limit_threads(threads):
            clf = _lr(c, max_iter, seed).fit(xtr, ytr)
        val = classification_score(yva, clf.predict(xva), metric) if len(yva) else 0.0
        if best is None or val > best.val:
            pred = clf.predict(xte)
            best = Scored(test=classification_score(yte, pred, metric), val=val, y_pred=pred)
    assert best is not None
    return best


def feature_classifier(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    metric: str,
    c_grid: Sequence[float],
    max_iter: int,
    seed: int,
    threads: int = 1,
) -> Scored:
    """Logistic regression on frozen features (z-scored on train), C picked on validation."""
    xtr, xva, xte = zscore(xtr, xva, xte)
    return _fit_best_c(
        xtr,
        ytr,
        xva,
        yva,
        xte,
        yte,
        metric=metric,
        c_grid=c_grid,
        max_iter=max_iter,
        seed=seed,
        threads=threads,
    )


def tfidf_vectorizer() -> Any:
    """The floor's text representation: TF-IDF over character 2-4-grams within word bounds."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), min_df=1, max_features=100_000, sublinear_tf=True
    )


def tfidf_classifier(
    splits: Splits,
    *,
    metric: str,
    c_grid: Sequence[float],
    max_iter: int,
    seed: int,
    threads: int = 1,
) -> Scored:
    """The floor: TF-IDF + logistic regression on exactly the same split."""
    vec = tfidf_vectorizer().fit(splits.train_texts)
    xtr = vec.transform(splits.train_texts)
    xva = vec.transform(splits.val_texts)
    xte = vec.transform(splits.test_texts)
    return _fit_best_c(
        xtr,
        splits.train_labels,
        xva,
        splits.val_labels,
        xte,
        splits.test_labels,
        metric=metric,
        c_grid=c_grid,
        max_iter=max_iter,
        seed=seed,
        threads=threads,
    )


def sample_per_class(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``shots`` examples per class (all of a class that has fewer), shuffled."""
    picked: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=min(shots, idx.size), replace=False))
    out = np.concatenate(picked)
    rng.shuffle(out)
    return out


def few_shot_curve(
    labels: np.ndarray,
    fit_predict_score: Callable[[np.ndarray, int], float],
    *,
    shots: Sequence[int],
    seeds: int,
    base_seed: int,
) -> dict[str, float]:
    """Median over seeds of ``fit_predict_score(train_indices, seed)`` for each shot count.

    The same seeded draws are used by every model and by the floor, so points compare.
    """
    out: dict[str, float] = {}
    for k in shots:
        vals = []
        for s in range(seeds):
            rng = np.random.default_rng([base_seed, k, s])
            idx = sample_per_class(labels, k, rng)
            if np.unique(labels[idx]).size < 2:
                continue
            vals.append(fit_predict_score(idx, s))
        if vals:
            out[str(k)] = float(np.median(vals))
    return out


def finetune_classifier(
    model_dir: Path,
    splits: Splits,
    *,
    cfg: FinetuneConfig,
    metric: str,
    max_length: int,
    device: str,
    seed: int,
) -> Scored:
    """Fine-tunes the encoder with a linear head on [CLS]; test score at the best val epoch.

    Runs ``cfg.seeds`` seeds and returns the run with the median test score.
    """
    runs = [
        _finetune_once(
            model_dir,
            splits,
            cfg=cfg,
            metric=metric,
            max_length=max_length,
            device=device,
            seed=seed + 1000 * s,
        )
        for s in range(cfg.seeds)
    ]
    runs.sort(key=lambda r: r.test)
    return runs[(len(runs) - 1) // 2]


def _finetune_once(
    model_dir: Path,
    splits: Splits,
    *,
    cfg: FinetuneConfig,
    metric: str,
    max_length: int,
    device: str,
    seed: int,
) -> Scored:
    import torch
    from transformers import AutoModel, AutoTokenizer

    dev = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    encoder = AutoModel.from_pretrained(str(model_dir)).to(dev)
    n_classes = (
        int(
            max(
                splits.train_labels.max(),
                splits.val_labels.max(initial=0),
                splits.test_labels.max(initial=0),
            )
        )
        + 1
    )
    head = torch.nn.Linear(encoder.config.hidden_size, n_classes).to(dev)
    dropout = torch.nn.Dropout(0.1)
    opt = torch.optim.AdamW(
        [
            {"params": encoder.parameters(), "lr": cfg.lr},
            {"params": head.parameters(), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )

    train_idx = np.arange(len(splits.train_texts))
    if train_idx.size > cfg.max_train:
        train_idx = rng.choice(train_idx, size=cfg.max_train, replace=False)

    def batches(texts: list[str], order: np.ndarray) -> Any:
        for i in range(0, order.size, cfg.batch_size):
            sel = order[i : i + cfg.batch_size]
            enc = tok(
                [texts[j] for j in sel],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            yield (
                sel,
                {k: v.to(dev) for k, v in enc.items() if k in ("input_ids", "attention_mask")},
            )

    def predict(texts: list[str]) -> np.ndarray:
        encoder.eval()
        preds = np.zeros(len(texts), dtype=np.int64)
        with torch.no_grad():
            for sel, enc in batches(texts, np.arange(len(texts))):
                logits = head(encoder(**enc).last_hidden_state[:, 0])
                preds[sel] = logits.argmax(-1).cpu().numpy()
        return preds

    labels = torch.as_tensor(splits.train_labels, dtype=torch.long)
    best: Scored | None = None
    curve: list[dict[str, float]] = []
    for epoch in range(1, cfg.epochs + 1):
        encoder.train()
        total, n = 0.0, 0
        for sel, enc in batches(splits.train_texts, rng.permutation(train_idx)):
            logits = head(dropout(encoder(**enc).last_hidden_state[:, 0]))
            loss = torch.nn.functional.cross_entropy(logits, labels[sel].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sel)
            n += len(sel)
        val = classification_score(splits.val_labels, predict(splits.val_texts), metric)
        curve.append({"epoch": epoch, "loss": total / max(n, 1), "val": val})
        log.info(
            "fine-tune %s epoch %d: loss %.4f val %s %.4f",
            model_dir.name,
            epoch,
            total / max(n, 1),
            metric,
            val,
        )
        if best is None or val > best.val:
            pred = predict(splits.test_texts)
            best = Scored(
                test=classification_score(splits.test_labels, pred, metric), val=val, y_pred=pred
            )
    assert best is not None
    best.curve = curve
    return best
