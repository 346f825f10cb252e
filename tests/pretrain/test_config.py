"""The pretrain config: strict, validated across fields, one objective's settings each."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from twhin_bert.pretrain.config import BASE_ARCH, ArchConfig, ObjectiveTraining, PretrainConfig
from twhin_bert.pretrain.train import deepspeed_config


def test_defaults_are_tiny_and_base_is_the_paper() -> None:
    cfg = PretrainConfig()
    assert (cfg.arch.num_layers, cfg.arch.hidden_size, cfg.arch.num_heads) == (2, 128, 2)
    assert (cfg.max_seq_len, cfg.tau, cfg.lam) == (128, 0.1, 0.05)
    assert (BASE_ARCH.num_layers, BASE_ARCH.hidden_size, BASE_ARCH.intermediate_size) == (
        12,
        768,
        3072,
    )


def test_rejects_unknown_and_inconsistent_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        PretrainConfig.model_validate({"batch": 3})
    with pytest.raises(ValidationError, match="divisible"):
        ArchConfig(hidden_size=130, num_heads=4)
    with pytest.raises(ValidationError, match="warmup_steps"):
        ObjectiveTraining(warmup_steps=10, steps=10)
    with pytest.raises(ValidationError, match="max_pair_tweet_tokens"):
        PretrainConfig(max_seq_len=32, max_pair_tweet_tokens=64)
    with pytest.raises(ValueError, match="objective"):
        PretrainConfig().training("clm")


def test_deepspeed_config_follows_ours() -> None:
    cfg = PretrainConfig(
        zero_stage=2,
        mlm_social=ObjectiveTraining(
            micro_batch_size=6, grad_accum_steps=4, peak_lr=1e-4, warmup_steps=3, steps=9
        ),
    )
    ds = deepspeed_config(cfg, "mlm_social", bf16=True)
    assert ds["train_micro_batch_size_per_gpu"] == 6
    assert ds["gradient_accumulation_steps"] == 4
    assert ds["zero_optimization"] == {"stage": 2}
    assert ds["bf16"] == {"enabled": True}
    sched = ds["scheduler"]["params"]
    assert (sched["warmup_max_lr"], sched["warmup_num_steps"], sched["total_num_steps"]) == (
        1e-4,
        3,
        9,
    )
    assert ds["optimizer"]["type"] == "AdamW"
    assert "torch_adam" not in ds["optimizer"]["params"]  # GPUs: DeepSpeed's FusedAdam
    cpu = deepspeed_config(cfg, "mlm_social", bf16=False, on_gpu=False)
    assert cpu["optimizer"]["params"]["torch_adam"] is True  # CPU: no JIT-built extension
