"""Compile, submit and schedule the pipelines on a Kubeflow Pipelines endpoint."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from kfp import compiler
from twhin_bert import __version__
from twhin_bert_pipelines.config import PipelineConfig
from twhin_bert_pipelines.pretrain_pipeline import build_pretrain_pipeline
from twhin_bert_pipelines.retrain_pipeline import build_retrain_pipeline

PipelineName = Literal["pretrain", "retrain"]
BUILDERS: dict[str, Callable[[PipelineConfig], Callable]] = {
    "pretrain": build_pretrain_pipeline,
    "retrain": build_retrain_pipeline,
}


def build(cfg: PipelineConfig, which: PipelineName = "pretrain") -> Callable:
    """The pipeline function ``which`` for ``cfg``."""
    try:
        return BUILDERS[which](cfg)
    except KeyError:
        raise ValueError(f"unknown pipeline {which!r}; choose one of {sorted(BUILDERS)}") from None


def compile_pipeline(
    cfg: PipelineConfig, out: str | Path, which: PipelineName = "pretrain"
) -> Path:
    """Compiles pipeline ``which`` to a KFP IR YAML file.

    Returns:
        The written file.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        build(cfg, which), str(out), pipeline_parameters=None, type_check=True
    )
    return out


_CRON_FIELD = re.compile(r"^[\d*/,\-?LW#A-Za-z]+$")


def to_kfp_cron(expr: str) -> str:
    """Normalises a cron expression to KFP's 6-field form (seconds first).

    A standard 5-field expression (``min hour dom month dow``) gets ``0`` seconds prepended;
    a 6-field one is kept.

    Raises:
        ValueError: Not 5 or 6 fields, or a field with characters cron does not use.
    """
    fields = expr.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (min hour day month weekday) or KFP's 6 "
            "(seconds first), e.g. '0 0 3 * * *' for 03:00 daily"
        )
    return " ".join(["0", *fields] if len(fields) == 5 else fields)


def _client(host: str, namespace: str | None, token: str | None) -> Any:
    import kfp

    return kfp.Client(host=host, namespace=namespace, existing_token=token)


def _upload(client: Any, package: Path, name: str) -> tuple[str, str]:
    """Uploads ``package`` as a new version of pipeline ``name`` (creating it if needed)."""
    pipeline_id = client.get_pipeline_id(name)
    version_name = f"{name}-{__version__}-{package.stat().st_mtime_ns}"
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package), pipeline_name=name)
        pipeline_id = pipeline.pipeline_id
    version = client.upload_pipeline_version(
        str(package), pipeline_version_name=version_name, pipeline_id=pipeline_id
    )
    return pipeline_id, version.pipeline_version_id


def submit(
    cfg: PipelineConfig,
    host: str,
    *,
    which: PipelineName = "pretrain",
    experiment: str = "twhin-bert",
    run_name: str | None = None,
    params: dict[str, Any] | None = None,
    namespace: str | None = None,
    token: str | None = None,
    service_account: str | None = None,
    work_dir: Path = Path("."),
) -> dict[str, str]:
    """Compiles, uploads (as a new pipeline version) and starts one run.

    Returns:
        ``{"run_id", "pipeline_id", "version_id", "experiment_id"}``.
    """
    client = _client(host, namespace, token)
    package = compile_pipeline(cfg, work_dir / f"{cfg.name}-{which}.yaml", which)
    pipeline_id, version_id = _upload(client, package, f"{cfg.name}-{which}")
    exp = client.create_experiment(experiment, namespace=namespace)
    run = client.run_pipeline(
        experiment_id=exp.experiment_id,
        job_name=run_name or f"{cfg.name}-{which}",
        params=params or {},
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=service_account,
    )
    return {
        "run_id": run.run_id,
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "experiment_id": exp.experiment_id,
    }


def schedule(
    cfg: PipelineConfig,
    host: str,
    cron: str,
    *,
    experiment: str = "twhin-bert",
    job_name: str | None = None,
    params: dict[str, Any] | None = None,
    max_concurrency: int = 1,
    namespace: str | None = None,
    token: str | None = None,
    service_account: str | None = None,
    work_dir: Path = Path("."),
    window_days: float | None = None,
) -> dict[str, str]:
    """Creates a recurring run of the retrain pipeline (KFP 6-field cron).

    Each run trains on the ``build_graph.window_days`` days of engagements before its
    scheduled time (``window_days`` here overrides the config's); ingest re-reads the inputs.

    Returns:
        ``{"recurring_run_id", "cron", "pipeline_id", "version_id", "experiment_id"}``.

    Raises:
        ValueError: No window: every scheduled run would train on the same engagements.
    """
    if window_days is not None:
        cfg = cfg.model_copy(
            update={"build_graph": cfg.build_graph.model_copy(update={"window_days": window_days})}
        )
    if cfg.build_graph.window_days is None:
        raise ValueError(
            "scheduled retraining needs a rolling window: set build_graph.window_days in the "
            "config (or pass window_days), else every run trains on the same engagements"
        )
    if cfg.build_graph.start is not None or cfg.build_graph.end is not None:
        raise ValueError("build_graph.start/end are fixed dates: a schedule uses window_days")
    kfp_cron = to_kfp_cron(cron)
    client = _client(host, namespace, token)
    package = compile_pipeline(cfg, work_dir / f"{cfg.name}-retrain.yaml", "retrain")
    pipeline_id, version_id = _upload(client, package, f"{cfg.name}-retrain")
    exp = client.create_experiment(experiment, namespace=namespace)
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name=job_name or f"{cfg.name}-retrain-schedule",
        cron_expression=kfp_cron,
        max_concurrency=max_concurrency,
        no_catchup=True,
        params=params or {},
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=service_account,
    )
    return {
        "recurring_run_id": job.recurring_run_id,
        "cron": kfp_cron,
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "experiment_id": exp.experiment_id,
    }
