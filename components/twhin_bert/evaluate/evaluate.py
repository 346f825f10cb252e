"""The evaluate stage: every model side by side on engagement, hashtags and benchmarks.

Reads top to bottom: load the frozen encoders, run the three task families (each beside its
floor on the same split), collect ``metrics.json`` (``models.<name>.<task>.<metric>``,
``floors.<task>...``, ``primary``, ``ablation``), draw the plots, write the report, log all
of it to MLflow. Curves (HITS@k, training per epoch) go to ``curves.json``; the candidate's
confusion matrix on the main benchmark to ``confusion.json`` (the component hands it to KFP).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from twhin_bert.common import holdout, tracking
from twhin_bert.common.schemas import read_table
from twhin_bert.common.stage import stage
from twhin_bert.evaluate.config import EvaluateConfig
from twhin_bert.evaluate.features import FrozenEncoder
from twhin_bert.evaluate.report import (
    Block,
    plot_few_shot,
    plot_grouped_bars,
    plot_hits_curve,
    plot_pretrain_logs,
    plot_projection_training,
    read_training_log,
    write_report,
)

log = logging.getLogger(__name__)

CURVES_FILE = "curves.json"
CONFUSION_FILE = "confusion.json"


def _check_models(models: dict[str, Path], cfg: EvaluateConfig) -> dict[str, Path]:
    if cfg.candidate not in models:
        raise ValueError(
            f"models must include the candidate {cfg.candidate!r}, got {sorted(models)}"
        )
    out = {}
    for name, p in models.items():
        p = Path(p)
        if not (p / "config.json").is_file():
            raise FileNotFoundError(
                f"{p}: model {name!r} is not a Hugging Face model folder (no config.json)"
            )
        out[name] = p
    # Candidate first, so tables and plots list it first.
    return {
        cfg.candidate: out[cfg.candidate],
        **{n: p for n, p in out.items() if n != cfg.candidate},
    }


@stage("evaluate")
def run_evaluate(
    cfg: EvaluateConfig,
    out_dir: Path,
    *,
    models: dict[str, Path],
    ingested: Path,
    graph_embeddings: Path,
    benchmarks: list[str],
) -> dict[str, Any]:
    """Evaluates the candidate (and its ablation twin, when given) with floors beside.

    Args:
        cfg: Evaluate config.
        out_dir: Staging output folder.
        models: Name -> Hugging Face model folder; ``cfg.candidate`` (``twhin_bert``) is
            required, ``cfg.baseline`` (``mlm_only``) optional.
        ingested: The ingest folder (tweets.parquet, engagements.parquet).
        graph_embeddings: The embed_graph folder (users.npy + users.ids.parquet).
        benchmarks: TweetEval/UMSAB-style folders (``path`` or ``name=path``).

    Returns:
        The metrics (also written as ``metrics.json``).
    """
    import torch

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    return _evaluate(cfg, Path(out_dir), models, Path(ingested), Path(graph_embeddings), benchmarks)


def _evaluate(
    cfg: EvaluateConfig,
    out_dir: Path,
    models: dict[str, Path],
    ingested: Path,
    graph_embeddings: Path,
    benchmarks: list[str],
) -> dict[str, Any]:
    model_dirs = _check_models(models, cfg)
    by_path: dict[Path, FrozenEncoder] = {}  # one cache per folder, even under two names
    for p in model_dirs.values():
        if p.resolve() not in by_path:
            by_path[p.resolve()] = FrozenEncoder(
                p, batch_size=cfg.embed_batch_size, max_length=cfg.max_length, device=cfg.device
            )
    encoders = {n: by_path[p.resolve()] for n, p in model_dirs.items()}
    result: dict[str, Any] = {"models": {n: {} for n in model_dirs}, "floors": {}, "info": {}}
    curves: dict[str, Any] = {}

    # 1. Social engagement prediction.
    if cfg.engagement.enabled:
        from twhin_bert.evaluate.engagement import load_engagement_data, run_engagement

        data = load_engagement_data(
            Path(ingested), Path(graph_embeddings), cfg.engagement, cfg.seed
        )
        feats = {n: enc.embed(data.texts, "combined") for n, enc in encoders.items()}
        per, info = run_engagement(data, feats, cfg.engagement, cfg.seed)
        curves["engagement"] = {}
        for n, r in {**per, **{f"floor:{f}": v for f, v in info["floors"].items()}}.items():
            curves["engagement"][n] = {
                "hits_curve": r.pop("hits_curve"),
                "train_curve": r.pop("train_curve", None),
            }
        for n, r in per.items():
            result["models"][n]["engagement"] = r
            for row in curves["engagement"][n]["train_curve"]:
                tracking.log_metrics(
                    {
                        f"engagement.{n}.train_loss": row["loss"],
                        f"engagement.{n}.val_hits": row["val_hits"],
                    },
                    step=row["epoch"],
                )
        result["floors"]["engagement"] = info["floors"]
        result["info"]["engagement"] = info["counts"]

    # 2. Hashtag prediction.
    if cfg.hashtag.enabled:
        from twhin_bert.evaluate.hashtag import run_hashtag

        tweets = read_table(
            Path(ingested) / "tweets.parquet", "tweets", ["tweet_id", "text", "lang", "hashtags"]
        ).to_pandas()
        per, floor, info = run_hashtag(
            tweets,
            encoders=encoders,
            model_dirs=model_dirs,
            cfg=cfg,
            rule=holdout.read_rule(graph_embeddings),
        )
        curves["hashtag_finetune"] = {n: r.pop("finetune_curves", None) for n, r in per.items()}
        for n, r in per.items():
            result["models"][n]["hashtag"] = r
        result["floors"]["hashtag"] = {"tfidf": floor}
        result["info"]["hashtag"] = info

    # 3. External benchmarks.
    conf: dict[str, Any] = {}
    if benchmarks:
        from twhin_bert.evaluate.benchmarks import run_benchmarks

        per, floors, info, conf = run_benchmarks(
            benchmarks, encoders=encoders, model_dirs=model_dirs, cfg=cfg
        )
        curves["benchmark_finetune"] = {}
        for n, rows in per.items():
            for b, r in rows.items():
                curves["benchmark_finetune"].setdefault(n, {})[b] = r.pop("finetune_curve", None)
                result["models"][n][b] = r
        for b, f in floors.items():
            result["floors"][b] = {"tfidf": f}
        result["info"]["benchmarks"] = info
    result["info"]["counts"] = {"models": len(model_dirs), "benchmarks": len(benchmarks)}

    result["primary"] = _flat_key_metrics(result, cfg.candidate, cfg)
    if cfg.baseline in model_dirs:
        result["ablation"] = _ablation(result, cfg)
        # The baseline's key metrics on the same split: when the baseline is the champion
        # (retraining), register_model's gate compares like with like from these.
        result["baseline"] = {
            "name": cfg.baseline,
            "primary": _flat_key_metrics(result, cfg.baseline, cfg),
        }
    if cfg.base in model_dirs:
        # The untouched base encoder on the same split: what continued training must beat
        # (register_model's gate can require it, gate.require_beat_base).
        result["base"] = {"name": cfg.base, "primary": _flat_key_metrics(result, cfg.base, cfg)}
    (out_dir / CURVES_FILE).write_text(json.dumps(curves, indent=1) + "\n")
    if conf:
        (out_dir / CONFUSION_FILE).write_text(json.dumps(conf, indent=1) + "\n")

    blocks = _report_blocks(result, curves, model_dirs, cfg, out_dir)
    md, page = write_report(out_dir, blocks, "TwHIN-BERT evaluation")
    for p in sorted(out_dir.glob("*.png")):
        tracking.log_artifact(p, "plots")
    for p in (md, page, out_dir / CURVES_FILE):
        tracking.log_artifact(p, "report")
    log.info("evaluate: primary %s", result["primary"])
    return result


def _flat_key_metrics(
    result: dict[str, Any], model: str, cfg: EvaluateConfig
) -> dict[str, float | None]:
    """``engagement_hits@k``, ``hashtag_macro_f1``, ``<benchmark>_<metric>`` of one model."""
    m = result["models"][model]
    out: dict[str, float | None] = {}
    k = cfg.engagement.k
    if "engagement" in m:
        out[f"engagement_hits@{k}"] = m["engagement"][f"hits@{k}"]
    if "hashtag" in m:
        out["hashtag_macro_f1"] = m["hashtag"]["macro_f1"]
    for b, info in result["info"].get("benchmarks", {}).items():
        out[f"{b}_{info['metric']}"] = m[b][info["metric"]]
    return out


def _ablation(result: dict[str, Any], cfg: EvaluateConfig) -> dict[str, float | None]:
    """Candidate vs ablation twin: relative HITS lift, macro-F1 deltas in points."""
    a = _flat_key_metrics(result, cfg.candidate, cfg)
    b = _flat_key_metrics(result, cfg.baseline, cfg)
    out: dict[str, float | None] = {}
    for key, va in a.items():
        vb = b.get(key)
        if va is None or vb is None:
            continue
        if key.startswith("engagement_"):
            out[f"{key}_relative_lift"] = (va - vb) / vb if vb > 0 else None
            out[f"{key}_baseline"] = vb
        else:
            out[f"{key}_delta"] = 100.0 * (va - vb)  # points
    paired = result["info"].get("hashtag", {}).get("paired_delta")
    if paired and paired.get("ci95_points"):  # how much of the difference is test-set noise
        out["hashtag_macro_f1_delta_ci95_low"] = paired["ci95_points"][0]
        out["hashtag_macro_f1_delta_ci95_high"] = paired["ci95_points"][1]
    return out


def _report_blocks(
    result: dict[str, Any],
    curves: dict[str, Any],
    model_dirs: dict[str, Path],
    cfg: EvaluateConfig,
    out_dir: Path,
) -> list[Block]:
    k = cfg.engagement.k
    names = list(model_dirs)
    blocks = [
        Block("h1", "TwHIN-BERT evaluation"),
        Block(
            "p",
            f"Models: {', '.join(f'{n} ({p})' for n, p in model_dirs.items())}. "
            f"Candidate: {cfg.candidate}. Every score sits beside a floor computed on the same split; "
            f"classification headline mode: {cfg.primary_mode}.",
        ),
        Block("h2", "Headline"),
        Block(
            "table",
            header=["metric", *names],
            rows=[
                [key, *[_flat_key_metrics(result, n, cfg).get(key) for n in names]]
                for key in result["primary"]
            ],
        ),
    ]
    if "ablation" in result:
        blocks.append(
            Block("table", header=["ablation", "value"], rows=list(result["ablation"].items()))
        )

    if "engagement" in curves:
        fl = result["floors"]["engagement"]
        cnt = result["info"]["engagement"]
        blocks += [
            Block("h2", "Social engagement prediction"),
            Block(
                "p",
                f"Frozen encoders, Combined tweet embeddings, 128-d projections; tweets split "
                f"{cfg.engagement.split} by tweet; {cnt['test_users']} test users, "
                f"{cnt['mean_candidates']:.0f} candidates each on average; median of "
                f"{cfg.engagement.seeds} seeds. {cnt['users_without_embedding']} users without a "
                f"graph embedding skipped ({cnt['pairs_user_without_embedding']} pairs).",
            ),
            Block(
                "table",
                header=["model / floor", f"HITS@{k}", "seeds"],
                rows=[
                    [
                        n,
                        result["models"][n]["engagement"][f"hits@{k}"],
                        ", ".join(
                            f"{v:.4f}" for v in result["models"][n]["engagement"][f"hits@{k}_seeds"]
                        ),
                    ]
                    for n in names
                ]
                + [
                    [
                        f"floor: {f}",
                        v[f"hits@{k}"],
                        ", ".join(f"{x:.4f}" for x in v[f"hits@{k}_seeds"]),
                    ]
                    for f, v in fl.items()
                ],
            ),
        ]
        hc = {n: c["hits_curve"] for n, c in curves["engagement"].items()}
        blocks.append(
            Block(
                "img",
                "HITS@k curve",
                path=plot_hits_curve(hc, out_dir / "engagement_hits_at_k.png", k),
            )
        )
        by_lang = {n: result["models"][n]["engagement"][f"hits@{k}_by_lang"] for n in names}
        by_lang["floor:popularity"] = fl["popularity"][f"hits@{k}_by_lang"]
        by_lang["floor:tfidf"] = fl["tfidf"][f"hits@{k}_by_lang"]
        if any(by_lang.values()):
            blocks.append(
                Block(
                    "img",
                    f"HITS@{k} per language",
                    path=plot_grouped_bars(
                        by_lang,
                        out_dir / "engagement_by_lang.png",
                        f"Engagement HITS@{k} per language",
                        f"HITS@{k}",
                    ),
                )
            )
        tc = {n: c["train_curve"] for n, c in curves["engagement"].items() if c.get("train_curve")}
        blocks.append(
            Block(
                "img",
                "Projection model training",
                path=plot_projection_training(tc, out_dir / "engagement_training.png", k),
            )
        )

    if "hashtag" in result["models"][cfg.candidate]:
        info = result["info"]["hashtag"]
        fl = result["floors"]["hashtag"]["tfidf"]
        blocks += [
            Block("h2", "Hashtag prediction (macro-F1, mean over languages)"),
            Block(
                "p",
                f"{info['languages']} languages evaluated, {info['languages_skipped']} skipped "
                f"(too few usable tweets): {info['skipped']}. Top {cfg.hashtag.top_n} hashtags per "
                "language, tweets with exactly one of them, the hashtag removed from the text.",
            ),
            Block(
                "table",
                header=["model / floor", "feature-based", "fine-tuned"],
                rows=[
                    [
                        n,
                        result["models"][n]["hashtag"].get("feature_macro_f1"),
                        result["models"][n]["hashtag"].get("finetune_macro_f1"),
                    ]
                    for n in names
                ]
                + [["floor: tfidf", fl["macro_f1"], None]],
            ),
        ]
        series = {n: result["models"][n]["hashtag"]["by_lang"] for n in names} | {
            "floor:tfidf": fl["by_lang"]
        }
        if any(series.values()):
            blocks.append(
                Block(
                    "img",
                    "Hashtag macro-F1 per language",
                    path=plot_grouped_bars(
                        series,
                        out_dir / "hashtag_by_lang.png",
                        "Hashtag macro-F1 per language",
                        "macro-F1",
                    ),
                )
            )

    binfo = result["info"].get("benchmarks", {})
    if binfo:
        blocks.append(Block("h2", "External benchmarks"))
        rows = []
        for b, info in binfo.items():
            m = info["metric"]
            for n in names:
                r = result["models"][n][b]
                rows.append([b, m, n, r.get(f"feature_{m}"), r.get(f"finetune_{m}")])
            rows.append([b, m, "floor: tfidf", result["floors"][b]["tfidf"][m], None])
        blocks.append(
            Block(
                "table",
                header=["benchmark", "metric", "model / floor", "feature-based", "fine-tuned"],
                rows=rows,
            )
        )
        notes = ["; ".join([f"{b}: {info['counts']}", *info["notes"]]) for b, info in binfo.items()]
        blocks.append(Block("p", "Splits used: " + " | ".join(notes)))
        for b, info in binfo.items():
            fs = {n: result["models"][n][b].get("few_shot", {}) for n in names}
            fs["floor:tfidf"] = result["floors"][b]["tfidf"].get("few_shot", {})
            blocks.append(
                Block(
                    "img",
                    f"{b}: few-shot curve",
                    path=plot_few_shot(
                        fs,
                        out_dir / f"few_shot_{b}.png",
                        f"{b}: few-shot (feature-based, median of "
                        f"{cfg.benchmarks.few_shot_seeds} seeds)",
                        info["metric"],
                    ),
                )
            )

    logs = {n: read_training_log(p) for n, p in model_dirs.items()}
    png = plot_pretrain_logs(logs, out_dir / "pretrain_training.png")
    if png is not None:
        blocks += [Block("h2", "Pretraining curves"), Block("img", "Pretraining loss", path=png)]
    return blocks
