"""The artifact classes: file names, schema checks, readers and id <-> row maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from twhin_bert.common import holdout, schemas
from twhin_bert.common.artifacts import (
    ArtifactError,
    Embeddings,
    Evaluation,
    Graph,
    GraphEmbeddings,
    Ingested,
    ModelFolder,
    Pairs,
    Registration,
)
from twhin_bert.common.metrics import write_metrics

TS = pa.timestamp("ms", tz="UTC")


def _tweets(n: int) -> pa.Table:
    return pa.table(
        {
            "tweet_id": [f"t{i}" for i in range(n)],
            "author_id": [None] * n,
            "text": [f"text {i}" for i in range(n)],
            "lang": ["en"] * n,
            "hashtags": [[] for _ in range(n)],
            "created_at": pa.nulls(n, TS),
        }
    )


def test_ingested_reads_what_it_wrote_from_folder_or_file(tmp_path: Path) -> None:
    eng = pa.table(
        {
            "user_id": ["u1"],
            "tweet_id": ["t0"],
            "engagement_type": ["fave"],
            "engaged_at": pa.nulls(1, TS),
        }
    )
    Ingested(tmp_path).write(_tweets(3), eng)
    ing = Ingested(tmp_path)
    assert ing.tweets(columns=["tweet_id"]).column(0).to_pylist() == ["t0", "t1", "t2"]
    assert ing.engagements().num_rows == 1
    # A tweets Parquet given directly is its own tweets file (CLI: --tweets FILE).
    as_file = Ingested(ing.tweets_path())
    assert as_file.tweets_path() == tmp_path / Ingested.TWEETS
    assert as_file.tweets().num_rows == 3


def test_ingested_errors_name_the_file(tmp_path: Path) -> None:
    Ingested(tmp_path).write(_tweets(2))  # tweets only (a text corpus)
    with pytest.raises(ArtifactError, match=rf"{Ingested.ENGAGEMENTS}: missing .*ingest"):
        Ingested(tmp_path).engagements()
    # Missing is a bad input for the CLI either way it is caught.
    with pytest.raises(FileNotFoundError):
        Ingested(tmp_path / "nowhere").tweets()
    with pytest.raises(ValueError):
        Ingested(tmp_path / "nowhere").tweets()
    # Another artifact under the tweets name fails the schema check, naming the file.
    other = tmp_path / "other"
    Pairs(other).write(schemas.schema("pairs").empty_table())
    (other / Pairs.PAIRS).rename(other / Ingested.TWEETS)
    with pytest.raises(schemas.SchemaError, match=r"tweets\.parquet: expected a 'tweets/1'"):
        Ingested(other).tweets()


def test_graph_embeddings_map_ids_to_rows_and_check_them(tmp_path: Path) -> None:
    emb = GraphEmbeddings(tmp_path)
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    emb.table(emb.USERS).write(pa.array(["a", "b", "c"]), vectors)
    ids, got = emb.users()
    assert ids.to_pylist() == ["a", "b", "c"]
    np.testing.assert_array_equal(got[ids.to_pylist().index("b")], [2.0, 3.0])
    # One id too few: named with both files.
    emb.table(emb.TWEETS).write(pa.array(["x", "y"]), vectors)
    with pytest.raises(ArtifactError, match=r"tweets\.ids\.parquet: 2 ids for 3 rows of .*tweets"):
        emb.tweets()
    np.save(emb.table(emb.TWEETS).vectors_path, np.zeros(2, np.float32))
    with pytest.raises(ArtifactError, match="expected a 2-D"):
        emb.tweets()
    assert emb.files()["users"] == "users.npy"


def test_holdout_rule_travels_from_graph_to_graph_embeddings(tmp_path: Path) -> None:
    graph, emb = Graph(tmp_path / "g"), GraphEmbeddings(tmp_path / "e")
    graph.path.mkdir()
    emb.path.mkdir()
    assert graph.holdout() is None and emb.copy_holdout_from(graph) is None
    assert emb.holdout() is None
    holdout.write_rule(graph.path, 0.1, 0.2, seed=7)
    copied = emb.copy_holdout_from(graph)
    assert copied is not None and emb.holdout() is not None
    ids = [f"t{i}" for i in range(200)]
    np.testing.assert_array_equal(emb.holdout().split(ids), holdout.split_of(ids, 0.1, 0.2, 7))


def test_graph_meta_and_entities(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"graph\.json: missing .*build_graph"):
        Graph(tmp_path).meta()
    (tmp_path / Graph.META).write_text("{not json")
    with pytest.raises(ArtifactError, match=r"graph\.json: not valid JSON"):
        Graph(tmp_path).meta()
    table = pa.table(
        {
            "entity_type": ["user", "tweet"],
            "id": ["u", "t"],
            "partition": pa.array([0, 0], pa.int32()),
            "offset": [0, 0],
            "degree": [1, 1],
        }
    )
    Graph(tmp_path).write_entities(table)
    assert Graph(tmp_path).entities(columns=["id"]).column(0).to_pylist() == ["u", "t"]


def test_pairs_embeddings_model_folder(tmp_path: Path) -> None:
    Pairs(tmp_path).write(schemas.schema("pairs").empty_table())
    assert Pairs(tmp_path).read().num_rows == 0
    assert Pairs(tmp_path / Pairs.PAIRS).read().num_rows == 0

    e = Embeddings(tmp_path)
    schemas.write_table(pa.table({"id": ["t1", "t2"]}), e.ids_path(), "ids")
    assert e.ids().to_pylist() == ["t1", "t2"]
    with pytest.raises(ValueError, match="embedding kind 'max'"):
        e.vectors_path("max")
    with pytest.raises(ArtifactError, match=r"cls\.npy: missing"):
        e.vectors("cls")

    with pytest.raises(ArtifactError, match=r"not a Hugging Face model folder \(no config\.json\)"):
        ModelFolder(tmp_path).check()
    (tmp_path / ModelFolder.CONFIG).write_text("{}")
    assert ModelFolder(tmp_path).check() == tmp_path


def test_evaluation_primary_and_registration(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"metrics\.json: missing .*evaluate"):
        Evaluation(tmp_path).primary()
    write_metrics(tmp_path, {"primary": {"engagement_hits@10": 0.25}, "models": {}})
    assert Evaluation(tmp_path).primary() == {"engagement_hits@10": 0.25}

    reg = Registration(tmp_path)
    reg.write({"name": "twhin-bert", "version": "3"})
    assert json.loads((tmp_path / Registration.FILE).read_text())["version"] == "3"
    assert reg.read() == {"name": "twhin-bert", "version": "3"}
    (tmp_path / Registration.FILE).write_text("[]")
    with pytest.raises(ArtifactError, match=r"registration\.json: expected a JSON object"):
        reg.read()
