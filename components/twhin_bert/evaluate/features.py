"""Frozen-encoder tweet features, computed once per (model, text) and cached."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twhin_bert.common.encoder import embed_texts

log = logging.getLogger(__name__)


class FrozenEncoder:
    """Embeds texts with a frozen model folder through :func:`common.encoder.embed_texts`.

    Each distinct text is embedded once; every pooling ("cls", "mean", "combined") is kept.
    """

    def __init__(self, model_dir: Path, *, batch_size: int, max_length: int, device: str) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._rows: dict[str, int] = {}
        self._chunks: dict[str, list[np.ndarray]] = {"cls": [], "mean": [], "combined": []}
        self._stacked: dict[str, np.ndarray] | None = None

    def embed(self, texts: Sequence[str], pooling: str = "combined") -> np.ndarray:
        """Returns ``[len(texts), d]`` float32 features of ``pooling`` for ``texts``."""
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            out = embed_texts(
                self.model_dir,
                new,
                batch_size=self.batch_size,
                max_length=self.max_length,
                device=self.device,
            )
            start = len(self._rows)
            for i, t in enumerate(new):
                self._rows[t] = start + i
            for key in self._chunks:
                self._chunks[key].append(np.asarray(out[key], dtype=np.float32))
            self._stacked = None
        if self._stacked is None:
            self._stacked = {
                k: np.concatenate(v) if v else np.zeros((0, 0), np.float32)
                for k, v in self._chunks.items()
            }
        if pooling not in self._stacked:
            raise ValueError(f"unknown pooling {pooling!r}; expected cls, mean or combined")
        idx = np.fromiter((self._rows[t] for t in texts), dtype=np.int64, count=len(texts))
        return self._stacked[pooling][idx]


def zscore(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardises columns with the mean and std of ``train`` (std floor 1e-6)."""
    mu = train.mean(axis=0, keepdims=True)
    sd = train.std(axis=0, keepdims=True)
    sd = np.where(sd < 1e-6, 1.0, sd)
    return [((x - mu) / sd).astype(np.float32) for x in (train, *others)]
