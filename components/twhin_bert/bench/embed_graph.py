"""``twhin-bert bench embed-graph``: PBG throughput, parity with PBG's own trainer, the
settings frontier, and the stages' overhead around PBG.

On a synthetic planted-community graph (10M edges by default, generated with numpy straight
into the ingest output format) it runs our build_graph and embed_graph stages and reports

* the stage's training throughput (edges/s, from the stage's own timing of PBG's loop)
  against PBG's own trainer, ``torchbiggraph.train.train`` (what ``torchbiggraph_train``
  runs) on the same ``parse_config`` config and converted input, in the same run (goal: the
  stage >= 0.95x PBG's own),
* a sweep of PBG settings (batch size, negatives, chunking, workers) through the stage at
  ``sweep_epochs``, each with its link-prediction MRR; the default setting is rerun at the
  same epochs, and a setting counts as "equal MRR" within ``mrr_tolerance`` of it. The best
  edges/s at equal MRR is the frontier, against the 0.5M edges/s goal,
* the time our code spends outside PBG's training – conversion (build_graph), PBG setup,
  export and evaluation – as a share of PBG's training time (goal: <= 15%),
* as a same-run baseline for the conversion, torchbiggraph's own TSV importer
  (``convert_input_data``, what ``torchbiggraph_import_from_tsv`` runs) on the first
  ``tsv_baseline_edges`` edges, in edges/s next to ours.

``met`` is all three: parity, overhead and the frontier goal; each also has its own flag.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

#: PBG settings swept for the frontier (``;`` between settings, ``,`` between fields of
#: EmbedGraphConfig); each is applied on top of the stage's default config.
DEFAULT_SWEEP = (
    "batch_size=5000;"
    "batch_size=5000,num_batch_negs=100,num_uniform_negs=0;"
    "batch_size=10000,num_batch_negs=100,num_uniform_negs=0;"
    "num_batch_negs=25,num_uniform_negs=25;"
    "workers=1;"
    "workers=4;"
    "num_edge_chunks=4"
)
#: Edges/s the frontier is measured against (2 cores, equal MRR).
FRONTIER_GOAL_EDGES_PER_SECOND = 500_000


def parse_setting(text: str) -> dict[str, Any]:
    """``"batch_size=5000,workers=1"`` -> ``{"batch_size": 5000, "workers": 1}``.

    Raises:
        ValueError: A field without ``=`` (names the setting).
    """
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"sweep setting {text!r}: expected FIELD=VALUE, got {part!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def pbg_own_train(pbg: dict[str, Any], checkpoint: Path) -> float:
    """Seconds of PBG's own trainer (``torchbiggraph.train.train``, what the
    ``torchbiggraph_train`` command runs after loading its config file) on the config dict
    ``pbg`` with a fresh ``checkpoint`` folder."""
    from torchbiggraph.config import parse_config
    from torchbiggraph.train import train
    from torchbiggraph.util import SubprocessInitializer

    from twhin_bert.embed_graph.pbg import _quiet_pbg

    shutil.rmtree(checkpoint, ignore_errors=True)
    config = parse_config({**pbg, "checkpoint_path": str(checkpoint)})
    with _quiet_pbg():  # warnings only: PBG's loop runs untouched
        t0 = time.perf_counter()
        train(config, subprocess_init=SubprocessInitializer())
        seconds = time.perf_counter() - t0
    shutil.rmtree(checkpoint, ignore_errors=True)
    return seconds


def frontier(rows: list[dict[str, Any]], reference_mrr: float, tolerance: float) -> dict[str, Any]:
    """The fastest row whose MRR is within ``tolerance`` of ``reference_mrr`` (the rows carry
    ``edges/s`` and ``mrr``); marks each row's ``equal MRR`` and ``pareto`` (no other row is
    both faster and more accurate)."""
    for r in rows:
        r["equal MRR"] = bool(r["mrr"] >= reference_mrr - tolerance)
        r["pareto"] = not any(
            o is not r
            and o["edges/s"] >= r["edges/s"]
            and o["mrr"] >= r["mrr"]
            and (o["edges/s"] > r["edges/s"] or o["mrr"] > r["mrr"])
            for o in rows
        )
    return max((r for r in rows if r["equal MRR"]), key=lambda r: r["edges/s"])


def _tsv_importer_baseline(ingest: Path, work: Path, edges: int, relations: list[str]) -> float:
    """Edges/s of PBG's TSV importer on the first ``edges`` engagements."""
    import pyarrow.csv as pacsv
    from torchbiggraph.config import EntitySchema, RelationSchema
    from torchbiggraph.converters.import_from_tsv import convert_input_data

    from twhin_bert.common import schemas
    from twhin_bert.common.artifacts import Ingested

    table = schemas.open_parquet(ingest / Ingested.ENGAGEMENTS).iter_batches(
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
    workers: int = 0,
    tsv_baseline_edges: int = 200_000,
    repeats: int = 2,
    sweep: str = DEFAULT_SWEEP,
    sweep_epochs: int | None = None,
    mrr_tolerance: float = 0.01,
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
        workers: PBG Hogwild! workers (0: every CPU the process may use).
        tsv_baseline_edges: Edges fed to PBG's TSV importer as the conversion baseline
            (0 skips it).
        repeats: Runs of the stage and of PBG's own trainer, taken in turn; each one's best
            time counts.
        sweep: ``;``-separated PBG settings (EmbedGraphConfig fields, ``,``-separated) run
            through the stage for the frontier ("" skips the sweep).
        sweep_epochs: Epochs of every sweep run, the default setting's rerun included
            (default: min(epochs, 3); the sweep trains once per setting).
        mrr_tolerance: A sweep setting has "equal MRR" within this of the default's.
        work_dir: Where to write the data (default: a temporary folder, removed after).
        seed: Seed of the generator and the stages.

    Returns:
        The JSON summary (also printed as the last line).
    """
    from twhin_bert.build_graph.config import BuildGraphConfig
    from twhin_bert.build_graph.graph import run_build_graph
    from twhin_bert.common.bench import print_table, report
    from twhin_bert.common.metrics import LINK_PREDICTION
    from twhin_bert.demo_data.synthetic import write_synthetic_ingest
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.pbg import (
        _import_pbg,
        pbg_config_dict,
        read_graph,
        run_embed_graph,
    )

    _import_pbg()  # import torch/torchbiggraph up front: a per-process constant, not per edge

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
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
        graph = (root / "graph").resolve()
        pbg = pbg_config_dict(eg_cfg, read_graph(graph), graph, root / "pbg-own")
        # The stage and PBG's own trainer in turn, each timed at its best of `repeats`: one
        # short run of either moves by +-10% from one try to the next on a shared machine.
        eg, pbg_own_s = None, math.inf
        for _ in range(repeats):
            run = run_embed_graph(eg_cfg, root / "embeddings", graph=root / "graph")
            if eg is None or run["seconds"]["pbg_train"] < eg["seconds"]["pbg_train"]:
                eg = run
            pbg_own_s = min(pbg_own_s, pbg_own_train(pbg, root / "pbg-own"))
        sweep_rows = _sweep(eg_cfg, graph, root, sweep, sweep_epochs or min(epochs, 3))
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
    pbg_own_eps = eg["pbg_edges_trained"] / pbg_own_s
    parity = eg["pbg_edges_per_second"] / pbg_own_eps
    best = frontier(sweep_rows, sweep_rows[0]["mrr"], mrr_tolerance) if sweep_rows else None
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
        "mrr": eg[LINK_PREDICTION]["mrr"],
        "popularity_mrr": eg[LINK_PREDICTION]["popularity_mrr"],
        "pbg_own_train_seconds": pbg_own_s,
        "pbg_own_edges_per_second": pbg_own_eps,
        "stage_vs_pbg_own": parity,
        "repeats": repeats,
        "sweep_epochs": sweep_rows[0]["epochs"] if sweep_rows else None,
        "sweep_default_mrr": sweep_rows[0]["mrr"] if sweep_rows else None,
        "frontier_setting": best["setting"] if best else None,
        "frontier_edges_per_second": best["edges/s"] if best else None,
        "frontier_mrr": best["mrr"] if best else None,
        "frontier_vs_goal": best["edges/s"] / FRONTIER_GOAL_EDGES_PER_SECOND if best else None,
        "sweep": sweep_rows,
    }
    met_parity = parity >= 0.95
    met_overhead = share <= 0.15
    met_frontier = best is not None and best["edges/s"] >= FRONTIER_GOAL_EDGES_PER_SECOND
    figures |= {
        "met_parity": met_parity,
        "met_overhead": met_overhead,
        "met_frontier": met_frontier,
    }
    goal = (
        "stage_vs_pbg_own >= 0.95, outside_pbg_share <= 0.15, frontier_edges_per_second >= "
        f"{FRONTIER_GOAL_EDGES_PER_SECOND} at MRR within {mrr_tolerance} of the default's"
    )
    print_table(
        f"twhin-bert bench embed-graph: PBG settings at {figures['sweep_epochs']} epochs",
        sweep_rows,
    )
    return report(
        "embed-graph", rows, figures, goal=goal, met=met_parity and met_overhead and met_frontier
    )


def _sweep(base: Any, graph: Path, root: Path, sweep: str, epochs: int) -> list[dict[str, Any]]:
    """Runs the stage once per setting (the default first) at ``epochs``; one row each."""
    from twhin_bert.common.metrics import LINK_PREDICTION
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.pbg import run_embed_graph

    settings = [""] + [s.strip() for s in sweep.split(";") if s.strip()] if sweep else []
    rows = []
    for i, setting in enumerate(settings):
        fields = base.model_dump() | {"num_epochs": epochs} | parse_setting(setting)
        cfg = EmbedGraphConfig(**fields)
        out = root / f"sweep-{i}"
        m = run_embed_graph(cfg, out, graph=graph)
        shutil.rmtree(out, ignore_errors=True)
        rows.append(
            {
                "setting": setting or "default",
                "epochs": epochs,
                "edges/s": m["pbg_edges_per_second"],
                "mrr": m[LINK_PREDICTION]["mrr"],
                "hits@10": m[LINK_PREDICTION]["hits@10"],
            }
        )
    return rows
