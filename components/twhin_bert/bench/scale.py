"""``twhin-bert bench scale``: every stage on the demo TwHIN and on one ``factor`` times larger.

Generates the demo TwHIN at 1x (2,000 users, 10,000 tweets, ~100K engagements) and at
``factor`` x (default 100: 200,000 users, 1,000,000 tweets, ~10M engagements) with
``twhin-bert demo-data``, then runs every stage on each through the stage commands a user
would run (``twhin-bert ingest``, ``build_graph``, ``embed_graph``, ``mine_pairs``,
``train_tokenizer``, ``pretrain --objective mlm``, ``pretrain --objective mlm_social``,
``embed``, ``evaluate``), each a subprocess with the tiny pipeline config.

Per stage it records the wall time and the peak memory of the whole process tree (the
command and every process it starts: pool workers, launchers), polled from ``/proc`` every
``poll_s`` seconds, and also the largest single process's ``ru_maxrss`` (``os.wait4``, which
a poll cannot miss). The figure the goal judges is the tree's peak *anonymous* memory, summed
as proportional set sizes (``Pss_Anon + Pss_Shmem`` of ``/proc/PID/smaps_rollup``: what the
kernel cannot drop, a page shared by forked workers counted once). File-backed pages (a
memory-mapped output, the mapped libraries) are reclaimable page cache; the total (``Pss``,
or the largest single ``ru_maxrss`` when higher) is reported beside it as ``rss``.

Each stage has a memory model: what must be in memory, in bytes, as a function of the counts
(users U, tweets T, engagements E, mined pairs P, the graph dimension d). The model predicts
the stage's memory at ``factor`` x from its 1x measurement: ``rss_1x + model(Fx) - model(1x)``
(the interpreter, torch and the model weights are in both and cancel). The goal: no stage's
peak exceeds ``MARGIN`` times its prediction, i.e. memory grows only with what has to be in
memory, never with the raw input. Work that must scale with the input is fixed by config:
pretrain runs ``pretrain_steps`` (100) at both sizes, so its time does not grow, and evaluate
reads a seeded sample of ``evaluate_max_tweets`` tweets; the other stages do work
proportional to the input, and their time growth is shown, not judged. Defaults bound the
run (its time is in docs/RESULTS.md): 2 PBG epochs, one evaluate seed, 900 s per stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.bench import cli_argv
from twhin_bert.common.metrics import METRICS_FILE, read_metrics
from twhin_bert.demo_data.folder import DemoFolder
from twhin_bert.embed_graph.config import EmbedGraphConfig

#: The demo TwHIN at 1x (``twhin-bert demo-data``'s defaults).
BASE_USERS = 2_000
BASE_TWEETS = 10_000
#: A stage meets its memory model when its peak is at most this times the prediction.
MARGIN = 1.25
MB = 2**20


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Usage:
    """What one command cost: wall seconds and peak memory of its process tree (bytes)."""

    returncode: int
    wall_s: float
    anon_peak: int  # peak over polls of the tree's summed Pss_Anon + Pss_Shmem
    rss_peak: int  # peak over polls of the tree's summed Pss (file-backed pages included)
    maxrss_single: int  # largest ru_maxrss of the command or any descendant it waited for
    max_procs: int  # most processes seen in the tree at one poll
    timed_out: bool = False


def _proc_memory(pid: int) -> tuple[int, int]:
    """(Pss_Anon + Pss_Shmem, Pss) of ``pid`` in bytes; (0, 0) once it has gone.

    Proportional set sizes: a page shared by n processes (a forked worker's copy-on-write
    pages, a shared-memory tensor that Hogwild workers all map) counts 1/n in each, so the
    tree's sum counts it once.
    """
    anon = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Pss_Anon", "Pss_Shmem"):
                    anon += int(value.split()[0]) * 1024
                elif key == "Pss":
                    pss = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    return anon, pss


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants now alive."""
    import psutil

    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def measure(
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> Usage:
    """Runs ``argv`` to its end, polling the memory of its process tree.

    Args:
        argv: The command.
        log: File that receives its stdout and stderr.
        env: Its environment (default: this process's).
        poll_s: Seconds between polls of ``/proc``.
        timeout_s: Past this many seconds the command's process group is killed (SIGKILL)
            and the usage says ``timed_out`` (its peaks are then those seen so far).

    Returns:
        Its :class:`Usage`. The ``ru_maxrss`` of ``os.wait4`` covers the command and the
        descendants it waited for, each on its own (not summed); the polls sum the tree.
    """
    anon_peak = rss_peak = max_procs = 0
    timed_out = False
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout_s is not None and time.perf_counter() - t0 > timeout_s and not timed_out:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the command's tree
                continue
            pids = _tree(proc.pid)
            sums = [_proc_memory(p) for p in pids]
            anon_peak = max(anon_peak, sum(a for a, _ in sums))
            rss_peak = max(rss_peak, sum(r for _, r in sums))
            max_procs = max(max_procs, len(pids))
            time.sleep(poll_s)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    maxrss = rusage.ru_maxrss * 1024
    return Usage(
        returncode=proc.returncode,
        wall_s=wall,
        anon_peak=anon_peak,
        rss_peak=max(rss_peak, maxrss),
        maxrss_single=maxrss,
        max_procs=max_procs,
        timed_out=timed_out,
    )


# --------------------------------------------------------------------------- memory models


@dataclass(frozen=True)
class Counts:
    """The sizes a memory model reads: users, tweets, engagements, mined pairs, graph dim."""

    users: int
    tweets: int
    engagements: int
    pairs: int = 0
    dim: int = 32
    #: Arrow bytes of the tweets' ids, texts and hashtags (uncompressed Parquet column sizes).
    tweet_bytes: int = 0


@dataclass(frozen=True)
class MemoryModel:
    """What a stage must hold in memory, in words and in bytes as a function of the counts."""

    phrase: str
    bytes: Callable[[Counts], float]


#: Bytes per engagement row of build_graph's whole-graph numpy arrays (int64 user, tweet,
#: relation and split indices, the permutation and the filtered copies): the slope of its
#: peak RSS between 100K and 1M engagements measured by ``twhin-bert bench ingest``.
GRAPH_BYTES_PER_EDGE = 158
#: Bytes per edge of the chunk PBG trains on, over all its processes (torchbiggraph 1.0's
#: train.py and batching.py): the loaded int64 lhs, rhs and relation (24) and the shuffle
#: permutation (8) in the main process; in the Hogwild! workers together, their shares copied
#: (24), sorted by relation (values and order, 16; the differences, 8) and regrouped (24).
PBG_BYTES_PER_EDGE = 104
#: The stage's default chunk (the bench's config leaves it as it is).
_PBG_CHUNK = EmbedGraphConfig.model_fields["max_edges_per_chunk"].default
#: Bytes per tweet of pretrain stage 2's tweet index (fixed-width id bytes, an int32
#: language code, and the list of ids it is built from).
TWEET_INDEX_BYTES = 100

MODELS: dict[str, MemoryModel] = {
    "ingest": MemoryModel(
        "dedup keys: 16 B per tweet + 8 B per engagement key, twice that while the last "
        "runs merge; pieces in flight (fixed)",
        lambda c: 2 * (16 * c.tweets + 8 * c.engagements),
    ),
    "build_graph": MemoryModel(
        f"the whole edge list as numpy: {GRAPH_BYTES_PER_EDGE} B per engagement",
        lambda c: GRAPH_BYTES_PER_EDGE * c.engagements,
    ),
    "embed_graph": MemoryModel(
        f"embedding tables (users + tweets) x (4d + 4) B + one chunk of edges (at most "
        f"max_edges_per_chunk) x {PBG_BYTES_PER_EDGE} B",
        lambda c: (
            (c.users + c.tweets) * (4 * c.dim + 4)
            + PBG_BYTES_PER_EDGE * min(c.engagements, _PBG_CHUNK)
        ),
    ),
    "mine_pairs": MemoryModel(
        "tweet vectors + FAISS index (2 x T x 4d B) + the tweets' ids, texts, hashtags in "
        "Arrow + pair indices P x 24 B; one chunk of pairs",
        lambda c: 2 * c.tweets * 4 * c.dim + c.tweet_bytes + 24 * c.pairs,
    ),
    "train_tokenizer": MemoryModel(
        "one batch of texts + the trainer's word counts (bounded by the vocabulary)",
        lambda c: 0.0,
    ),
    "pretrain_mlm": MemoryModel(
        "model + optimizer states + one batch + the shuffle buffer (fixed by config)",
        lambda c: 0.0,
    ),
    "pretrain_mlm_social": MemoryModel(
        f"model + optimizer + pair shuffle buffer + tweet index T x {TWEET_INDEX_BYTES} B",
        lambda c: TWEET_INDEX_BYTES * c.tweets,
    ),
    "embed": MemoryModel(
        "model + one chunk of texts; vectors go to memory-mapped files",
        lambda c: 0.0,
    ),
    "evaluate": MemoryModel(
        "user embeddings U x 4d B + the evaluated tweets' vectors and at most max_users x "
        "candidates per split (both capped by config)",
        lambda c: c.users * 4 * c.dim,
    ),
}


def judge(
    anon_1x: float, anon_fx: float, model_1x: float, model_fx: float, margin: float = MARGIN
) -> tuple[float, bool]:
    """The memory a model predicts at the larger size, and whether the measurement keeps to it.

    Args:
        anon_1x, anon_fx: Measured peaks at 1x and at the larger size (bytes).
        model_1x, model_fx: The model's bytes at each size.
        margin: Allowed factor over the prediction.

    Returns:
        ``(predicted, within)``: ``anon_1x + model_fx - model_1x`` and whether ``anon_fx``
        is at most ``margin`` times it.
    """
    predicted = anon_1x + max(model_fx - model_1x, 0.0)
    return predicted, anon_fx <= margin * predicted


# --------------------------------------------------------------------------- the run


def _stage_argv(stage: str, d: Path, data: Path, config: Path) -> list[str]:
    """The command of ``stage`` in the scale folder ``d``: its output is ``d / stage``."""
    common = ["--config", str(config)]
    ing = ["--ingested", str(d / "ingest")]
    tok = ["--tokenizer", str(d / "train_tokenizer")]
    demo = DemoFolder(data)
    argv = {
        "ingest": [
            "ingest",
            "--tweets",
            str(demo.tweets),
            "--engagements",
            str(demo.engagements),
        ],
        "build_graph": ["build_graph", *ing],
        "embed_graph": ["embed_graph", "--graph", str(d / "build_graph")],
        "mine_pairs": [
            "mine_pairs",
            *ing,
            "--graph-embeddings",
            str(d / "embed_graph"),
            "--parallel",
            str(demo.parallel),
            "--truth",
            str(demo.tweet_topics),
        ],
        "train_tokenizer": ["train_tokenizer", *ing],
        "pretrain_mlm": ["pretrain", "--objective", "mlm", *ing, *tok],
        "pretrain_mlm_social": [
            "pretrain",
            "--objective",
            "mlm_social",
            *ing,
            *tok,
            "--pairs",
            str(d / "mine_pairs"),
            "--init-from",
            str(d / "pretrain_mlm"),
        ],
        "embed": ["embed", "--model", str(d / "pretrain_mlm_social"), *ing],
        "evaluate": [
            "evaluate",
            "--model",
            str(d / "pretrain_mlm_social"),
            *ing,
            "--graph-embeddings",
            str(d / "embed_graph"),
        ],
    }[stage]
    return [*cli_argv(), *argv, "--out", str(d / stage), *common]


def _write_config(path: Path, pretrain_steps: int | None, overrides: Mapping[str, Any]) -> int:
    """Writes the tiny pipeline config (resolved) with the bench's overrides; returns d."""
    import yaml

    # The resolved tiny config as a user gets it (`twhin-bert config --config tiny`): through
    # the CLI, since the library never imports the pipelines layer above it.
    shown = subprocess.run(
        [*cli_argv(), "config", "--config", "tiny"], capture_output=True, text=True, check=True
    )
    cfg = yaml.safe_load(shown.stdout)
    if pretrain_steps is not None:
        for objective in ("mlm", "mlm_social"):
            section = cfg["pretrain"][objective]
            section["steps"] = pretrain_steps
            section["warmup_steps"] = min(section["warmup_steps"], max(pretrain_steps // 10, 1))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return int(cfg["embed_graph"]["dimension"])


def _generate(d: Path, factor: int, seed: int, env: Mapping[str, str]) -> tuple[Usage | None, Path]:
    """The demo TwHIN at ``factor`` x in ``d/data`` (kept when already there)."""
    data = d / "data"
    if DemoFolder(data).complete():
        return None, data  # a kept workdir's inputs: generated by an earlier run
    argv = [
        *cli_argv(),
        "demo-data",
        "--out",
        str(data),
        "--users",
        str(BASE_USERS * factor),
        "--tweets",
        str(BASE_TWEETS * factor),
        "--seed",
        str(seed),
    ]
    usage = measure(argv, d / "demo-data.log", env)
    if usage.returncode != 0:
        raise RuntimeError(f"demo-data failed ({usage.returncode}): see {d / 'demo-data.log'}")
    return usage, data


def _counts(data: Path, d: Path, dim: int) -> Counts:
    """The counts of the scale folder ``d``: the generated TwHIN's, the mined pairs and the
    Arrow size of the ingested tweets' ids, texts and hashtags."""
    from twhin_bert.common import schemas

    counts = DemoFolder(data).counts()
    pairs = 0
    if (d / "mine_pairs" / METRICS_FILE).exists():
        pairs = int(read_metrics(d / "mine_pairs")["pairs"]["total"])
    tweet_bytes = 0
    tweets = d / "ingest" / Ingested.TWEETS
    if tweets.exists():
        meta = schemas.open_parquet(tweets).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                if col.path_in_schema.split(".")[0] in ("tweet_id", "text", "hashtags"):
                    tweet_bytes += col.total_uncompressed_size
    return Counts(counts["users"], counts["tweets"], counts["engagements"], pairs, dim, tweet_bytes)


#: Per scale folder: the usage of each stage measured there (kept with the outputs).
USAGE_FILE = "usage.json"


def run_scale(
    root: Path,
    factor: int,
    config: Path,
    seed: int,
    poll_s: float,
    timeout_s: float | None = None,
    stages: Sequence[str] | None = None,
) -> tuple[dict[str, Usage], Usage | None, Path]:
    """Generates the demo at ``factor`` x under ``root/x{factor}`` and runs every stage on it.

    A stage that fails or runs past ``timeout_s`` is recorded as such and the next stages
    still run (those that need its output fail at once, naming the missing file). Each
    stage's usage is saved in ``root/x{factor}/usage.json`` as it ends.

    Args:
        stages: Run only these and take the others' usage (and outputs) from an earlier run
            in the same folder (None: run all).

    Returns:
        The usage of each stage (in :data:`MODELS` order), that of the generation (None when
        reused) and the data folder.
    """
    d = root / f"x{factor}"
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TWHIN_BERT_TRACKING="0", TWHIN_BERT_PROGRESS="0")
    gen, data = _generate(d, factor, seed, env)
    saved_path = d / USAGE_FILE
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    usages: dict[str, Usage] = {}
    for stage in MODELS:
        if stages is not None and stage not in stages:
            if stage not in saved:
                raise ValueError(f"{saved_path}: no usage of {stage}; run it (stages=...)")
            usages[stage] = Usage(**{k: v for k, v in saved[stage].items() if k in _FIELDS})
            continue
        log = d / f"{stage}.log"
        usage = measure(_stage_argv(stage, d, data, config), log, env, poll_s, timeout_s)
        usages[stage] = usage
        saved[stage] = {**vars(usage), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        saved_path.write_text(json.dumps(saved, indent=1) + "\n")
        print(
            f"[x{factor}] {stage}: {_status(usage)}, {usage.wall_s:.1f} s, "
            f"anon {usage.anon_peak / MB:.0f} MB, rss {usage.rss_peak / MB:.0f} MB ({log})",
            file=sys.stderr,
            flush=True,
        )
    return usages, gen, data


_FIELDS = set(Usage.__dataclass_fields__)


def _status(u: Usage) -> str:
    return "timed out" if u.timed_out else "ok" if u.returncode == 0 else f"exit {u.returncode}"


def rows_and_verdicts(
    small: Mapping[str, Usage],
    large: Mapping[str, Usage],
    c1: Counts,
    cf: Counts,
    margin: float = MARGIN,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One table row per stage (wall, memory at both sizes, growth, model, prediction) and
    the stages that did not keep to it: over ``margin`` times their model's prediction, or
    failed, or timed out at either size (their peak is then only a lower bound).

    ``max1_*`` is the largest single process's ``ru_maxrss`` (resident, file pages
    included): beside the tree's sum it shows whether growth is in the command or in the
    workers it starts."""
    rows: list[dict[str, Any]] = []
    broken: list[str] = []
    for stage, model in MODELS.items():
        a, b = small[stage], large[stage]
        predicted, within = judge(
            a.anon_peak, b.anon_peak, model.bytes(c1), model.bytes(cf), margin
        )
        status = _status(b) if _status(a) == "ok" else f"1x {_status(a)}"
        if not within or status != "ok":
            broken.append(stage)
        rows.append(
            {
                "stage": stage,
                "status": status,
                "wall_1x_s": round(a.wall_s, 1),
                "wall_Fx_s": round(b.wall_s, 1),
                "wall_growth": round(b.wall_s / max(a.wall_s, 1e-9), 2),
                "mem_1x_MB": round(a.anon_peak / MB),
                "mem_Fx_MB": round(b.anon_peak / MB),
                "mem_growth": round(b.anon_peak / max(a.anon_peak, 1), 2),
                "rss_Fx_MB": round(b.rss_peak / MB),
                "max1_1x_MB": round(a.maxrss_single / MB),
                "max1_Fx_MB": round(b.maxrss_single / MB),
                "procs": b.max_procs,
                "model_MB": round(predicted / MB),
                "within": within,
            }
        )
    return rows, broken


def main(
    quick: bool = False,
    factor: int = 100,
    workdir: str | None = None,
    seed: int = 0,
    pretrain_steps: int | None = 100,
    graph_epochs: int | None = 2,
    evaluate_max_tweets: int | None = BASE_TWEETS,
    evaluate_seeds: int | None = 1,
    poll_s: float = 0.2,
    timeout_s: float | None = 900,
    stages: str | None = None,
) -> dict[str, Any]:
    """Runs every stage on the demo TwHIN and on ``factor`` times it; judges memory growth.

    Args:
        quick: ``factor`` 10 and 50 pretrain steps per objective.
        factor: How much larger the second TwHIN is (users, tweets and engagements).
        workdir: Where the data and outputs go (kept; generated data is reused from it).
            Default: a temporary folder, removed.
        seed: Seed of the generated TwHINs.
        pretrain_steps: Steps of each pretrain objective (None: the tiny config's 600 and
            1,200). Steps cost time, not memory, and are the same at both sizes.
        graph_epochs: ``embed_graph.num_epochs`` (None: the tiny config's 10). Epochs cost
            time, not memory: PBG holds the same tables and bucket whatever their number.
        evaluate_max_tweets: ``evaluate.max_tweets``: the tweets evaluate reads, a seeded
            sample (default: the demo's 10,000 tweets, so 1x reads them all and Fx a sample
            of the same size; None: every tweet).
        evaluate_seeds: ``evaluate.engagement.seeds`` (None: the tiny config's 3).
        poll_s: Seconds between polls of the process tree's memory.
        timeout_s: Seconds each stage may run (None: no limit); a stage past it is killed
            and fails the goal (its peak so far is only a lower bound). On 2 shared cores
            ``embed`` of 1M tweets takes longer than the default 900 s.
        stages: Comma-separated stages to (re)run at both sizes in a kept ``workdir``; the
            others' figures are those saved there by an earlier run (default: all;
            ``none``: judge the saved figures only).

    Returns:
        The JSON summary (also printed as the last line): per stage wall seconds and peak
        memory at both sizes and their growth, the stages over their model, and ``met``.
    """
    from twhin_bert.common.bench import print_table, report

    if quick:
        factor = 10
        pretrain_steps = 50
    overrides: dict[str, Any] = {"evaluate.max_tweets": evaluate_max_tweets}
    if graph_epochs is not None:
        overrides["embed_graph.num_epochs"] = graph_epochs
    if evaluate_seeds is not None:
        overrides["evaluate.engagement.seeds"] = evaluate_seeds
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="twhin-bench-scale-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        config = root / "scale-config.yaml"
        dim = _write_config(config, pretrain_steps, overrides)
        only = None if stages is None else [x.strip() for x in stages.split(",") if x.strip()]
        if only == ["none"]:
            only = []  # no stage re-run: the saved usage judged again (e.g. a new model)
        elif only is not None and (not only or set(only) - set(MODELS)):
            raise ValueError(f"stages={stages!r}: expected some of {', '.join(MODELS)}")
        small, gen1, data1 = run_scale(root, 1, config, seed, poll_s, timeout_s, only)
        large, genf, dataf = run_scale(root, factor, config, seed, poll_s, timeout_s, only)
        c1 = _counts(data1, root / "x1", dim)
        cf = _counts(dataf, root / f"x{factor}", dim)
    load_after = os.getloadavg()
    rows, broken = rows_and_verdicts(small, large, c1, cf)
    print_table(
        "demo-data (not a stage)",
        [
            {"scale": s, "wall_s": round(g.wall_s, 1), "rss_MB": round(g.rss_peak / MB)}
            for s, g in (("1x", gen1), (f"{factor}x", genf))
            if g is not None
        ],
    )
    print_table(
        "memory models (model_MB: the 1x peak + the model's growth to the larger size)",
        [{"stage": stage, "holds in memory": m.phrase} for stage, m in MODELS.items()],
    )
    figures: dict[str, Any] = {
        "factor": factor,
        "counts_1x": vars(c1),
        "counts_Fx": vars(cf),
        "pretrain_steps": pretrain_steps or "tiny config",
        "config_overrides": overrides,
        "stages_rerun": "all" if only is None else only,
        "margin": MARGIN,
        "stages": {r["stage"]: {k: v for k, v in r.items() if k != "stage"} for r in rows},
        "over_model": broken,
        "wall_s_1x": round(sum(u.wall_s for u in small.values()), 1),
        "wall_s_Fx": round(sum(u.wall_s for u in large.values()), 1),
        "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(load_after[0], 2),
        "cpus_available": len(os.sched_getaffinity(0)),
    }
    return report(
        "scale",
        rows,
        figures,
        goal=f"at {factor}x the demo, every stage's peak anonymous RSS (process tree) is at "
        f"most {MARGIN}x what its memory model predicts from its 1x peak; pretrain steps are "
        "fixed by config",
        met=not broken,
    )
