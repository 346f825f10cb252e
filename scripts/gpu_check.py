"""The prepared GPU check (``make test-gpu``): one H100/H200-class GPU, under 8 minutes.

Runs, in order, each step under its own time limit, over the existing benchmarks
(``twhin_bert.bench``; no measurement code of its own):

1. the GPU-marked tests (``pytest -m gpu``);
2. a bf16 DeepSpeed pretrain of the base architecture (12 x 768, the prod config's model
   dims) for a few hundred steps (``bench pretrain``, arch=base): tokens/s and MFU against the
   GPU's dense bf16 peak. FLOPs per token: 6 N + 12 L d S (N = 12 L d^2 encoder weights; the
   sparse MLM head and embeddings left out, so MFU is a slight underestimate);
3. faiss-gpu mining of 1M vectors: recall@10 and speed against exact search, both on the GPU
   (``bench mine``, gpu=true); skipped, with the reason, without faiss-gpu;
4. batch embedding on the GPU (``bench embed``, device=cuda, base width).

The last line of stdout is one JSON object with every figure. ``--dry-run`` resolves every
step (imports, options, the pytest selection) without a GPU: ``tests/test_gpu_check.py``.
Never run on a GPU so far (README status).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

#: Dense bf16 peak TFLOPS (NVIDIA data sheets, SXM parts, without sparsity).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
#: The base architecture (paper; pipelines/configs/prod.yaml).
BASE_LAYERS, BASE_HIDDEN, SEQ = 12, 768, 128

STEPS: dict[str, dict[str, Any]] = {
    "pretrain": {"arch": "base", "steps": 300, "batch_size": 64, "threads": 0},
    "mine": {"n": 1_000_000, "dim": 256, "queries": 5000, "gpu": True, "train_threads": 0},
    "embed": {"n": 20_000, "layers": 12, "hidden": 768, "vocab": 32_000, "batch_size": 256,
              "device": "cuda"},
}  # fmt: skip


def peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a GPU by its device name (None: unknown part)."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name.upper()), None)


def mfu(tokens_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation of the base encoder at ``tokens_per_s`` processed tokens."""
    if not peak:
        return None
    n = 12 * BASE_LAYERS * BASE_HIDDEN**2
    flops_per_token = 6 * n + 12 * BASE_LAYERS * BASE_HIDDEN * SEQ
    return tokens_per_s * flops_per_token / (peak * 1e12)


def _bench(name: str) -> Callable[..., dict[str, Any]]:
    import importlib

    main = importlib.import_module(f"twhin_bert.bench.{name}").main
    unknown = set(STEPS[name]) - set(inspect.signature(main).parameters)
    if unknown:
        raise ValueError(f"gpu_check: bench {name} has no option(s) {sorted(unknown)}")
    return main


def _timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # one step's failure is recorded, the others still run
        out = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    """Runs the check; returns the exit status (0: every step passed or was skipped)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="resolve every step, run none")
    a = p.parse_args(argv)
    mains = {name: _bench(name) for name in STEPS}
    pytest_cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    if a.dry_run:
        collected = subprocess.run(
            [*pytest_cmd, "--collect-only"], capture_output=True, text=True, check=False
        )
        tests = [t for t in collected.stdout.splitlines() if "::" in t]
        if collected.returncode != 0 or not tests:
            raise SystemExit(
                f"gpu_check: `pytest -m gpu` collects no test (exit {collected.returncode})"
            )
        plan = {n: {"bench": m.__module__, **STEPS[n]} for n, m in mains.items()}
        print(
            json.dumps({"dry_run": True, "pytest": pytest_cmd, "gpu_tests": tests, "steps": plan})
        )
        return 0

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (this check needs one GPU)")
    gpu = torch.cuda.get_device_name(0)
    peak = peak_tflops(gpu)
    result: dict[str, Any] = {"gpu": gpu, "peak_bf16_tflops": peak, "torch": torch.__version__}
    t0 = time.perf_counter()

    def run_pytest() -> dict[str, Any]:
        done = subprocess.run(pytest_cmd, capture_output=True, text=True, timeout=200, check=False)
        print(done.stdout[-3000:], flush=True)
        summary = done.stdout.strip().splitlines()[-1:]
        # exit 5 (nothing collected) or a skipped test (e.g. no faiss-gpu) fails too: the
        # check promises that every GPU test ran
        ran = done.returncode == 0 and not any("skipped" in line for line in summary)
        return {"status": "passed" if ran else "failed", "summary": summary}

    result["pytest_gpu"] = _timed(run_pytest)

    def run_pretrain() -> dict[str, Any]:
        s = mains["pretrain"](**STEPS["pretrain"])
        processed = s["ours_tokens_per_s"] / max(s["ours_slot_fill"], 1e-9)
        return {**s, "processed_tokens_per_s": processed, "mfu": mfu(processed, peak)}

    result["pretrain"] = _timed(run_pretrain)

    def run_mine() -> dict[str, Any]:
        import faiss

        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            return {"status": "skipped", "reason": "faiss-gpu not installed or sees no GPU "
                    "(make test-gpu installs the [gpu] extra; remove faiss-cpu if it shadows it)"}  # fmt: skip
        return mains["mine"](**STEPS["mine"])

    result["mine"] = _timed(run_mine)
    result["embed"] = _timed(lambda: mains["embed"](**STEPS["embed"]))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    failed = [k for k, v in result.items() if isinstance(v, dict) and v.get("status") == "failed"]
    result["failed"] = failed
    print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
