"""The register_model stage: log the exported model, register a version, gate it.

Order of work: read evaluate's key metrics (fail fast), check the model folder, log it as the
embedding-serving pyfunc model (``pyfunc.TweetEmbedder``: one vector per tweet, the whole
exported folder as its artifact) beside the resolved pipeline config, register a new version,
tag it (git SHA, data window, pipeline run, key metrics), run the promotion gate
against the champion and record the verdict, point ``challenger`` at it, and -- when
``auto_promote`` is on and the gate passed -- promote it through the same code path as
``twhin-bert registry approve``. The stage's output is a
:class:`~twhin_bert.common.artifacts.Registration` (name, version, aliases, gate verdict).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml

from twhin_bert import __version__
from twhin_bert.common import roles, tracking
from twhin_bert.common.artifacts import Evaluation, ModelFolder, Registration
from twhin_bert.common.metrics import BASE, BASELINE, METRICS_FILE, PRIMARY, flatten, mlflow_key
from twhin_bert.common.redact import redact_mapping
from twhin_bert.common.stage import stage
from twhin_bert.register_model import pyfunc, registry
from twhin_bert.register_model.config import RegisterModelConfig
from twhin_bert.register_model.gate import (
    GateVerdict,
    beats_base,
    evaluate_gate,
    metrics_to_tags,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"


def _read_evaluation(evaluation: Path) -> tuple[Path, dict[str, Any]]:
    """evaluate's metrics file and its content (a missing or malformed file is named)."""
    return Path(evaluation) / METRICS_FILE, Evaluation(evaluation).metrics()


def _key_metrics(values: dict[str, Any], path: Path, where: str) -> dict[str, float | None]:
    """A flat ``{metric: number | None}`` mapping; non-finite numbers become None."""
    out: dict[str, float | None] = {}
    for k, v in values.items():
        if v is None:
            out[k] = None
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = float(v) if math.isfinite(float(v)) else None
        else:
            raise ValueError(f"{path}: {where}.{k} = {v!r}; expected a number or null")
    return out


def read_primary_metrics(evaluation: Path) -> dict[str, float | None]:
    """Reads evaluate's primary metrics (the candidate's key metrics).

    Args:
        evaluation: The evaluate stage's output folder.

    Returns:
        ``{metric: value}``, None for a metric evaluate could not compute.

    Raises:
        ValueError: The metrics file is missing or not JSON, or its primary section is absent
            or not a flat numeric mapping.
    """
    path, data = _read_evaluation(evaluation)
    primary = data.get(PRIMARY)
    if not isinstance(primary, dict) or not primary:
        raise ValueError(f"{path}: expected a non-empty '{PRIMARY}' mapping of key metrics")
    return _key_metrics(primary, path, PRIMARY)


def read_baseline_metrics(evaluation: Path, name: str) -> dict[str, float | None] | None:
    """Key metrics evaluate measured for its baseline model ``name`` in the same run (same
    split, same seeds), or None when its baseline was another model or absent."""
    path, data = _read_evaluation(evaluation)
    baseline = data.get(BASELINE)
    if not isinstance(baseline, dict) or baseline.get("name") != name:
        return None
    return _key_metrics(baseline.get(PRIMARY) or {}, path, f"{BASELINE}.{PRIMARY}")


def gate_reference(
    evaluation: Path,
    evaluated_champion: str | None,
    champion_version: str | None,
    champion_tags: dict[str, float | None] | None,
) -> tuple[dict[str, float | None] | None, str]:
    """The champion metrics the gate compares with, and where they come from.

    The champion's numbers measured in this run beside the challenger (retraining) are
    preferred: its registered tags come from an older window and split. They are used only
    when the version evaluated is still the champion.
    """
    if evaluated_champion and champion_version == evaluated_champion:
        same_run = read_baseline_metrics(evaluation, roles.CHAMPION)
        if same_run:
            return same_run, f"champion v{champion_version} evaluated in this run (same split)"
    if champion_version is None:
        return None, "no champion"
    note = f"champion v{champion_version}'s registered metrics"
    if evaluated_champion and champion_version != evaluated_champion:
        note += f" (v{evaluated_champion}, evaluated in this run, is no longer the champion)"
    return champion_tags, note


def _pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (MLflow's own inference would load the model
    in a subprocess, a cost on every registration)."""
    import tokenizers
    import torch
    import transformers

    return [
        f"transformers=={transformers.__version__}",
        f"tokenizers=={tokenizers.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
    ]


def _log_pipeline_config(pipeline_config: dict[str, Any]) -> None:
    """The resolved pipeline config as an artifact and as ``pipeline.*`` params, with
    credential-named values and passwords in URIs redacted (``common.redact``)."""
    import mlflow

    pipeline_config = redact_mapping(pipeline_config)
    mlflow.log_text(yaml.safe_dump(pipeline_config, sort_keys=False), "pipeline_config.yaml")
    params = {mlflow_key(k): str(v)[:500] for k, v in flatten(pipeline_config, "pipeline.").items()}
    items = list(params.items())
    for i in range(0, len(items), 90):  # MLflow takes at most 100 params per call
        mlflow.log_params(dict(items[i : i + 90]))


def _check_model_folder(model: Path) -> None:
    """Fails fast, naming the folder, when it is not an exported HF folder with a tokenizer."""
    from transformers import AutoTokenizer

    if not (model / ModelFolder.CONFIG).is_file():
        raise ValueError(f"{model}: no config.json; expected an exported Hugging Face model folder")
    try:
        AutoTokenizer.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"{model}: no loadable tokenizer in the model folder ({e})") from e


@stage("register_model")
def run_register_model(
    cfg: RegisterModelConfig,
    out_dir: Path,
    *,
    model: Path,
    evaluation: Path,
    pipeline_config: dict[str, Any],
    data_window: str,
    evaluated_champion: str | None = None,
) -> dict[str, Any]:
    """Registers the exported model as a new version, gates it and writes its registration.

    Args:
        cfg: Registered model name, task, gate, auto-promotion.
        out_dir: Output folder (the staging folder under ``@stage``): a
            :class:`~twhin_bert.common.artifacts.Registration`.
        model: The exported Hugging Face model folder (weights, config, tokenizer).
        evaluation: The evaluate stage's folder (its primary metrics are gated).
        pipeline_config: The resolved pipeline config (logged with the model).
        data_window: The engagement window the model was trained on (e.g. ``2026-10-01/2026-10-31``).
        evaluated_champion: The champion version evaluate ran beside the model (retraining);
            while it is still the champion the gate compares with those same-split numbers.

    Returns:
        ``version``, ``gate_passed``, ``promoted`` and the key metrics (``primary.<name>``).

    Raises:
        ValueError: evaluate's metrics lack a gated number, or the model folder is not an
            exported Hugging Face model with its tokenizer (both checked before anything is
            logged).
    """
    import mlflow

    model, evaluation, out_dir = Path(model), Path(evaluation), Path(out_dir)
    primary = read_primary_metrics(evaluation)
    _check_model_folder(model)

    own_run = mlflow.active_run() is None  # tracking switched off for the stages
    if own_run:
        tracking.configure()
        mlflow.start_run(run_name="register_model", tags=tracking.run_tags("register_model", None))
    try:
        run = mlflow.active_run()
        run_tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
        pipeline_run = run_tags.get(tracking.PIPELINE_RUN_TAG) or f"run-{run.info.run_id}"
        # A retried task (same pipeline run) finds the version its earlier attempt created:
        # it completes that registration instead of creating a second, unaudited version.
        earlier, audited = (
            registry.version_of_pipeline_run(
                cfg.model_name,
                pipeline_run,
                {"model_folder": str(model), "data_window": data_window},
            )
            if run_tags.get(tracking.PIPELINE_RUN_TAG)
            else (None, False)
        )
        if earlier is None:
            _log_pipeline_config(pipeline_config)
            mlflow.log_param("data_window", data_window)
            tracking.log_artifact(evaluation / METRICS_FILE, "evaluation")
            logged_uri = pyfunc.log_model(model, MODEL_ARTIFACT, _pip_requirements()).model_uri
    finally:
        if own_run:
            mlflow.end_run()

    client = registry.connect()
    champion_version, champion_tags = registry.champion_metrics(cfg.model_name)
    reference, source = gate_reference(
        evaluation, evaluated_champion, champion_version, champion_tags
    )
    verdict = evaluate_gate(cfg.gate, primary, reference, champion_version)
    verdict.reasons.insert(0, f"compared with: {source}")
    if cfg.gate.require_beat_base:
        path, data = _read_evaluation(evaluation)
        base = data.get(BASE)
        ok, lines = beats_base(
            cfg.gate,
            primary,
            _key_metrics(base.get(PRIMARY) or {}, path, f"{BASE}.{PRIMARY}")
            if isinstance(base, dict)
            else None,
        )
        verdict.passed = verdict.passed and ok
        verdict.reasons.extend(lines)

    tags = {
        "git_sha": tracking.git_sha(),
        "twhin_bert_version": __version__,
        "data_window": data_window,
        "pipeline_run_id": pipeline_run,
        "model_folder": str(model),
        registry.TAG_GATE_CONFIG: cfg.gate.model_dump_json(),  # approve re-checks with it
        **metrics_to_tags(primary),
        **verdict.to_tags(),
    }
    if earlier is None:
        mv = mlflow.register_model(logged_uri, cfg.model_name, tags=tags)
    else:
        mv, logged_uri = earlier, earlier.source
        verdict = GateVerdict.from_tags(mv.tags) or verdict  # the verdict its tags carry
        log.info(
            "%s v%s was registered by an earlier attempt of this pipeline run: %s",
            cfg.model_name, mv.version, "already recorded" if audited else "recording it now",
        )  # fmt: skip
    version = str(mv.version)
    log.info("registered %s v%s: gate %s", cfg.model_name, version, verdict.verdict)
    for line in verdict.reasons:
        log.info("  gate: %s", line)

    actor = registry.default_actor()  # the authenticated MLflow user of the pipeline
    if not audited:
        registry.record_registration(
            cfg.model_name, version, verdict, actor=actor, via=f"register_model:{pipeline_run}"
        )

    promoted = False
    if (
        cfg.auto_promote
        and verdict.passed
        and registry.get_aliases(client, cfg.model_name).get(registry.CHAMPION) != version
    ):
        registry.approve(
            cfg.model_name,
            version,
            actor=actor,
            reason="auto_promote: gate passed",
            via=f"auto_promote:{pipeline_run}",
        )
        promoted = True

    aliases = registry.get_aliases(client, cfg.model_name)
    registration = {
        "name": cfg.model_name,
        "version": version,
        "model_uri": f"models:/{cfg.model_name}/{version}",
        "logged_model_uri": logged_uri,
        "run_id": mv.run_id,
        "aliases": sorted(a for a, v in aliases.items() if v == version),
        "champion": aliases.get(registry.CHAMPION),
        "promoted": promoted,
        "data_window": data_window,
        "pipeline_run_id": pipeline_run,
        "metrics": primary,
        **verdict.to_dict(),
    }
    Registration(out_dir).write(registration)
    result: dict[str, Any] = {
        "version": int(version),
        "gate_passed": verdict.passed,
        "promoted": promoted,
    }
    result.update({f"{PRIMARY}.{k}": v for k, v in primary.items() if v is not None})
    return result
