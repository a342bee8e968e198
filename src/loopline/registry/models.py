"""Log, register and promote models in the MLflow registry; stages are aliases.

Promotion history is kept as small MLflow runs in the experiment ``<model>-promotions`` (params alias,
version, previous_version, actor, reason, at; tag ``loopline.event``; the gate report as an artifact), so
it shows in the MLflow UI and works the same against a remote tracking server. Every call here uses
``MlflowClient`` (never the fluent active run), so promoting inside a flow's run does not disturb it.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from loopline.errors import RegistryError
from loopline.registry import pyfunc

logger = logging.getLogger(__name__)

GATE_TAG = "loopline.gate"  # "passed" / "failed": the gate's verdict on a version
EVENT_TAG = "loopline.event"  # "promotion" / "rollback" on a history run
# Where the dataset version of a model is looked for: version tags first, then its run's tags and params.
DATA_VERSION_KEYS = ("loopline.dataset_version", "loopline.data_version", "dataset_version", "data_version")
PROMOTIONS_SUFFIX = "-promotions"
REQUIREMENTS = ("torch", "transformers", "mlflow", "pandas", "safetensors")
EXAMPLE_TEXTS = ("I would like a refund for my last order.", "How do I change my password?")
READY_TIMEOUT_S = 300
MAX_PARAM_CHARS = 6000
_ALIAS = re.compile(r"^[A-Za-z][\w-]*$")  # MLflow reserves "latest" and "v<number>"


@dataclass(frozen=True)
class PromotionEvent:
    """One move of an alias. ``kind`` is "promotion", "rollback" or "unchanged" (alias already there,
    nothing recorded); ``run_id`` is the history run that records it."""

    model: str
    alias: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: str
    gate_passed: bool | None
    kind: str = "promotion"
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionSummary:
    """What ``loopline models list`` shows of one registered version."""

    version: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    data_version: str | None
    created: str
    run_id: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- logging and registration -------------------------------------------------------------------


def pip_requirements() -> list[str]:
    """Exact pins of what loading the pyfunc needs (local version labels such as ``+cpu`` dropped)."""
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _model_labels(model_dir: Path) -> list[str]:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise RegistryError(
            f"{model_dir} is not a saved transformers model (no config.json).",
            where=str(model_dir),
            hint="Pass the 'model' folder written by training (save_pretrained + tokenizer).",
        )
    id2label = json.loads(config_path.read_text(encoding="utf-8")).get("id2label") or {}
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def log_model(
    model_dir: Path | str,
    artifact_path: str = "model",
    *,
    max_length: int = 64,
    batch_size: int = 64,
    input_example: list[str] | None = None,
) -> str:
    """Log a saved transformers classifier as an MLflow pyfunc model and return its ``models:/`` URI.

    Logged inside the active run if there is one (MLflow 3 links the LoggedModel to it). The pyfunc is
    logged as model code (``loopline/registry/pyfunc.py``), so loading needs no loopline install. The
    signature is inferred from a ``text`` DataFrame example and a (label, confidence) output; the pip
    requirements are explicit because MLflow's inference of them fails here (torchvision import).
    ``max_length`` should be the training one, so served predictions match ``load_classifier``'s.
    """
    model_dir = Path(model_dir)
    labels = _model_labels(model_dir)
    example = pd.DataFrame({"text": list(input_example or EXAMPLE_TEXTS)})
    output = pd.DataFrame({"label": [labels[0] if labels else ""] * len(example), "confidence": 1.0})
    settings = {"max_length": int(max_length), "batch_size": int(batch_size)}
    info = mlflow.pyfunc.log_model(
        name=artifact_path,
        python_model=pyfunc.__file__,
        artifacts={"model": str(model_dir)},
        signature=infer_signature(example, output, params=settings),
        model_config=settings,
        input_example=example,
        pip_requirements=pip_requirements(),
        metadata={"loopline_labels": labels},
    )
    logger.info("Logged model from %s as %s (%d labels)", model_dir, info.model_uri, len(labels))
    return str(info.model_uri)


def _wait_until_ready(client: MlflowClient, name: str, version: str) -> ModelVersion:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(
                f"Version {version} of model '{name}' is {mv.status}: {mv.status_message or 'no message'}.",
                hint="Check the tracking server's logs and artifact store, then register again.",
            )
        time.sleep(1.0)


def register_model(model_uri: str, name: str, tags: dict[str, str] | None = None) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``name`` (created if needed), tagged; waits for READY."""
    try:
        mv = mlflow.register_model(
            model_uri,
            name,
            await_registration_for=READY_TIMEOUT_S,
            tags={k: str(v) for k, v in (tags or {}).items()},
        )
    except MlflowException as exc:
        raise RegistryError(
            f"Could not register {model_uri} as model '{name}': {exc.message}",
            hint="Pass the URI returned by log_model (models:/m-...) and check the tracking URI.",
        ) from exc
    mv = _wait_until_ready(MlflowClient(), name, str(mv.version))
    logger.info("Registered %s as '%s' version %s", model_uri, name, mv.version)
    return mv


# --- lookups --------------------------------------------------------------------------------------


def _client_and_model(name: str) -> tuple[MlflowClient, Any]:
    client = MlflowClient()
    try:
        return client, client.get_registered_model(name)
    except MlflowException as exc:
        known = [m.name for m in client.search_registered_models(max_results=20)]
        raise RegistryError(
            f"No registered model named '{name}'.",
            where=f"tracking URI {mlflow.get_tracking_uri()}",
            hint=f"Known models: {known or 'none'}. Train and register a model first, or check the name.",
        ) from exc


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise RegistryError(
            f"Model '{name}' has no version {version!r}.",
            hint=f"Existing versions: {known or 'none'}.",
        ) from exc


def _check_alias(alias: str) -> str:
    if not _ALIAS.match(alias) or alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise RegistryError(
            f"'{alias}' is not a usable alias.",
            hint="Use a name of letters, digits, '_' or '-' starting with a letter, such as production, "
            "staging or candidate ('latest' and 'v<number>' are reserved by MLflow).",
        )
    return alias


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def model_exists(name: str) -> bool:
    """Whether a registered model of this name exists (before the first registration it does not)."""
    return bool(MlflowClient().search_registered_models(filter_string=f"name='{name}'"))


def get_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points to, or None when the alias is not set (unknown model: RegistryError)."""
    _check_alias(alias)
    client, model = _client_and_model(name)
    version = (model.aliases or {}).get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def set_alias(name: str, alias: str, version: str | int) -> ModelVersion:
    """Point ``alias`` at a version (no gate check, no history: use ``promote`` for that)."""
    _check_alias(alias)
    client, _ = _client_and_model(name)
    mv = _get_version(client, name, str(version))
    client.set_registered_model_alias(name, alias, str(mv.version))
    return mv


def _created(timestamp_ms: int | None) -> str:
    return datetime.fromtimestamp((timestamp_ms or 0) / 1000, tz=UTC).isoformat()


def _run_details(client: MlflowClient, mv: ModelVersion) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and (params + tags) of the run that produced ``mv``; empty when it has none or it is gone."""
    if not mv.run_id:
        return {}, {}
    try:
        run = client.get_run(mv.run_id)
    except MlflowException:
        logger.warning("Run %s of version %s is gone; listing it without metrics", mv.run_id, mv.version)
        return {}, {}
    return dict(run.data.metrics), {**run.data.params, **run.data.tags}


def _data_version(*sources: dict[str, str]) -> str | None:
    return next((src[key] for src in sources for key in DATA_VERSION_KEYS if src.get(key)), None)


def list_versions(name: str) -> list[VersionSummary]:
    """All versions of ``name``, oldest first, with aliases, tags, run metrics and data version."""
    client, model = _client_and_model(name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    summaries = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        metrics, run_values = _run_details(client, mv)
        tags = dict(mv.tags or {})
        summaries.append(
            VersionSummary(
                version=str(mv.version),
                aliases=sorted(aliases.get(str(mv.version), [])),
                tags=tags,
                metrics=metrics,
                data_version=_data_version(tags, run_values),
                created=_created(mv.creation_timestamp),
                run_id=mv.run_id,
                status=str(mv.status),
            )
        )
    return summaries


# --- promotion history ------------------------------------------------------------------------------


def _default_history_location(client: MlflowClient, name: str, run_id: str | None) -> str | None:
    """Keep history artifacts beside the model's: ``<artifact root of its experiment>/<name>-promotions``
    (an embedded setup then never writes into the working directory); None lets the server decide."""
    if not run_id:
        return None
    try:
        root = client.get_experiment(client.get_run(run_id).info.experiment_id).artifact_location
    except MlflowException:
        return None
    return f"{root.rstrip('/')}/{name}{PROMOTIONS_SUFFIX}" if root else None


def _promotions_experiment_id(
    client: MlflowClient, name: str, artifact_location: str | None, run_id: str | None
) -> str:
    experiment_name = f"{name}{PROMOTIONS_SUFFIX}"
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = artifact_location or _default_history_location(client, name, run_id)
        return str(client.create_experiment(experiment_name, artifact_location=location))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _record_event(
    client: MlflowClient,
    event: PromotionEvent,
    gate_report: dict[str, Any] | None,
    forced: bool,
    location: str | None,
    model_run_id: str | None,
) -> str:
    experiment_id = _promotions_experiment_id(client, event.model, location, model_run_id)
    run = client.create_run(
        experiment_id,
        run_name=f"{event.kind} {event.alias} -> v{event.version}",
        tags={EVENT_TAG: event.kind, "loopline.model": event.model, "loopline.alias": event.alias},
    )
    params = {
        "model": event.model,
        "alias": event.alias,
        "version": event.version,
        "previous_version": event.previous_version or "none",
        "actor": event.actor,
        "reason": (event.reason or "-")[:MAX_PARAM_CHARS],
        "at": event.at,
        "gate_passed": "unknown" if event.gate_passed is None else str(event.gate_passed).lower(),
        "forced": str(forced).lower(),
    }
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    if gate_report is not None:
        client.log_dict(run.info.run_id, gate_report, "gate_report.json")
    client.set_terminated(run.info.run_id, status="FINISHED")
    return str(run.info.run_id)


def _event_from_run(run: Any) -> PromotionEvent:
    params = run.data.params
    gate = params.get("gate_passed", "unknown")
    return PromotionEvent(
        model=params["model"],
        alias=params["alias"],
        version=params["version"],
        previous_version=None
        if params.get("previous_version", "none") == "none"
        else params["previous_version"],
        actor=params.get("actor", "unknown"),
        reason=params.get("reason", ""),
        at=params["at"],
        gate_passed=None if gate == "unknown" else gate == "true",
        kind=run.data.tags.get(EVENT_TAG, "promotion"),
        run_id=run.info.run_id,
    )


def promotion_history(name: str, alias: str | None = None) -> list[PromotionEvent]:
    """Promotions and rollbacks of ``name`` (optionally of one alias), oldest first."""
    if alias is not None:
        _check_alias(alias)
    client, _ = _client_and_model(name)
    experiment = client.get_experiment_by_name(f"{name}{PROMOTIONS_SUFFIX}")
    if experiment is None:
        return []
    filter_string = f"params.alias = '{alias}'" if alias else ""
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment.experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    events = [_event_from_run(r) for r in runs if r.data.tags.get(EVENT_TAG) in {"promotion", "rollback"}]
    return sorted(events, key=lambda e: e.at)


# --- promotion and rollback -----------------------------------------------------------------------


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="microseconds")


def _gate_verdict(mv: ModelVersion, gate_report: dict[str, Any] | None) -> bool | None:
    if gate_report is not None and "passed" in gate_report:
        return bool(gate_report["passed"])
    tag = (mv.tags or {}).get(GATE_TAG)
    return None if tag is None else tag == "passed"


def _move_alias(
    client: MlflowClient,
    mv: ModelVersion,
    alias: str,
    *,
    kind: str,
    actor: str | None,
    reason: str,
    gate_report: dict[str, Any] | None = None,
    forced: bool = False,
    artifact_location: str | None = None,
) -> PromotionEvent:
    name, version = mv.name, str(mv.version)
    current = get_alias_version(name, alias)
    previous = None if current is None else str(current.version)
    event = PromotionEvent(
        model=name,
        alias=alias,
        version=version,
        previous_version=previous,
        actor=_actor(actor),
        reason=reason,
        at=_now(),
        gate_passed=_gate_verdict(mv, gate_report),
        kind=kind,
    )
    if previous == version:
        logger.info("Alias '%s' of '%s' already points to version %s; nothing to do", alias, name, version)
        return PromotionEvent(**{**event.to_dict(), "kind": "unchanged"})
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"loopline.{alias}.{kind}_at", event.at)
    client.set_model_version_tag(name, version, f"loopline.{alias}.{kind}_by", event.actor)
    run_id = _record_event(client, event, gate_report, forced, artifact_location, mv.run_id)
    logger.info("%s: '%s'@%s %s -> %s by %s (%s)", kind, name, alias, previous, version, event.actor, reason)
    return PromotionEvent(**{**event.to_dict(), "run_id": run_id})


def promote(
    name: str,
    version: str | int,
    alias: str = "production",
    *,
    actor: str | None = None,
    reason: str = "",
    gate_report: dict[str, Any] | None = None,
    force: bool = False,
    artifact_location: str | None = None,
) -> PromotionEvent:
    """Move ``alias`` to ``version`` and record who, when, from, to, why and the gate report.

    Refuses (RegistryError) a version whose ``loopline.gate`` tag is "failed", or a ``gate_report`` that
    did not pass, unless ``force``. ``artifact_location`` is used only when the history experiment is
    created (None: beside the artifacts of the version's run's experiment).
    """
    _check_alias(alias)
    client, _ = _client_and_model(name)
    mv = _get_version(client, name, str(version))
    tag_failed = (mv.tags or {}).get(GATE_TAG) == "failed"
    report_failed = gate_report is not None and gate_report.get("passed") is False
    if (tag_failed or report_failed) and not force:
        where = [f"tag {GATE_TAG}=failed on version {mv.version}"] if tag_failed else []
        where += ["the gate report passed in (passed=false)"] if report_failed else []
        raise RegistryError(
            f"Refusing to promote version {mv.version} of '{name}' to '{alias}': the gate failed it.",
            where=" and ".join(where),
            hint="Promote a version that passed the gate, or pass force=True (--force) with a reason.",
        )
    if tag_failed or report_failed:
        logger.warning("Forcing promotion of version %s of '%s' despite a failed gate", mv.version, name)
    return _move_alias(
        client,
        mv,
        alias,
        kind="promotion",
        actor=actor,
        reason=reason,
        gate_report=gate_report,
        forced=force and (tag_failed or report_failed),
        artifact_location=artifact_location,
    )


def rollback(
    name: str,
    alias: str = "production",
    *,
    actor: str | None = None,
    reason: str = "rollback",
    artifact_location: str | None = None,
) -> PromotionEvent:
    """Move ``alias`` back to the previous version of its latest promotion/rollback event, and record it."""
    _check_alias(alias)
    client, _ = _client_and_model(name)
    history = promotion_history(name, alias)
    if not history:
        raise RegistryError(
            f"Cannot roll back '{name}'@{alias}: no promotion of this alias is recorded.",
            hint="Promote a version first (rollback needs a recorded previous version).",
        )
    latest = history[-1]
    if latest.previous_version is None:
        raise RegistryError(
            f"Cannot roll back '{name}'@{alias}: version {latest.version} was its first version "
            f"(promoted {latest.at}), so there is no previous one.",
            hint="Promote another version instead.",
        )
    target = _get_version(client, name, latest.previous_version)
    return _move_alias(
        client,
        target,
        alias,
        kind="rollback",
        actor=actor,
        reason=reason,
        artifact_location=artifact_location,
    )
