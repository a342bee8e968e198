"""``loopline`` command line: the demo, training, validation, evaluation and the model registry.

Flows are imported inside the commands that run them: the CLI is an entry point, and keeping
Prefect out of ``import loopline.cli`` keeps ``loopline --help`` fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from loopline.config import Settings, load_settings
from loopline.errors import LooplineError
from loopline.telemetry import disable_telemetry
from loopline.tracking import current_user

app = typer.Typer(help="loopline: keep a fine-tuned text classifier fresh, safely.", no_args_is_help=True)
# Piped output (CI logs, files) gets room for the round table instead of the 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default ./loopline.toml).")
]
TextColOpt = Annotated[
    str | None, typer.Option("--text-col", help="Column holding the text (default: text).")
]
LabelColOpt = Annotated[
    str | None, typer.Option("--label-col", help="Column holding the label (default: label).")
]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Folder of the embedded stores (default .loopline).")
]
F = TypeVar("F", bound=Callable[..., Any])


class Trigger(StrEnum):
    subflow = "subflow"
    deployment = "deployment"
    none = "none"


@app.callback()
def _entry() -> None:
    """Runs before every command: telemetry off, and loopline's own log lines shown in Prefect's logs."""
    import os

    disable_telemetry()
    # Must be set before Prefect configures logging (when a command first imports a flow).
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "loopline")


def friendly_errors(func: F) -> F:
    """Bad input ends with the error's own message (what, where, what to do), not a stack trace."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LooplineError as err:
            err_console.print(f"[bold red]{type(err).__name__}:[/] {err}")
            raise typer.Exit(2) from None
        except FileNotFoundError as err:
            err_console.print(f"[bold red]File not found:[/] {err}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _settings(config: Path | None, home: Path | None, **overrides: Any) -> Settings:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return load_settings(config, home=home, **overrides)


def _overrides(settings: Settings) -> dict[str, Any]:
    """Settings as flow parameters (JSON-safe), so a flow rebuilds exactly what the CLI resolved."""
    return json.loads(settings.model_dump_json())


@app.command()
@friendly_errors
def train(
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV, JSONL, Parquet or saved datasets dir.")],
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per text.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model dir (default: packaged MiniLM).")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Validate, fine-tune, gate, register (and promote) a classifier on a labelled file."""
    from flows.train_flow import train_flow

    training = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
    }
    settings = _settings(
        config, home, training=training, base_model=base_model, text_column=text_col, label_column=label_col
    )
    summary = train_flow(str(data), overrides=_overrides(settings))
    print_train_summary(summary, settings)


@app.command()
@friendly_errors
def validate(
    data: Annotated[Path, typer.Argument(help="Labelled file to check against the training-data contract.")],
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run the training-data contract on a file; failing rows go to the quarantine folder."""
    from loopline.contracts import validate_training_data
    from loopline.data.loading import load_labelled_text

    settings = _settings(config, home, text_column=text_col, label_column=label_col)
    frame = load_labelled_text(data, settings.text_column, settings.label_column)
    result = validate_training_data(
        frame, settings.contract, source=str(data), quarantine_dir=settings.quarantine_dir
    )
    console.print(result.summary())


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Labelled file to evaluate on.")],
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "production",
    version: Annotated[str | None, typer.Option(help="Model version (overrides --alias).")] = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Evaluate a registered model version on a labelled file (metrics, behaviour, latency)."""
    from loopline.data.loading import load_labelled_text
    from loopline.pipeline.assess import evaluate_on_sets, load_mft
    from loopline.pipeline.champion import fetch_model_dir
    from loopline.registry.models import get_alias_version
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home, text_column=text_col, label_column=label_col)
    configure_mlflow(settings)
    if version is None:
        found = get_alias_version(settings.model_name, alias)
        if found is None:
            raise LooplineError(
                f"No model version has alias '{alias}'.",
                where=settings.model_name,
                hint="run `loopline models` to see versions and aliases.",
            )
        version = str(found.version)
    frame = load_labelled_text(data, settings.text_column, settings.label_column).dropna()
    reports = evaluate_on_sets(
        fetch_model_dir(settings, version), {"eval": frame}, settings, load_mft(settings.mft_path)
    )
    metrics = reports["eval"].metrics
    console.print(
        f"{settings.model_name} v{version} on {data} ({len(frame)} rows): "
        f"accuracy {metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f}, ECE {metrics.ece:.4f}, "
        f"{reports['eval'].latency_ms_per_text:.2f} ms/text"
    )


@app.command()
@friendly_errors
def models(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """List registered versions with their aliases (stages), metrics and data version."""
    from loopline.registry.models import list_versions
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home)
    configure_mlflow(settings)
    table = Table(title=f"Registered model {settings.model_name}")
    for column in ("version", "aliases", "test macro-F1", "dataset", "gate", "parent", "created"):
        table.add_column(column)
    for summary in list_versions(settings.model_name):
        tags = summary.tags
        table.add_row(
            str(summary.version),
            ", ".join(summary.aliases) or "-",
            _fmt(summary.metrics.get("test.macro_f1")),
            tags.get("loopline.dataset_version", "-"),
            tags.get("loopline.gate", "-"),
            tags.get("loopline.parent_version") or "-",
            str(summary.created),
        )
    console.print(table)


@app.command()
@friendly_errors
def promote(
    version: Annotated[str, typer.Argument(help="Model version to move the alias to.")],
    alias: Annotated[str, typer.Option(help="Alias (stage) to move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why, for the promotion history.")] = "manual promotion",
    force: Annotated[bool, typer.Option(help="Promote even a version whose gate failed.")] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Move an alias (candidate / staging / production) to a version; recorded in the history."""
    from loopline.registry.models import promote as promote_version
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home)
    configure_mlflow(settings)
    event = promote_version(
        settings.model_name,
        version,
        alias=alias,
        actor=current_user(),
        reason=reason,
        force=force,
        artifact_location=settings.resolved_artifact_location,
    )
    console.print(f"{alias}: v{event.previous_version or '-'} → v{event.version}")


@app.command()
@friendly_errors
def rollback(
    alias: Annotated[str, typer.Option(help="Alias to roll back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why, for the promotion history.")] = "manual rollback",
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Move an alias back to the version it pointed to before its last promotion."""
    from loopline.registry.models import rollback as rollback_alias
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home)
    configure_mlflow(settings)
    event = rollback_alias(
        settings.model_name,
        alias=alias,
        actor=current_user(),
        reason=reason,
        artifact_location=settings.resolved_artifact_location,
    )
    console.print(f"{alias}: v{event.previous_version} → v{event.version} (rollback)")


@app.command()
@friendly_errors
def history(
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Promotion history: who moved which alias, when, from which version to which, and why."""
    from loopline.registry.models import promotion_history
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home)
    configure_mlflow(settings)
    table = Table(title=f"Promotion history of {settings.model_name}")
    for column in ("when", "alias", "from", "to", "who", "why"):
        table.add_column(column)
    for event in promotion_history(settings.model_name, alias=alias):
        table.add_row(
            str(event.at),
            event.alias,
            str(event.previous_version or "-"),
            str(event.version),
            event.actor,
            event.reason,
        )
    console.print(table)


@app.command()
@friendly_errors
def demo(
    home: HomeOpt = None,
    config: ConfigOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs of each training.")] = None,
    fresh: Annotated[bool, typer.Option(help="Delete the home folder first and start over.")] = False,
) -> None:
    """The whole loop on synthetic support data: bootstrap, then three feedback rounds."""
    import shutil

    import pandas as pd
    from flows.demo_flow import demo_flow

    from loopline.data.demo import minimum_functionality_examples, write_demo_files
    from loopline.registry.models import model_exists
    from loopline.tracking import configure_mlflow

    settings = _settings(config, home, training={"epochs": epochs})
    if fresh and settings.home.exists():
        shutil.rmtree(settings.home)
    configure_mlflow(settings)
    if model_exists(settings.model_name):
        raise LooplineError(
            f"{settings.home} already holds registered versions of {settings.model_name}.",
            where=settings.resolved_tracking_uri,
            hint="run `loopline demo --fresh` to start over, or pass another --home.",
        )
    files = write_demo_files(settings.home / "demo", seed=0)
    mft_path = settings.home / "demo" / "minimum_functionality.csv"
    pd.DataFrame(minimum_functionality_examples()).to_csv(mft_path, index=False)
    settings = settings.model_copy(update={"mft_path": settings.mft_path or mft_path})
    console.rule("[bold]loopline demo")
    console.print(f"Synthetic demo data (generated, not real customers) in {files['train'].parent}")
    result = demo_flow({k: str(v) for k, v in files.items()}, _overrides(settings))
    print_train_summary(result["bootstrap"], settings)
    print_rounds(result["rounds"])
    console.print(f"Drift reports (HTML): {settings.home / 'reports'}; quarantine: {settings.quarantine_dir}")
    console.print(
        f"Open the MLflow UI: mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000"
    )


def print_rounds(rounds: list[dict[str, Any]]) -> None:
    """The demo's round-by-round table (contract, drift, decision, gate, version), then the reasons."""
    table = Table(title="Feedback rounds")
    for column in (
        "round",
        "batch",
        "ok",
        "quarantined",
        "novel share",
        "drift",
        "decision",
        "gate",
        "version",
        "worst old-class Δrecall",
    ):
        table.add_column(column)
    for number, item in enumerate(rounds, start=1):
        intake, monitor = item["intake"], item["monitor"]
        novelty = monitor["drift"].get("novelty") or {}
        retrain = monitor.get("retrain_result") or {}
        gate = retrain.get("gate") or {}
        table.add_row(
            str(number),
            intake["batch_status"],
            str(intake["accepted"]),
            str(intake["quarantined"]),
            _fmt(novelty.get("novel_share")),
            "yes" if monitor["drift"].get("drift_detected") else "no",
            "retrain" if monitor["retrain"] else "none",
            ("passed" if gate.get("passed") else "failed") if gate else "-",
            f"v{retrain['version']}" if retrain.get("version") else "-",
            _worst_recall_change(gate),
        )
    console.print(table)
    for item in rounds:
        console.print(f"[bold]Round {item['round']}[/] — {item['monitor']['reason']}")


def _worst_recall_change(gate: dict[str, Any]) -> str:
    """The largest recall drop of a past class, from the gate's forgetting check."""
    for check in gate.get("checks", []):
        if check.get("name", "").endswith(".forgetting"):
            value = check.get("value")
            return "-" if value is None else f"{-float(value):+.3f}"
    return "-"


feedback_app = typer.Typer(
    help="User feedback: import files, look at quarantined rows.", no_args_is_help=True
)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
@friendly_errors
def feedback_import(
    path: Annotated[Path, typer.Argument(help="Feedback file (CSV, JSONL, Parquet) with text and label.")],
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Import a feedback file (idempotent) and run the feedback contract on it."""
    from flows.feedback_flow import feedback_flow

    settings = _settings(config, home, text_column=text_col, label_column=label_col)
    intake = feedback_flow(str(path), overrides=_overrides(settings))
    state = "already imported" if intake["already_imported"] and not intake["rows_added"] else "imported"
    console.print(
        f"Batch {intake['batch_id']} {state}: {intake['batch_status']}, "
        f"{intake['accepted']} accepted, {intake['quarantined']} quarantined."
    )


@feedback_app.command("quarantined")
@friendly_errors
def feedback_quarantined(
    batch: Annotated[str | None, typer.Option(help="Only this batch id.")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """List quarantined feedback rows with their reasons."""
    from loopline.feedback.store import FeedbackStore

    settings = _settings(config, home)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        rows = store.quarantined_feedback(batch)
    table = Table(title=f"Quarantined feedback ({len(rows)} rows)")
    for column in ("id", "batch", "row", "label", "text", "reason"):
        table.add_column(column)
    for _, row in rows.head(200).iterrows():
        table.add_row(
            str(row["id"]),
            str(row["batch_id"]),
            str(row["source_row"]),
            str(row["label"]),
            str(row["text"])[:60],
            str(row["reason"]),
        )
    console.print(table)


@app.command()
@friendly_errors
def monitor(
    trigger: Annotated[
        Trigger, typer.Option(help="How a retrain starts: in this process, via the deployment, or not.")
    ] = Trigger.subflow,
    scheduled: Annotated[bool, typer.Option(help="Act as the scheduled fallback run.")] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Check drift and decay on the feedback since the last check; retrain when the policy says so."""
    from flows.monitor_flow import monitor_flow

    settings = _settings(config, home)
    summary = monitor_flow(trigger=trigger.value, scheduled=scheduled, overrides=_overrides(settings))
    console.print(
        f"Window {summary['window_size']} rows; decision: "
        f"{'retrain' if summary['retrain'] else 'no retrain'} — {summary['reason']}"
    )
    if summary.get("retrain_result"):
        console.print(f"Retrain: {summary['retrain_result']}")


@app.command()
@friendly_errors
def retrain(
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "manual",
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run one continual retraining round now (warm start + replay, gated)."""
    from flows.retrain_flow import retrain_flow

    settings = _settings(config, home)
    summary = retrain_flow(reason=reason, overrides=_overrides(settings))
    console.print(
        f"Retrain {summary['status']}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "gate")
    )


@app.command()
@friendly_errors
def decisions(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Monitoring and retraining decisions, with their reasons."""
    from loopline.feedback.store import FeedbackStore

    settings = _settings(config, home)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        found = store.decisions(limit=limit)
    table = Table(title="Decisions")
    for column in ("when", "kind", "retrain", "version", "reason"):
        table.add_column(column)
    for item in found:
        table.add_row(
            str(item.created_at), item.kind, str(item.retrain), item.model_version or "-", item.reason
        )
    console.print(table)


@app.command()
@friendly_errors
def schedule(
    monitor_cron: Annotated[str, typer.Option(help="Cron of the drift checks.")] = "0 * * * *",
    fallback_cron: Annotated[str, typer.Option(help="Cron of the scheduled fallback retrain.")] = "0 3 * * 1",
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve monitor and retrain as Prefect deployments (needs `prefect server start` and PREFECT_API_URL)."""
    from flows.deployments import serve_deployments

    settings = _settings(config, home)
    serve_deployments(monitor_cron, fallback_cron, str(config) if config else None, _overrides(settings))


def print_train_summary(summary: dict[str, Any], settings: Settings) -> None:
    gate = summary["gate"]
    console.print(
        f"[green]Registered[/] {summary['model_name']} version {summary['version']} "
        f"with aliases {', '.join(summary['aliases'])} (run {summary['run_id']})."
    )
    console.print(
        f"Dataset {summary['dataset_version']}, quarantined rows: {summary['quarantined_rows']}, "
        f"gate: {'passed' if gate['passed'] else 'failed'}."
    )
    console.print(f"Load it anywhere: mlflow.pyfunc.load_model('models:/{summary['model_name']}@production')")
    console.print(
        f"Open the MLflow UI: mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    app()
