"""Language identification: real languages, short texts, given codes, restricted sets."""

from __future__ import annotations

import pytest
from twhin_bert.ingest.langid import LanguageDetector


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I can't believe how good this game was last night, what a finish!", "en"),
        ("Hoy es un día muy bonito y vamos a la playa con los amigos", "es"),
        ("Je ne sais pas pourquoi tout le monde parle de ce film aujourd'hui", "fr"),
        ("Ich habe heute keine Lust mehr auf die Arbeit, das Wetter ist zu schön", "de"),
        ("Eu não acredito que isso aconteceu de novo, que vergonha", "pt"),
        ("هذا اليوم جميل جدا والحمد لله على كل شيء", "ar"),
        ("今日はとても良い天気ですね、散歩に行きたいです", "ja"),
    ],
)
def test_detects_languages(detector: LanguageDetector, text: str, lang: str) -> None:
    assert detector.detect(text) == lang


def test_twitter_tokens_do_not_decide(detector: LanguageDetector) -> None:
    text = "@user @user http http #hola Hoy es un día muy bonito y vamos a la playa"
    assert detector.detect(text) == "es"


@pytest.mark.parametrize("text", ["", "ok", "😂😂😂", "@user http", "#tbt", "12345 !!!"])
def test_short_or_empty_is_und(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == "und"


def test_low_confidence_is_und() -> None:
    strict = LanguageDetector(min_confidence=0.999, min_letters=0)
    assert strict.detect("hola que tal") == "und"
    lax = LanguageDetector(min_confidence=0.0, min_letters=0)
    assert lax.detect("hola que tal") != "und"


@pytest.mark.parametrize(
    ("code", "valid"),
    [("en", "en"), ("EN", "en"), ("en-US", "en"), ("pt_BR", "pt"), ("in", "id"), ("iw", "he")],
)
def test_valid_code(detector: LanguageDetector, code: str, valid: str) -> None:
    assert detector.valid_code(code) == valid


@pytest.mark.parametrize("code", ["und", "qme", "zxx", "", "xx", 5, None])
def test_invalid_code(detector: LanguageDetector, code: object) -> None:
    assert detector.valid_code(code) is None


def test_restricted_languages() -> None:
    d = LanguageDetector(languages=["en", "es"], min_confidence=0.0)
    assert d.detect("Je ne sais pas pourquoi tout le monde parle de ce film") in {"en", "es"}
    with pytest.raises(ValueError, match="unknown language codes"):
        LanguageDetector(languages=["en", "klingon"])
