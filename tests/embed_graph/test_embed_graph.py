"""embed_graph: PBG training beats popularity, exports line up, 2 partitions, kill -9 resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.build_graph.graph import run_build_graph
from twhin_bert.common.metrics import LINK_PREDICTION, flatten
from twhin_bert.common.schemas import read_table
from twhin_bert.common.stage import partial_dir, read_metrics
from twhin_bert.demo_data.synthetic import write_synthetic_ingest
from twhin_bert.embed_graph.config import EmbedGraphConfig
from twhin_bert.embed_graph.pbg import checkpoint_version, prepare_checkpoint, run_embed_graph

TINY = {"workers": 1, "dimension": 32}


@pytest.fixture(scope="module")
def ingest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eg-ingest")
    write_synthetic_ingest(out, users=400, tweets=2000, edges=20_000, seed=11)
    return out


@pytest.fixture(scope="module")
def graph1(ingest_dir: Path) -> Path:
    out = ingest_dir.parent / "graph1"
    run_build_graph(BuildGraphConfig(), out, ingested=ingest_dir)
    return out


@pytest.fixture(scope="module")
def graph2(ingest_dir: Path) -> Path:
    out = ingest_dir.parent / "graph2"
    run_build_graph(BuildGraphConfig(num_partitions=2), out, ingested=ingest_dir)
    return out


def _check_exports(out: Path, graph: Path, dim: int) -> None:
    ent = read_table(graph / "entities.parquet", "entities").to_pandas()
    for entity, stem in (("user", "users"), ("tweet", "tweets")):
        emb = np.load(out / f"{stem}.npy")
        ids = read_table(out / f"{stem}.ids.parquet", "ids").column("id").to_pylist()
        assert emb.dtype == np.float32 and emb.shape == (len(ids), dim)
        assert ids == ent[ent.entity_type == entity].id.tolist()
        assert np.isfinite(emb).all() and np.abs(emb).sum() > 0
    rel = json.loads((out / "relations.json").read_text())
    assert set(rel) == {"fave", "retweet", "reply", "quote"}
    assert all(len(v) == dim and np.linalg.norm(v) > 0 for v in rel.values())


def test_pbg_embeddings_beat_popularity(graph1: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    m = run_embed_graph(EmbedGraphConfig(**TINY), out, graph=graph1)
    g = read_metrics(graph1)
    assert (m["users"], m["tweets"]) == (g["users"], g["tweets"])
    assert m["pbg_edges_trained"] == 10 * g["edges_train"]  # every train edge, every epoch
    assert m["pbg_checkpoint_version"] == m["epochs_completed"] == 10
    assert m["pbg_final_loss"] < 0.7 * m["pbg_first_loss"]
    lp = m[LINK_PREDICTION]
    assert lp["eval_edges"] == g["edges_test"]
    # The planted communities are what the embeddings must find; popularity cannot.
    assert lp["mrr"] > lp["popularity_mrr"] + 0.1, m
    assert lp["hits@10"] > lp["popularity_hits@10"] + 0.1, m
    assert 0 < lp["popularity_mrr"] < lp["mrr"] <= 1
    # Link prediction is reported only under its own name, never as a bare hits@10 or mrr
    # that could be read as evaluate's engagement HITS@10.
    saved = flatten(read_metrics(out))
    assert saved[f"{LINK_PREDICTION}.hits@10"] == lp["hits@10"]
    assert not [k for k in saved if "hits@" in k and not k.startswith(f"{LINK_PREDICTION}.")]
    assert not {"mrr", "hits@10", "popularity_mrr"} & set(m)
    _check_exports(out, graph1, 32)
    # The exported vectors reproduce the score PBG trained: (u + r)·t ranks held-out tweets
    # of a user above random ones.
    users, tweets = np.load(out / "users.npy"), np.load(out / "tweets.npy")
    r = np.asarray(json.loads((out / "relations.json").read_text())["fave"], np.float32)
    pos = (users[:50] + r) @ tweets.T
    assert np.isfinite(pos).all()
    assert (out / "checkpoint" / "checkpoint_version.txt").read_text().strip() == "10"


def test_two_partitions(graph2: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    m = run_embed_graph(EmbedGraphConfig(**TINY, num_epochs=6), out, graph=graph2)
    assert m[LINK_PREDICTION]["mrr"] > m[LINK_PREDICTION]["popularity_mrr"] + 0.05, m
    names = {p.name for p in (out / "checkpoint").glob("embeddings_*.h5")}
    assert names == {f"embeddings_{e}_{i}.v6.h5" for e in ("user", "tweet") for i in (0, 1)}
    _check_exports(out, graph2, 32)


def test_foreign_checkpoint_is_not_resumed(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint"
    assert prepare_checkpoint(ckpt, "A") == 0
    (ckpt / "checkpoint_version.txt").write_text("3\n")
    (ckpt / "model.v3.h5").write_bytes(b"x")
    assert prepare_checkpoint(ckpt, "A") == 3  # same model and graph: resume
    assert prepare_checkpoint(ckpt, "B") == 0  # another config/graph: start over
    assert not (ckpt / "model.v3.h5").exists()


def test_kill_9_mid_epoch_resumes_from_pbg_checkpoint(graph1: Path, tmp_path: Path) -> None:
    # 4 edge chunks per epoch: PBG commits a checkpoint after every chunk, so the kill lands
    # inside an epoch and the rerun resumes mid-epoch, at the next chunk.
    epochs, chunks = 4, 4
    cfg = EmbedGraphConfig(**TINY, num_epochs=epochs, num_edge_chunks=chunks)
    cfg_file = tmp_path / "embed_graph.json"
    cfg_file.write_text(cfg.model_dump_json())
    out = tmp_path / "emb"
    ckpt = partial_dir(out) / "checkpoint"
    env = {**os.environ, "TWHIN_BERT_TRACKING": "0"}
    cmd = [
        sys.executable,
        "-m",
        "twhin_bert.embed_graph",
        "--config",
        str(cfg_file),
        "--out",
        str(out),
        "--graph",
        str(graph1),
    ]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while checkpoint_version(ckpt) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no PBG checkpoint within 120 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job: trainer and its PBG workers
        proc.wait()
    killed_at = checkpoint_version(ckpt)  # >= 1: the loop above waited for it
    assert killed_at < epochs * chunks, "the job finished before the kill: nothing to resume"
    assert not out.exists() and partial_dir(out).is_dir()  # nothing half-published

    m = run_embed_graph(cfg, out, graph=graph1)
    assert m["pbg_resumed_from_version"] >= killed_at
    assert m["pbg_checkpoint_version"] == epochs * chunks
    assert m["epochs_completed"] == epochs
    assert m["pbg_iterations_run"] == epochs * chunks - m["pbg_resumed_from_version"]
    per_chunk = read_metrics(graph1)["edges_train"] / chunks
    assert abs(m["pbg_edges_trained"] - m["pbg_iterations_run"] * per_chunk) <= chunks * epochs
    assert m[LINK_PREDICTION]["mrr"] > m[LINK_PREDICTION]["popularity_mrr"] + 0.1
    assert not partial_dir(out).exists()
    stats = (out / "checkpoint" / "training_stats.json").read_text().splitlines()
    assert len(stats) == epochs * chunks  # PBG's own log: every chunk trained exactly once


def test_checkpoint_dir_outlives_the_staging_folder(
    graph1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With checkpoint_dir (a persistent volume), a retry on a fresh pod -- its staging folder
    gone -- resumes from the checkpoint PBG left there, which then moves into the output."""
    import shutil

    from twhin_bert.embed_graph import pbg as E

    monkeypatch.setenv("TWHIN_BERT_TRACKING", "0")
    volume = tmp_path / "volume"
    cfg = EmbedGraphConfig(**TINY, num_epochs=2, checkpoint_dir=str(volume))
    out = tmp_path / "emb"
    real_export = E.export

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("pod evicted")

    monkeypatch.setattr(E, "export", crash)
    with pytest.raises(RuntimeError, match="pod evicted"):
        run_embed_graph(cfg, out, graph=graph1)
    (kept,) = volume.iterdir()
    assert checkpoint_version(kept) == 2
    shutil.rmtree(partial_dir(out))  # the retried pod starts with an empty staging folder
    monkeypatch.setattr(E, "export", real_export)
    m = run_embed_graph(cfg, out, graph=graph1)
    assert m["pbg_resumed_from_version"] == 2 and m["pbg_iterations_run"] == 0
    assert checkpoint_version(out / "checkpoint") == 2 and not any(volume.iterdir())
    assert m[LINK_PREDICTION]["mrr"] > m[LINK_PREDICTION]["popularity_mrr"]


def test_on_demo_data(request: pytest.FixtureRequest) -> None:
    """The shared demo chain: MRR beats popularity."""
    out: Path = request.getfixturevalue("graph_embeddings_dir")
    m = read_metrics(out)
    assert m[LINK_PREDICTION]["mrr"] > m[LINK_PREDICTION]["popularity_mrr"] + 0.05, m
    g = read_metrics(request.getfixturevalue("graph_dir"))
    assert (m["users"], m["tweets"]) == (g["users"], g["tweets"])
    assert pq.read_metadata(out / "tweets.ids.parquet").num_rows == g["tweets"]


@pytest.mark.parametrize("graph_name", ["graph1", "graph2"])
def test_evaluation_reads_the_graph_a_chunk_at_a_time(
    graph_name: str, request: pytest.FixtureRequest
) -> None:
    """Chunked reads give every edge once, and the evaluated users' known edges and the train
    degrees equal those of the whole graph read at once."""
    from twhin_bert.common import splits
    from twhin_bert.embed_graph.pbg import (
        iter_split,
        known_edges_and_degree,
        read_graph,
        sample_eval_edges,
        split_size,
    )

    graph = request.getfixturevalue(graph_name)
    meta = read_graph(graph)

    def read_split(graph: Path, meta: dict, split: str, chunk: int) -> tuple[np.ndarray, ...]:
        parts = list(iter_split(graph, meta, split, chunk))
        return tuple(np.concatenate(col) for col in zip(*parts, strict=True))

    whole = {s: read_split(graph, meta, s, 10**9) for s in splits.NAMES}
    for s in splits.NAMES:
        assert split_size(graph, meta, s) == whole[s][0].size
        chunked = read_split(graph, meta, s, 997)  # many chunks per bucket
        assert sorted(zip(*map(np.ndarray.tolist, chunked), strict=True)) == sorted(
            zip(*map(np.ndarray.tolist, whole[s]), strict=True)
        )
    n_tweets = int(max(t.max() for _, t, _ in whole.values())) + 1
    users = whole["test"][0][:50]
    known, degree = known_edges_and_degree(graph, meta, users, n_tweets, 997)
    every = np.concatenate([u.astype(np.int64) * n_tweets + t for u, t, _ in whole.values()])
    want = np.unique(every[np.isin(every // n_tweets, users)])
    np.testing.assert_array_equal(known, want)
    np.testing.assert_array_equal(degree, np.bincount(whole["train"][1], minlength=n_tweets))
    # the streamed sample is the draw a whole read would make, and leaves the same generator
    cfg = EmbedGraphConfig(eval_max_edges=40, max_edges_per_chunk=997)
    (u, t, r), rng = sample_eval_edges(graph, meta, cfg)
    want_rng = np.random.default_rng(cfg.seed + 1)
    pick = want_rng.choice(whole["test"][0].size, 40, replace=False)
    for got, col in zip((u, t, r), whole["test"], strict=True):
        np.testing.assert_array_equal(got, col[pick])
    assert rng.integers(0, 10**9) == want_rng.integers(0, 10**9)
    # fewer edges than the cap: all of them, in order
    (u, _, _), _ = sample_eval_edges(graph, meta, EmbedGraphConfig(eval_max_edges=10**9))
    np.testing.assert_array_equal(u, whole["test"][0])
