"""The TweetEval/UMSAB reader on the real data, missing splits, and the TF-IDF floor."""

from __future__ import annotations

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


def test_reader_on_tweeteval_emotion(shared_data: Path) -> None:
    raw = read_benchmark(shared_data / "tweeteval" / "emotion")
    assert {k: len(v[0]) for k, v in raw.splits.items()} == {
        "train": 3257,
        "val": 374,
        "test": 1421,
    }
    assert raw.label_names == ["anger", "joy", "optimism", "sadness"]
    assert set(np.unique(raw.splits["train"][1]).tolist()) == {0, 1, 2, 3}


def test_missing_splits_are_carved_and_documented(shared_data: Path) -> None:
    big = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=10**6, max_val=10**6, max_test=10**6))
    sent = make_splits(read_benchmark(shared_data / "tweeteval" / "sentiment"), big)
    assert sent.counts() == {"train": 1600, "val": 400, "test": 12284}
    assert "no train split" in sent.notes[0]
    assert not set(sent.train_texts) & set(sent.val_texts) - {""}
    umsab = make_splits(read_benchmark(shared_data / "umsab" / "english"), big)
    assert umsab.counts() == {"train": 1471, "val": 368, "test": 324}
    assert "val used as test" in umsab.notes[0]
    # caps are seeded samples
    capped = make_splits(read_benchmark(shared_data / "tweeteval" / "sentiment"), EvaluateConfig())
    assert capped.counts() == {"train": 1600, "val": 400, "test": 500}


def test_reader_errors_name_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "train_text.txt").write_text("a\nb\nc\n")
    (tmp_path / "train_labels.txt").write_text("0\n1\n")
    with pytest.raises(BenchmarkError, match=r"train_text\.txt: 3 lines"):
        read_benchmark(tmp_path)
    (tmp_path / "train_labels.txt").write_text("0\n1\nx\n")
    with pytest.raises(BenchmarkError, match="row 3: expected an integer"):
        read_benchmark(tmp_path)


def test_names_clash_resolved_with_parent(shared_data: Path) -> None:
    named = benchmark_names(
        [str(shared_data / "tweeteval/emotion"), f"se={shared_data / 'tweeteval/sentiment'}"]
    )
    assert [n for n, _ in named] == ["emotion", "se"]
    two = benchmark_names(["/x/umsab/english", "/y/other/english"])
    assert [n for n, _ in two] == ["umsab_english", "other_english"]


def test_tfidf_floor_beats_chance_on_emotion(shared_data: Path) -> None:
    cfg = EvaluateConfig(benchmarks=BenchmarkConfig(max_train=1500, max_val=200, max_test=500))
    splits = make_splits(read_benchmark(shared_data / "tweeteval" / "emotion"), cfg)
    res = tfidf_classifier(
        splits, metric="macro_f1", c_grid=[10.0], max_iter=300, seed=0, threads=1
    )
    assert 0.45 < res.test < 1.0  # 4 classes; majority-class macro-F1 is ~0.15
    m = np.array(confusion(splits.test_labels, res.y_pred, 4))
    assert m.sum() == 500 and np.trace(m) / 500 > 0.4
