"""``twhin-bert bench ingest``: ingest throughput and peak memory as the input grows 10x.

Generates two demo TwHINs (100K and 1M engagements; 10K and 100K with ``quick``), ingests
each in a fresh Python process and measures rows per second (wall and CPU) and the peak
resident set size (``ru_maxrss`` of the child). The smaller input is the baseline measured in
the same run: ingest streams, so peak RSS should grow by at most 1.3x while the input grows
10x, and engagements should go through at well over 50K rows per CPU-second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
print(json.dumps({
    "metrics": metrics,
    "wall_s": wall,
    "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "rss_ready_kb": rss_ready,
    "rss_peak_kb": peak_rss_kb(),
}))
"""


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
            str(demo / "tweets.jsonl"),
            str(demo / "engagements.jsonl"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ingest child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(
    quick: bool = False,
    workdir: str | None = None,
    batch_size: int = 8192,
    seed: int = 0,
) -> dict[str, Any]:
    """Measures ingest rows/s and peak RSS on two inputs 10x apart.

    Args:
        quick: 5K and 50K engagements instead of 100K and 1M (a smoke test).
        workdir: Where the demo inputs and outputs go (default: a temporary folder, removed).
        batch_size: Ingest's ``batch_size``.
        seed: Seed of the generated inputs.

    Returns:
        The JSON summary (also printed as the last line): rows/s per size, peak RSS per size,
        ``rss_growth`` (large / small), and ``met``.
    """
    from twhin_bert.common.bench import report
    from twhin_bert.ingest.config import IngestConfig

    sizes = (5_000, 50_000) if quick else (100_000, 1_000_000)
    config_json = IngestConfig(batch_size=batch_size).model_dump_json()
    with tempfile.TemporaryDirectory(prefix="twhin-bench-ingest-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        results = []
        for n in sizes:
            demo = root / f"demo-{n}"
            if not (demo / "engagements.jsonl").exists():  # reuse a kept workdir's inputs
                _generate(demo, n, seed)
            res = _ingest_in_child(demo, root / f"ingested-{n}", config_json)
            m = res["metrics"]
            input_mb = sum(f.stat().st_size for f in demo.glob("*.jsonl")) / 2**20
            results.append(
                {
                    "engagements": m["engagements"]["rows_in"],
                    "tweets": m["tweets"]["rows_in"],
                    "MB": round(input_mb, 1),
                    "wall_s": round(res["wall_s"], 2),
                    "cpu_s": round(res["cpu_s"], 2),
                    "rows/s": round(m["rows_in"] / res["wall_s"]),
                    "eng/s": round(m["engagement_rows_per_second"]),
                    "rows/cpu_s": round(m["rows_in"] / max(res["cpu_s"], 1e-9)),
                    "rss0_MB": round(res["rss_ready_kb"] / 1024, 1),
                    "rss_MB": round(res["rss_peak_kb"] / 1024, 1),
                    "quar": m["quarantined_total"],
                }
            )
    small, large = results
    input_growth = large["engagements"] / max(small["engagements"], 1)
    rss_growth = large["rss_MB"] / small["rss_MB"]
    eng_rate = large["eng/s"]
    cpu_rate = large["rows/cpu_s"]
    met = rss_growth <= 1.3 and cpu_rate >= 50_000
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
    }
    return report(
        "ingest",
        results,
        figures,
        goal="peak RSS grows <= 1.3x while input grows 10x; >= 50K rows per CPU-second",
        met=met,
    )
