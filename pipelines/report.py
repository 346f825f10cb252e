"""What `twhin-bert run` prints at the end: key metrics, where the outputs are, the MLflow UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from twhin_bert.common.artifacts import ArtifactError, Evaluation, Registration
from twhin_bert.common.metrics import flat_numeric


def _read(artifact: Evaluation | Registration | None) -> dict[str, Any]:
    """The artifact's JSON (evaluate's metrics, the registration), {} when the run has none."""
    if artifact is None:
        return {}
    try:
        return artifact.metrics() if isinstance(artifact, Evaluation) else artifact.read()
    except ArtifactError:
        return {}


def print_run_summary(summary: dict[str, Any], console: Console) -> None:
    """Prints the run's key metrics (evaluate, ablation, registration) and where things are."""
    tasks = summary["tasks"]
    ev_dir = tasks.get("evaluate", {}).get("evaluation")
    ev = _read(Evaluation(ev_dir) if ev_dir else None)
    reg_dir = tasks.get("register-model", tasks.get("register_model", {})).get("registration")
    reg = _read(Registration(reg_dir) if reg_dir else None)

    if ev.get("models"):
        table = Table(title="evaluation (test split)")
        names = list(ev["models"])
        table.add_column("metric")
        for n in names:
            table.add_column(n, justify="right")
        flats = {n: flat_numeric(ev["models"][n]) for n in names}
        keys = [k for k in flats[names[0]] if not k.endswith(("_std", ".n", "seconds"))]
        for k in keys[:40]:
            table.add_row(k, *(f"{flats[n].get(k, float('nan')):.4f}" for n in names))
        console.print(table)
    if ev.get("ablation"):
        console.print(
            "[bold]ablation (MLM+social vs MLM-only):[/] "
            + ", ".join(
                f"{k} = {v:+.4f}" for k, v in ev["ablation"].items() if isinstance(v, int | float)
            )
        )
    if reg:
        console.print(
            f"[bold]registered:[/] {reg.get('name')} version {reg.get('version')} "
            f"aliases {reg.get('aliases')} gate {reg.get('verdict', reg.get('gate'))}"
        )
    console.print(f"[green]outputs:[/] {summary['run_dir']}  ({summary['seconds']} s)")
    for task, outs in tasks.items():
        for name, path in outs.items():
            console.print(f"  {task}/{name}: {path}")
    uri = summary["tracking_uri"]
    console.print(f"[bold]MLflow:[/] {uri}")
    if uri.startswith("sqlite:"):
        workdir = Path(uri.removeprefix("sqlite:///")).parent
        console.print(
            f"  open the UI with: twhin-bert ui --workdir {workdir}   (http://127.0.0.1:5000)"
        )
