"""``loopline`` command line: the demo, training, validation, evaluation and the model registry.

Flows are imported inside the commands that run them: the CLI is an entry point, and keeping
Prefect out of ``import loopline.cli`` keeps ``loopline --help`` fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loopline.config import Settings, load_settings
from loopline.errors import ConfigError, LooplineError
from loopline.logs import configure_cli_logging
from loopline.metric_names import TEST_MACRO_F1
from loopline.processes import current_user
from loopline.telemetry import disable_telemetry, set_orchestration_defaults

if TYPE_CHECKING:
    from loopline.flows.next_run import NextRun
    from loopline.status import LoopStatus

app = typer.Typer(help="loopline: keep a fine-tuned text classifier fresh, safely.", no_args_is_help=True)
# Piped output (CI logs, files) gets room for the round table instead of the 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default ./loopline.toml).")
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        help="sequence (a label per text) or token (BIO tags per word: CoNLL or token JSONL files); "
        "default: the settings' task (sequence).",
    ),
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
NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="Training processes on this machine (torchrun DDP: one per GPU, or a few on CPU); "
        "training.nproc_per_node.",
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="Text encoding of the file (default utf-8; a BOM is recognised)."),
]
LabelMapOpt = Annotated[
    str | None,
    typer.Option(
        "--label-map",
        help="Stored labels → names, e.g. 0=bearish,1=bullish,2=neutral, or a JSON file of that mapping.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (and nothing else there), for scripts.")
]
F = TypeVar("F", bound=Callable[..., Any])


class Trigger(StrEnum):
    subflow = "subflow"
    deployment = "deployment"
    none = "none"


@app.callback()
def _entry(ctx: typer.Context) -> None:
    """Runs before every command: telemetry off, and loopline's own log lines shown in Prefect's logs."""
    import os

    from loopline.progress import enable_progress

    disable_telemetry()
    enable_progress(ctx.invoked_subcommand != "serve")  # bars on a terminal; a service only logs
    set_orchestration_defaults()
    # Must be set before Prefect configures logging (when a command first imports a flow).
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "loopline")


def friendly_errors(func: F) -> F:
    """Bad input ends with the error's own message (what, where, what to do) and exit code 2, not a stack
    trace. User text in messages is printed as it is, never read as Rich markup."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LooplineError as err:
            fail(f"{type(err).__name__}: {err}")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
            fail(f"{type(err).__name__}: {err.strerror or err} — {err.filename or ''}".rstrip(" —"))

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print ``message`` (as plain text) on stderr and exit with code 2."""
    err_console.print(Text(message, style="bold red"))
    raise typer.Exit(2)


def _settings(
    config: Path | None, home: Path | None, *, connect_stores: bool = True, **overrides: Any
) -> Settings:
    """Resolve the settings once, then point every store at them (unless the command touches none)."""
    configure_cli_logging()
    settings = load_settings(config, home=home, **overrides)
    if connect_stores:
        from loopline.stores import connect

        connect(settings)
    return settings


def _file_settings(
    config: Path | None,
    home: Path | None,
    text_col: str | None,
    label_col: str | None,
    encoding: str | None,
    label_map: str | None,
    **overrides: Any,
) -> Settings:
    """Settings of a command that reads a user's file: its columns, encoding and label map."""
    return _settings(
        config,
        home,
        text_column=text_col,
        label_column=label_col,
        encoding=encoding,
        label_map=parse_label_map(label_map),
        **overrides,
    )


def parse_label_map(value: str | None) -> dict[str, str] | None:
    """``0=bearish,1=bullish`` or the path of a JSON object; None when not given."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"Cannot read the label map: {err}", where=str(path)) from None
        if not isinstance(mapping, dict):
            raise ConfigError("The label map file must hold one JSON object", where=str(path))
        return {str(k): str(v) for k, v in mapping.items()}
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise ConfigError(
            f"Cannot read --label-map {value!r}",
            where="--label-map",
            hint="Write STORED=NAME pairs separated by commas, e.g. 0=bearish,1=bullish, or a JSON file.",
        )
    return {k.strip(): v.strip() for k, v in pairs}


def print_json(data: Any) -> None:
    """``--json``: the data alone on stdout (dates as ISO 8601), so a script can parse it whole."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def say(message: str) -> None:
    """Print a line of plain text: file names, labels and texts are never read as Rich markup."""
    console.print(Text(message))


def _cell(value: object) -> Text:
    """A table cell shown as plain text: labels and texts like '[/bold]' are data, not markup."""
    return Text("-" if value is None else str(value))


def _overrides(settings: Settings) -> dict[str, Any]:
    """Settings as flow parameters (JSON-safe), so a flow rebuilds exactly what the CLI resolved."""
    # The API key stays out of flow parameters (they are stored by Prefect); a flow never needs it.
    return json.loads(settings.model_dump_json(exclude={"serve": {"api_key"}, "label_studio": {"token"}}))


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
    nproc: NprocOpt = None,
    encoding: EncodingOpt = None,
    label_map: LabelMapOpt = None,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Validate, fine-tune, gate, register (and promote) a classifier on a labelled file."""
    training = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
        "nproc_per_node": nproc,
    }
    settings = _file_settings(
        config,
        home,
        text_col,
        label_col,
        encoding,
        label_map,
        training=training,
        base_model=base_model,
        task=task,
    )
    _require_file(data, "--data")
    from loopline.flows.train_flow import train_flow  # torch, transformers, Prefect: after the cheap checks

    summary = train_flow(str(data), overrides=_overrides(settings))
    print_train_summary(summary, settings)


@app.command()
@friendly_errors
def validate(
    data: Annotated[Path, typer.Argument(help="Labelled file to check against the training-data contract.")],
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    label_map: LabelMapOpt = None,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run the training-data contract on a file; failing rows go to the quarantine folder."""
    from loopline.tasks import get_task

    # The contract alone: no MLflow, no feedback store.
    settings = _file_settings(
        config, home, text_col, label_col, encoding, label_map, connect_stores=False, task=task
    )
    frame = _load(settings, data)
    result = get_task(settings.task).validate_training(
        frame, settings.contract, str(data), settings.quarantine_dir
    )
    say(result.summary())


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Labelled file to evaluate on.")],
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "production",
    version: Annotated[str | None, typer.Option(help="Model version (overrides --alias).")] = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    label_map: LabelMapOpt = None,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Evaluate a registered model version on a labelled file (metrics, behaviour, latency)."""
    from loopline.errors import DataError
    from loopline.registry.lookups import get_alias_version, get_version

    settings = _file_settings(config, home, text_col, label_col, encoding, label_map, task=task)
    loaded = _load(settings, data)
    if version is None:
        found = get_alias_version(settings.model_name, alias)
        if found is None:
            raise LooplineError(
                f"No model version has alias '{alias}'.",
                where=f"{settings.model_name} in {settings.resolved_tracking_uri}",
                hint="run `loopline models` to see versions and aliases.",
            )
        version = str(found.version)
    version = str(get_version(settings.model_name, version).version)
    frame = loaded.dropna(subset=["text", "label"])
    if frame.empty:
        raise DataError("No row has both a text and a label", where=str(data), hint="Check the columns.")
    from loopline.pipeline.assess import evaluate_on_sets, load_mft  # torch: after the cheap checks
    from loopline.pipeline.champion import fetch_model_dir, require_model_task

    model_dir = fetch_model_dir(settings, version)
    require_model_task(settings, model_dir, version)  # else tag strings are scored as class names
    reports = evaluate_on_sets(model_dir, {"eval": frame}, settings, load_mft(settings.mft_path))
    metrics = reports["eval"].metrics
    skipped = len(loaded) - len(frame)
    rows = f"{len(frame)} rows" + (f"; {skipped} without text or label skipped" if skipped else "")
    say(
        f"{settings.model_name} v{version} on {data} ({rows}): accuracy {metrics.accuracy:.4f}, "
        f"macro-F1 {metrics.macro_f1:.4f}, "
        + (f"{metrics.primary_name} {metrics.primary:.4f}, " if metrics.primary_name != "macro_f1" else "")
        + f"ECE {metrics.ece:.4f}, "
        f"{reports['eval'].latency_ms_per_text:.2f} ms/text"
    )


models_app = typer.Typer(help="Registered versions: list them (no subcommand), show one's model card.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@friendly_errors
def models(
    ctx: typer.Context, config: ConfigOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """List registered versions with their aliases (stages), metrics and data version."""
    if ctx.invoked_subcommand is not None:
        return
    from loopline.registry.lookups import list_versions

    settings = _settings(config, home)
    versions = list_versions(settings.model_name)
    if as_json:
        print_json([summary.to_dict() for summary in versions])
        return
    table = Table(title=Text(f"Registered model {settings.model_name}"))
    for column in (
        "version",
        "aliases",
        "test F1 (macro; entity for NER)",
        "dataset",
        "gate",
        "parent",
        "created",
    ):
        table.add_column(column)
    for summary in versions:
        tags = summary.tags
        table.add_row(
            *map(
                _cell,
                (
                    summary.version,
                    ", ".join(summary.aliases) or "-",
                    _fmt(summary.metrics.get("test.entity_f1", summary.metrics.get(TEST_MACRO_F1))),
                    tags.get("loopline.dataset_version", "-"),
                    tags.get("loopline.gate", "-"),
                    tags.get("loopline.parent_version") or "-",
                    summary.created,
                ),
            )
        )
    console.print(table)


@models_app.command("show")
@friendly_errors
def models_show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Model version whose card to print, e.g. 3.")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Print a version's model card (Markdown: data, metrics, gate verdict, lineage, limits)."""
    from loopline.registry.model_card import read_model_card

    group = ctx.parent.params if ctx.parent is not None else {}  # `models --home H show 1` means H too
    settings = _settings(config or group.get("config"), home or group.get("home"))
    card = read_model_card(settings.model_name, version)
    if not card.strip():
        fail(
            f"{settings.model_name} v{version} has no model card (it was registered before loopline wrote "
            "them, or its publish has not finished): rerun the command that trained it, or see the MLflow UI."
        )
    console.print(Text(card.rstrip()), soft_wrap=True)


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
    from loopline.registry.promotion import promote as promote_version

    settings = _settings(config, home)
    event = promote_version(
        settings.model_name,
        version,
        alias=alias,
        actor=current_user(),
        reason=reason,
        force=force,
        artifact_location=settings.resolved_artifact_location,
        canary=_canary_for(settings, alias),
    )
    if event.kind == "unchanged":
        say(f"{alias} already points to v{event.version}; nothing recorded.")
        return
    forced = " (forced past a failed gate)" if event.forced else ""
    say(f"{alias}: v{event.previous_version or '-'} → v{event.version}{forced}")


@app.command()
@friendly_errors
def rollback(
    alias: Annotated[str, typer.Option(help="Alias to roll back.")] = "production",
    to: Annotated[str | None, typer.Option("--to", help="Version to go back to (gate-checked).")] = None,
    force: Annotated[bool, typer.Option(help="With --to: go back even to a gate-failed version.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the promotion history.")] = "manual rollback",
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Move an alias back: to the latest earlier good version that was not rolled back from, or --to one."""
    from loopline.registry.promotion import rollback as rollback_alias

    settings = _settings(config, home)
    event = rollback_alias(
        settings.model_name,
        alias=alias,
        to=to,
        force=force,
        actor=current_user(),
        reason=reason,
        artifact_location=settings.resolved_artifact_location,
        canary=_canary_for(settings, alias),
    )
    if event.kind == "unchanged":
        say(f"{alias} already points to v{event.version}; nothing recorded.")
        return
    say(f"{alias}: v{event.previous_version or '-'} → v{event.version} (rollback)")


@app.command()
@friendly_errors
def history(
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promotion history: who moved which alias, when, from which version to which, and why."""
    from loopline.registry.promotion import promotion_history

    settings = _settings(config, home)
    events = promotion_history(settings.model_name, alias=alias)
    if as_json:
        print_json([event.to_dict() for event in events])
        return
    table = Table(title=Text(f"Promotion history of {settings.model_name}"))
    for column in ("when", "alias", "kind", "from", "to", "who", "why", "canary"):
        table.add_column(column)
    for event in events:
        kind = f"{event.kind} (forced)" if event.forced else event.kind
        moved = (event.at, event.alias, kind, event.previous_version, event.version)
        table.add_row(*map(_cell, (*moved, event.actor, event.reason, event.canary)))
    console.print(table)


@app.command()
@friendly_errors
def demo(
    home: HomeOpt = None,
    config: ConfigOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs of each training.")] = None,
    fresh: Annotated[bool, typer.Option(help="Delete the home folder first and start over.")] = False,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="sequence: the intent loop (default); token: the named-entity loop on generated sentences.",
        ),
    ] = None,
) -> None:
    """The whole loop on synthetic data: bootstrap, then the feedback rounds (intents, or named entities)."""
    import shutil

    import pandas as pd

    from loopline.data.demo import minimum_functionality_examples, write_demo_files
    from loopline.flows.demo_flow import demo_flow
    from loopline.registry.lookups import model_exists
    from loopline.stores import connect

    settings = _settings(config, home, connect_stores=False, training={"epochs": epochs}, task=task)
    if fresh and settings.home.is_dir():
        shutil.rmtree(settings.home)
    connect(settings)
    if model_exists(settings.model_name):
        raise LooplineError(
            f"{settings.home} already holds registered versions of {settings.model_name}.",
            where=settings.resolved_tracking_uri,
            hint="run `loopline demo --fresh` to start over, or pass another --home.",
        )
    if settings.task == "token":
        _ner_demo(settings)
        return
    files = write_demo_files(settings.home / "demo", seed=0)
    mft_path = settings.home / "demo" / "minimum_functionality.csv"
    pd.DataFrame(minimum_functionality_examples()).to_csv(mft_path, index=False)
    settings = settings.model_copy(update={"mft_path": settings.mft_path or mft_path})
    console.rule("[bold]loopline demo")
    say(f"Synthetic demo data (generated, not real customers) in {files['train'].parent}")
    result = demo_flow({k: str(v) for k, v in files.items()}, _overrides(settings))
    print_train_summary(result["bootstrap"], settings)
    print_rounds(result["rounds"])
    say(f"Drift reports (HTML): {settings.home / 'reports'}; quarantine: {settings.quarantine_dir}")
    say(f"Open the MLflow UI: mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000")


def _ner_demo(settings: Settings) -> None:
    """The named-entity loop: a PER/LOC/ORG tagger, then corrections and a round with a new type."""
    from loopline.data.demo_ner import generate_ner_demo
    from loopline.flows.ner_demo_flow import ner_demo_flow

    files = generate_ner_demo(settings.home / "demo-ner", seed=0)
    console.rule("[bold]loopline demo — named entities")
    say(f"Synthetic NER demo data (generated sentences, not real documents) in {files.out_dir}")
    paths = {
        "train": str(files.train.conll_path),
        "feedback_round1": str(files.feedback_round1.jsonl_path),
        "feedback_round2": str(files.feedback_round2.jsonl_path),
    }
    result = ner_demo_flow(paths, _overrides(settings))
    print_train_summary(result["bootstrap"], settings)
    print_rounds(result["rounds"])
    say(f"Open the MLflow UI: mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000")


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
        row = (
            number,
            intake["batch_status"],
            intake["accepted"],
            intake["quarantined"],
            _fmt(novelty.get("novel_share")),
            "yes" if monitor["drift"].get("drift_detected") else "no",
            "retrain" if monitor["retrain"] else "none",
            ("passed" if gate.get("passed") else "failed") if gate else "-",
            f"v{retrain['version']}" if retrain.get("version") else "-",
            _worst_recall_change(gate),
        )
        table.add_row(*map(_cell, row))
    console.print(table)
    for item in rounds:
        console.print(f"[bold]Round {escape(item['round'])}[/] — {escape(item['monitor']['reason'])}")
        if "served" in item:
            say(_served_line(item["served"]))


def _served_line(served: dict[str, Any]) -> str:
    answered = ", ".join(f"v{v}: {n}" for v, n in sorted(served["answered_by"].items()))
    line = (
        f"  Served by v{served['served_first']} ({served['runtime']}): {served['predictions']} predictions "
        f"({answered}), {served['labelled']} labels sent back, {served['flagged']} flagged for labelling, "
        f"accuracy {_fmt(served['accuracy'])}."
    )
    if served["promoted"]:
        follow = "followed it by itself" if served["service_followed"] else "did NOT follow it"
        line += f" v{served['promoted']} was promoted; the service {follow} (now v{served['served_now']})."
    return line


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
    encoding: EncodingOpt = None,
    label_map: LabelMapOpt = None,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Import a feedback file (idempotent) and run the feedback contract on it; a rejected batch exits 2."""
    settings = _file_settings(config, home, text_col, label_col, encoding, label_map, task=task)
    _require_file(path, "PATH")
    from loopline.flows.feedback_flow import feedback_flow

    intake = feedback_flow(str(path), overrides=_overrides(settings))
    state = "already imported" if intake["already_imported"] else "imported"
    line = (
        f"Batch {intake['batch_id']} {state}: {intake['batch_status']}, "
        f"{intake['accepted']} accepted, {intake['quarantined']} quarantined"
    )
    if intake["duplicate_rows"]:
        line += f", {intake['duplicate_rows']} row(s) already stored from earlier batches (not added again)"
    say(line + ".")
    if intake["batch_status"] == "rejected":
        fail(
            f"The feedback contract rejected batch {intake['batch_id']}; every row is quarantined with its "
            f"reason (`loopline feedback quarantined --batch {intake['batch_id']}`, files in "
            f"{intake['quarantine_dir']}). {intake['reason']}"
        )


@feedback_app.command("quarantined")
@friendly_errors
def feedback_quarantined(
    batch: Annotated[str | None, typer.Option(help="Only this batch id.")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List quarantined feedback rows with their reasons."""
    from loopline.feedback.store import FeedbackStore

    settings = _settings(config, home, connect_stores=False)  # the feedback store alone
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        rows = store.quarantined_feedback(batch)
    if as_json:  # every row, not the table's first 200
        print_json(json.loads(rows.to_json(orient="records", date_format="iso", force_ascii=False)))
        return
    table = Table(title=f"Quarantined feedback ({len(rows)} rows)")
    for column in ("id", "batch", "row", "label", "text", "reason"):
        table.add_column(column)
    for _, row in rows.head(200).iterrows():
        text = None if row["text"] is None else str(row["text"])[:60]
        values = (row["id"], row["batch_id"], row["source_row"], row["label"], text, row["reason"])
        table.add_row(*map(_cell, values))
    console.print(table)
    if len(rows) > 200:
        console.print(
            f"(first 200 of {len(rows)} rows shown; every row is in the store and its quarantine file)"
        )


@feedback_app.command("to-label")
@friendly_errors
def feedback_to_label(
    out: Annotated[Path, typer.Option("--out", help="CSV to write for the people who label.")],
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 1000,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Export served predictions flagged for labelling (abstained or low margin) that nobody labelled yet.

    Fill in the label column and import the file with `loopline feedback import`: the prediction_id
    column joins each label to its prediction."""
    from loopline.feedback.store import FeedbackStore

    settings = _settings(config, home, connect_stores=False)  # the feedback store alone
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        rows = store.flagged_unlabelled(limit)
    export = rows.rename(columns={"id": "prediction_id"})[
        ["prediction_id", "text", "predicted_label", "confidence"]
    ]
    export.insert(2, "label", "")
    out.parent.mkdir(parents=True, exist_ok=True)
    export.to_csv(out, index=False)
    say(f"{len(export)} prediction(s) to label → {out}: fill in 'label', then `loopline feedback import` it")


label_app = typer.Typer(
    help="Label Studio: send flagged predictions to a project, bring the annotations back as feedback "
    "(label_studio.url / .token / .project; LOOPLINE_LABEL_STUDIO__URL, __TOKEN).",
    no_args_is_help=True,
)
app.add_typer(label_app, name="label")


@label_app.command("push")
@friendly_errors
def label_push(
    limit: Annotated[int, typer.Option(min=1, help="At most this many tasks, oldest first.")] = 1000,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Send predictions flagged for labelling (abstained or low margin; the least confident when none is
    flagged) to the Label Studio project as tasks, with loopline's prediction as pre-annotation."""
    from loopline.feedback.store import FeedbackStore
    from loopline.labelling.client import LabelStudioClient
    from loopline.labelling.loop import push_for_labelling

    settings = _settings(config, home, connect_stores=False)
    with (
        LabelStudioClient.from_settings(
            settings.label_studio
        ) as client,  # first: a mistake costs no start-up
        FeedbackStore(settings.resolved_feedback_db_url) as store,
    ):
        pushed = push_for_labelling(settings, store, client, _champion_labels(settings), limit)
    project = pushed.project
    state = (
        "created"
        if pushed.created_project
        else "labeling config updated"
        if pushed.label_config_updated
        else ""
    )
    say(
        f"Pushed {pushed.pushed} {pushed.selection} prediction(s) to Label Studio project {project.title!r} "
        f"(id {project.id}{', ' + state if state else ''}) at {client.url}/projects/{project.id}; "
        f"{pushed.already_in_project} already there."
    )


@label_app.command("pull")
@friendly_errors
def label_pull(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Import the project's completed annotations as a feedback batch (feedback contract, as `loopline
    feedback import`); each annotation once, a re-annotation with another label replaces the first."""
    from loopline.labelling.client import LabelStudioClient
    from loopline.labelling.loop import pull_project

    settings = _settings(config, home, connect_stores=False)
    with LabelStudioClient.from_settings(
        settings.label_studio
    ) as client:  # first: a mistake costs no start-up
        pulled = pull_project(settings, client, _champion_labels(settings))
    print_pull(pulled)


def _champion_labels(settings: Settings) -> list[str]:
    """Connect the stores, then the production model's labels (what annotators choose from)."""
    from loopline.pipeline.champion import champion_labels
    from loopline.stores import connect

    connect(settings)
    return champion_labels(settings)


def print_pull(pulled: Any) -> None:
    """One line per pull; a batch the contract rejected exits 2, as `loopline feedback import` does."""
    line = (
        f"Label Studio project {pulled.project.title!r}: {pulled.new} new annotation(s), "
        f"{pulled.already_imported} already imported"
    )
    if pulled.relabelled:
        line += f", {pulled.relabelled} re-annotated ({pulled.superseded_rows} earlier row(s) superseded)"
    if pulled.unusable:
        shown = "; ".join(f"{i}: {why}" for i, why in list(pulled.unusable.items())[:5])
        line += f", {len(pulled.unusable)} without a usable label ({shown})"
    intake = pulled.intake
    if intake is not None:
        line += (
            f". Batch {intake.batch_id}: {intake.batch_status}, {intake.accepted} accepted, "
            f"{intake.quarantined} quarantined"
        )
        if intake.duplicate_rows:
            line += f", {intake.duplicate_rows} already stored from earlier batches"
    say(line + ".")
    if intake is not None and intake.batch_status == "rejected":
        fail(
            f"The feedback contract rejected batch {intake.batch_id}; every row is quarantined with its "
            f"reason (`loopline feedback quarantined --batch {intake.batch_id}`). {intake.reason}"
        )


@label_app.command("webhook")
@friendly_errors
def label_webhook(
    host: Annotated[str, typer.Option(help="Interface (default 127.0.0.1, localhost only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve POST /label-studio/webhook: on ANNOTATION_CREATED/UPDATED the annotation is read back from
    Label Studio and imported as `loopline label pull` would (point the project's webhook at it)."""
    import uvicorn

    from loopline.labelling.webhook import create_webhook_app

    settings = _settings(config, home)
    webhook_app = create_webhook_app(settings)
    say(f"Label Studio webhook on http://{host}:{port}/label-studio/webhook")
    uvicorn.run(webhook_app, host=host, port=port, log_level="info")


@app.command()
@friendly_errors
def monitor(
    trigger: Annotated[
        Trigger, typer.Option(help="How a retrain starts: in this process, via the deployment, or not.")
    ] = Trigger.subflow,
    scheduled: Annotated[bool, typer.Option(help="Act as the scheduled fallback run.")] = False,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Check drift and decay on the feedback since the last check; retrain when the policy says so."""
    from loopline.flows.monitor_flow import monitor_flow

    settings = _settings(config, home, task=task)
    summary = monitor_flow(trigger=trigger.value, scheduled=scheduled, overrides=_overrides(settings))
    say(
        f"Window {summary['window_size']} rows; decision: "
        f"{'retrain' if summary['retrain'] else 'no retrain'} — {summary['reason']}"
    )
    if summary.get("retrain_result"):
        print_retrain(summary["retrain_result"])


@app.command()
@friendly_errors
def retrain(
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "manual",
    nproc: NprocOpt = None,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run one continual retraining round now (warm start + replay, gated)."""
    from loopline.flows.retrain_flow import retrain_flow

    settings = _settings(config, home, task=task, training={"nproc_per_node": nproc})
    print_retrain(retrain_flow(reason=reason, overrides=_overrides(settings)))


def print_retrain(summary: dict[str, Any]) -> None:
    details = ", ".join(f"{k}={v}" for k, v in summary.items() if k not in ("gate", "status"))
    say(f"Retrain {summary.get('status', 'done')}: {details}")


@app.command()
@friendly_errors
def decisions(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Monitoring and retraining decisions, with their reasons."""
    from loopline.feedback.store import FeedbackStore

    settings = _settings(config, home, connect_stores=False)  # the feedback store alone
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        found = store.decisions(limit=limit)
    if as_json:
        print_json([item.to_dict() for item in found])
        return
    table = Table(title="Decisions")
    for column in ("when", "kind", "retrain", "version", "reason"):
        table.add_column(column)
    for item in found:
        table.add_row(
            *map(_cell, (item.created_at, item.kind, item.retrain, item.model_version, item.reason))
        )
    console.print(table)


@app.command()
@friendly_errors
def schedule(
    monitor_cron: Annotated[str, typer.Option(help="Cron of the drift checks.")] = "0 * * * *",
    fallback_cron: Annotated[str, typer.Option(help="Cron of the scheduled fallback retrain.")] = "0 3 * * 1",
    work_pool: Annotated[
        str | None,
        typer.Option(
            "--work-pool",
            help="Deploy to this Prefect work pool and return, instead of serving in this process; the "
            "pool's workers run the flows (process pool: a `prefect worker start` machine; kubernetes "
            "pool: a Job per run, see infra/README.md).",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="With --work-pool on a kubernetes/docker pool: the loopline image of the runs."),
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve monitor and retrain as Prefect deployments (needs `prefect server start` and PREFECT_API_URL),
    or with --work-pool deploy them to a work pool."""
    if work_pool is None:
        if image is not None:
            raise ConfigError(
                "--image needs --work-pool",
                where="--image",
                hint="Served deployments run in this process; pass --work-pool NAME to deploy to a pool.",
            )
        from loopline.flows.deployments import serve_deployments

        settings = _settings(config, home)
        serve_deployments(monitor_cron, fallback_cron, str(config) if config else None, _overrides(settings))
        return
    if home is not None:
        raise ConfigError(
            "--home does not reach a work pool's runs",
            where="--home",
            hint="The worker's environment says where the stores are (LOOPLINE_HOME, LOOPLINE_TRACKING_URI, "
            "LOOPLINE_FEEDBACK_DB_URL; for Kubernetes the loopline-config ConfigMap and loopline-secrets).",
        )
    from loopline.flows.deployments import deploy_to_work_pool

    # Settings from --config, the environment and loopline.toml travel as flow parameters, less the store
    # locations; nothing local is connected: the runs happen on the pool's workers.
    settings = _settings(config, None, connect_stores=False)
    deployed = deploy_to_work_pool(work_pool, monitor_cron, fallback_cron, _overrides(settings), image)
    for item in deployed:
        when = f"cron {item.cron}" if item.cron else "started by the monitor"
        say(f"Deployed {item.name} to work pool {work_pool} ({when}; id {item.id})")
    say(
        f"Runs wait for a worker of {work_pool}: `prefect worker start --pool {work_pool}` "
        "(or the prefect-worker Deployment of infra/k8s)."
    )


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1, localhost only).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve the production model over HTTP: /predict with ids, /feedback, /model, /metrics; follows the
    production alias and swaps to a new version by itself."""
    settings = _settings(config, home, serve={"host": host, "port": port})
    import uvicorn

    from loopline.serving.app import build_app

    where = f"http://{settings.serve.host}:{settings.serve.port}"
    say(f"Serving {settings.model_name}@production on {where} (API docs at {where}/docs)")
    uvicorn.run(build_app(settings), host=settings.serve.host, port=settings.serve.port, log_level="info")


@app.command()
@friendly_errors
def predict(
    data: Annotated[Path, typer.Argument(help="Texts to score (CSV, JSONL, Parquet...).")],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the predictions (.csv, .jsonl, .parquet).")
    ],
    text_col: TextColOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with.")] = "production",
    version: Annotated[str | None, typer.Option(help="Model version (overrides --alias).")] = None,
    log: Annotated[bool, typer.Option(help="Log the predictions in the feedback store (batch id).")] = True,
    encoding: EncodingOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Batch scoring: predict a file's texts, write them with prediction ids, log them under a batch id."""
    from loopline.pipeline.scoring import score_file

    settings = _settings(config, home, text_column=text_col, encoding=encoding)
    scored = score_file(settings, data, out, alias=alias, version=version, log=log)
    say(
        f"Scored {scored.rows} texts with {settings.model_name} v{scored.version} → {out}"
        + (f" (logged as batch {scored.batch_id})" if log else "")
    )


def print_train_summary(summary: dict[str, Any], settings: Settings) -> None:
    gate = summary["gate"]
    name, version = escape(summary["model_name"]), summary["version"]
    aliases = escape(", ".join(summary["aliases"]) or "none")
    if summary.get("reused"):
        console.print(
            f"[green]Already trained[/]: this data with these settings is {name} version {version} "
            f"(aliases {aliases}); nothing trained again. Change a setting (e.g. --seed) to train anew."
        )
    else:
        console.print(
            f"[green]Registered[/] {name} version {version} with aliases {aliases} (run {summary['run_id']})."
        )
    say(
        f"Dataset {summary['dataset_version']}, quarantined rows: {summary['quarantined_rows']}, "
        f"gate: {'passed' if gate['passed'] else 'failed'}."
    )
    say(f"Load it anywhere: mlflow.pyfunc.load_model('models:/{summary['model_name']}@production')")
    say(f"Open the MLflow UI: mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000")


def _canary_for(settings: Settings, alias: str) -> Callable[[str], str | None] | None:
    """Production is what the service answers with: a version must pass the canary to get there."""
    if alias != "production":
        return None
    from loopline.pipeline.canary import canary_failure

    return lambda version: canary_failure(settings, version)


def _load(settings: Settings, path: Path) -> Any:
    from loopline.tasks import get_task

    return get_task(settings.task).read_labelled(
        path, settings.text_column, settings.label_column, settings.encoding, settings.label_map
    )


def _require_file(path: Path, option: str) -> None:
    """Check a data path before a flow (and Prefect) starts, so the mistake costs no start-up."""
    if not path.exists():
        from loopline.errors import DataError

        raise DataError(f"Data file not found: {path}", where=option, hint="Check the path.")


@app.command()
@friendly_errors
def relocate(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Make a copied or moved home its own: rewrite the artifact paths its MLflow database recorded."""
    from loopline.stores import connect, relocate_home

    settings = _settings(config, home, connect_stores=False)
    moved = relocate_home(settings)
    connect(settings)  # checks the result
    if moved is None:
        say(f"{settings.home} already keeps its artifacts inside it; nothing to do.")
    else:
        count = moved.values_rewritten
        say(f"Relocated {settings.home}: {count} recorded paths {moved.old_root} → {moved.new_root}.")


@app.command()
@friendly_errors
def status(config: ConfigOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Where the loop stands: the champion, the last monitor decision, feedback waiting, predictions to
    label and the next scheduled run."""
    from loopline.flows.next_run import NO_SCHEDULE, NextRun
    from loopline.status import LoopStatus, home_is_empty, read_loop_status

    settings = _settings(config, home, connect_stores=False)
    empty = home_is_empty(settings)  # nothing to read, and reading would create the stores
    if empty:
        loop = LoopStatus(settings.model_name, None, None, 0, 0, 0, False)
        next_run = NextRun(None, None, NO_SCHEDULE)
    else:
        from loopline.flows.next_run import read_next_run
        from loopline.stores import connect

        connect(settings)
        loop, next_run = read_loop_status(settings), read_next_run()
    if as_json:
        print_json({**loop.to_dict(), "home": str(settings.home), "next_run": next_run.to_dict()})
        return
    if empty:
        say(
            f"Nothing here yet: {settings.home} holds no model. Train one (`loopline train --data FILE`) "
            "or run `loopline demo`."
        )
        return
    print_status(loop, next_run)


def print_status(loop: LoopStatus, next_run: NextRun) -> None:
    """``loopline status`` as label/value lines (plain text: labels and reasons are data, not markup)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    champion = loop.champion
    if champion is None:
        grid.add_row("champion", Text("none: no version has the production alias (`loopline models`)"))
    else:
        headline = f", {champion.metric} {_fmt(champion.value)}" if champion.metric else ""
        dataset = champion.dataset_version or "-"
        grid.add_row(
            "champion",
            Text(f"v{champion.version}{headline}, dataset {dataset}, registered {champion.created}"),
        )
    monitor = loop.last_monitor
    if monitor is None:
        grid.add_row("last monitor", Text("never run (`loopline monitor`)"))
    else:
        decision = "retrain" if monitor.retrain else "no retrain"
        grid.add_row("last monitor", Text(f"{monitor.when}: {decision} — {monitor.main_signal}"))
        grid.add_row("", Text(monitor.reason))
    unreviewed = f", {loop.feedback_unreviewed} waiting for the contract" if loop.feedback_unreviewed else ""
    grid.add_row("feedback", Text(f"{loop.feedback_waiting} labelled rows not yet trained on{unreviewed}"))
    flagged = f"{loop.flagged_for_labelling}{'+' if loop.flagged_capped else ''}"
    hint = " (`loopline feedback to-label --out FILE`)" if loop.flagged_for_labelling else ""
    grid.add_row("to label", Text(f"{flagged} served predictions flagged (abstained or low margin){hint}"))
    when = next_run.expected_start
    grid.add_row(
        "next run",
        Text(f"{next_run.deployment} at {when.isoformat()}" if when else next_run.note),
    )
    console.print(Text(f"{loop.model_name}", style="bold"))
    console.print(grid)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    app()
