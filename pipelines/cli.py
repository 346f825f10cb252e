"""The ``twhin-bert`` command line: every stage, the pipelines, the registry and benchmarks.

It is the top layer (common <- stages <- pipelines <- cli): it lives beside the pipelines it
compiles and submits, and nothing in ``twhin_bert`` imports it or them.

Heavy libraries (torch, faiss, mlflow, kfp) are imported inside commands so that
``twhin-bert --help`` answers at once.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from twhin_bert import __version__
from twhin_bert.common import redact

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="twhin-bert",
    help="Train socially-enriched language models (TwHIN-BERT) as a Kubeflow pipeline.",
    epilog="Exit codes: 0 ok; 1 unexpected error (a bug, with traceback); 2 bad input, config "
    "or usage; 3 I/O failure (permission denied, read-only or full disk); 4 MLflow tracking "
    "server or Kubeflow Pipelines unreachable or failing; 5 a run `runs wait` waited for did "
    "not succeed; 130 interrupted.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
registry_app = typer.Typer(
    help="The MLflow model registry: list, show, approve, reject, rollback.", no_args_is_help=True
)
bench_app = typer.Typer(
    help="Benchmarks: each prints a table and, last, one JSON line with 'met'.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)
out_console = Console()

ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="'tiny' or 'prod' (the built-in pipeline configs), a pipeline config file (its "
        "section is used) or a stage config file (YAML/JSON).",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder (written atomically).")]
RunIdOpt = Annotated[
    str | None,
    typer.Option("--pipeline-run-id", help="Group this stage's MLflow run under a pipeline run."),
]


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    redact.install_log_redaction()  # no credential reaches a log line
    for noisy in ("alembic", "urllib3", "h5py", "matplotlib", "git", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _print_version(value: bool) -> None:
    if value:
        out_console.print(__version__)
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    _setup_logging(verbose)


def friendly_errors(fn: F) -> F:
    """Turns expected failures into one red line and a distinct exit code.

    The codes (``twhin_bert.common.errors.ExitCode``): 2 bad input, config or usage; 3 an
    I/O failure (permission, read-only or full disk); 4 the MLflow server unreachable or
    failing; 130 interrupted. Anything else is a bug and keeps its traceback (exit 1).
    ``TWHIN_BERT_DEBUG=1`` shows the traceback of every failure.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from twhin_bert.common.errors import ExitCode, describe, exit_code_for
        from twhin_bert.register_model.registry import RegistryError

        try:
            return fn(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as e:
            code = ExitCode.BAD_INPUT if isinstance(e, RegistryError) else exit_code_for(e)
            if code is None or os.environ.get("TWHIN_BERT_DEBUG") == "1":
                raise
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            message = describe(e, redact.redact_uri(uri) if uri else None)
            console.print(
                f"[bold red]error:[/] {escape(redact.redact_text(message))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(int(code)) from e

    return wrapper  # type: ignore[return-value]


def print_metrics(title: str, metrics: dict[str, Any], out: Path | None = None) -> None:
    """Prints a stage's metrics as a two-column table (nested keys dotted)."""
    from twhin_bert.common.metrics import flat_numeric

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in flat_numeric(metrics).items():
        table.add_row(k, f"{v:,.4g}" if not float(v).is_integer() else f"{int(v):,}")
    out_console.print(table)
    if out is not None:
        out_console.print(f"[green]outputs:[/] {out}")


def _load(cls: type, config: str | None, section: str) -> Any:
    """A stage's config from ``--config``: a built-in name, a pipeline file or a stage file.

    A built-in name (``tiny``, ``prod``) and a file that reads as a pipeline config (its
    top-level keys are pipeline-config fields, not all of them the stage's) resolve exactly
    as ``twhin-bert run --config`` does and give their ``section``; any other file is the
    stage config (or holds it under ``section``).
    """
    from twhin_bert.common.config import load_stage_config, read_mapping
    from twhin_bert_pipelines.config import BUILTIN_CONFIGS, PipelineConfig, load_pipeline_config

    if config is None:
        return cls()
    if config in BUILTIN_CONFIGS:
        return getattr(load_pipeline_config(config), section)
    keys = set(read_mapping(config))
    fields = set(PipelineConfig.model_fields)
    if section not in keys and keys and keys <= fields and not keys <= set(cls.model_fields):
        return getattr(load_pipeline_config(config), section)
    return load_stage_config(cls, config, section)


# ----------------------------------------------------------------------------- demo data
@app.command("demo-data")
@friendly_errors
def demo_data(
    out: OutOpt,
    users: Annotated[int, typer.Option(help="Number of users.")] = 2000,
    tweets: Annotated[int, typer.Option(help="Number of tweets.")] = 10000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    days: Annotated[int, typer.Option(help="Length of the time window in days.")] = 28,
    engagements_per_tweet: Annotated[
        float, typer.Option(help="Mean engagements per tweet.")
    ] = 10.0,
    parallel_pairs: Annotated[int, typer.Option(help="Translation pairs in parallel.jsonl.")] = 300,
) -> None:
    """Generate a deterministic demo TwHIN: tweets.jsonl, engagements.jsonl, parallel.jsonl, truth/."""
    from twhin_bert.demo_data.generate import generate_demo

    counts = generate_demo(
        out,
        users=users,
        tweets=tweets,
        seed=seed,
        days=days,
        engagements_per_tweet=engagements_per_tweet,
        parallel_pairs=parallel_pairs,
    )
    print_metrics("demo data", counts, out)


# ----------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class StageInput:
    """One input option of a stage command: its name, type, help and default."""

    name: str
    annotation: Any
    help: str
    default: Any = inspect.Parameter.empty


def _report(stage: str, m: dict[str, Any], out: Path, values: dict[str, Any]) -> None:
    print_metrics(stage, m, out)


def stage_command(
    stage: str,
    config_cls: str,
    run: str,
    doc: str,
    inputs: list[StageInput],
    *,
    to_stage: Callable[..., dict[str, Any]] | None = None,
    report: Callable[[str, dict[str, Any], Path, dict[str, Any]], None] = _report,
) -> Callable[..., None]:
    """Builds the command of a stage: ``--out``, its inputs, ``--config``, ``--pipeline-run-id``.

    The command loads the stage's config (:func:`_load`, section ``stage``), calls the
    stage's wrapped function ``run(cfg, out, pipeline_run_id=..., **inputs)`` and prints its
    metrics. The config class and the function are named ``"module:attr"`` and imported when
    the command runs, so that ``twhin-bert --help`` stays fast.

    Args:
        stage: The stage name: the command, the config section and the metrics' title.
        config_cls: The stage's config class, e.g. ``"twhin_bert.ingest.config:IngestConfig"``.
        run: The stage's wrapped function, e.g. ``"twhin_bert.ingest.ingest:run_ingest"``.
        doc: The command's help text.
        inputs: The command's input options, in help order.
        to_stage: Maps the loaded config and the options' values to the stage function's
            inputs, ``to_stage(cfg, **values)`` (default: the values as is).
        report: Prints the result: ``report(stage, metrics, out, values)``.

    Returns:
        The command, wrapped in :func:`friendly_errors`.
    """

    def command(
        out: Path, config: str | None = None, pipeline_run_id: str | None = None, **values: Any
    ) -> None:
        import importlib

        def resolve(ref: str) -> Any:
            module, _, attr = ref.partition(":")
            return getattr(importlib.import_module(module), attr)

        cfg = _load(resolve(config_cls), config, stage)
        stage_inputs = to_stage(cfg, **values) if to_stage else values
        m = resolve(run)(cfg, out, pipeline_run_id=pipeline_run_id, **stage_inputs)
        report(stage, m, out, values)

    command.__doc__ = doc
    wrapped = friendly_errors(command)
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("out", kw, annotation=OutOpt),
        *(
            inspect.Parameter(
                i.name,
                kw,
                annotation=Annotated[i.annotation, typer.Option(help=i.help)],
                default=i.default,
            )
            for i in inputs
        ),
        inspect.Parameter("config", kw, annotation=ConfigOpt, default=None),
        inspect.Parameter("pipeline_run_id", kw, annotation=RunIdOpt, default=None),
    ]
    wrapped.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    wrapped.__annotations__ = {p.name: p.annotation for p in params}
    wrapped.__name__ = f"{stage}_cmd"
    return wrapped


def _ingest_report(stage: str, m: dict[str, Any], out: Path, values: dict[str, Any]) -> None:
    from twhin_bert.ingest.ingest import summarise

    print_metrics(stage, m, out)
    out_console.print(summarise(m))


def _pretrain_report(stage: str, m: dict[str, Any], out: Path, values: dict[str, Any]) -> None:
    print_metrics(f"pretrain ({values['objective']})", m, out)


def _evaluate_inputs(
    cfg: Any,
    model: Path,
    baseline_model: Path | None,
    baseline_name: str | None,
    base_model: str | None,
    benchmark: list[str] | None,
    **inputs: Any,
) -> dict[str, Any]:
    from twhin_bert.evaluate.evaluate import models_to_score

    models = models_to_score(
        cfg, model, baseline=baseline_model, base_model=base_model, baseline_name=baseline_name
    )
    return {"models": models, "benchmarks": benchmark or [], **inputs}


def _evaluate_report(stage: str, m: dict[str, Any], out: Path, values: dict[str, Any]) -> None:
    from twhin_bert.common.metrics import PRIMARY

    print_metrics(stage, m.get(PRIMARY, m), out)


def _register_inputs(cfg: Any, pipeline_config: Path | None, **inputs: Any) -> dict[str, Any]:
    from twhin_bert.common.config import read_mapping

    return {"pipeline_config": read_mapping(pipeline_config) if pipeline_config else {}, **inputs}


INGESTED = StageInput("ingested", Path, "The ingest stage's output folder.")
STAGE_COMMANDS = [
    stage_command(
        "ingest",
        "twhin_bert.ingest.config:IngestConfig",
        "twhin_bert.ingest.ingest:run_ingest",
        "Validate, normalise and deduplicate tweets and engagements; quarantine bad rows.",
        [
            StageInput("tweets", list[str], "Tweet files, folders, globs or gs:// URIs (repeat)."),
            StageInput("engagements", list[str] | None, "Engagement inputs (repeat).", None),
        ],
        to_stage=lambda cfg, tweets, engagements: {
            "tweets": tweets,
            "engagements": engagements or [],
        },
        report=_ingest_report,
    ),
    stage_command(
        "build_graph",
        "twhin_bert.build_graph.config:BuildGraphConfig",
        "twhin_bert.build_graph.graph:run_build_graph",
        "Build the TwHIN in PyTorch-BigGraph's input format, with a train/valid/test edge split.",
        [
            INGESTED,
            StageInput(
                "window_end",
                str | None,
                "End of the rolling window_days window (ISO 8601; default now).",
                None,
            ),
        ],
    ),
    stage_command(
        "embed_graph",
        "twhin_bert.embed_graph.config:EmbedGraphConfig",
        "twhin_bert.embed_graph.pbg:run_embed_graph",
        "Train user/tweet embeddings with PyTorch-BigGraph; evaluate link prediction; export.",
        [StageInput("graph", Path, "The build_graph stage's output folder.")],
    ),
    stage_command(
        "mine_pairs",
        "twhin_bert.mine_pairs.config:MinePairsConfig",
        "twhin_bert.mine_pairs.mine:run_mine_pairs",
        "Mine socially similar tweet pairs with FAISS, plus hashtag and translation pairs.",
        [
            INGESTED,
            StageInput("graph_embeddings", Path, "The embed_graph stage's output folder."),
            StageInput("parallel", str | None, "Parallel-tweets JSONL (translation pairs).", None),
            StageInput(
                "truth", str | None, "Planted tweet topics (demo data) to score pairs.", None
            ),
        ],
    ),
    stage_command(
        "train_tokenizer",
        "twhin_bert.train_tokenizer.config:TrainTokenizerConfig",
        "twhin_bert.train_tokenizer.tokenizer:run_train_tokenizer",
        "Train a SentencePiece-style Unigram tokenizer (or copy a given one).",
        [INGESTED],
    ),
    stage_command(
        "pretrain",
        "twhin_bert.pretrain.config:PretrainConfig",
        "twhin_bert.pretrain.train:run_pretrain",
        "Pre-train the encoder with DeepSpeed (resumes from its latest checkpoint after a kill).",
        [
            StageInput("objective", str, "mlm (stage 1) or mlm_social (stage 2)."),
            INGESTED,
            StageInput("tokenizer", Path, "Tokenizer folder (train_tokenizer output)."),
            StageInput("pairs", Path | None, "mine_pairs output folder (mlm_social).", None),
            StageInput("init_from", Path | None, "Model folder to start from.", None),
        ],
        report=_pretrain_report,
    ),
    stage_command(
        "embed",
        "twhin_bert.embed.config:EmbedConfig",
        "twhin_bert.embed.embed:run_embed",
        "Batch-embed tweets into CLS, mean and Combined vectors.",
        [
            StageInput("model", Path, "A Hugging Face model folder (pretrain output)."),
            StageInput(
                "ingested", Path, "The ingest stage's output folder (or its tweets Parquet file)."
            ),
        ],
    ),
    stage_command(
        "evaluate",
        "twhin_bert.evaluate.config:EvaluateConfig",
        "twhin_bert.evaluate.evaluate:run_evaluate",
        "Evaluate: engagement prediction (HITS@10), hashtag prediction, benchmarks, floors, "
        "report.",
        [
            StageInput("model", Path, "The candidate model folder."),
            INGESTED,
            StageInput("graph_embeddings", Path, "The embed_graph stage's output folder."),
            StageInput(
                "baseline_model",
                Path | None,
                "A second model to evaluate beside it (e.g. the MLM-only twin).",
                None,
            ),
            StageInput(
                "baseline_name",
                str | None,
                "Name of the second model in the report (default: evaluate.baseline).",
                None,
            ),
            StageInput(
                "base_model",
                str | None,
                "The released encoder the candidate continued (folder, gs:// or pkg:), "
                "scored untouched as a third model (evaluate.base).",
                None,
            ),
            StageInput(
                "benchmark",
                list[str] | None,
                "Benchmark folder, TweetEval/UMSAB format (repeat).",
                None,
            ),
            StageInput(
                "truth",
                str | None,
                "Planted tweet topics (demo data): adds the engagement references.",
                None,
            ),
        ],
        to_stage=_evaluate_inputs,
        report=_evaluate_report,
    ),
    stage_command(
        "register_model",
        "twhin_bert.register_model.config:RegisterModelConfig",
        "twhin_bert.register_model.register:run_register_model",
        "Register the model in MLflow as `challenger` and run the promotion gate.",
        [
            StageInput("model", Path, "The model folder to register."),
            StageInput("evaluation", Path, "The evaluate stage's output folder."),
            StageInput("data_window", str, "Label of the data window trained on.", ""),
            StageInput(
                "pipeline_config", Path | None, "The resolved pipeline config to log.", None
            ),
        ],
        to_stage=_register_inputs,
    ),
]
for _command in STAGE_COMMANDS:
    app.command(_command.__name__.removesuffix("_cmd"))(_command)


# ----------------------------------------------------------------------------- pipelines
PipelineConfigOpt = Annotated[
    str, typer.Option("--config", "-c", help="Pipeline config: 'tiny', 'prod' or a YAML path.")
]
WhichOpt = Annotated[str, typer.Option("--pipeline", "-p", help="pretrain or retrain.")]


@app.command("config")
@friendly_errors
def config_cmd(config: PipelineConfigOpt = "tiny") -> None:
    """Print the resolved pipeline config (defaults filled in) as YAML."""
    import yaml
    from twhin_bert_pipelines.config import load_pipeline_config

    cfg = load_pipeline_config(config)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@app.command("compile")
@friendly_errors
def compile_cmd(
    config: PipelineConfigOpt = "tiny",
    pipeline: WhichOpt = "pretrain",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output YAML file.")] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse a config that is not ready for a cluster (placeholders, no gs:// "
            "pipeline root, no MLflow server, no timeouts); without it they are warnings. "
            "submit and schedule always refuse."
        ),
    ] = False,
) -> None:
    """Compile a pipeline to KFP IR YAML (upload it in the KFP UI or with `submit`)."""
    from twhin_bert_pipelines.config import load_pipeline_config
    from twhin_bert_pipelines.submit import compile_pipeline

    cfg = load_pipeline_config(config)
    path = compile_pipeline(  # type: ignore[arg-type]  # typer passes a checked str
        cfg, out or Path(f"{cfg.name}-{pipeline}.yaml"), pipeline, strict=strict
    )
    out_console.print(f"[green]compiled[/] {pipeline} pipeline -> {path}")


def _params(param: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in param or []:
        key, sep, value = p.partition("=")
        if not sep:
            raise ValueError(f"--param {p!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# Every KFP command (submit, runs, schedule) declares these four options in its own signature:
# typer reads a command's options from its parameters, and a shared group callback would move
# them before the sub-command (`runs --host H status ID`), unlike every other option.
HostOpt = Annotated[
    str,
    typer.Option(
        "--host",
        envvar="KFP_HOST",
        help="KFP API endpoint: https://HOST/pipeline behind IAP, http://localhost:8080 through "
        "a port-forward, http://ml-pipeline.kubeflow.svc.cluster.local:8888 in-cluster.",
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        envvar="KFP_NAMESPACE",
        help="Kubeflow profile namespace (multi-user mode): pipelines, experiments, runs and "
        "schedules are created and listed there.",
    ),
]
AuthOpt = Annotated[
    str | None,
    typer.Option(
        "--auth",
        envvar="KFP_AUTH",
        help="token ($KFP_TOKEN or the file $KFP_TOKEN_FILE), iap (Google OIDC ID token via "
        "google-auth), sa-token (the pod's projected service-account token) or none "
        "(port-forward). Default: token when KFP_TOKEN/KFP_TOKEN_FILE is set, else none.",
    ),
]
IapAudienceOpt = Annotated[
    str | None,
    typer.Option(
        "--iap-audience",
        envvar="KFP_IAP_AUDIENCE",
        help="--auth iap: the OAuth client ID of the IAP in front of Kubeflow.",
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="Pipeline parameter KEY=VALUE (JSON values; repeat)."),
]
ServiceAccountOpt = Annotated[
    str | None,
    typer.Option(
        help="Kubernetes service account the run's pods use (default: the config's "
        "cluster.service_account)."
    ),
]


def _conn(host: str, namespace: str | None, auth: str | None, iap_audience: str | None) -> Any:
    from twhin_bert_pipelines.submit import Connection

    return Connection(host=host, namespace=namespace, auth=auth, iap_audience=iap_audience)


def kfp_errors(fn: F) -> F:
    """Turns a failed Kubeflow Pipelines request into one red line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from twhin_bert_pipelines.submit import KfpError

        try:
            return fn(*args, **kwargs)
        except KfpError as e:
            if os.environ.get("TWHIN_BERT_DEBUG") == "1":
                raise
            failure = e
        console.print(
            f"[bold red]error:[/] {escape(redact.redact_text(str(failure)))}",
            highlight=False,
            soft_wrap=True,
        )
        # Raised outside the except block: friendly_errors must not read the request
        # failure chained to it as an unreachable MLflow server.
        raise typer.Exit(int(failure.exit_code))

    return wrapper  # type: ignore[return-value]


@app.command("submit")
@friendly_errors
@kfp_errors
def submit_cmd(
    host: HostOpt,
    config: PipelineConfigOpt = "prod",
    pipeline: WhichOpt = "pretrain",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "twhin-bert",
    run_name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    service_account: ServiceAccountOpt = None,
    param: ParamOpt = None,
) -> None:
    """Compile, upload (a new pipeline version only when the spec changed) and start a run."""
    from twhin_bert_pipelines.config import load_pipeline_config
    from twhin_bert_pipelines.submit import submit

    cfg = load_pipeline_config(config)
    res = submit(
        cfg,
        _conn(host, namespace, auth, iap_audience),
        which=pipeline,  # type: ignore[arg-type]
        experiment=experiment,
        run_name=run_name,
        params=_params(param),
        service_account=service_account,
    )
    out_console.print_json(json.dumps(res))


# ----------------------------------------------------------------------------- runs
runs_app = typer.Typer(
    help="Runs on Kubeflow Pipelines: list, status, wait, cancel, retry.", no_args_is_help=True
)
schedule_app = typer.Typer(
    help="Recurring retraining on Kubeflow Pipelines: create (idempotent by name), list, "
    "pause, resume, delete.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")
app.add_typer(schedule_app, name="schedule")
RunIdArg = Annotated[str, typer.Argument(help="The KFP run id.")]


def _print_runs(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for col in ("run id", "name", "state", "created", "finished"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["run_id"], r["name"], r["state"], _day(r["created_at"]), _day(r["finished_at"])
        )
    out_console.print(table)


def _print_run(r: dict[str, Any]) -> None:
    _print_runs([r], f"run {r['name']}")
    if r["error"]:
        out_console.print(f"[red]error:[/] {escape(r['error'])}")
    if r["tasks"]:
        table = Table(title="tasks")
        table.add_column("task")
        table.add_column("state")
        for name, state in r["tasks"].items():
            table.add_row(name, state)
        out_console.print(table)


@runs_app.command("list")
@friendly_errors
@kfp_errors
def runs_list(
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment's runs.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List the newest runs: id, name, state, created, finished."""
    from twhin_bert_pipelines.submit import list_runs

    rows = list_runs(_conn(host, namespace, auth, iap_audience), experiment=experiment, limit=limit)
    if as_json:
        out_console.print_json(json.dumps(rows))
    else:
        _print_runs(rows, f"runs in {namespace or 'the default namespace'}")


@runs_app.command("status")
@friendly_errors
@kfp_errors
def runs_status(
    run_id: RunIdArg,
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: state, times, error and the state of each task."""
    from twhin_bert_pipelines.submit import run_status

    r = run_status(_conn(host, namespace, auth, iap_audience), run_id)
    if as_json:
        out_console.print_json(json.dumps(r))
    else:
        _print_run(r)


@runs_app.command("wait")
@friendly_errors
@kfp_errors
def runs_wait(
    run_id: RunIdArg,
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 7 * 86400.0,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 30.0,
) -> None:
    """Wait until a run ends. Exit 0 when it succeeded; 5 when it failed, was cancelled or the
    timeout passed first."""
    from twhin_bert_pipelines.submit import wait_run

    def changed(r: dict[str, Any]) -> None:
        console.print(f"run {r['run_id']}: {r['state']}", highlight=False)

    r = wait_run(
        _conn(host, namespace, auth, iap_audience),
        run_id,
        timeout_s=timeout,
        interval_s=interval,
        on_change=changed,
    )
    _print_run(r)


@runs_app.command("cancel")
@friendly_errors
@kfp_errors
def runs_cancel(
    run_id: RunIdArg,
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
) -> None:
    """Cancel (terminate) a run."""
    from twhin_bert_pipelines.submit import cancel_run

    r = cancel_run(_conn(host, namespace, auth, iap_audience), run_id)
    out_console.print(f"cancelling run {r['run_id']} ({r['name']}): {r['state']}")


@runs_app.command("retry")
@friendly_errors
@kfp_errors
def runs_retry(
    run_id: RunIdArg,
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
) -> None:
    """Retry a failed run in place: failed tasks run again, finished ones are kept (and
    pretraining resumes from its last checkpoint)."""
    from twhin_bert_pipelines.submit import retry_run

    r = retry_run(_conn(host, namespace, auth, iap_audience), run_id)
    out_console.print(f"retrying run {r['run_id']} ({r['name']}): {r['state']}")


# ----------------------------------------------------------------------------- schedules
ScheduleArg = Annotated[str, typer.Argument(help="The schedule's name (or its id).")]


@schedule_app.command("create")
@friendly_errors
@kfp_errors
def schedule_create(
    host: HostOpt,
    cron: Annotated[str, typer.Option(help="Cron: 5 fields, or KFP's 6 (seconds first).")],
    config: PipelineConfigOpt = "prod",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "twhin-bert",
    job_name: Annotated[
        str | None,
        typer.Option(help="Schedule name; creating it again updates it (no duplicate)."),
    ] = None,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    service_account: ServiceAccountOpt = None,
    param: ParamOpt = None,
    window_days: Annotated[
        float,
        typer.Option(
            help="Each run trains on the engagements of this many days before its scheduled "
            "time (sets build_graph.window_days)."
        ),
    ] = 28.0,
) -> None:
    """Schedule recurring retraining (the retrain pipeline); the same name again updates it."""
    from twhin_bert_pipelines.config import load_pipeline_config
    from twhin_bert_pipelines.submit import schedule

    cfg = load_pipeline_config(config)
    res = schedule(
        cfg,
        _conn(host, namespace, auth, iap_audience),
        cron,
        experiment=experiment,
        job_name=job_name,
        params=_params(param),
        service_account=service_account,
        window_days=window_days,
    )
    out_console.print_json(json.dumps(res))


@schedule_app.command("list")
@friendly_errors
@kfp_errors
def schedule_list(
    host: HostOpt,
    namespace: NamespaceOpt = None,
    auth: AuthOpt = None,
    iap_audience: IapAudienceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the schedules: id, name, status, cron, pipeline version, created."""
    from twhin_bert_pipelines.submit import list_schedules

    rows = list_schedules(_conn(host, namespace, auth, iap_audience))
    if as_json:
        out_console.print_json(json.dumps(rows))
        return
    table = Table(title=f"schedules in {namespace or 'the default namespace'}")
    for col in ("id", "name", "status", "cron", "version", "created"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["recurring_run_id"],
            r["name"],
            r["status"],
            r["cron"] or "-",
            r["version_id"] or "-",
            _day(r["created_at"]),
        )
    out_console.print(table)


def _schedule_action(action: str) -> Callable[..., None]:
    def command(
        schedule: ScheduleArg,
        host: HostOpt,
        namespace: NamespaceOpt = None,
        auth: AuthOpt = None,
        iap_audience: IapAudienceOpt = None,
    ) -> None:
        from twhin_bert_pipelines.submit import set_schedule

        conn = _conn(host, namespace, auth, iap_audience)
        for r in set_schedule(conn, schedule, action):  # type: ignore[arg-type]
            out_console.print(f"{action}d schedule {r['name']} ({r['recurring_run_id']})")

    command.__doc__ = {
        "pause": "Pause a schedule (no new runs until resumed).",
        "resume": "Resume a paused schedule.",
        "delete": "Delete a schedule (its past runs stay).",
    }[action]
    return friendly_errors(kfp_errors(command))


for _action in ("pause", "resume", "delete"):
    schedule_app.command(_action)(_schedule_action(_action))


@app.command("run")
@friendly_errors
def run_cmd(
    config: PipelineConfigOpt = "tiny",
    pipeline: WhichOpt = "pretrain",
    workdir: Annotated[
        Path, typer.Option(help="Work dir: artifacts, demo data, MLflow store.")
    ] = Path("twhin-bert-runs"),
    tweets: Annotated[
        list[str] | None, typer.Option("--tweets", help="Tweet inputs (default: demo data).")
    ] = None,
    engagements: Annotated[
        list[str] | None, typer.Option("--engagements", help="Engagement inputs.")
    ] = None,
    benchmark: Annotated[
        list[str] | None, typer.Option("--benchmark", help="Benchmark folders (repeat).")
    ] = None,
    demo_users: Annotated[int, typer.Option(help="Demo data: users.")] = 2000,
    demo_tweets: Annotated[int, typer.Option(help="Demo data: tweets.")] = 10000,
    ablation: Annotated[
        bool | None, typer.Option("--ablation/--no-ablation", help="Train the MLM-only twin.")
    ] = None,
) -> None:
    """Run a whole pipeline locally (KFP local runner) — on generated demo data by default."""
    from twhin_bert_pipelines.config import load_pipeline_config
    from twhin_bert_pipelines.local import run_local
    from twhin_bert_pipelines.report import print_run_summary

    cfg = load_pipeline_config(config)
    workdir = workdir.resolve()
    if ablation is not None:
        cfg.ablation = ablation
    if tweets:
        cfg.inputs.tweets = list(tweets)
        cfg.inputs.engagements = list(engagements or [])
    elif not cfg.inputs.tweets:
        from twhin_bert.demo_data.folder import DemoFolder
        from twhin_bert.demo_data.generate import generate_demo

        demo = workdir / f"demo-data-u{demo_users}-t{demo_tweets}-s{cfg.seed}"
        if not DemoFolder(demo).complete():
            console.print(f"generating demo data in {demo} ...")
            generate_demo(demo, users=demo_users, tweets=demo_tweets, seed=cfg.seed)
        files = DemoFolder(demo)
        cfg.inputs.tweets = [str(files.tweets)]
        cfg.inputs.engagements = [str(files.engagements)]
        cfg.inputs.parallel_tweets = str(files.parallel)
        cfg.inputs.truth = str(files.tweet_topics)
    if benchmark:
        cfg.inputs.benchmarks = list(benchmark)
    # --verbose keeps KFP's executor boilerplate (the executor-input JSON of every task).
    quiet = not logging.getLogger().isEnabledFor(logging.DEBUG)
    summary = run_local(cfg, workdir, pipeline, quiet=quiet)  # type: ignore[arg-type]
    print_run_summary(summary, out_console)


@app.command("ui")
def ui_cmd(
    workdir: Annotated[Path, typer.Option(help="Work dir whose MLflow store to open.")] = Path(
        "twhin-bert-runs"
    ),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Open the MLflow UI for the local store on 127.0.0.1."""
    import subprocess

    from twhin_bert.common import tracking

    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri(workdir.resolve())
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    shown = redact.redact_uri(uri)
    console.print(f"MLflow UI on http://127.0.0.1:{port}  (store {shown}; Ctrl-C to stop)")
    # The store URI goes by environment, not argv: `ps` shows every user the arguments.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    raise typer.Exit(subprocess.call(cmd, env=env))


# ----------------------------------------------------------------------------- registry
ModelNameOpt = Annotated[str, typer.Option("--name", help="Registered model name.")]
#: The registered model's default name: register_model's ``model_name`` default (a test keeps
#: them equal; importing the config here would slow every command's start).
MODEL_NAME = "twhin-bert"
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (required, recorded).")]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who acts (default: the authenticated MLFLOW_TRACKING_USERNAME, else "
        "$TWHIN_BERT_ACTOR or $USER); must match the authenticated user when there is one.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The full record as JSON (for scripts).")]
VersionArg = Annotated[
    str, typer.Argument(help="Version number, or an alias (champion, challenger, ...).")
]


def _actor(actor: str | None) -> str:
    from twhin_bert.register_model.registry import resolve_actor

    return resolve_actor(actor)


def _registry_setup() -> Any:
    from twhin_bert.common import tracking
    from twhin_bert.register_model import registry

    tracking.configure()
    return registry


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def _day(t: str | None) -> str:
    return (t or "")[:16].replace("T", " ")


def _print_decision(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out_console.print_json(json.dumps(res, default=str))
        return
    move = f"v{res['from_version'] or '-'} -> v{res['to_version'] or '-'}" if res["alias"] else ""
    out_console.print(
        f"#{res['seq']} {res['action']} v{res['version']} {res['alias'] or ''} {move} "
        f"by {res['actor']}: {(res['outcome'] or {}).get('status', 'pending')}"
    )


@registry_app.command("list")
@friendly_errors
def registry_list(name: ModelNameOpt = MODEL_NAME, as_json: JsonOpt = False) -> None:
    """List the versions: aliases, gate verdict, key metrics beside the champion's, data window,
    who approved or rejected and when."""
    registry = _registry_setup()
    rows = registry.list_versions(name)
    if as_json:
        out_console.print_json(json.dumps(rows, default=str))
        return
    champ = next((r for r in rows if "champion" in r["aliases"]), None)
    # the metrics that decide: the gate's of the newest version (else the first two recorded)
    keys = next((r["gate_metrics"] for r in reversed(rows) if r["gate_metrics"]), None)
    keys = keys or sorted({k for r in rows for k in r["metrics"]})[:2]
    table = Table(title=f"{name}" + (f" (champion v{champ['version']})" if champ else ""))
    for col in ("v", "aliases", "gate", *keys, "window", "decided"):
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = []
        for k in keys:
            mine = r["metrics"].get(k)
            cell = _num(mine)
            if champ is not None and r is not champ and mine is not None:
                theirs = champ["metrics"].get(k)
                cell += "" if theirs is None else f" ({mine - theirs:+.3f})"
            cells.append(cell)
        if r["rejected_by"]:
            decided = f"rejected {r['rejected_by']} {_day(r['rejected_at'])}"
        elif r["approved_by"]:
            decided = f"approved {r['approved_by']} {_day(r['approved_at'])}"
        else:
            decided = ""
        short = {"champion": "champ", "challenger": "chall", "previous-champion": "prev"}
        table.add_row(
            str(r["version"]),
            ",".join(short.get(a, a) for a in r["aliases"]),
            _gate_cell(r, champ),
            *cells,
            (r["data_window"] or "").replace("/", ".."),
            decided,
        )
    out_console.print(table)
    if keys:
        out_console.print(
            "metrics rounded; (+/-) = difference from the champion; gate = the verdict at "
            "registration, against the champion named (approve re-checks against today's)"
        )


def _gate_cell(row: dict[str, Any], champ: dict[str, Any] | None) -> str:
    """``passed vs v3``, ``passed (first)``: the registration verdict and its reference."""
    against = row.get("gate_against")
    if row["gate"] == "not gated":
        return row["gate"]
    ref = "first" if against in (None, "none") else f"vs v{against}"
    stale = (
        champ is not None
        and str(champ["version"]) != str(against)
        and str(champ["version"]) != str(row["version"])
    )
    return f"{row['gate']} ({ref}{', stale' if stale else ''})"


@registry_app.command("show")
@friendly_errors
def registry_show(
    version: VersionArg, name: ModelNameOpt = MODEL_NAME, as_json: JsonOpt = False
) -> None:
    """Show one version: gate verdict and reasons, metrics beside the champion's, decisions."""
    registry = _registry_setup()
    rec = registry.show(name, version)
    if as_json:
        out_console.print_json(json.dumps(rec, default=str))
        return
    out_console.print(f"[bold]{name} v{rec['version']}[/]  {', '.join(rec['aliases']) or '-'}")
    out_console.print(
        f"created {_day(rec['created'])}  window {rec['data_window'] or '-'}  "
        f"git {(rec['git_sha'] or '-')[:10]}  run {rec['pipeline_run_id'] or '-'}"
    )
    gate = rec["gate_verdict"]
    champ = rec["champion"]
    out_console.print(f"gate at registration: {_gate_cell(rec, champ)}")
    if champ and str(champ["version"]) not in (str(rec.get("gate_against")), str(rec["version"])):
        out_console.print(
            f"  the champion is now v{champ['version']}: `registry approve` re-checks the gate "
            "against it"
        )
    for line in (gate or {}).get("reasons", []):
        out_console.print(f"  {line}")
    label = f"champion v{champ['version']}" if champ else "champion"
    out_console.print(f"{'metric':<28} {'this':>8} {label:>14}")
    for k, v in sorted(rec["metrics"].items()):
        theirs = (champ or {}).get("metrics", {}).get(k)
        out_console.print(f"{k[:28]:<28} {_num(v):>8} {_num(theirs):>14}")
    for h in rec["history"]:
        out_console.print(
            f"#{h['seq']} {_day(h['time'])} {h['action']} by {h['actor']}: "
            f"{(h['outcome'] or {}).get('status', 'pending')}  {h['reason'][:60]}"
        )


@registry_app.command("history")
@friendly_errors
def registry_history(name: ModelNameOpt = MODEL_NAME, as_json: JsonOpt = False) -> None:
    """Every recorded decision (register, gate, approve, reject, rollback): who, when, why."""
    registry = _registry_setup()
    records = registry.history(name)
    if as_json:
        out_console.print_json(json.dumps(records, default=str))
        return
    table = Table(title=f"{name}: decisions")
    for col in ("#", "when", "action", "v", "move", "actor", "outcome", "reason"):
        table.add_column(col, overflow="fold")
    for h in records:
        move = f"{h['from_version'] or '-'}->{h['to_version'] or '-'}" if h["alias"] else ""
        table.add_row(
            str(h["seq"]), _day(h["time"]), h["action"], str(h["version"] or ""), move,
            h["actor"], (h["outcome"] or {}).get("status", "pending"), h["reason"][:40],
        )  # fmt: skip
    out_console.print(table)


def _decide(
    action: str, name: str, *args: str, actor: str | None, as_json: bool, **kw: Any
) -> None:
    """Records one registry decision (``approve``, ``reject``, ``rollback``) by ``actor``
    and prints it."""
    registry = _registry_setup()
    _print_decision(getattr(registry, action)(name, *args, actor=_actor(actor), **kw), as_json)


@registry_app.command("approve")
@friendly_errors
def registry_approve(
    version: VersionArg,
    reason: ReasonOpt = "",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if its gate fails or it was rejected.")
    ] = False,
    name: ModelNameOpt = MODEL_NAME,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version: it becomes `champion` (gate re-checked against the champion now)."""
    _decide("approve", name, version, actor=actor, as_json=as_json, reason=reason, force=force)


@registry_app.command("reject")
@friendly_errors
def registry_reject(
    version: VersionArg,
    reason: ReasonOpt,
    name: ModelNameOpt = MODEL_NAME,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a version (recorded; it loses the `challenger` alias)."""
    _decide("reject", name, version, actor=actor, as_json=as_json, reason=reason)


@registry_app.command("rollback")
@friendly_errors
def registry_rollback(
    reason: ReasonOpt,
    force: Annotated[
        bool, typer.Option("--force", help="Restore the previous champion even if rejected.")
    ] = False,
    name: ModelNameOpt = MODEL_NAME,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the previous champion (a rejected one only with --force)."""
    _decide("rollback", name, actor=actor, as_json=as_json, reason=reason, force=force)


# ----------------------------------------------------------------------------- benchmarks
BENCHES = {
    "ingest": ("twhin_bert.bench.ingest", "Ingest rows/s and peak RSS at 100K and 1M engagements."),
    "embed-graph": (
        "twhin_bert.bench.embed_graph",
        "PBG edges/s and our overhead outside PBG training.",
    ),
    "mine": ("twhin_bert.bench.mine", "FAISS IVF/PQ recall@10 and speed against exact search."),
    "pretrain": ("twhin_bert.bench.pretrain", "Our trainer's tokens/s against HF Trainer."),
    "embed": ("twhin_bert.bench.embed", "Batch embedding tweets/s against transformers.pipeline."),
    "resume": ("twhin_bert.bench.resume", "Pretrain's time to first batch resumed early vs late."),
    "scale": (
        "twhin_bert.bench.scale",
        "Every stage at 1x and 100x the demo TwHIN: wall time and peak RSS against memory models.",
    ),
}
#: Left out of a plain `twhin-bert results run` (the slowest; its time is in docs/RESULTS.md):
#: `--only scale`.
SLOW_BENCHES = ("scale",)


def _bench_command(module: str, doc: str) -> Callable[..., None]:
    def command(
        quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a smoke run.")] = False,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Override an option KEY=VALUE (repeat).")
        ] = None,
    ) -> None:
        import importlib

        mod = importlib.import_module(module)
        summary = mod.main(quick=quick, **_params(set_))
        if not summary.get("met", False):
            raise typer.Exit(1)

    command.__doc__ = doc + " Exits 1 when the goal is not met."
    return command


for _name, (_module, _doc) in BENCHES.items():
    bench_app.command(_name)(friendly_errors(_bench_command(_module, _doc)))


# ----------------------------------------------------------------------------- results
results_app = typer.Typer(
    help="Measured results: run the benchmarks, record each, render docs/RESULTS.md.",
    no_args_is_help=True,
)
app.add_typer(results_app, name="results")
DocsOpt = Annotated[
    Path, typer.Option("--docs", help="Folder of RESULTS.md and of its records (results/*.json).")
]


@results_app.command("run")
@friendly_errors
def results_run(
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Comma-separated benchmarks (default: all but scale, the slowest).",
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Passed to each benchmark as --set KEY=VALUE (repeat)."),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Each benchmark's --quick.")] = False,
    pipeline_run: Annotated[
        Path | None,
        typer.Option(
            "--pipeline-run",
            help="Record this finished `twhin-bert run` (the folder of its summary.json) "
            "instead of running the benchmarks (with --only, those as well).",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="Record name of the --pipeline-run (e.g. its config).")
    ] = "pipeline",
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds each benchmark may take.")
    ] = None,
    docs: DocsOpt = Path("docs"),
) -> None:
    """Run each benchmark (`twhin-bert bench NAME`) as a subprocess, store its dated record
    (command, commit, machine, load, table, goal, met) and render docs/RESULTS.md; the other
    benchmarks' records are kept. Exits 1 when a benchmark failed or timed out (a goal not met
    is recorded, not a failure)."""
    from twhin_bert.bench import results

    names: list[str] = []
    if only is None and pipeline_run is None:
        names = [n for n in BENCHES if n not in SLOW_BENCHES]
    if only is not None:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHES]
        if unknown or not names:
            raise ValueError(f"--only {only!r}: expected benchmarks among {', '.join(BENCHES)}")
    if pipeline_run is not None:
        path = results.write_record(docs, results.pipeline_record(pipeline_run, name))
        out_console.print(f"recorded {pipeline_run} -> {path}", soft_wrap=True)
    records = results.run(
        names,
        docs,
        quick=quick,
        order=list(BENCHES),
        timeout=timeout,
        argv_for=lambda n, q: results.bench_argv(n, q, sets or ()),
    )
    for r in records:
        out_console.print(f"{r['name']}: {r['status']} ({r['wall_s']} s)", highlight=False)
    out_console.print(f"[green]wrote[/] {docs / results.RESULTS_MD}")
    if any(r["status"] in ("failed", "timed out") for r in records):
        raise typer.Exit(1)


@results_app.command("render")
@friendly_errors
def results_render(docs: DocsOpt = Path("docs")) -> None:
    """Write docs/RESULTS.md from the stored records (docs/results/*.json)."""
    from twhin_bert.bench import results

    out_console.print(f"[green]wrote[/] {results.render(docs, order=list(BENCHES))}")


if __name__ == "__main__":
    app()
