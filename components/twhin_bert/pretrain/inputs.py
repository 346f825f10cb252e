"""The inputs of one pretrain run as one typed value: the objective and the folders it reads.

:meth:`PretrainInputs.resolve` turns the stage's arguments (some of them optional) into the
folders a run actually uses — a ``base_model`` fills in the tokenizer and the weights to start
from — and every later step (fingerprint, launch, TrainJob, the recipe) takes that one value.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from twhin_bert.common import base_model as bm
from twhin_bert.pretrain.config import OBJECTIVES


@dataclass(frozen=True)
class PretrainInputs:
    """What one pretrain run reads.

    Attributes:
        objective: ``mlm`` (stage 1) or ``mlm_social`` (stage 2: MLM + NT-Xent on ``pairs``).
        ingested: The ingest folder (its tweets).
        tokenizer: A Hugging Face fast-tokenizer folder.
        pairs: The mine_pairs folder (its pairs); required for ``mlm_social``.
        init_from: A model folder to start from (stage 1's export, a champion's, or the
            fetched ``base_model``); None: a fresh encoder.
    """

    objective: str
    ingested: Path
    tokenizer: Path
    pairs: Path | None = None
    init_from: Path | None = None

    def __post_init__(self) -> None:
        _check(self.objective, self.pairs)

    @property
    def social(self) -> bool:
        """Whether the objective adds the social (NT-Xent) loss."""
        return self.objective == "mlm_social"

    @classmethod
    def resolve(
        cls,
        base_model: str | None,
        *,
        objective: str,
        ingested: str | Path,
        tokenizer: str | Path | None = None,
        pairs: str | Path | None = None,
        init_from: str | Path | None = None,
    ) -> PretrainInputs:
        """The inputs a run uses, given the stage's arguments and the config's ``base_model``.

        Given folders win. With a ``base_model`` the missing ones are the base (downloaded
        once when it is on gs://, its family checked): stage 1's continuation, or stage 2 and
        the ablation twin when stage 1 is skipped, start from it and use its tokenizer; a stage
        that starts from an export uses that export's tokenizer (the base's, saved with it).

        Raises:
            ValueError: An unknown objective, ``mlm_social`` without pairs, or neither a
                tokenizer nor a base model nor a model to start from.
        """
        _check(objective, pairs)  # before a base model is fetched
        if base_model is not None:
            init_from = init_from or bm.fetch(base_model)
        tokenizer = tokenizer or init_from
        if tokenizer is None:
            raise ValueError(
                "pretrain needs a tokenizer folder (train_tokenizer's output), a base_model, or "
                "a model to start from"
            )
        return cls(
            objective=objective,
            ingested=Path(ingested),
            tokenizer=Path(tokenizer),
            pairs=Path(pairs) if pairs is not None else None,
            init_from=Path(init_from) if init_from is not None else None,
        )

    def under(self, folder: Path) -> PretrainInputs:
        """The same inputs as copied into ``folder`` (``ingested``, ``tokenizer``, ``pairs``,
        ``init_from`` subfolders: a TrainJob's staged copy on the shared volume)."""
        return replace(
            self,
            ingested=folder / "ingested",
            tokenizer=folder / "tokenizer",
            pairs=folder / "pairs" if self.pairs is not None else None,
            init_from=folder / "init_from" if self.init_from is not None else None,
        )

    def argv(self) -> list[str]:
        """These inputs as arguments of the launched process (read back by :meth:`from_args`)."""
        args = ["--objective", self.objective, "--ingested", str(self.ingested)]
        args += ["--tokenizer", str(self.tokenizer)]
        if self.pairs is not None:
            args += ["--pairs", str(self.pairs)]
        if self.init_from is not None:
            args += ["--init-from", str(self.init_from)]
        return args

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Adds the arguments :meth:`argv` writes to ``parser``."""
        parser.add_argument("--objective", required=True, choices=OBJECTIVES)
        parser.add_argument("--ingested", required=True)
        parser.add_argument("--tokenizer", required=True)
        parser.add_argument("--pairs")
        parser.add_argument("--init-from")

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> PretrainInputs:
        """The inputs from arguments parsed with :meth:`add_arguments`."""
        return cls(
            objective=a.objective,
            ingested=Path(a.ingested),
            tokenizer=Path(a.tokenizer),
            pairs=Path(a.pairs) if a.pairs else None,
            init_from=Path(a.init_from) if a.init_from else None,
        )


def _check(objective: str, pairs: object) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "mlm_social" and pairs is None:
        raise ValueError("objective mlm_social needs pairs (the mine_pairs output folder)")
