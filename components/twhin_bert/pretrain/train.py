"""The pretrain stage: DeepSpeed training of the encoder for one objective, then export.

Read top to bottom: :func:`run_pretrain` (the stage) resolves its inputs into one
:class:`~twhin_bert.pretrain.inputs.PretrainInputs` and decides how to run — in this process
(one CPU process locally, or one GPU), re-launched under ``torchrun`` with one process per GPU
of the node (``cfg.num_gpus > 1``), or as a Kubeflow TrainJob (``cfg.num_nodes > 1``);
:func:`train` is the recipe, one step per function: :func:`setup_data`, :func:`build_engine`,
:func:`resume`, :func:`loop`, :func:`finish` (metrics and export).

Resume: every ``checkpoint_every`` steps a checkpoint stores weights, optimizer, LR schedule
and the :class:`TrainState` (step, data position, log; see
:mod:`twhin_bert.pretrain.checkpoints`). A rerun into the same output folder (its ``.partial``
staging folder survives a crash) or onto the same ``checkpoint_dir`` finds the newest complete
checkpoint of the same inputs and settings and continues with exactly the batches the
uninterrupted run would have seen: batches, masks and dropout are pure functions of
``(seed, epoch, batch, step)``; one run at a time holds the checkpoint folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from twhin_bert.common import lifetime, tracking
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.compute import use_threads
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import stage
from twhin_bert.pretrain.checkpoints import CheckpointFolder, checkpoint_folder
from twhin_bert.pretrain.config import ObjectiveTraining, PretrainConfig
from twhin_bert.pretrain.inputs import PretrainInputs

log = logging.getLogger(__name__)

RESULT_FILE = "_pretrain_result.json"
LAUNCHED_ENV = "TWHIN_BERT_PRETRAIN_LAUNCHED"
#: Set to 1 to let ``num_gpus`` > 1 run as CPU processes on a machine without CUDA.
CPU_RANKS_ENV = "TWHIN_BERT_CPU_RANKS"
#: The launching process's pid, as its workers expect to see their parent's.
PARENT_ENV = "TWHIN_BERT_PRETRAIN_PARENT"
#: First argument of this module's command line that makes it the launcher's torchrun.
TORCHRUN_ARG = "--torchrun"
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
        ingested: The ingest folder (its tweets).
        tokenizer: A Hugging Face fast-tokenizer folder; None: ``init_from``'s, else
            ``cfg.base_model``'s.
        pairs: The mine_pairs folder (its pairs); required for ``mlm_social``.
        init_from: A model folder to start from (stage 1's, or a champion's); None: the
            ``cfg.base_model`` when set, else a fresh encoder.

    Returns:
        Final losses, steps, tokens/s, non-padding tokens and more.
    """
    if cfg.num_nodes == 1:  # else the TrainJob's nodes hold the GPUs, not this pod
        check_devices(cfg.num_gpus)
    inputs = PretrainInputs.resolve(
        cfg.base_model,
        objective=objective,
        ingested=ingested,
        tokenizer=tokenizer,
        pairs=pairs,
        init_from=init_from,
    )
    out_dir = Path(out_dir)
    ckpt = checkpoint_folder(cfg, out_dir, inputs)
    # One writer per checkpoint folder for the whole run: a second run (or a rerun while the
    # workers of a killed one still live) fails at once instead of resuming mid-write.
    with lifetime.hold_folder(ckpt.path, "pretrain") as lock_fd:
        if cfg.num_nodes > 1 and not os.environ.get(LAUNCHED_ENV):
            from twhin_bert.pretrain.trainjob import run_trainjob

            return run_trainjob(cfg, out_dir, inputs, ckpt)
        if cfg.num_gpus > 1 and not os.environ.get(LAUNCHED_ENV):
            return _launch(cfg, out_dir, inputs, lock_fd)
        return train(cfg, out_dir, inputs)


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


def train(cfg: PretrainConfig, out_dir: Path, inputs: PretrainInputs) -> dict[str, Any]:
    """Trains and exports in this process (one rank of a launch, or the only process).

    Args:
        cfg: The stage config.
        out_dir: The (staging) output folder; rank 0 exports the model into it.
        inputs: The resolved inputs (:meth:`PretrainInputs.resolve`).

    Returns:
        As :func:`run_pretrain`.
    """
    run = start(cfg, out_dir, inputs)
    data = setup_data(run)
    engine = build_engine(run, data)
    state = resume(run, engine)
    with _launched_tracking(run.rank):
        meter = loop(run, engine, data, state)
        return finish(run, engine, data, state, meter)


@dataclass(frozen=True)
class Run:
    """What stays fixed through one process's run.

    Attributes:
        cfg: The stage config.
        inputs: The resolved inputs.
        out_dir: The (staging) output folder.
        ckpt: The run's checkpoint folder and fingerprint.
        device: This process's torch device.
        world: Processes in the run.
        rank: This process's rank (0 exports and logs).
    """

    cfg: PretrainConfig
    inputs: PretrainInputs
    out_dir: Path
    ckpt: CheckpointFolder
    device: Any
    world: int
    rank: int

    @property
    def training(self) -> ObjectiveTraining:
        """The objective's training settings (batch, steps, learning rate)."""
        return self.cfg.training(self.inputs.objective)


@dataclass
class Data:
    """The tokenizer and the batch stream (:class:`~twhin_bert.pretrain.data.TweetStream` for
    ``mlm``, :class:`~twhin_bert.pretrain.data.PairStream` for ``mlm_social``)."""

    tokenizer: Any
    specials: Any
    stream: Any


@dataclass
class Engine:
    """The DeepSpeed engine (it wraps the model), its LR schedule and what metrics report."""

    engine: Any
    scheduler: Any
    parameters: int
    bf16: bool


@dataclass
class TrainState:
    """Where training stands: what every checkpoint's ``client_state`` carries.

    Attributes:
        step: Optimizer steps done.
        epoch: The epoch of the last batch consumed.
        next_batch: The index of the next batch (a checkpoint without ``data`` replays to it).
        log: One entry per logged step (``training_log.json``).
        tokens: Non-padding tokens trained on, all ranks.
        data: The stream's saved position (O(1) to restore whatever the step).
        resumed_from: The step the run resumed from (0: a fresh start); not saved.
    """

    step: int = 0
    epoch: int = 0
    next_batch: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    data: dict[str, Any] | None = None
    resumed_from: int = 0

    SAVED: ClassVar[tuple[str, ...]] = ("step", "epoch", "next_batch", "log", "tokens", "data")

    @classmethod
    def from_client(cls, client: dict[str, Any]) -> TrainState:
        """The state a checkpoint saved (``data`` exists since issue 13: else ``None``)."""
        fresh = cls()
        state = cls(**{k: client.get(k, getattr(fresh, k)) for k in cls.SAVED})
        state.log = list(state.log)
        state.resumed_from = state.step
        return state

    def client(self, position: dict[str, Any]) -> dict[str, Any]:
        """The ``client_state`` of a checkpoint taken now, the stream at ``position``."""
        self.data = position
        return {k: getattr(self, k) for k in self.SAVED}

    def start(self) -> dict[str, Any]:
        """Where the stream starts: its saved position, else (epoch, next batch) to replay."""
        return self.data or {"epoch": self.epoch, "batch": self.next_batch}


def start(cfg: PretrainConfig, out_dir: Path, inputs: PretrainInputs) -> Run:
    """Sets torch's threads, joins (or creates) the process group; the :class:`Run`."""
    use_threads(cfg.threads)
    device, world, rank = _init_distributed()
    ckpt = checkpoint_folder(cfg, out_dir, inputs)
    return Run(cfg, inputs, out_dir, ckpt, device, world, rank)


def setup_data(run: Run) -> Data:
    """The tokenizer and the objective's stream of micro-batches of ``micro_batch_size``."""
    from twhin_bert.pretrain import data as D
    from twhin_bert.pretrain.model import packing_limits

    cfg, inputs = run.cfg, run.inputs
    tok, specials = D.load_tokenizer(inputs.tokenizer)
    # Positions and lengths follow the encoder (a base model's family and position table).
    offset, max_seq_len, max_pair_tokens = packing_limits(
        cfg.max_seq_len, cfg.max_pair_tweet_tokens, tok, specials, inputs.init_from
    )
    common = {
        "max_seq_len": max_seq_len,
        "position_offset": offset,
        "mask_prob": cfg.mask_prob,
        "alpha": cfg.lang_alpha,
        "shuffle_buffer": cfg.shuffle_buffer,
        "read_rows": cfg.read_batch_rows,
        "seed": cfg.seed,
    }
    batch = run.training.micro_batch_size
    stream: Any
    if inputs.social:
        assert inputs.pairs is not None  # PretrainInputs checks it
        stream = D.PairStream(
            inputs.pairs, inputs.ingested, tok, specials,
            pairs_per_batch=batch, max_tweet_tokens=max_pair_tokens, **common,
        )  # fmt: skip
    else:
        stream = D.TweetStream(
            Ingested(inputs.ingested).tweets_path(), tok, specials, rows_per_batch=batch, **common
        )
    return Data(tok, specials, stream)


def build_engine(run: Run, data: Data) -> Engine:
    """The model (fresh, or from ``init_from``) inside a DeepSpeed engine (AdamW, schedule)."""
    import deepspeed
    import torch
    from deepspeed.utils import logger as ds_logger

    from twhin_bert.pretrain.model import build_model

    ds_logger.setLevel(logging.WARNING)
    cfg, init_from = run.cfg, run.inputs.init_from
    on_gpu = run.device.type == "cuda"
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and on_gpu)
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.arch,
        data.specials,
        max_seq_len=cfg.max_seq_len,
        projection_dims=cfg.projection_dims,
        init_from=str(init_from) if init_from else None,
    )
    if run.training.grad_checkpointing:
        model.encoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    n_params = sum(p.numel() for p in model.parameters())
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=_param_groups(model, cfg.weight_decay),
        config=deepspeed_config(cfg, run.inputs.objective, bf16=bf16, on_gpu=on_gpu),
    )
    return Engine(engine, scheduler, n_params, bf16)


def resume(run: Run, engine: Engine) -> TrainState:
    """The state of the newest complete checkpoint of these inputs and settings that loads
    (weights, optimizer and schedule go into ``engine``); a fresh state without one."""
    client = run.ckpt.resume(engine.engine, run.world, run.rank)
    if client is None:
        return TrainState()
    state = TrainState.from_client(client)
    log.info("pretrain: resumed from step %d (%s)", state.step, run.ckpt.path)
    return state


def loop(run: Run, engine: Engine, data: Data, state: TrainState) -> Throughput:
    """Optimizer steps up to ``steps``: logs every ``log_every`` and checkpoints every
    ``checkpoint_every`` steps and at the last (a crash during export resumes to export)."""
    cfg, tc = run.cfg, run.training
    batches = _rank_batches(data.stream(state.start()), run.world, run.rank)
    meter = Throughput(warmup_step=state.step + 1)  # each process's first step warms up
    bar = progress(
        total=tc.steps,
        initial=state.step,
        desc=f"pretrain {run.inputs.objective}",
        **({} if run.rank == 0 else {"disable": True}),
    )
    engine.engine.train()
    while state.step < tc.steps:
        t0 = time.perf_counter()
        losses, tokens = train_step(run, engine.engine, batches, state)
        meter.add(state.step, tokens, time.perf_counter() - t0)
        if state.step % cfg.log_every == 0 or state.step == tc.steps:
            entry = _log_step(run, engine, state, losses, meter.window_rate())
            bar.set_postfix(loss=f"{entry['loss']:.3f}", lr=f"{entry['lr']:.2e}")
        bar.update(1)
        if state.step % cfg.checkpoint_every == 0 or state.step == tc.steps:
            client = state.client(data.stream.position())
            run.ckpt.save(
                engine.engine, state.step, client,
                world=run.world, rank=run.rank, keep=cfg.keep_checkpoints,
            )  # fmt: skip
    bar.close()
    return meter


def train_step(
    run: Run, engine: Any, batches: Iterator[tuple[int, int, Any]], state: TrainState
) -> tuple[Any, int]:
    """One optimizer step over ``grad_accum_steps`` micro-batches.

    Returns:
        The mean ``[loss, mlm_loss, social_loss]`` and the non-padding tokens of all ranks.
    """
    import torch

    cfg, accum = run.cfg, run.training.grad_accum_steps
    # Dropout depends only on (seed, step): a resumed run draws what the original would.
    torch.manual_seed(_derive(cfg.seed, state.step))
    losses = torch.zeros(3)
    tokens = 0
    for _ in range(accum):
        state.epoch, index, batch = next(batches)
        state.next_batch = index + run.world  # this rank consumed up to here (all ranks agree)
        batch = batch.to(engine.device)
        # Through the engine (so its hooks -- ZeRO, bf16 -- apply); loss settings by name.
        loss, mlm, soc = engine(
            batch.input_ids, batch.position_ids, batch.segment_ids,
            batch.cls_index, batch.mlm_index, batch.mlm_labels,
            social=run.inputs.social, tau=cfg.tau, lam=cfg.lam,
            across_ranks=cfg.negatives_across_ranks, pooling=cfg.social_pooling,
        )  # fmt: skip
        engine.backward(loss)
        engine.step()
        losses += torch.stack([loss.detach(), mlm, soc]).float().cpu()
        tokens += batch.tokens
    state.step += 1
    tokens = _all_sum(tokens, run.world)
    state.tokens += tokens
    return losses / accum, tokens


@dataclass
class Throughput:
    """Non-padding tokens per second: over the run (each process's first, warm-up step left
    out) and over the window since the last log entry."""

    warmup_step: int
    tokens: int = 0
    seconds: float = 0.0
    window_tokens: int = 0
    window_t0: float = field(default_factory=time.perf_counter)

    def add(self, step: int, tokens: int, seconds: float) -> None:
        """Counts optimizer step ``step``: ``tokens`` in ``seconds``."""
        if step > self.warmup_step:
            self.tokens += tokens
            self.seconds += seconds
        self.window_tokens += tokens

    def window_rate(self) -> float:
        """Tokens/s since the last call (or the start); starts a new window."""
        now = time.perf_counter()
        rate = self.window_tokens / max(now - self.window_t0, 1e-9)
        self.window_tokens, self.window_t0 = 0, now
        return rate

    @property
    def rate(self) -> float:
        """Tokens/s over the timed steps (NaN when there were none)."""
        return self.tokens / self.seconds if self.seconds else math.nan


def _log_step(
    run: Run, engine: Engine, state: TrainState, losses: Any, tokens_per_s: float
) -> dict[str, Any]:
    """Appends the step's entry to the training log (and MLflow, rank 0); returns it."""
    sched = engine.scheduler
    entry = {
        "step": state.step,
        "epoch": state.epoch,
        "loss": float(losses[0]),
        "mlm_loss": float(losses[1]),
        "social_loss": float(losses[2]) if run.inputs.social else None,
        "lr": float(sched.get_last_lr()[0]) if sched else run.training.peak_lr,
        "tokens_per_s": tokens_per_s,
        "tokens": state.tokens,
    }
    state.log.append(entry)
    if run.rank == 0:
        tracking.log_metrics({k: v for k, v in entry.items() if v is not None}, step=state.step)
    return entry


def finish(
    run: Run, engine: Engine, data: Data, state: TrainState, meter: Throughput
) -> dict[str, Any]:
    """The run's metrics; rank 0 exports the model (and removes the checkpoints unless kept)."""
    from twhin_bert.pretrain.export import export_model

    entries = state.log
    last, tail = entries[-1], entries[-max(1, len(entries) // 10) :]
    metrics: dict[str, Any] = {
        "objective": run.inputs.objective,
        "steps": state.step,
        "resumed_from_step": state.resumed_from,
        "final_loss": last["loss"],
        "final_mlm_loss": last["mlm_loss"],
        "tail_mean_loss": sum(e["loss"] for e in tail) / len(tail),
        "first_loss": entries[0]["loss"],
        "non_padding_tokens": state.tokens,
        "tokens_per_second": meter.rate,
        "parameters": engine.parameters,
        "world_size": run.world,
        "precision": "bf16" if engine.bf16 else "fp32",
    }
    if run.inputs.social:
        metrics["final_social_loss"] = last["social_loss"]
    if run.rank == 0:
        export_model(
            engine.engine.module,
            data.tokenizer,
            run.out_dir,
            objective=run.inputs.objective,
            metrics=metrics,
            config=run.cfg.model_dump(mode="json"),
            training_log=entries,
        )
        if not run.cfg.keep_checkpoints_after and run.ckpt.path.is_dir():
            shutil.rmtree(run.ckpt.path)
    if run.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return metrics


def _launched_tracking(rank: int) -> contextlib.AbstractContextManager[Any]:
    """Rank 0 of a launched child logs into its launcher's MLflow run (which holds it)."""
    if rank != 0 or not os.environ.get(MLFLOW_RUN_ENV):
        return contextlib.nullcontext()
    import mlflow

    tracking.configure()
    return mlflow.start_run(run_id=os.environ[MLFLOW_RUN_ENV])


# --------------------------------------------------------------------------- engine pieces


def deepspeed_config(
    cfg: PretrainConfig, objective: str, *, bf16: bool, on_gpu: bool = True
) -> dict[str, Any]:
    """The DeepSpeed config dict built from ours (per-process micro-batch, ZeRO, precision,
    AdamW, linear warmup then linear decay to 0 over the run).

    On GPUs AdamW is DeepSpeed's FusedAdam. On the CPU it is ``torch.optim.AdamW`` (``torch_adam``,
    multi-tensor ``foreach``): DeepSpeed's CPU FusedAdam is a C++ extension JIT-compiled on first
    use (a minute or more on a small CPU), which a small CPU run never earns back.
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
    (``deepspeed_shm_comm``) the first time it starts (minutes on a small CPU), to speed up
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


# --------------------------------------------------------------------------- multi-GPU launch


def _launch(
    cfg: PretrainConfig, out_dir: Path, inputs: PretrainInputs, lock_fd: int
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
        "--config", str(cfg_file), "--out", str(out_dir), *inputs.argv(),
    ]  # fmt: skip
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
    PretrainInputs.add_arguments(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = PretrainConfig.model_validate_json(Path(a.config).read_text())
    out = Path(a.out)
    metrics = train(cfg, out, PretrainInputs.from_args(a))
    import torch.distributed as dist

    if dist.get_rank() == 0:
        (out / RESULT_FILE).write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
