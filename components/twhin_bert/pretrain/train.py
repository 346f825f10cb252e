"""The pretrain stage: DeepSpeed training of the encoder for one objective, then export.

Read top to bottom: :func:`run_pretrain` (the stage) decides how to run — in this process
(one CPU process locally, or one GPU) or re-launched under ``torchrun`` with one process per
GPU of the node (``cfg.num_gpus > 1``); :func:`train` is the recipe: data, model, DeepSpeed
engine, resume from the latest checkpoint, the loop, export.

Resume: every ``checkpoint_every`` steps ``engine.save_checkpoint`` stores weights, optimizer,
LR schedule and, in ``client_state``, the data position ``(epoch, next batch)`` and the log.
A rerun into the same output folder (its ``.partial`` staging folder survives a crash) finds
the latest checkpoint and continues with exactly the batches the uninterrupted run would have
seen: batches, masks and dropout are pure functions of ``(seed, epoch, batch, step)``.
Checkpoints are keyed by the contents of the inputs and the config, never their paths (see
:mod:`twhin_bert.common.fingerprint`), so a retried pod or a resubmitted run finds them on a
shared ``checkpoint_dir``; each one is trusted only once its ``complete.json`` matches its files
(a torn newest checkpoint falls back to the one before); one run at a time holds the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twhin_bert.common import fingerprint as fp
from twhin_bert.common import lifetime, tracking
from twhin_bert.common.compute import use_threads
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import METRICS_FILE, stage
from twhin_bert.pretrain.config import OBJECTIVES, PretrainConfig

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RESULT_FILE = "_pretrain_result.json"
LAUNCHED_ENV = "TWHIN_BERT_PRETRAIN_LAUNCHED"
#: Set to 1 to let ``num_gpus`` > 1 run as CPU processes on a machine without CUDA.
CPU_RANKS_ENV = "TWHIN_BERT_CPU_RANKS"
#: The launching process's pid, as its workers expect to see their parent's.
PARENT_ENV = "TWHIN_BERT_PRETRAIN_PARENT"
#: First argument of this module's command line that makes it the launcher's torchrun.
TORCHRUN_ARG = "--torchrun"
#: Written into a checkpoint's folder once every rank's files are complete.
COMPLETE_FILE = "complete.json"
#: The fingerprint of the inputs and settings a checkpoint folder's checkpoints belong to.
FINGERPRINT_FILE = "fingerprint.json"
#: Never fewer checkpoints kept: a torn newest one falls back to the one before.
MIN_KEPT = 2
MLFLOW_RUN_ENV = "TWHIN_BERT_MLFLOW_RUN_ID"


@stage("pretrain")
def run_pretrain(
    cfg: PretrainConfig,
    out_dir: Path,
    *,
    objective: str,
    ingested: Path,
    tokenizer: Path | None = None,
    pairs: Path | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Pretrains the encoder with ``objective`` and exports it as a Hugging Face model folder.

    Args:
        cfg: The stage config.
        out_dir: The (staging) output folder: model files, ``training_log.json``; checkpoints
            live in ``out_dir/checkpoints`` unless ``cfg.checkpoint_dir`` is set.
        objective: ``mlm`` (stage 1, from scratch unless ``init_from``) or ``mlm_social``
            (stage 2: MLM + NT-Xent on ``pairs``, normally from stage 1's model).
        ingested: The ingest folder (``tweets.parquet``).
        tokenizer: A Hugging Face fast-tokenizer folder; None: ``init_from``'s, else
            ``cfg.base_model``'s.
        pairs: The mine_pairs folder (``pairs.parquet``); required for ``mlm_social``.
        init_from: A model folder to start from (stage 1's, or a champion's); None: the
            ``cfg.base_model`` when set, else a fresh encoder.

    Returns:
        Final losses, steps, tokens/s, non-padding tokens and more.
    """
    _check_inputs(objective, pairs)
    if cfg.num_nodes == 1:  # else the TrainJob's nodes hold the GPUs, not this pod
        check_devices(cfg.num_gpus)
    from twhin_bert.pretrain.model import start_folders

    tokenizer, init_from = start_folders(cfg.base_model, tokenizer, init_from)
    ingested = Path(ingested)
    pairs = Path(pairs) if pairs else None
    ckpt_dir, key = checkpoint_folder(
        cfg, Path(out_dir), objective, ingested, tokenizer, pairs, init_from
    )
    # One writer per checkpoint folder for the whole run: a second run (or a rerun while the
    # workers of a killed one still live) fails at once instead of resuming mid-write.
    with lifetime.hold_folder(ckpt_dir, "pretrain") as lock_fd:
        if cfg.num_nodes > 1 and not os.environ.get(LAUNCHED_ENV):
            from twhin_bert.pretrain.trainjob import run_trainjob

            return run_trainjob(
                cfg, Path(out_dir), objective, ckpt_dir, key, ingested, tokenizer, pairs, init_from
            )
        if cfg.num_gpus > 1 and not os.environ.get(LAUNCHED_ENV):
            return _launch(
                cfg, Path(out_dir), objective, ingested, tokenizer, pairs, init_from, lock_fd
            )
        return train(
            cfg,
            Path(out_dir),
            objective=objective,
            ingested=ingested,
            tokenizer=tokenizer,
            pairs=pairs,
            init_from=init_from,
        )


def _check_inputs(objective: str, pairs: Path | None) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "mlm_social" and pairs is None:
        raise ValueError("objective mlm_social needs pairs (the mine_pairs output folder)")


def check_devices(num_gpus: int) -> None:
    """Refuses a ``num_gpus`` the machine cannot serve (one line, before any process starts).

    With CUDA, ``num_gpus`` must not exceed the visible devices. Without CUDA only one process
    trains, unless ``$TWHIN_BERT_CPU_RANKS=1`` asks for ``num_gpus`` CPU processes (a test of
    the multi-process path): otherwise N idle workers would start and make no progress.

    Raises:
        ValueError: Too few devices.
    """
    import torch

    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found:
        if num_gpus > found:
            raise ValueError(
                f"pretrain: num_gpus is {num_gpus} but this machine has {found} CUDA "
                f"device(s); set pretrain.num_gpus to at most {found}"
            )
    elif num_gpus > 1 and os.environ.get(CPU_RANKS_ENV) != "1":
        raise ValueError(
            f"pretrain: num_gpus is {num_gpus} but this machine has no CUDA device; set "
            f"pretrain.num_gpus to 1 to train on the CPU (or {CPU_RANKS_ENV}=1 to run "
            f"{num_gpus} CPU processes)"
        )


# --------------------------------------------------------------------------- the recipe


def train(
    cfg: PretrainConfig,
    out_dir: Path,
    *,
    objective: str,
    ingested: Path,
    tokenizer: Path,
    pairs: Path | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Trains and exports in this process (one rank of a launch, or the only process).

    Args and Returns: as :func:`run_pretrain`.
    """
    _check_inputs(objective, pairs)
    import torch

    use_threads(cfg.threads)
    device, world, rank = _init_distributed()
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    from twhin_bert.pretrain import data as D
    from twhin_bert.pretrain.export import export_model
    from twhin_bert.pretrain.model import build_model, packing_limits

    ds_logger.setLevel(logging.WARNING)
    tc = cfg.training(objective)
    social = objective == "mlm_social"
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")

    # --- data
    tok, specials = D.load_tokenizer(tokenizer)
    # Positions and lengths follow the encoder (a base model's family and position table).
    position_offset, max_seq_len, max_pair_tokens = packing_limits(
        cfg.max_seq_len, cfg.max_pair_tweet_tokens, tok, specials, init_from
    )
    stream: Any
    if social:
        assert pairs is not None
        stream = D.PairStream(
            pairs,
            ingested,
            tok,
            specials,
            pairs_per_batch=tc.micro_batch_size,
            max_seq_len=max_seq_len,
            max_tweet_tokens=max_pair_tokens,
            position_offset=position_offset,
            mask_prob=cfg.mask_prob,
            alpha=cfg.lang_alpha,
            shuffle_buffer=cfg.shuffle_buffer,
            read_rows=cfg.read_batch_rows,
            seed=cfg.seed,
        )
    else:
        stream = D.TweetStream(
            D.tweets_file(ingested),
            tok,
            specials,
            rows_per_batch=tc.micro_batch_size,
            max_seq_len=max_seq_len,
            position_offset=position_offset,
            mask_prob=cfg.mask_prob,
            alpha=cfg.lang_alpha,
            shuffle_buffer=cfg.shuffle_buffer,
            read_rows=cfg.read_batch_rows,
            seed=cfg.seed,
        )

    # --- model and engine
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.arch,
        specials,
        max_seq_len=cfg.max_seq_len,
        projection_dims=cfg.projection_dims,
        init_from=str(init_from) if init_from else None,
    )
    if tc.grad_checkpointing:
        model.encoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    n_params = sum(p.numel() for p in model.parameters())
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=_param_groups(model, cfg.weight_decay),
        config=deepspeed_config(cfg, objective, bf16=bf16, on_gpu=device.type == "cuda"),
    )

    # --- resume: the newest complete checkpoint of these inputs and settings that loads
    ckpt_dir, fingerprint = checkpoint_folder(
        cfg, out_dir, objective, ingested, tokenizer, pairs, init_from
    )
    state: dict[str, Any] = {
        "step": 0, "epoch": 0, "next_batch": 0, "log": [], "tokens": 0, "data": None,
    }  # fmt: skip
    resumed_from = 0
    client = _resume(engine, ckpt_dir, fingerprint, world, rank)
    if client is not None:
        state = {k: client.get(k, state[k]) for k in state}  # "data": since issue 13
        resumed_from = state["step"]
        log.info("pretrain: resumed from step %d (%s)", resumed_from, ckpt_dir)

    # --- tracking in a launched child (the parent process holds the MLflow run)
    tracking_ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if rank == 0 and os.environ.get(MLFLOW_RUN_ENV):
        import mlflow

        tracking.configure()
        tracking_ctx = mlflow.start_run(run_id=os.environ[MLFLOW_RUN_ENV])

    # --- the loop
    # The stream's saved position: O(1) whatever the step (a checkpoint without one replays).
    start = state["data"] or {"epoch": state["epoch"], "batch": state["next_batch"]}
    batches = _rank_batches(stream(start), world, rank)
    step, epoch, next_batch = state["step"], state["epoch"], state["next_batch"]
    train_log: list[dict[str, Any]] = list(state["log"])
    total_tokens = int(state["tokens"])
    timed_tokens, timed_seconds = 0, 0.0  # excludes each process's first (warm-up) step
    window_tokens, window_t0 = 0, time.perf_counter()
    bar = (
        progress(total=tc.steps, initial=step, desc=f"pretrain {objective}")
        if rank == 0
        else progress(total=tc.steps, disable=True)
    )
    engine.train()
    with tracking_ctx:
        while step < tc.steps:
            t0 = time.perf_counter()
            # Dropout depends only on (seed, step): a resumed run draws what the original would.
            torch.manual_seed(_derive(cfg.seed, step))
            losses = torch.zeros(3)
            step_tokens = 0
            for _ in range(tc.grad_accum_steps):
                epoch, index, batch = next(batches)
                next_batch = index + world  # this rank consumed up to here (all ranks agree)
                batch = batch.to(engine.device)
                loss, mlm, soc = _forward(
                    engine, batch, social, cfg.tau, cfg.lam, cfg.negatives_across_ranks
                )
                engine.backward(loss)
                engine.step()
                losses += torch.stack([loss.detach(), mlm, soc]).float().cpu()
                step_tokens += batch.tokens
            step += 1
            step_tokens = _all_sum(step_tokens, world)
            losses = losses / tc.grad_accum_steps
            total_tokens += step_tokens
            dt = time.perf_counter() - t0
            if step > resumed_from + 1:
                timed_tokens += step_tokens
                timed_seconds += dt
            window_tokens += step_tokens
            if step % cfg.log_every == 0 or step == tc.steps:
                now = time.perf_counter()
                entry = {
                    "step": step,
                    "epoch": epoch,
                    "loss": float(losses[0]),
                    "mlm_loss": float(losses[1]),
                    "social_loss": float(losses[2]) if social else None,
                    "lr": float(scheduler.get_last_lr()[0]) if scheduler else tc.peak_lr,
                    "tokens_per_s": window_tokens / max(now - window_t0, 1e-9),
                    "tokens": total_tokens,
                }
                window_tokens, window_t0 = 0, now
                train_log.append(entry)
                if rank == 0:
                    tracking.log_metrics(
                        {k: v for k, v in entry.items() if v is not None}, step=step
                    )
                bar.set_postfix(loss=f"{entry['loss']:.3f}", lr=f"{entry['lr']:.2e}")
            bar.update(1)
            # The last step is saved too: a crash during export resumes straight to export.
            if step % cfg.checkpoint_every == 0 or step == tc.steps:
                client = {
                    "step": step,
                    "epoch": epoch,
                    "next_batch": next_batch,
                    "data": stream.position(),
                    "log": train_log,
                    "tokens": total_tokens,
                    "fingerprint": fingerprint,
                }
                engine.save_checkpoint(str(ckpt_dir), tag=f"step{step}", client_state=client)
                if world > 1:
                    torch.distributed.barrier()  # every rank's files are written
                if rank == 0:
                    _mark_complete(ckpt_dir / f"step{step}")
                    _prune_checkpoints(ckpt_dir, max(MIN_KEPT, cfg.keep_checkpoints))
        bar.close()

        # --- metrics and export
        last = train_log[-1]
        tail = train_log[-max(1, len(train_log) // 10) :]
        metrics: dict[str, Any] = {
            "objective": objective,
            "steps": step,
            "resumed_from_step": resumed_from,
            "final_loss": last["loss"],
            "final_mlm_loss": last["mlm_loss"],
            "tail_mean_loss": sum(e["loss"] for e in tail) / len(tail),
            "first_loss": train_log[0]["loss"],
            "non_padding_tokens": total_tokens,
            "tokens_per_second": timed_tokens / timed_seconds if timed_seconds else math.nan,
            "parameters": n_params,
            "world_size": world,
            "precision": "bf16" if bf16 else "fp32",
        }
        if social:
            metrics["final_social_loss"] = last["social_loss"]
        if rank == 0:
            export_model(
                engine.module,
                tok,
                out_dir,
                objective=objective,
                metrics=metrics,
                config=cfg.model_dump(mode="json"),
                training_log=train_log,
            )
            if not cfg.keep_checkpoints_after and ckpt_dir.is_dir():
                shutil.rmtree(ckpt_dir)
        if world > 1:
            torch.distributed.barrier()
    return metrics


def _forward(
    engine: Any, batch: Any, social: bool, tau: float, lam: float, across_ranks: bool
) -> Any:
    """One forward through the DeepSpeed engine (so its hooks — ZeRO, bf16 — apply)."""
    return engine(
        batch.input_ids,
        batch.position_ids,
        batch.segment_ids,
        batch.cls_index,
        batch.mlm_index,
        batch.mlm_labels,
        social,
        tau,
        lam,
        across_ranks,
    )


# --------------------------------------------------------------------------- engine pieces


def deepspeed_config(
    cfg: PretrainConfig, objective: str, *, bf16: bool, on_gpu: bool = True
) -> dict[str, Any]:
    """The DeepSpeed config dict built from ours (per-process micro-batch, ZeRO, precision,
    AdamW, linear warmup then linear decay to 0 over the run).

    On GPUs AdamW is DeepSpeed's FusedAdam. On the CPU it is ``torch.optim.AdamW`` (``torch_adam``,
    multi-tensor ``foreach``): DeepSpeed's CPU FusedAdam is a C++ extension JIT-compiled on first
    use (~75 s on 2 cores), which a small CPU run never earns back.
    """
    tc = cfg.training(objective)
    cpu_adam = {} if on_gpu else {"torch_adam": True, "foreach": True}
    return {
        "train_micro_batch_size_per_gpu": tc.micro_batch_size,
        "gradient_accumulation_steps": tc.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": bf16},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": tc.peak_lr,
                "betas": list(cfg.adam_betas),
                "eps": cfg.adam_eps,
                "weight_decay": cfg.weight_decay,
                **cpu_adam,
            },
        },
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "warmup_min_lr": 0.0,
                "warmup_max_lr": tc.peak_lr,
                "warmup_num_steps": tc.warmup_steps,
                "total_num_steps": tc.steps,
                "warmup_type": "linear",
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (as RoBERTa)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 or "layer_norm" in name or "LayerNorm" in name else decay).append(
            p
        )
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _init_distributed() -> tuple[Any, int, int]:
    """Joins (or, alone, creates) the process group; returns ``(device, world, rank)``.

    Under a launcher the environment names rank and world. Alone, this process becomes a
    world of one (gloo on CPU, NCCL on GPU) on a free local port, so DeepSpeed runs in-process.
    """
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
            deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        else:
            # Alone: a world of one on a free local port. Passed as arguments, not exported to
            # os.environ, so that child processes never mistake it for a launcher's world
            # (only LOCAL_RANK, which DeepSpeed's engine insists on reading).
            os.environ.setdefault("LOCAL_RANK", "0")
            if not torch.cuda.is_available():
                _skip_shm_comm_op()
            deepspeed.init_distributed(
                dist_backend=backend,
                auto_mpi_discovery=False,
                init_method=f"tcp://127.0.0.1:{_free_port()}",
                rank=0,
                world_size=1,
            )
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return device, dist.get_world_size(), dist.get_rank()


def _skip_shm_comm_op() -> None:
    """Tells DeepSpeed not to build its shared-memory all-reduce op for a world of one.

    On the CPU accelerator DeepSpeed's communication backend JIT-compiles a C++ extension
    (``deepspeed_shm_comm``) the first time it starts, ~2 minutes on 2 cores, to speed up
    all-reduce between processes of one machine. One process never all-reduces, so the op is
    marked unavailable (the same switch DeepSpeed itself flips on platforms without it) and
    gloo serves; multi-process CPU runs under a launcher keep it.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_batches(
    stream: Iterator[tuple[int, int, Any]], world: int, rank: int
) -> Iterator[tuple[int, int, Any]]:
    """This rank's share of the global batch sequence (batch ``i`` goes to rank ``i % world``,
    counted from the resume position)."""
    while True:
        group = [next(stream) for _ in range(world)]
        epoch, _, batch = group[rank]
        # Report the group's first index: the data position is the same on every rank.
        yield epoch, group[0][1], batch


def _all_sum(n: int, world: int) -> int:
    if world == 1:
        return n
    import torch
    import torch.distributed as dist

    t = torch.tensor([n], dtype=torch.long)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return int(t.item())


def _derive(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + 17) % (2**63 - 1)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_folder(
    cfg: PretrainConfig,
    out_dir: Path,
    objective: str,
    ingested: Path,
    tokenizer: Path,
    pairs: Path | None,
    init_from: Path | None,
) -> tuple[Path, str]:
    """Where this run's checkpoints live, and the fingerprint they must carry.

    A shared ``checkpoint_dir`` (a persistent volume that outlives the pod) holds one folder
    per (objective, config, input contents): stage 2 and the MLM-only twin of one run never
    meet, while a retried pod or a resubmitted pipeline -- the same artifacts under new
    paths -- finds its own. Without it: ``out_dir/checkpoints`` in the staging folder.
    """
    key = _fingerprint(
        cfg, objective, ingested=ingested, tokenizer=tokenizer, pairs=pairs, init_from=init_from
    )
    if cfg.checkpoint_dir:
        return Path(cfg.checkpoint_dir) / f"{objective}-{key}", key
    return out_dir / CHECKPOINTS, key


def _fingerprint(
    cfg: PretrainConfig,
    objective: str,
    *,
    ingested: Path,
    tokenizer: Path,
    pairs: Path | None = None,
    init_from: Path | None = None,
) -> str:
    """What must match for a checkpoint to be resumed: the objective, the config (not its
    bookkeeping fields) and the contents of the inputs (never their paths)."""
    from twhin_bert.pretrain import data as D

    keep = cfg.model_dump(
        mode="json",
        exclude={
            "checkpoint_every",
            "keep_checkpoints",
            "checkpoint_dir",
            "log_every",
            "threads",
            "keep_checkpoints_after",
            "num_gpus",
            "num_nodes",
        },
    )
    start: str | None = None
    if init_from is not None:  # a model folder, or a name of a released model
        p = Path(init_from)
        start = fp.model_fingerprint(p) if p.is_dir() else str(init_from)
    inputs = {
        "tweets": fp.file_fingerprint(D.tweets_file(ingested)),
        "tokenizer": fp.path_fingerprint(tokenizer, ignore={METRICS_FILE}),
        "pairs": fp.file_fingerprint(D.pairs_file(pairs)) if pairs is not None else None,
        "init_from": start,
    }
    return fp.fingerprint([objective, keep], inputs)


def _resume(
    engine: Any, ckpt_dir: Path, fingerprint: str, world: int, rank: int
) -> dict[str, Any] | None:
    """Loads the newest complete checkpoint of ``fingerprint`` into ``engine``.

    A folder holding another fingerprint's checkpoints is emptied (one log line); a torn
    newest checkpoint (cut short, truncated, unloadable) is passed over, with one log line,
    for the one before it; checkpoints newer than the one loaded are removed, since training
    rewrites them.

    Returns:
        The loaded checkpoint's client state, or ``None`` for a fresh start.
    """
    import torch

    key_file = ckpt_dir / FINGERPRINT_FILE
    saved = json.loads(key_file.read_text()).get("fingerprint") if key_file.is_file() else None
    if saved != fingerprint and (saved is not None or _tags(ckpt_dir)):
        log.warning(
            "pretrain: %s holds checkpoints of other inputs or settings; starting over", ckpt_dir
        )
        if world > 1:
            torch.distributed.barrier()  # every rank has read the folder before it is emptied
        if rank == 0:
            _clear_checkpoints(ckpt_dir)
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    if world > 1:
        torch.distributed.barrier()

    client: dict[str, Any] | None = None
    loaded = 0
    for step, tag in reversed(_tags(ckpt_dir)):
        problem = _incomplete(tag)
        if problem is None:
            try:
                _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag.name)
            except (RuntimeError, OSError, EOFError, ValueError, KeyError) as e:
                problem = f"cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0]})"
            else:
                if client is None:
                    problem = "cannot be loaded"
                elif client.get("fingerprint") != fingerprint:
                    problem = "was written for other inputs or settings"
        if problem is None:
            loaded = step
            break
        client = None
        log.warning("pretrain: checkpoint %s %s; trying the one before", tag, problem)
    if world > 1:
        torch.distributed.barrier()
    if rank == 0:
        for step, tag in _tags(ckpt_dir):
            if step > loaded:
                shutil.rmtree(tag, ignore_errors=True)
    return client


def _tags(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """The checkpoint folders ``step<N>``, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(
        (int(m.group(1)), p)
        for p in ckpt_dir.iterdir()
        if p.is_dir() and (m := re.fullmatch(r"step(\d+)", p.name))
    )


def _mark_complete(tag: Path) -> None:
    """Records the fingerprint of every file of a fully written checkpoint."""
    files = {
        f.relative_to(tag).as_posix(): fp.file_fingerprint(f)
        for f in sorted(tag.rglob("*"))
        if f.is_file() and f.name != COMPLETE_FILE
    }
    tmp = tag / (COMPLETE_FILE + ".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1) + "\n")
    os.replace(tmp, tag / COMPLETE_FILE)


def _incomplete(tag: Path) -> str | None:
    """Why a checkpoint folder cannot be trusted (``None``: its files are as saved)."""
    marker = tag / COMPLETE_FILE
    if not marker.is_file():
        return f"is incomplete (no {COMPLETE_FILE}: its save was cut short)"
    for name, want in json.loads(marker.read_text())["files"].items():
        f = tag / name
        if not f.is_file():
            return f"lacks {name}"
        if fp.file_fingerprint(f) != want:
            return f"has a torn or changed {name}"
    return None


def _clear_checkpoints(ckpt_dir: Path) -> None:
    """Empties a checkpoint folder except its lock file (held by this run)."""
    for p in ckpt_dir.iterdir():
        if p.name == lifetime.LOCK_FILE:
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Keeps the ``keep`` newest complete checkpoints (and anything newer)."""
    tags = _tags(ckpt_dir)
    complete = [s for s, p in tags if (p / COMPLETE_FILE).is_file()]
    if len(complete) <= keep:
        return
    for s, p in tags:
        if s < complete[-keep]:
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- multi-GPU launch


def _launch(
    cfg: PretrainConfig,
    out_dir: Path,
    objective: str,
    ingested: Path,
    tokenizer: Path,
    pairs: Path | None,
    init_from: Path | None,
    lock_fd: int,
) -> dict[str, Any]:
    """Re-runs this stage under ``torchrun`` with ``cfg.num_gpus`` processes on this node.

    The children run :func:`train` (via this module's ``__main__``); rank 0 exports into
    ``out_dir``, logs to this process's MLflow run and leaves its metrics in a result file.
    ``torchrun`` (started through this module, see :func:`main`) shares the checkpoint
    folder's lock (``lock_fd``) and dies with this process; its workers die with it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_file = out_dir / "_pretrain_config.json"
    cfg_file.write_text(cfg.model_dump_json())
    cmd = [
        sys.executable, "-m", "twhin_bert.pretrain.train", TORCHRUN_ARG, "--standalone",
        f"--nproc_per_node={cfg.num_gpus}",
        "-m", "twhin_bert.pretrain.train",
        "--config", str(cfg_file), "--out", str(out_dir), "--objective", objective,
        "--ingested", str(ingested), "--tokenizer", str(tokenizer),
    ]  # fmt: skip
    if pairs:
        cmd += ["--pairs", str(pairs)]
    if init_from:
        cmd += ["--init-from", str(init_from)]
    env = dict(os.environ, **{LAUNCHED_ENV: "1", PARENT_ENV: str(os.getpid())})
    with contextlib.suppress(ImportError):
        import mlflow

        if mlflow.active_run() is not None:
            env[MLFLOW_RUN_ENV] = mlflow.active_run().info.run_id
    log.info("pretrain: launching %s", " ".join(cmd))
    done = subprocess.run(cmd, env=env, check=False, pass_fds=(lock_fd,))
    if done.returncode != 0:
        raise RuntimeError(f"pretrain: torchrun exited with {done.returncode} ({' '.join(cmd)})")
    result = out_dir / RESULT_FILE
    metrics = json.loads(result.read_text())
    result.unlink()
    cfg_file.unlink()
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Entry point of one launched process: ``python -m twhin_bert.pretrain.train ...``.

    ``python -m twhin_bert.pretrain.train --torchrun <torchrun args>`` is the launcher's
    ``torchrun``. Both ask to be killed when their parent dies: ``torchrun`` starts its workers
    in sessions of their own, so without this a ``kill -9`` of the launcher's process group
    left them training and writing checkpoints.
    """
    argv = sys.argv[1:] if argv is None else argv
    parent = os.environ.get(PARENT_ENV)
    lifetime.die_with_parent(int(parent) if parent else None)
    if argv[:1] == [TORCHRUN_ARG]:
        from torch.distributed.run import main as torchrun

        os.environ[PARENT_ENV] = str(os.getpid())  # the workers' parent
        torchrun(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="PretrainConfig as a JSON file")
    p.add_argument("--out", required=True, help="output (staging) folder")
    p.add_argument("--objective", required=True, choices=OBJECTIVES)
    p.add_argument("--ingested", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--pairs")
    p.add_argument("--init-from")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = PretrainConfig.model_validate_json(Path(a.config).read_text())
    out = Path(a.out)
    metrics = train(
        cfg,
        out,
        objective=a.objective,
        ingested=Path(a.ingested),
        tokenizer=Path(a.tokenizer),
        pairs=Path(a.pairs) if a.pairs else None,
        init_from=Path(a.init_from) if a.init_from else None,
    )
    import torch.distributed as dist

    if dist.get_rank() == 0:
        (out / RESULT_FILE).write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
