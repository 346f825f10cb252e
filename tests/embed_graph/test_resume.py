"""embed_graph checkpoints keyed by the graph's contents and the model settings, not paths
(issue 9 item 8), and held by one writer at a time (item 9)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.build_graph.graph import run_build_graph
from twhin_bert.common.lifetime import FolderBusyError, hold_folder
from twhin_bert.common.stage import partial_dir
from twhin_bert.demo_data.synthetic import write_synthetic_ingest
from twhin_bert.embed_graph import pbg as E
from twhin_bert.embed_graph.config import EmbedGraphConfig
from twhin_bert.embed_graph.pbg import checkpoint_folder, read_graph, run_embed_graph

TINY = {"workers": 1, "dimension": 16, "num_epochs": 2}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ingest = tmp_path_factory.mktemp("egr-ingest")
    write_synthetic_ingest(ingest, users=200, tweets=800, edges=6000, seed=5)
    out = ingest.parent / "graph"
    run_build_graph(BuildGraphConfig(), out, ingested=ingest)
    return out


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWHIN_BERT_TRACKING", "0")


def _evicted_before_export(
    cfg: EmbedGraphConfig, out: Path, graph: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = E.export

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("pod evicted")

    monkeypatch.setattr(E, "export", crash)
    with pytest.raises(RuntimeError, match="pod evicted"):
        run_embed_graph(cfg, out, graph=graph)
    monkeypatch.setattr(E, "export", real)


def test_same_graph_at_a_new_path_resumes_from_the_volume(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = EmbedGraphConfig(**TINY, checkpoint_dir=str(tmp_path / "volume"))
    _evicted_before_export(cfg, tmp_path / "run1/emb", graph, monkeypatch)
    # A resubmitted pipeline: the same graph in a new run folder (its metrics.json differs).
    moved = shutil.copytree(graph, tmp_path / "run2/graph")
    (moved / "metrics.json").write_text('{"wall_seconds": 99}\n')
    m = run_embed_graph(cfg, tmp_path / "run2/emb", graph=moved)
    assert m["pbg_resumed_from_version"] == 2 and m["pbg_iterations_run"] == 0


def test_other_graph_at_the_same_path_restarts_and_says_so(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    g = shutil.copytree(graph, tmp_path / "graph")
    cfg = EmbedGraphConfig(**TINY)
    out = tmp_path / "emb"
    _evicted_before_export(cfg, out, g, monkeypatch)
    assert (partial_dir(out) / "checkpoint" / "checkpoint_version.txt").read_text().strip() == "2"
    # Rebuilt graph, same counts (graph.json unchanged), other content: users' ids reversed.
    ent = pq.read_table(g / "entities.parquet")
    users = [i for i, t in enumerate(ent.column("entity_type").to_pylist()) if t == "user"]
    ids = ent.column("id").to_pylist()
    for i, j in zip(users, reversed(users), strict=True):
        ids[i] = ent.column("id")[j].as_py()
    pq.write_table(
        ent.set_column(ent.schema.get_field_index("id"), "id", [ids]).replace_schema_metadata(
            ent.schema.metadata
        ),
        g / "entities.parquet",
    )
    with caplog.at_level(logging.WARNING, logger="twhin_bert.embed_graph.pbg"):
        m = run_embed_graph(cfg, out, graph=g)
    said = [r.getMessage() for r in caplog.records if "starting over" in r.getMessage()]
    assert len(said) == 1 and m["pbg_resumed_from_version"] == 0 and m["pbg_iterations_run"] == 2


def test_second_writer_of_the_checkpoint_folder_is_refused(graph: Path, tmp_path: Path) -> None:
    cfg = EmbedGraphConfig(**TINY, checkpoint_dir=str(tmp_path / "volume"))
    folder, _ = checkpoint_folder(cfg, tmp_path / "x", graph.resolve(), read_graph(graph))
    with (
        hold_folder(folder, "embed_graph"),  # the first pod, still training
        pytest.raises(FolderBusyError, match=rf"pid {os.getpid()}\)"),
    ):
        run_embed_graph(cfg, tmp_path / "retry", graph=graph)
    assert not (folder / "checkpoint_version.txt").exists()
