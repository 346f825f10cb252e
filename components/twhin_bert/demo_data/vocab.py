"""Hand-written multilingual vocabulary of the demo TwHIN: topics, templates, hashtags, emoji.

The phrases are data, in ``vocab.json`` beside this module (package data); this module loads
them once into the constants below. Every phrase is a row with one rendering per language,
in the order of :data:`LANGS`, so the same row renders the same content in any two languages
(the translation pairs). Topics come in groups of three neighbours that share a few phrases
and a group hashtag: tweet text alone therefore tells neighbouring topics apart only partly,
while who engages with a tweet does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

VOCAB_FILE = "vocab.json"

Row = tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """One planted community: a name, its group, hashtags, emoji and phrase rows.

    Attributes:
        name: Short English name (for reports only).
        group: Name of its group of neighbouring topics (see :data:`GROUPS`).
        hashtags: Frequent hashtags used in every language (without '#'), most frequent first.
        emoji: Emoji that go with the topic.
        label: The topic's name in each language (also used as a localised hashtag).
        phrases: Topic-specific noun phrases, one row per phrase.
    """

    name: str
    group: str
    hashtags: tuple[str, ...]
    emoji: tuple[str, ...]
    label: Row
    phrases: tuple[Row, ...]


@dataclass(frozen=True)
class Group:
    """Neighbouring topics share these phrases and this hashtag."""

    name: str
    hashtag: str
    phrases: tuple[Row, ...]


def _rows(rows: list[list[str]]) -> tuple[Row, ...]:
    return tuple(tuple(r) for r in rows)


def load_vocab() -> dict[str, Any]:
    """Reads ``vocab.json`` (package data) into tuples and :class:`Topic`/:class:`Group` rows."""
    raw = json.loads(resources.files(__package__).joinpath(VOCAB_FILE).read_text("utf-8"))
    return {
        "LANGS": tuple(raw["langs"]),
        "LANG_SHARES": tuple(float(x) for x in raw["lang_shares"]),
        "GROUPS": tuple(Group(g["name"], g["hashtag"], _rows(g["phrases"])) for g in raw["groups"]),
        "TOPICS": tuple(
            Topic(
                t["name"],
                t["group"],
                tuple(t["hashtags"]),
                tuple(t["emoji"]),
                tuple(t["label"]),
                _rows(t["phrases"]),
            )
            for t in raw["topics"]
        ),
        "TEMPLATES": _rows(raw["templates"]),
        "GENERIC": _rows(raw["generic"]),
        "TAILS": _rows(raw["tails"]),
        "GENERIC_HASHTAGS": tuple(raw["generic_hashtags"]),
        "GENERIC_EMOJI": tuple(raw["generic_emoji"]),
        "HANDLE_SYLLABLES": tuple(raw["handle_syllables"]),
    }


_VOCAB = load_vocab()
#: Languages, most frequent first; every phrase row has one entry per language in this order.
LANGS: tuple[str, ...] = _VOCAB["LANGS"]
#: Share of users (and so, roughly, of tweets) writing in each language: skewed, English first.
LANG_SHARES: tuple[float, ...] = _VOCAB["LANG_SHARES"]
#: Groups of neighbouring topics (shared phrases and hashtag).
GROUPS: tuple[Group, ...] = _VOCAB["GROUPS"]
#: The planted communities.
TOPICS: tuple[Topic, ...] = _VOCAB["TOPICS"]
#: Sentence templates with one slot ``{x}`` for a topic phrase, one rendering per language.
TEMPLATES: tuple[Row, ...] = _VOCAB["TEMPLATES"]
#: Sentences that say nothing about any topic (the text of off-topic tweets).
GENERIC: tuple[Row, ...] = _VOCAB["GENERIC"]
#: Short follow-up sentences appended to some tweets.
TAILS: tuple[Row, ...] = _VOCAB["TAILS"]
#: Hashtags and emoji that say nothing about the topic.
GENERIC_HASHTAGS: tuple[str, ...] = _VOCAB["GENERIC_HASHTAGS"]
GENERIC_EMOJI: tuple[str, ...] = _VOCAB["GENERIC_EMOJI"]
#: Syllables of the generated @handles.
HANDLE_SYLLABLES: tuple[str, ...] = _VOCAB["HANDLE_SYLLABLES"]


def check_vocab() -> None:
    """Checks that every phrase row has one rendering per language and every topic a known group.

    Raises:
        ValueError: A row of the wrong length or a topic naming an unknown group.
    """
    groups = {g.name for g in GROUPS}
    rows: list[tuple[str, tuple[str, ...]]] = []
    for t in TOPICS:
        if t.group not in groups:
            raise ValueError(
                f"topic {t.name!r}: unknown group {t.group!r} (known: {sorted(groups)})"
            )
        rows += [(f"topic {t.name} label", t.label)] + [(f"topic {t.name}", r) for r in t.phrases]
    for g in GROUPS:
        rows += [(f"group {g.name}", r) for r in g.phrases]
    rows += [("template", r) for r in TEMPLATES] + [("generic", r) for r in GENERIC]
    rows += [("tail", r) for r in TAILS]
    for where, row in rows:
        if len(row) != len(LANGS):
            raise ValueError(
                f"{where}: {row[0]!r} has {len(row)} renderings, expected {len(LANGS)}"
            )
    for where, row in [("template", r) for r in TEMPLATES]:
        if not all("{x}" in s for s in row):
            raise ValueError(f"{where} {row[0]!r}: every rendering needs the slot {{x}}")
