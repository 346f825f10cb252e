"""Plots (matplotlib, Agg) and the Markdown + HTML report of the evaluate stage.

The report is built from the typed results (:mod:`twhin_bert.evaluate.results`) as a list
of blocks (headings, paragraphs, tables, images), one function per section, rendered twice: Markdown with PNG links beside it, and a self-contained HTML page with the PNGs
embedded as base64.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twhin_bert.common.artifacts import Evaluation, ModelFolder

if TYPE_CHECKING:
    from twhin_bert.evaluate.config import EvaluateConfig
    from twhin_bert.evaluate.results import EvaluationResult, Score, TaskResult

log = logging.getLogger(__name__)


@dataclass
class Block:
    """One report element: ``kind`` in h1/h2/h3/p/table/img."""

    kind: str
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    path: Path | None = None


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def plot_hits_curve(curves: Mapping[str, Mapping[str, float]], path: Path, k: int) -> Path:
    """HITS@k against k (1..max) for each model and floor."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in curves.items():
        ks = [int(x) for x in curve]
        style = "--" if name.startswith("floor:") else "-"
        ax.plot(ks, list(curve.values()), style, label=name)
    ax.axvline(k, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("k")
    ax.set_ylabel("HITS@k")
    ax.set_title("Engagement prediction: HITS@k (median over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_grouped_bars(
    series: Mapping[str, Mapping[str, float]], path: Path, title: str, ylabel: str
) -> Path:
    """Grouped bars: one group per key (e.g. language), one bar per series (model / floor)."""
    plt = _plt()
    keys = sorted({k for s in series.values() for k in s})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(keys) * max(1, len(series))), 4.2))
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [vals.get(k, 0.0) for k in keys], width=width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels(keys, rotation=45 if len(keys) > 8 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_few_shot(
    curves: Mapping[str, Mapping[str, float]], path: Path, title: str, ylabel: str
) -> Path:
    """Score against examples per class (log2 x axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        if not c:
            continue
        style = "--" if name.startswith("floor:") else "-o"
        ax.plot([int(x) for x in c], list(c.values()), style, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_projection_training(
    curves: Mapping[str, Sequence[Mapping[str, float]]], path: Path, k: int
) -> Path:
    """The engagement projection model's train loss and validation HITS@k per epoch."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, c in curves.items():
        ep = [r["epoch"] for r in c]
        a1.plot(ep, [r["loss"] for r in c], "-o", label=name, ms=3)
        a2.plot(ep, [r["val_hits"] for r in c], "-o", label=name, ms=3)
    a1.set_title("projection model: train loss")
    a2.set_title(f"projection model: validation HITS@{k}")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return _save(fig, path)


def read_training_log(model_dir: Path) -> list[dict[str, Any]]:
    """The ``training_log.json`` of a model folder (pretrain writes one): entries with ``step``
    and loss keys; a dict holding such a list under any key is accepted too. Empty if absent."""
    p = Path(model_dir) / ModelFolder.TRAINING_LOG
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        log.warning("%s: not valid JSON (%s); training curve skipped", p, e)
        return []
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [])
    return [r for r in data if isinstance(r, dict) and "step" in r]


def plot_pretrain_logs(logs: Mapping[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """Pretraining loss curves (every ``*loss`` key) of each model that has a training log."""
    logs = {n: rows for n, rows in logs.items() if rows}
    if not logs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in logs.items():
        keys = sorted(
            {
                k
                for r in rows
                for k, v in r.items()
                if k.endswith("loss") and isinstance(v, int | float)
            }
        )
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=f"{name}: {key}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Pretraining curves (training_log.json)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def fmt(v: Any) -> str:
    """Numbers to 4 decimals; None as a dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown; images link to the PNG files beside the report."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out.extend("| " + " | ".join(fmt(c) for c in r) + " |" for r in b.rows)
        elif b.kind == "img" and b.path is not None:
            out.append(f"![{b.text}]({b.path.name})")
        out.append("")
    return "\n".join(out)


def render_html(blocks: Sequence[Block], title: str) -> str:
    """A self-contained HTML page (PNGs embedded as base64)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}img{max-width:100%}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>"
                for r in b.rows
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b.kind == "img" and b.path is not None:
            data = base64.b64encode(b.path.read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, blocks: Sequence[Block], title: str) -> tuple[Path, Path]:
    """Writes ``report.md`` and ``report.html`` into ``out_dir``."""
    md = out_dir / Evaluation.REPORT_MD
    md.write_text(render_markdown(blocks), encoding="utf-8")
    page = out_dir / Evaluation.REPORT_HTML
    page.write_text(render_html(blocks, title), encoding="utf-8")
    return md, page


# ----------------------------------------------------------------- the evaluation's sections
def report_blocks(
    result: EvaluationResult, model_dirs: Mapping[str, Path], cfg: EvaluateConfig, out_dir: Path
) -> list[Block]:
    """The evaluation report: headline, one section per task family, pretraining curves.

    Plots are written into ``out_dir`` as the blocks are built.
    """
    blocks = _headline_blocks(result, model_dirs, cfg)
    for task in result.task("engagement"):
        blocks += _engagement_blocks(task, cfg, out_dir)
    for task in result.task("hashtag"):
        blocks += _hashtag_blocks(task, cfg, out_dir)
    if result.task("benchmark"):
        blocks += _benchmark_blocks(result.task("benchmark"), cfg, out_dir)
    return blocks + _pretrain_blocks(model_dirs, out_dir)


def _headline_blocks(
    result: EvaluationResult, model_dirs: Mapping[str, Path], cfg: EvaluateConfig
) -> list[Block]:
    primary = {n: result.primary(n) for n in result.models}
    blocks = [
        Block("h1", "TwHIN-BERT evaluation"),
        Block(
            "p",
            f"Models: {', '.join(f'{n} ({p})' for n, p in model_dirs.items())}. "
            f"Candidate: {result.candidate}. Every score sits beside a floor computed on the "
            f"same split; classification headline mode: {cfg.primary_mode}.",
        ),
        Block("h2", "Headline"),
        Block(
            "table",
            header=["metric", *result.models],
            rows=[
                [key, *(primary[n].get(key) for n in result.models)]
                for key in primary[result.candidate]
            ],
        ),
    ]
    if result.baseline in result.models:
        ablation = list(result.ablation().items())
        blocks.append(Block("table", header=["ablation", "value"], rows=ablation))
    return blocks


def _seeds(score: Score) -> str:
    return ", ".join(f"{v:.4f}" for v in score.seeds)


def _engagement_blocks(task: TaskResult, cfg: EvaluateConfig, out_dir: Path) -> list[Block]:
    k, cnt = cfg.engagement.k, task.info
    floors = {f"floor:{f}": s for f, s in task.floors.items()}
    blocks = [
        Block("h2", "Social engagement prediction"),
        Block(
            "p",
            f"Frozen encoders, Combined tweet embeddings, {cfg.engagement.dim}-d projections; "
            f"tweets split {cfg.engagement.split_fractions} by tweet; {cnt['test_users']} test users, "
            f"{cnt['mean_candidates']:.0f} candidates each on average; median of "
            f"{cfg.engagement.seeds} seeds. {cnt['users_without_embedding']} users without a "
            f"graph embedding skipped ({cnt['pairs_user_without_embedding']} pairs).",
        ),
        Block(
            "table",
            header=["model / floor / reference", f"HITS@{k}", "seeds"],
            rows=[[n, s.value, _seeds(s)] for n, s in task.models.items()]
            + [[f"floor: {f}", s.value, _seeds(s)] for f, s in task.floors.items()]
            + [[f"reference: {r}", s.value, _seeds(s)] for r, s in task.references.items()],
        ),
        *(
            [
                Block(
                    "p",
                    f"References ({', '.join(task.references)}; demo data): the same "
                    "projection model over the planted topic, known or as a logistic "
                    "regression reads it from the text, each beside the tweet's language: the "
                    "room this data leaves above the models (not drawn in the plots).",
                )
            ]
            if task.references
            else []
        ),
        Block(
            "img",
            "HITS@k curve",
            path=plot_hits_curve(
                {n: s.curve for n, s in {**task.models, **floors}.items()},
                out_dir / "engagement_hits_at_k.png",
                k,
            ),
        ),
    ]
    # The random floor's per-language values are k / candidates everywhere: not drawn.
    by_lang = {n: s.by_lang for n, s in {**task.models, **floors}.items() if n != "floor:random"}
    if any(by_lang.values()):
        path = plot_grouped_bars(
            by_lang,
            out_dir / "engagement_by_lang.png",
            f"Engagement HITS@{k} per language",
            f"HITS@{k}",
        )
        blocks.append(Block("img", f"HITS@{k} per language", path=path))
    training = {n: s.training for n, s in {**task.models, **floors}.items() if s.training}
    path = plot_projection_training(training, out_dir / "engagement_training.png", k)
    return [*blocks, Block("img", "Projection model training", path=path)]


def _hashtag_blocks(task: TaskResult, cfg: EvaluateConfig, out_dir: Path) -> list[Block]:
    info, floor = task.info, task.floors["tfidf"]
    blocks = [
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
                [n, s.variants.get("feature_macro_f1"), s.variants.get("finetune_macro_f1")]
                for n, s in task.models.items()
            ]
            + [["floor: tfidf", floor.value, None]],
        ),
    ]
    series = {n: s.by_lang for n, s in task.models.items()} | {"floor:tfidf": floor.by_lang}
    if any(series.values()):
        path = plot_grouped_bars(
            series, out_dir / "hashtag_by_lang.png", "Hashtag macro-F1 per language", "macro-F1"
        )
        blocks.append(Block("img", "Hashtag macro-F1 per language", path=path))
    return blocks


def _benchmark_blocks(tasks: list[TaskResult], cfg: EvaluateConfig, out_dir: Path) -> list[Block]:
    rows = []
    for t in tasks:
        m = t.metric
        for n, s in t.models.items():
            rows.append(
                [t.name, m, n, s.variants.get(f"feature_{m}"), s.variants.get(f"finetune_{m}")]
            )
        rows.append([t.name, m, "floor: tfidf", t.floors["tfidf"].value, None])
    notes = ["; ".join([f"{t.name}: {t.info['counts']}", *t.info["notes"]]) for t in tasks]
    blocks = [
        Block("h2", "External benchmarks"),
        Block(
            "table",
            header=["benchmark", "metric", "model / floor", "feature-based", "fine-tuned"],
            rows=rows,
        ),
        Block("p", "Splits used: " + " | ".join(notes)),
    ]
    for t in tasks:
        curves = {n: s.few_shot for n, s in t.models.items()}
        curves["floor:tfidf"] = t.floors["tfidf"].few_shot
        title = (
            f"{t.name}: few-shot (feature-based, median of {cfg.benchmarks.few_shot_seeds} seeds)"
        )
        path = plot_few_shot(curves, out_dir / f"few_shot_{t.name}.png", title, t.metric)
        blocks.append(Block("img", f"{t.name}: few-shot curve", path=path))
    return blocks


def _pretrain_blocks(model_dirs: Mapping[str, Path], out_dir: Path) -> list[Block]:
    logs = {n: read_training_log(p) for n, p in model_dirs.items()}
    png = plot_pretrain_logs(logs, out_dir / "pretrain_training.png")
    if png is None:
        return []
    return [Block("h2", "Pretraining curves"), Block("img", "Pretraining loss", path=png)]
