"""``twhin-bert bench embed-graph``: PBG throughput and the stages' overhead around it.

On a synthetic planted-community graph (10M edges by default, generated with numpy straight
into the ingest output format) it runs our build_graph and embed_graph stages and reports

* PBG's training throughput (edges/s, from the stage's own timing of ``train``),
* the time our code spends outside PBG's training – conversion (build_graph), PBG setup,
  export and evaluation – as a share of PBG's training time (goal: <= 15%),
* as a same-run baseline for the conversion, torchbiggraph's own TSV importer
  (``convert_input_data``, what ``torchbiggraph_import_from_tsv`` runs) on the first
  ``tsv_baseline_edges`` edges, in edges/s next to ours.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _tsv_importer_baseline(ingest: Path, work: Path, edges: int, relations: list[str]) -> float:
    """Edges/s of PBG's TSV importer on the first ``edges`` engagements."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from torchbiggraph.config import EntitySchema, RelationSchema
    from torchbiggraph.converters.import_from_tsv import convert_input_data

    table = pq.ParquetFile(ingest / "engagements.parquet").iter_batches(
        batch_size=edges, columns=["tweet_id", "engagement_type", "user_id"]
    )
    first = next(table)
    tsv = work / "edges.tsv"
    pacsv.write_csv(
        first, tsv, pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    )
    t0 = time.perf_counter()
    convert_input_data(
        {"tweet": EntitySchema(num_partitions=1), "user": EntitySchema(num_partitions=1)},
        [
            RelationSchema(name=r, lhs="tweet", rhs="user", operator="translation")
            for r in relations
        ],
        str(work / "tsv_entities"),
        [str(work / "tsv_edges")],
        [tsv],
        lhs_col=0,
        rhs_col=2,
        rel_col=1,
    )
    return first.num_rows / (time.perf_counter() - t0)


def main(
    quick: bool = False,
    edges: int = 10_000_000,
    users: int | None = None,
    tweets: int | None = None,
    epochs: int | None = None,
    dimension: int = 128,
    partitions: int = 1,
    workers: int | None = None,
    tsv_baseline_edges: int = 200_000,
    work_dir: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs the benchmark and prints its table and JSON summary.

    Args:
        quick: Smoke-test sizes (200K edges, 50K baseline edges) unless given explicitly.
        edges: Engagements to generate (before de-duplication).
        users: Users (default edges / 20).
        tweets: Tweets (default edges / 10).
        epochs: PBG epochs (default: the stage's, 10 as in the paper and prod.yaml; the share
            of time spent outside training is only meaningful for a real run's length;
            quick mode: 1).
        dimension: Embedding dimension.
        partitions: PBG partitions per entity type.
        workers: PBG Hogwild! workers (default: CPU count).
        tsv_baseline_edges: Edges fed to PBG's TSV importer as the conversion baseline
            (0 skips it).
        work_dir: Where to write the data (default: a temporary folder, removed after).
        seed: Seed of the generator and the stages.

    Returns:
        The JSON summary (also printed as the last line).
    """
    from twhin_bert.build_graph.config import BuildGraphConfig
    from twhin_bert.build_graph.graph import run_build_graph
    from twhin_bert.build_graph.synthetic import write_synthetic_ingest
    from twhin_bert.common.bench import report
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.embed import _import_pbg, run_embed_graph

    _import_pbg()  # import torch/torchbiggraph up front: a per-process constant, not per edge

    if epochs is None:
        epochs = 1 if quick else EmbedGraphConfig.model_fields["num_epochs"].default
    if quick:
        edges = min(edges, 200_000)
        tsv_baseline_edges = min(tsv_baseline_edges, 50_000)
    users = users or max(100, edges // 20)
    tweets = tweets or max(100, edges // 10)
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="twhin-bench-pbg-"))
    root.mkdir(parents=True, exist_ok=True)
    tracking = os.environ.get("TWHIN_BERT_TRACKING")
    os.environ["TWHIN_BERT_TRACKING"] = "0"  # measure the stages, not the MLflow store
    try:
        t0 = time.perf_counter()
        write_synthetic_ingest(root / "ingest", users=users, tweets=tweets, edges=edges, seed=seed)
        t_gen = time.perf_counter() - t0

        # Every generated edge goes to PBG: the holdout only serves the evaluate stage.
        bg_cfg = BuildGraphConfig(
            num_partitions=partitions,
            seed=seed,
            holdout_valid_fraction=0.0,
            holdout_test_fraction=0.0,
        )
        bg = run_build_graph(bg_cfg, root / "graph", ingested=root / "ingest")
        eg_cfg = EmbedGraphConfig(
            dimension=dimension,
            num_epochs=epochs,
            workers=workers,
            seed=seed,
            keep_checkpoint=False,
        )
        eg = run_embed_graph(eg_cfg, root / "embeddings", graph=root / "graph")
        tsv_eps = (
            _tsv_importer_baseline(root / "ingest", root, tsv_baseline_edges, bg_cfg.relations)
            if tsv_baseline_edges > 0
            else float("nan")
        )
    finally:
        if tracking is None:
            os.environ.pop("TWHIN_BERT_TRACKING", None)
        else:
            os.environ["TWHIN_BERT_TRACKING"] = tracking
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)

    s = eg["seconds"]
    train = s["pbg_train"]
    outside = {
        "build_graph (conversion)": bg["wall_seconds"],
        "embed_graph setup": s["setup"],
        "embed_graph export": s["export"],
        "embed_graph evaluate": s["evaluate"],
    }
    share = sum(outside.values()) / train
    ours_eps = bg["edges"] / bg["wall_seconds"]
    rows = [{"phase": "PBG training", "seconds": train, "share of PBG training": 1.0}]
    rows += [
        {"phase": k, "seconds": v, "share of PBG training": v / train} for k, v in outside.items()
    ]
    figures = {
        "edges": bg["edges"],
        "edges_train": bg["edges_train"],
        "users": bg["users"],
        "tweets": bg["tweets"],
        "epochs": epochs,
        "dimension": dimension,
        "partitions": partitions,
        "generate_seconds": t_gen,
        "pbg_train_seconds": train,
        "pbg_edges_per_second": eg["pbg_edges_per_second"],
        "outside_pbg_seconds": sum(outside.values()),
        "outside_pbg_share": share,
        "conversion_edges_per_second": ours_eps,
        "pbg_tsv_importer_edges_per_second": tsv_eps,
        "conversion_speedup_vs_pbg_importer": ours_eps / tsv_eps if tsv_eps == tsv_eps else None,
        "mrr": eg["mrr"],
        "popularity_mrr": eg["popularity_mrr"],
    }
    return report("embed-graph", rows, figures, goal="outside_pbg_share <= 0.15", met=share <= 0.15)
