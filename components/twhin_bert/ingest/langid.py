"""Language identification with py3langid (its model ships inside the wheel: no download).

Tweets are short and noisy, so detection runs on the text without URLs, mentions and '#'
marks, texts with too few letters are ``und`` without asking the model, and a detection
below a confidence floor is ``und`` too. A language given in the input wins when it is a
code the model knows (Twitter's legacy codes ``in``/``iw`` are mapped to ``id``/``he``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from twhin_bert.common.text import langid_text

UNDETERMINED = "und"
#: Model labels that are not a language.
_NOT_LANGUAGES = frozenset({"zxx", UNDETERMINED})
#: Legacy / Twitter-specific codes -> the model's codes.
_CODE_ALIASES = {"in": "id", "iw": "he", "nb": "no", "tl": "tl", "fil": "tl"}


@lru_cache(maxsize=1)
def _full_model() -> Any:
    """The py3langid model over all its languages (loading takes seconds: once per process)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=8)
def _model(languages: tuple[str, ...] | None) -> Any:
    """The model, restricted to ``languages`` (a view sharing the full model's arrays)."""
    full = _full_model()
    if languages is None:
        return full
    known = frozenset(full.labels) - _NOT_LANGUAGES
    unknown = sorted(set(languages) - known)
    if unknown:
        raise ValueError(
            f"langid_languages: unknown language codes {unknown}; py3langid knows {sorted(known)}"
        )
    restricted = type(full)(
        full.nb_ptc,
        full.nb_pc,
        full.nb_classes,
        full.tk_nextmove,
        full.tk_output,
        norm_probs=True,
        tk_row=full.tk_row,
    )
    restricted.set_languages(list(languages))
    return restricted


class LanguageDetector:
    """Detects a tweet's language; loads the py3langid model once."""

    def __init__(
        self,
        *,
        min_confidence: float = 0.5,
        min_letters: int = 5,
        languages: Sequence[str] | None = None,
    ) -> None:
        """Args:
        min_confidence: Normalised probability below which the answer is ``und``.
        min_letters: Texts with fewer letters are ``und`` without detection.
        languages: Restrict the model to these ISO 639 codes (None: all it knows).

        Raises:
            ValueError: ``languages`` names a code the model does not know.
        """
        self._model = _model(tuple(sorted(set(languages))) if languages is not None else None)
        self.known: frozenset[str] = frozenset(self._model.labels) - _NOT_LANGUAGES
        self.min_confidence = min_confidence
        self.min_letters = min_letters

    def valid_code(self, code: object) -> str | None:
        """The model's code for a given ``lang`` value (``en``, ``EN``, ``en-US``...), or None."""
        if not isinstance(code, str):
            return None
        primary = code.strip().lower().replace("_", "-").split("-", 1)[0]
        primary = _CODE_ALIASES.get(primary, primary)
        return primary if primary in self.known else None

    def detect(self, text: str) -> str:
        """The language of ``text`` (original or normalised), or ``und``.

        Args:
            text: A tweet's text.

        Returns:
            An ISO 639 code the model knows, or ``und`` for short or unclear texts.
        """
        core = langid_text(text)
        letters = sum(1 for ch in core if ch.isalpha())
        if letters < self.min_letters:
            return UNDETERMINED
        lang, conf = self._model.classify(core)
        if conf < self.min_confidence or lang in _NOT_LANGUAGES:
            return UNDETERMINED
        return lang
