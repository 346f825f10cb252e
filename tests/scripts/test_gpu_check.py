"""The prepared GPU check resolves on a CPU machine: every bench option it passes exists, the
GPU-marked tests collect, and MFU / peak lookup give the data-sheet figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_resolves_every_step() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gpu_check.py"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(plan["steps"]) == {"pretrain", "mine", "embed"}
    assert plan["steps"]["pretrain"]["arch"] == "base"
    assert plan["steps"]["mine"]["n"] == 1_000_000 and plan["steps"]["mine"]["gpu"] is True
    assert plan["steps"]["embed"]["device"] == "cuda"
    # the GPU-marked tests it runs first: the bf16 recipe, faiss-gpu, CUDA embedding
    assert {t.split("::")[-1] for t in plan["gpu_tests"]} >= {
        "test_bf16_training_on_the_gpu",
        "test_gpu_index_recall_against_exact_search",
    }
    assert any("test_cuda_vectors_match_the_cpu" in t for t in plan["gpu_tests"])


def test_unknown_bench_option_fails_the_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    monkeypatch.setitem(gpu_check.STEPS, "embed", {**gpu_check.STEPS["embed"], "devcie": "cuda"})
    with pytest.raises(ValueError, match=r"no option.*devcie"):
        gpu_check.main(["--dry-run"])
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.peak_tflops("Tesla T4") is None
    # 1M processed tokens/s on the base encoder: (6*84.9M + 12*12*768*128) FLOPs ~ 0.52 of H100.
    assert gpu_check.mfu(1e6, 989.0) == pytest.approx(0.5294, abs=1e-3)
