"""One normaliser and one hashtag rule (common/text.py), used alike by ingest and mine_pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from twhin_bert.common.text import (
    extract_hashtags,
    hashtag_pattern,
    normalise_text,
    remove_hashtags,
)
from twhin_bert.mine_pairs.config import HashtagSourceConfig
from twhin_bert.mine_pairs.sources import alter_hashtags, read_parallel

TEXTS = [
    "#NLP at the #Café with @ana_ñ https://t.co/x #nlp",
    "a#glued and &#35;entity and x.com/#frag but ＃Ｗide and #1 and #नमस्ते",
    "#KPop #kpopfans #kpop!",
]


def test_translation_pairs_are_normalised_exactly_like_ingest(tmp_path: Path) -> None:
    # mine_pairs used to carry its own fallback normaliser: no HTML unescaping, an ASCII
    # mention rule and control characters kept, so a parallel tweet's text could differ
    # from the same tweet ingested.
    raw = "Tom &amp; Jerry\x1b with @jo_ño:\nsee www.x.org/a?b"
    path = tmp_path / "parallel.jsonl"
    path.write_text(json.dumps({"text_a": raw, "text_b": "hola @ana", "lang_a": "en"}) + "\n")
    pairs = read_parallel(str(path))
    assert pairs.text_a == [normalise_text(raw)] == ["Tom & Jerry with @user: see http"]
    assert pairs.text_b == ["hola @user"]


@pytest.mark.parametrize("text", TEXTS)
def test_removing_the_extracted_hashtags_leaves_none(text: str) -> None:
    tags = extract_hashtags(text)
    assert tags
    assert extract_hashtags(remove_hashtags(text, tags)) == []


def test_hashtag_pattern_matches_whole_hashtags_only() -> None:
    p = hashtag_pattern(["kpop"])
    assert [m.group() for m in p.finditer(TEXTS[2])] == ["#KPop", "#kpop"]
    assert remove_hashtags("x a#kpop #kpopfans", ["kpop"]) == "x a#kpop #kpopfans"
    assert remove_hashtags("＃ｋｐｏｐ y", ["ｋｐｏｐ"]) == "y"
    assert hashtag_pattern([]).search("#anything") is None


def test_mine_pairs_noise_mode_replaces_each_occurrence() -> None:
    cfg = HashtagSourceConfig(text_mode="noise", noise_prob=1.0)
    out = alter_hashtags("#a x #A y", ["a"], cfg, np.random.default_rng(0), ["a", "b"])
    assert out == "#b x #b y"
