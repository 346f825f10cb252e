"""``twhin-bert bench ingest``: throughput, peak memory as the input grows 10x, and the
scaling from one core to two; build_graph over the same outputs.

Generates two demo TwHINs (100K and 1M engagements; 5K and 50K with ``quick``), ingests each
in a fresh Python process with ``workers=1`` and measures rows per second (wall and CPU) and
the peak resident set size (VmHWM of the child). The smaller input is the baseline measured
in the same run: ingest streams, so peak RSS should grow by at most 1.3x while the input
grows 10x, and rows should go through at well over 50K per CPU-second.

Scaling: the large input is ingested again with ``workers=2``, alternating with
``workers=1``, ``repeats`` times each; the speedup is the best ``workers=1`` wall time over
the best ``workers=2`` one (best of several, because the machine may be shared: the load
average before and after is part of the figures), and the outputs of both settings must
be byte-identical. Goal: speedup >= 1.6 on 2 cores, or 0.95 of what the machine gives two
independent CPU-bound Python processes (:func:`~twhin_bert.common.bench.parallel_ceiling`,
measured beside each pair: on a virtual machine whose cores slow down when both are busy,
1.6x may be out of reach for any program). The CPU-seconds of both settings
(parent and workers) show what parallelism costs, and the share spent in the parent (the
serial merge) bounds the speedup any number of cores can give (Amdahl).

build_graph then runs over both ingest outputs (``workers=1``, and ``workers=2`` on the
large one): rows per CPU-second, and bytes of peak RSS per engagement row from the slope
between the two sizes (build_graph holds the whole graph in memory). These figures size
docs/SCALE.md; they are not part of the goal.
"""

from __future__ import annotations

import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twhin_bert.common.artifacts import Ingested
from twhin_bert.demo_data.folder import DemoFolder

#: Runs in the child: ingest once, print one JSON line with time, CPU and peak RSS.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.ingest import run_ingest
from twhin_bert.ingest.langid import LanguageDetector


def peak_rss_kb():
    # VmHWM: this process image's high-water mark. ru_maxrss would carry the parent's size
    # over fork + exec on Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


cfg = IngestConfig.model_validate_json(sys.argv[1])
LanguageDetector()  # load the language model before measuring the baseline
rss_ready = peak_rss_kb()
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
metrics = run_ingest(cfg, Path(sys.argv[2]), tweets=[sys.argv[3]], engagements=[sys.argv[4]])
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the ingest workers, reaped at the end
print(json.dumps({
    "metrics": metrics,
    "wall_s": wall,
    "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "cpu_workers_s": c1.ru_utime + c1.ru_stime,
    "rss_ready_kb": rss_ready,
    "rss_peak_kb": peak_rss_kb(),
    "rss_worker_peak_kb": c1.ru_maxrss,
}))
"""


#: Runs in the child: build_graph once over an ingest output, one JSON line as above.
_GRAPH_CHILD = r"""
import json, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore", UserWarning)
import torchbiggraph.graph_storages  # imported before measuring, as the stage does at start
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.build_graph.graph import run_build_graph


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


cfg = BuildGraphConfig.model_validate_json(sys.argv[1])
rss_ready = peak_rss_kb()
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
metrics = run_build_graph(cfg, Path(sys.argv[2]), ingested=Path(sys.argv[3]))
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "rows": metrics["rows_read"],
    "edges": metrics["edges"],
    "wall_s": wall,
    "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "cpu_workers_s": c1.ru_utime + c1.ru_stime,
    "rss_ready_kb": rss_ready,
    "rss_peak_kb": peak_rss_kb(),
}))
"""


def _graph_in_child(ingested: Path, out: Path, workers: int) -> dict[str, Any]:
    """build_graph (default config but ``workers``) on an ingest output, in a fresh process."""
    from twhin_bert.build_graph.config import BuildGraphConfig

    cfg = BuildGraphConfig(workers=workers).model_dump_json()
    env = dict(os.environ, TWHIN_BERT_TRACKING="0", TWHIN_BERT_PROGRESS="0")
    argv = [sys.executable, "-c", _GRAPH_CHILD, cfg, str(out), str(ingested)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"build_graph child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = res["cpu_s"] + res["cpu_workers_s"]
    return {
        "workers": workers,
        "rows": res["rows"],
        "edges": res["edges"],
        "wall_s": round(res["wall_s"], 2),
        "cpu_s": round(cpu, 2),
        "rows/cpu_s": round(res["rows"] / max(cpu, 1e-9)),
        "rss0_MB": round(res["rss_ready_kb"] / 1024, 1),
        "rss_MB": round(res["rss_peak_kb"] / 1024, 1),
    }


def _generate(out: Path, engagements: int, seed: int) -> None:
    """Writes a demo TwHIN with ~``engagements`` engagements (10 per tweet), in a subprocess
    so that this process stays small."""
    code = (
        "import sys; from twhin_bert.demo_data.generate import generate_demo; "
        "generate_demo(sys.argv[1], users=int(sys.argv[2]), tweets=int(sys.argv[3]), "
        "seed=int(sys.argv[4]), engagements_per_tweet=10.0, parallel_pairs=10)"
    )
    tweets = max(engagements // 10, 100)
    users = max(engagements // 50, 200)
    argv = [sys.executable, "-c", code, str(out), str(users), str(tweets), str(seed)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"demo generation failed:\n{proc.stderr[-4000:]}")


def _ingest_in_child(demo: Path, out: Path, config_json: str) -> dict[str, Any]:
    env = dict(os.environ, TWHIN_BERT_TRACKING="0", TWHIN_BERT_PROGRESS="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            config_json,
            str(out),
            str(DemoFolder(demo).tweets),
            str(DemoFolder(demo).engagements),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ingest child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: Outputs that must be byte-identical whatever ``workers`` is.
_OUTPUTS = (Ingested.TWEETS, Ingested.ENGAGEMENTS, Ingested.QUARANTINE)
SPEEDUP_GOAL = 1.6
#: ... or this share of :func:`parallel_ceiling`, where the machine cannot give 1.6x at all.
CEILING_SHARE = 0.95


def _row(res: dict[str, Any], demo: Path, workers: int) -> dict[str, Any]:
    m = res["metrics"]
    cpu = res["cpu_s"] + res["cpu_workers_s"]
    return {
        "workers": workers,
        "engagements": m["engagements"]["rows_in"],
        "tweets": m["tweets"]["rows_in"],
        "MB": round(sum(f.stat().st_size for f in demo.glob("*.jsonl")) / 2**20, 1),
        "wall_s": round(res["wall_s"], 2),
        "cpu_s": round(cpu, 2),
        "parent_cpu_s": round(res["cpu_s"], 2),
        "rows/s": round(m["rows_in"] / res["wall_s"]),
        "eng/s": round(m["engagement_rows_per_second"]),
        "rows/cpu_s": round(m["rows_in"] / max(cpu, 1e-9)),
        "rss0_MB": round(res["rss_ready_kb"] / 1024, 1),
        "rss_MB": round(res["rss_peak_kb"] / 1024, 1),
        "quar": m["quarantined_total"],
    }


def _identical(a: Path, b: Path) -> bool:
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in _OUTPUTS)


def main(
    quick: bool = False,
    workdir: str | None = None,
    batch_size: int = 8192,
    seed: int = 0,
    repeats: int = 2,
) -> dict[str, Any]:
    """Measures ingest rows/s and peak RSS on two inputs 10x apart, and the speedup of two
    workers over one on the larger.

    Args:
        quick: 5K and 50K engagements instead of 100K and 1M (a smoke test).
        workdir: Where the demo inputs and outputs go (default: a temporary folder, removed).
        batch_size: Ingest's ``batch_size``.
        seed: Seed of the generated inputs.
        repeats: Runs of each ``workers`` setting on the large input (best wall time counts).

    Returns:
        The JSON summary (also printed as the last line): rows/s per size, peak RSS per size,
        ``rss_growth`` (large / small), rows/s at 1 and 2 workers, ``speedup``, whether the
        outputs were identical, the load average, and ``met``.
    """
    from twhin_bert.common.bench import parallel_ceiling, report
    from twhin_bert.ingest.config import IngestConfig

    sizes = (5_000, 50_000) if quick else (100_000, 1_000_000)
    configs = {w: IngestConfig(batch_size=batch_size, workers=w).model_dump_json() for w in (1, 2)}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="twhin-bench-ingest-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        results = []
        for n in sizes:
            demo = root / f"demo-{n}"
            if not DemoFolder(demo).complete():  # reuse a kept workdir's inputs
                _generate(demo, n, seed)
            res = _ingest_in_child(demo, root / f"ingested-{n}-w1", configs[1])
            results.append(_row(res, demo, 1))
        # Scaling on the large input: alternate the settings so that a change in the
        # machine's load hits both; the first workers=1 run is the one above.
        scaling: dict[int, list[dict[str, Any]]] = {1: [results[-1]], 2: []}
        ceilings = []  # the machine's own 2-process speedup, measured beside each pair
        for k in range(max(repeats, 1)):
            ceilings.append(parallel_ceiling(2, n=200_000 if quick else 1_000_000))
            for w in (2, 1):
                if w == 1 and k == max(repeats, 1) - 1:
                    continue  # repeats runs of each in all
                out = root / f"ingested-{sizes[1]}-w{w}-{k}"
                scaling[w].append(_row(_ingest_in_child(demo, out, configs[w]), demo, w))
        identical = _identical(root / f"ingested-{sizes[1]}-w1", root / f"ingested-{sizes[1]}-w2-0")
        # build_graph over both ingest outputs: CPU per row, and memory per row from the
        # slope of peak RSS between the sizes (it holds the whole graph in memory).
        graphs = [
            _graph_in_child(root / f"ingested-{n}-w1", root / f"graph-{n}-w{w}", w)
            for n, w in ((sizes[0], 1), (sizes[1], 1), (sizes[1], 2))
        ]
    load_after = os.getloadavg()
    small, large = results
    input_growth = large["engagements"] / max(small["engagements"], 1)
    rss_growth = large["rss_MB"] / small["rss_MB"]
    eng_rate = large["eng/s"]
    cpu_rate = large["rows/cpu_s"]
    best = {w: min(runs, key=lambda r: r["wall_s"]) for w, runs in scaling.items()}
    speedup = best[1]["wall_s"] / best[2]["wall_s"]
    ceiling = statistics.median(ceilings)
    speedup_goal = min(SPEEDUP_GOAL, CEILING_SHARE * ceiling)
    serial_share = best[2]["parent_cpu_s"] / max(best[2]["cpu_s"], 1e-9)
    met = rss_growth <= 1.3 and cpu_rate >= 50_000 and speedup >= speedup_goal and identical
    g_small, g_large, g_large2 = graphs
    graph_bytes_per_row = (
        (g_large["rss_MB"] - g_small["rss_MB"]) * 2**20 / max(g_large["rows"] - g_small["rows"], 1)
    )
    figures = {
        "sizes": list(sizes),
        "input_growth": round(input_growth, 2),
        "rss_peak_mb_small": small["rss_MB"],
        "rss_peak_mb_large": large["rss_MB"],
        "rss_growth": round(rss_growth, 3),
        "engagement_rows_per_s": eng_rate,
        "rows_per_cpu_s": cpu_rate,
        "rows_per_s_small": small["rows/s"],
        "rows_per_s_large": large["rows/s"],
        "rows_per_s_workers1": best[1]["rows/s"],
        "rows_per_s_workers2": best[2]["rows/s"],
        "speedup_2_workers": round(speedup, 3),
        "machine_parallel_ceiling": round(ceiling, 3),
        "speedup_vs_ceiling": round(speedup / ceiling, 3),
        "speedup_goal": round(speedup_goal, 3),
        "cpu_s_workers1": best[1]["cpu_s"],
        "cpu_s_workers2": best[2]["cpu_s"],
        "parallel_cpu_overhead": round(best[2]["cpu_s"] / max(best[1]["cpu_s"], 1e-9), 3),
        "serial_share_workers2": round(serial_share, 3),
        "amdahl_max_speedup": round(1 / max(serial_share, 1e-9), 1),
        # What 2 free cores would give from the CPU-seconds measured: wall >= all CPU / 2
        # and >= the parent's own CPU (derived; the wall-time speedup above is measured).
        "cpu_bound_speedup_2_cores": round(
            best[1]["cpu_s"] / max(best[2]["cpu_s"] / 2, best[2]["parent_cpu_s"], 1e-9), 3
        ),
        "outputs_identical": identical,
        "repeats": max(repeats, 1),
        "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(load_after[0], 2),
        "cpus_available": len(os.sched_getaffinity(0)),
        "build_graph_rows_per_cpu_s": g_large["rows/cpu_s"],
        "build_graph_rows_per_cpu_s_workers2": g_large2["rows/cpu_s"],
        "build_graph_wall_s_workers1": g_large["wall_s"],
        "build_graph_wall_s_workers2": g_large2["wall_s"],
        "build_graph_rss_mb_small": g_small["rss_MB"],
        "build_graph_rss_mb_large": g_large["rss_MB"],
        "build_graph_bytes_per_row": round(graph_bytes_per_row),
    }
    from twhin_bert.common.bench import print_table

    print_table("build_graph on the ingest outputs (not part of the goal)", graphs)
    return report(
        "ingest",
        [*results[:1], *scaling[1], *scaling[2]],
        figures,
        goal=f"peak RSS grows <= 1.3x while input grows 10x; >= 50K rows per CPU-second; "
        f"2 workers >= {SPEEDUP_GOAL}x the rows/s of 1, or {CEILING_SHARE} of the machine's "
        f"own 2-process speedup where that is lower (best of {max(repeats, 1)}, outputs "
        "byte-identical)",
        met=met,
    )
