"""The TweetEval/UMSAB reader on real tweets (the repository's UMSAB sample; TweetEval in
slow tests when the full data is present), missing splits, and the TF-IDF floor."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from twhin_bert.evaluate.benchmarks import (
    BenchmarkError,
    benchmark_names,
    confusion,
    make_splits,
    read_benchmark,
)
from twhin_bert.evaluate.classify import tfidf_classifier
from twhin_bert.evaluate.config import BenchmarkConfig, EvaluateConfig


def _copy_splits(src: Path, dst: Path, renames: dict[str, str]) -> Path:
    """A benchmark folder in ``dst`` holding only the given splits of ``src`` (old -> new name)."""
    dst.mkdir(parents=True)
    for old, new in renames.items():
        for kind in ("text", "labels"):
            shutil.copy(src / f"{old}_{kind}.txt", dst / f"{new}_{kind}.txt")
    return dst


def test_reader_on_umsab_sample(sample_data: Path, tmp_path: Path) -> None:
    raw = read_benchmark(sample_data / "umsab" / "english")
    assert {k: len(v[0]) for k, v in raw.splits.items()} == {"train": 1500, "val": 100}
    assert raw.name == "english"
    assert raw.label_names == ["0", "1", "2"]  # UMSAB ships no mapping.txt
    assert set(np.unique(raw.splits["train"][1]).tolist()) == {0, 1, 2}
    first = (sample_data / "umsab" / "english" / "train_text.txt").read_text().split("\n")[0]
    assert raw.splits["train"][0][0] == first.rstrip("\r")  # text kept as is, row order kept
    # a mapping.txt names the labels (id<TAB>name)
    named = _copy_splits(sample_data / "umsab" / "english", tmp_path / "named", {"val": "val"})
    (named / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    assert read_benchmark(named).label_names == ["negative", "neutral", "positive"]


@pytest.mark.slow
def test_reader_on_tweeteval_emotion(full_data: Path) -> None:
    raw = read_benchmark(full_data / "tweeteval" / "emotion")
    assert {k: len(v[0]) for k, v in raw.splits.items()} == {
        "train": 3257,
        "val": 374,
        "test": 1421,
    }
    assert raw.label_names == ["anger", "joy", "optimism", "sadness"]
    assert set(np.unique(raw.splits["train"][1]).tolist()) == {0, 1, 2, 3}


def test_missing_splits_are_carved_and_documented(sample_data: Path, tmp_path: Path) -> None:
    big = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=10**6, max_val=10**6, max_test=10**6))
    english = sample_data / "umsab" / "english"
    # UMSAB: no test split -> val is the test set, val is carved from train (20%)
    umsab = make_splits(read_benchmark(english), big)
    assert umsab.counts() == {"train": 1200, "val": 300, "test": 100}
    assert "val used as test" in umsab.notes[0]
    assert not set(umsab.train_texts) & set(umsab.val_texts)
    # no train split (as TweetEval sentiment): train and val carved from val, test kept
    no_train = _copy_splits(english, tmp_path / "no_train", {"val": "val", "train": "test"})
    sent = make_splits(read_benchmark(no_train), big)
    assert sent.counts() == {"train": 80, "val": 20, "test": 1500}
    assert "no train split" in sent.notes[0]
    assert not set(sent.train_texts) & set(sent.val_texts)
    # only val: train / val / test all carved from it, disjoint, nothing lost
    only_val = make_splits(
        read_benchmark(_copy_splits(english, tmp_path / "v", {"val": "val"})), big
    )
    assert only_val.counts() == {"train": 64, "val": 16, "test": 20}
    assert "only val present" in only_val.notes[0]
    parts = [set(only_val.train_texts), set(only_val.val_texts), set(only_val.test_texts)]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 100
    # caps are seeded samples: the same seed draws the same tweets, another seed others
    caps = BenchmarkConfig(max_train=50, max_val=10, max_test=30)
    capped = make_splits(read_benchmark(english), EvaluateConfig(benchmarks=caps))
    assert capped.counts() == {"train": 50, "val": 10, "test": 30}
    again = make_splits(read_benchmark(english), EvaluateConfig(benchmarks=caps))
    other = make_splits(read_benchmark(english), EvaluateConfig(seed=1, benchmarks=caps))
    assert again.train_texts == capped.train_texts and other.train_texts != capped.train_texts


@pytest.mark.slow
def test_missing_splits_on_tweeteval_sentiment(full_data: Path) -> None:
    big = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=10**6, max_val=10**6, max_test=10**6))
    sent = make_splits(read_benchmark(full_data / "tweeteval" / "sentiment"), big)
    assert sent.counts() == {"train": 1600, "val": 400, "test": 12284}
    assert "no train split" in sent.notes[0]
    capped = make_splits(read_benchmark(full_data / "tweeteval" / "sentiment"), EvaluateConfig())
    assert capped.counts() == {"train": 1600, "val": 400, "test": 500}


def test_reader_errors_name_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "train_text.txt").write_text("a\nb\nc\n")
    (tmp_path / "train_labels.txt").write_text("0\n1\n")
    with pytest.raises(BenchmarkError, match=r"train_text\.txt: 3 lines"):
        read_benchmark(tmp_path)
    (tmp_path / "train_labels.txt").write_text("0\n1\nx\n")
    with pytest.raises(BenchmarkError, match="row 3: expected an integer"):
        read_benchmark(tmp_path)


def test_names_clash_resolved_with_parent(sample_data: Path) -> None:
    umsab = sample_data / "umsab"
    named = benchmark_names([str(umsab / "english"), f"es={umsab / 'spanish'}"])
    assert named == [("english", umsab / "english"), ("es", umsab / "spanish")]
    two = benchmark_names(["/x/umsab/english", "/y/other/english"])
    assert [n for n, _ in two] == ["umsab_english", "other_english"]


def test_tfidf_floor_beats_chance_on_sentiment(sample_data: Path) -> None:
    """Three-way sentiment on 100 real English test tweets: majority-class macro-F1 is 1/6,
    and the same classifier trained on shuffled labels (the chance floor of this run) stays
    near 1/3."""
    cfg = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=1500, max_val=200, max_test=500))
    splits = make_splits(read_benchmark(sample_data / "umsab" / "english"), cfg)
    kw = {"metric": "macro_f1", "c_grid": [10.0], "max_iter": 300, "seed": 0, "threads": 1}
    res = tfidf_classifier(splits, **kw)
    shuffled = dataclasses.replace(
        splits, train_labels=np.random.default_rng(0).permutation(splits.train_labels)
    )
    chance = tfidf_classifier(shuffled, **kw)
    assert 0.45 < res.test < 1.0  # measured 0.58
    assert res.test > chance.test + 0.15  # measured 0.35
    m = np.array(confusion(splits.test_labels, res.y_pred, 3))
    assert m.sum() == 100 and np.trace(m) / 100 > 0.4


@pytest.mark.slow
def test_tfidf_floor_beats_chance_on_emotion(full_data: Path) -> None:
    cfg = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=1500, max_val=200, max_test=500))
    splits = make_splits(read_benchmark(full_data / "tweeteval" / "emotion"), cfg)
    res = tfidf_classifier(
        splits, metric="macro_f1", c_grid=[10.0], max_iter=300, seed=0, threads=1
    )
    assert 0.45 < res.test < 1.0  # 4 classes; majority-class macro-F1 is ~0.15
    m = np.array(confusion(splits.test_labels, res.y_pred, 4))
    assert m.sum() == 500 and np.trace(m) / 500 > 0.4
