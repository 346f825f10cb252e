"""Tweet text as the models see it: one normaliser and one hashtag rule for every stage.

ingest normalises every tweet with :func:`normalise_text` and stores
:func:`extract_hashtags` of the original text; mine_pairs normalises parallel tweets the same
way and removes hashtags with :func:`hashtag_pattern`; evaluate removes the hashtag it asks
a model to predict with :func:`remove_hashtags`. The hashtag boundaries are Twitter's (see
``HASHTAG``), so what is extracted is exactly what is removed.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import regex

# URLs first (a URL may contain '@'), then mentions; both unicode-aware.
_URL = regex.compile(r"(?:https?://|www\.)\S+", regex.IGNORECASE)
_MENTION = regex.compile(r"(?<![\p{L}\p{N}_@])@[\p{L}\p{N}_]+")
_SPACE = regex.compile(r"\s+")
# Control characters that are not whitespace (NUL, BEL, ESC, DEL, C1 controls...): no text.
_CONTROL = regex.compile(r"[^\P{Cc}\s]+")
# Twitter-style hashtag: '#' (or the full-width '＃') not glued to a word, '&' (HTML entity)
# or '/' (URL fragment), then letters, marks (Devanagari vowel signs...), digits, '_';
# at least one letter so "#1" is not a hashtag.
_TAG_CHAR = r"[\p{L}\p{M}\p{N}_]"
_TAG_LEFT = r"(?<![\p{L}\p{M}\p{N}_&/#＃])"
HASHTAG = regex.compile(rf"{_TAG_LEFT}[#＃]({_TAG_CHAR}*\p{{L}}{_TAG_CHAR}*)")


def normalise_text(text: str) -> str:
    """Normalises a tweet's text the way the models see it.

    HTML entities of the Twitter API (``&amp;``...) are unescaped, control characters that
    are not whitespace (NUL, ESC, DEL...) removed, URLs become ``http``, mentions ``@user``,
    runs of whitespace (newlines included) one space, and the ends are stripped. Hashtags
    stay in the text. A text of only whitespace and control characters becomes empty.

    Args:
        text: The original text.

    Returns:
        The normalised text (possibly empty).
    """
    if "&" in text:
        text = html.unescape(text)
    text = _CONTROL.sub("", text)
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    return _SPACE.sub(" ", text).strip()


def extract_hashtags(text: str) -> list[str]:
    """The hashtags of ``text``, lower-cased, without '#', in order, repeats removed.

    Args:
        text: The original (not normalised) text.

    Returns:
        e.g. ``["nlp", "café"]`` for ``"#NLP at the #Café"``.
    """
    if "#" not in text and "＃" not in text:
        return []
    return list(dict.fromkeys(m.lower() for m in HASHTAG.findall(text)))


def langid_text(text: str) -> str:
    """The part of a text that carries its language: no URLs, mentions or '#' marks."""
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    return _SPACE.sub(" ", text.replace("#", " ").replace("＃", " ")).strip()


_SPACES = regex.compile(r"\s{2,}")


def hashtag_pattern(tags: Iterable[str]) -> regex.Pattern[str]:
    """A pattern matching ``#tag`` (or ``＃tag``) for any of ``tags``, case-insensitively and
    only as a whole hashtag (``#nlp`` does not match inside ``#nlpconf`` or ``a#nlp``).

    Args:
        tags: Hashtags without '#' (as :func:`extract_hashtags` returns them).

    Returns:
        A compiled pattern; ``tags`` empty matches nothing.
    """
    alts = "|".join(regex.escape(t) for t in sorted(set(tags), key=len, reverse=True))
    if not alts:
        return regex.compile(r"(?!)")
    return regex.compile(rf"{_TAG_LEFT}[#＃](?:{alts})(?!{_TAG_CHAR})", regex.IGNORECASE)


def remove_hashtags(
    text: str, tags: Iterable[str], replacement: Callable[[], str] | None = None
) -> str:
    """``text`` without its ``#tag`` occurrences of ``tags`` (spaces left behind collapsed).

    Args:
        text: A tweet's text.
        tags: Hashtags without '#'.
        replacement: Called once per occurrence; its string takes the hashtag's place
            (default: nothing).
    """
    repl = (lambda _: replacement()) if replacement is not None else ""
    return _SPACES.sub(" ", hashtag_pattern(tags).sub(repl, text)).strip()
