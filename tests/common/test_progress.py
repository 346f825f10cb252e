"""Progress bars: rich on a terminal (or when forced), silent otherwise."""

from __future__ import annotations

import pytest
from twhin_bert.common.progress import enabled, progress


def test_off_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("TWHIN_BERT_PROGRESS", raising=False)
    assert not enabled()  # pytest's stderr is not a terminal
    with progress(total=10, desc="quiet") as bar:
        bar.update(4)
        bar.set_postfix(loss="1.0")
    assert bar.n == 4
    assert capsys.readouterr().err == ""


def test_forced_on_draws_description_count_and_postfix(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TWHIN_BERT_PROGRESS", "1")
    with progress(total=3, initial=1, desc="pretrain mlm", unit="step") as bar:
        bar.update(2)
        bar.set_postfix(loss="0.500")
    err = capsys.readouterr().err
    assert "pretrain mlm" in err and "3/3" in err and "loss=0.500" in err
    assert list(progress(range(3), disable=True)) == [0, 1, 2]
