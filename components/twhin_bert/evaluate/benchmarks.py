"""External classification benchmarks in the TweetEval / UMSAB folder format.

A benchmark folder holds ``{split}_text.txt`` (one tweet per line) and ``{split}_labels.txt``
(its integer label on the same line) for the splits ``train``, ``val``, ``test`` it has, and
optionally ``mapping.txt`` (``id<TAB>name``). Missing splits are carved out of existing ones,
seeded (``carve_fraction`` each time), and the choice is recorded in the results' ``notes``:

- no train (TweetEval sentiment): val is split into train (1 - carve) and val (carve);
- no test (UMSAB): val becomes test, and val is carved out of train (carve);
- only one split: it is split into train / val / test.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twhin_bert.common.compute import resolve_cpus
from twhin_bert.evaluate.classify import (
    Splits,
    feature_classifier,
    few_shot_curve,
    finetune_classifier,
    limit_threads,
    tfidf_classifier,
    tfidf_vectorizer,
)
from twhin_bert.evaluate.config import EvaluateConfig
from twhin_bert.evaluate.features import FrozenEncoder, zscore
from twhin_bert.evaluate.results import Score, TaskResult
from twhin_bert.evaluate.scoring import classification_score

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class BenchmarkError(ValueError):
    """A benchmark folder that does not follow the format (names the file and row)."""


@dataclass
class RawBenchmark:
    """A benchmark as read from disk: the splits it has and its label names."""

    name: str
    folder: Path
    splits: dict[str, tuple[list[str], np.ndarray]]
    label_names: list[str]


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # final newline (some files lack it)
    return [ln.rstrip("\r") for ln in lines]


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """``"name=path"`` -> (name, path); a bare path -> (None, path)."""
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        return name.strip(), Path(path.strip())
    return None, Path(spec)


def benchmark_names(specs: list[str]) -> list[tuple[str, Path]]:
    """Names for benchmark folders: the given name, else the folder name, else (on a clash)
    ``<parent>_<folder>`` (e.g. ``umsab_english``)."""
    parsed = [parse_spec(s) for s in specs]
    base = [n or p.name for n, p in parsed]
    out: list[tuple[str, Path]] = []
    for (given, path), b in zip(parsed, base, strict=True):
        name = given or (f"{path.parent.name}_{path.name}" if base.count(b) > 1 else b)
        out.append((name, path))
    names = [n for n, _ in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise BenchmarkError(f"benchmark names clash: {sorted(dup)}; pass them as name=path")
    return out


def read_benchmark(folder: Path, name: str | None = None) -> RawBenchmark:
    """Reads every split present in a TweetEval/UMSAB-style folder.

    Raises:
        BenchmarkError: No split, a text file without its labels, line counts that differ,
            or a label that is not an integer (message names file and row).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: benchmark folder not found")
    splits: dict[str, tuple[list[str], np.ndarray]] = {}
    for split in SPLITS:
        tf, lf = folder / f"{split}_text.txt", folder / f"{split}_labels.txt"
        if not tf.exists() and not lf.exists():
            continue
        if not (tf.exists() and lf.exists()):
            missing = lf if tf.exists() else tf
            raise BenchmarkError(f"{missing}: missing (its {split} split needs text and labels)")
        texts, raw_labels = _lines(tf), _lines(lf)
        if len(texts) != len(raw_labels):
            raise BenchmarkError(
                f"{tf}: {len(texts)} lines but {lf} has {len(raw_labels)}; expected one label per tweet"
            )
        labels = np.empty(len(raw_labels), dtype=np.int64)
        for i, v in enumerate(raw_labels):
            try:
                labels[i] = int(v.strip())
            except ValueError:
                raise BenchmarkError(
                    f"{lf}: row {i + 1}: expected an integer label, got {v!r}"
                ) from None
            if labels[i] < 0:
                raise BenchmarkError(f"{lf}: row {i + 1}: expected a label >= 0, got {labels[i]}")
        splits[split] = (texts, labels)
    if not splits:
        raise BenchmarkError(f"{folder}: no {{train,val,test}}_text.txt / _labels.txt files")
    n_classes = int(max(lab.max(initial=0) for _, lab in splits.values())) + 1
    names = [str(i) for i in range(n_classes)]
    mapping = folder / "mapping.txt"
    if mapping.exists():
        for row, line in enumerate(_lines(mapping), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            try:
                idx = int(parts[0])
            except ValueError:
                raise BenchmarkError(
                    f"{mapping}: row {row}: expected 'id<TAB>name', got {line!r}"
                ) from None
            if idx >= len(names):
                names.extend(str(i) for i in range(len(names), idx + 1))
            names[idx] = parts[-1].strip()
    return RawBenchmark(name=name or folder.name, folder=folder, splits=splits, label_names=names)


def _cap(
    texts: list[str], labels: np.ndarray, cap: int, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    if len(texts) <= cap:
        return texts, labels
    idx = np.sort(rng.choice(len(texts), size=cap, replace=False))
    return [texts[i] for i in idx], labels[idx]


def _carve(
    texts: list[str], labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    perm = rng.permutation(len(texts))
    n_out = max(1, round(fraction * len(texts)))
    keep, out = np.sort(perm[n_out:]), np.sort(perm[:n_out])
    return ([texts[i] for i in keep], labels[keep]), ([texts[i] for i in out], labels[out])


def make_splits(raw: RawBenchmark, cfg: EvaluateConfig) -> Splits:
    """Train / val / test of a benchmark with missing splits carved out and caps applied."""
    bc = cfg.benchmarks
    rng = np.random.default_rng([cfg.seed, 17])
    s = dict(raw.splits)
    notes: list[str] = []
    h = bc.carve_fraction
    if "train" not in s and "test" not in s:
        (rest, test) = _carve(*s["val"], h, rng)
        s["test"] = test
        s["train"], s["val"] = _carve(*rest, h, rng)
        notes.append(f"only val present: split into train/val/test ({h:.0%} carved each time)")
    elif "train" not in s and "val" not in s:
        (rest, test) = _carve(*s["test"], h, rng)
        s["test"] = test
        s["train"], s["val"] = _carve(*rest, h, rng)
        notes.append(f"only test present: split into train/val/test ({h:.0%} carved each time)")
    elif set(s) == {"train"}:
        (rest, test) = _carve(*s["train"], h, rng)
        s["test"] = test
        s["train"], s["val"] = _carve(*rest, h, rng)
        notes.append(f"only train present: split into train/val/test ({h:.0%} carved each time)")
    elif "train" not in s:
        s["train"], s["val"] = _carve(*s["val"], h, rng)
        notes.append(f"no train split: val split into train ({1 - h:.0%}) and val ({h:.0%})")
    elif "test" not in s:
        s["test"] = s["val"]
        s["train"], s["val"] = _carve(*s["train"], h, rng)
        notes.append(f"no test split: val used as test, val carved from train ({h:.0%})")
    elif "val" not in s:
        s["train"], s["val"] = _carve(*s["train"], h, rng)
        notes.append(f"no val split: val carved from train ({h:.0%})")
    tr = _cap(*s["train"], bc.max_train, rng)
    va = _cap(*s["val"], bc.max_val, rng)
    te = _cap(*s["test"], bc.max_test, rng)
    return Splits(tr[0], tr[1], va[0], va[1], te[0], te[1], raw.label_names, notes)


def score_splits(
    splits: Splits,
    *,
    metric: str,
    encoders: Mapping[str, FrozenEncoder],
    model_dirs: Mapping[str, Path],
    cfg: EvaluateConfig,
    few_shot: bool,
    finetune: bool = True,
) -> tuple[dict[str, Score], Score, dict[str, np.ndarray]]:
    """Scores one classification task for every model and its TF-IDF floor on the same split.

    Returns:
        ``(per_model, floor, predictions)``: per model the primary mode's test score, the
        variants ``feature_<metric>``, ``feature_val_<metric>``, ``finetune_<metric>``,
        ``finetune_val_<metric>``, the fine-tuning curve and the few-shot curve; the floor's
        score (variant ``tfidf_<metric>``) and few-shot curve; each model's primary-mode test
        predictions (for confusion matrices).
    """
    lr_kw = {
        "c_grid": cfg.lr_c_grid,
        "max_iter": cfg.lr_max_iter,
        "seed": cfg.seed,
        "threads": resolve_cpus(cfg.threads),
    }
    per_model: dict[str, Score] = {}
    preds: dict[str, np.ndarray] = {}
    ytr, yva, yte = splits.train_labels, splits.val_labels, splits.test_labels
    for name, enc in encoders.items():
        xtr = enc.embed(splits.train_texts, cfg.pooling)
        xva = enc.embed(splits.val_texts, cfg.pooling)
        xte = enc.embed(splits.test_texts, cfg.pooling)
        feat = feature_classifier(xtr, ytr, xva, yva, xte, yte, metric=metric, **lr_kw)
        res = Score(
            value=None,
            variants={f"feature_{metric}": feat.test, f"feature_val_{metric}": feat.val},
        )
        chosen = feat
        if finetune and cfg.finetune.enabled:
            ft = finetune_classifier(
                model_dirs[name],
                splits,
                cfg=cfg.finetune,
                metric=metric,
                max_length=cfg.max_length,
                device=cfg.device,
                seed=cfg.seed,
            )
            res.variants[f"finetune_{metric}"] = ft.test
            res.variants[f"finetune_val_{metric}"] = ft.val
            res.training = ft.curve
            if cfg.primary_mode == "finetune":
                chosen = ft
        res.value = chosen.test
        preds[name] = chosen.y_pred
        if few_shot:
            ztr, zte = zscore(xtr, xte)

            def fs(idx: np.ndarray, s: int, ztr: np.ndarray = ztr, zte: np.ndarray = zte) -> float:
                from sklearn.linear_model import LogisticRegression

                clf = LogisticRegression(C=1.0, max_iter=cfg.lr_max_iter, random_state=s)
                with limit_threads(resolve_cpus(cfg.threads)):
                    clf.fit(ztr[idx], ytr[idx])
                return classification_score(yte, clf.predict(zte), metric)

            res.few_shot = few_shot_curve(
                ytr,
                fs,
                shots=cfg.benchmarks.few_shot,
                seeds=cfg.benchmarks.few_shot_seeds,
                base_seed=cfg.seed,
            )
        per_model[name] = res

    tf = tfidf_classifier(splits, metric=metric, **(lr_kw | {"c_grid": cfg.tfidf_c_grid}))
    floor = Score(value=tf.test, variants={f"tfidf_{metric}": tf.test})
    if few_shot:

        def fs_tfidf(idx: np.ndarray, s: int) -> float:
            from sklearn.linear_model import LogisticRegression

            texts = [splits.train_texts[i] for i in idx]
            vec = tfidf_vectorizer().fit(texts)
            clf = LogisticRegression(
                C=cfg.tfidf_c_grid[0], max_iter=cfg.lr_max_iter, random_state=s
            )
            with limit_threads(resolve_cpus(cfg.threads)):
                clf.fit(vec.transform(texts), ytr[idx])
            return classification_score(yte, clf.predict(vec.transform(splits.test_texts)), metric)

        floor.few_shot = few_shot_curve(
            ytr,
            fs_tfidf,
            shots=cfg.benchmarks.few_shot,
            seeds=cfg.benchmarks.few_shot_seeds,
            base_seed=cfg.seed,
        )
    return per_model, floor, preds


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Confusion matrix, rows = true class, columns = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m.tolist()


def run_benchmarks(
    specs: list[str],
    *,
    encoders: Mapping[str, FrozenEncoder],
    model_dirs: Mapping[str, Path],
    cfg: EvaluateConfig,
) -> tuple[list[TaskResult], dict[str, Any]]:
    """Runs every benchmark folder.

    Returns:
        ``(tasks, confusion)``: one task per benchmark (every model and the TF-IDF floor;
        ``info`` with metric, folder, counts, classes and notes) and the candidate's
        confusion matrix of the main benchmark (empty without benchmarks).
    """
    tasks: list[TaskResult] = []
    conf: dict[str, Any] = {}
    named = benchmark_names(specs)
    main = cfg.benchmarks.main or (named[0][0] if named else None)
    if main is not None and named and main not in {n for n, _ in named}:
        raise BenchmarkError(f"benchmarks.main = {main!r} is not among {[n for n, _ in named]}")
    for name, folder in named:
        raw = read_benchmark(folder, name)
        splits = make_splits(raw, cfg)
        metric = cfg.benchmarks.metric_for(name, folder)
        log.info("benchmark %s (%s): %s, metric %s", name, folder, splits.counts(), metric)
        pm, floor, preds = score_splits(
            splits,
            metric=metric,
            encoders=encoders,
            model_dirs=model_dirs,
            cfg=cfg,
            few_shot=True,
            finetune="benchmarks" in cfg.finetune.tasks,
        )
        info = {
            "metric": metric,
            "folder": str(folder),
            "counts": splits.counts(),
            "classes": len(splits.label_names),
            "notes": splits.notes,
        }
        tasks.append(TaskResult(name, "benchmark", metric, pm, {"tfidf": floor}, info))
        if name == main and cfg.candidate in preds:
            conf = {
                "benchmark": name,
                "model": cfg.candidate,
                "categories": splits.label_names,
                "matrix": confusion(
                    splits.test_labels, preds[cfg.candidate], len(splits.label_names)
                ),
            }
    return tasks, conf
