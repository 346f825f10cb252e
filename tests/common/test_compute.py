"""One runtime setting: ``threads`` and ``workers`` mean the same with 0 in every stage."""

from __future__ import annotations

import os

import pytest
import torch
from pydantic import BaseModel
from twhin_bert.common.compute import available_cpus, resolve_cpus, use_threads
from twhin_bert_pipelines.config import PipelineConfig


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[type, object]]:
    out = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _fields(ann, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = (model, f)
    return out


def test_zero_is_every_available_cpu() -> None:
    before = torch.get_num_threads()
    try:
        assert resolve_cpus(0) == available_cpus() <= len(os.sched_getaffinity(0))
        assert use_threads(0) == available_cpus() == torch.get_num_threads()
        assert use_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be 0"):
        resolve_cpus(-1)


def test_every_stage_names_its_cpus_threads_or_workers_and_accepts_zero() -> None:
    fields = {
        path: f
        for path, (_, f) in _fields(PipelineConfig).items()
        if "thread" in path.rsplit(".", 1)[-1] or "worker" in path.rsplit(".", 1)[-1]
    }
    names = {path.rsplit(".", 1)[-1] for path in fields}
    assert names == {"threads", "workers"}, sorted(fields)
    stages = {path.split(".")[0] for path in fields}
    assert {"ingest", "build_graph", "embed_graph", "mine_pairs", "pretrain", "embed"} <= stages
    assert "evaluate" in stages
    for path, f in fields.items():
        assert f.annotation is int, path
        section, _, key = path.rpartition(".")
        cfg = PipelineConfig.model_validate({section: {key: 0}}) if "." not in section else None
        assert cfg is None or getattr(getattr(cfg, section), key) == 0, path
        with pytest.raises(ValueError):
            PipelineConfig.model_validate({section: {key: -1}})
