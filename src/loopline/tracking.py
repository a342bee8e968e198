"""MLflow tracking plumbing: one experiment, runs addressed by id so any task (or process) can log to them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow.entities import SourceType, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER
from sqlalchemy.exc import SQLAlchemyError

from loopline.config import Settings
from loopline.errors import StoreError
from loopline.processes import current_user, holder_is_dead, this_host

logger = logging.getLogger(__name__)

REACHABLE_TIMEOUT_S = 5.0
HOLDER_TAG = "loopline.holder"  # host:pid of the process that created a run


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store, check it answers, make sure the experiment exists; returns
    its id. Entry points call this through ``loopline.stores.connect``."""
    if settings.tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_tracking_uri
    _check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return _ensure_experiment(MlflowClient(), settings)
    except (MlflowException, SQLAlchemyError) as err:
        message = err.message if isinstance(err, MlflowException) else str(getattr(err, "orig", None) or err)
        raise StoreError(
            f"The MLflow tracking store refused the connection: {message.splitlines()[0][:300]}",
            where=_shown(uri),
            hint="Check the tracking URI and that the store is a readable MLflow database or server.",
        ) from None


def _ensure_experiment(store: MlflowClient, settings: Settings) -> str:
    experiment = store.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(
            store.create_experiment(
                settings.experiment_name, artifact_location=settings.resolved_artifact_location
            )
        )
    except MlflowException:  # created by another process between our lookup and our create
        experiment = store.get_experiment_by_name(settings.experiment_name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _check_reachable(uri: str) -> None:
    """A tracking server that does not answer fails in seconds, not after MLflow's minutes of retries."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=REACHABLE_TIMEOUT_S).raise_for_status()
    except requests.RequestException as err:
        raise StoreError(
            f"The MLflow tracking server does not answer ({type(err).__name__}).",
            where=_shown(uri),
            hint="Start it (`mlflow server ...`), or fix tracking_uri / LOOPLINE_TRACKING_URI.",
        ) from None


def _shown(uri: str) -> str:
    """A URI for messages, password hidden."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


def mlflow_client() -> MlflowClient:
    """The MLflow client of the store the entry point connected to; never MLflow's ``./mlflow.db`` default."""
    if not is_tracking_uri_set():
        raise RuntimeError(
            "MLflow is not connected: an entry point must call loopline.stores.connect(settings) first."
        )
    return MlflowClient()


def experiment_artifact_locations() -> dict[str, str]:
    """Artifact root of every experiment of the connected store, by name."""
    return {e.name: e.artifact_location for e in mlflow_client().search_experiments(view_type=ViewType.ALL)}


def start_run(settings: Settings, run_name: str, tags: dict[str, str] | None = None) -> str:
    """Create a run (not bound to this thread) and return its id; finish it with ``end_run``.

    Runs left RUNNING by a killed process of this machine are marked KILLED first, so the MLflow UI
    never shows a crashed run as still going.
    """
    store = mlflow_client()
    experiment_id = _ensure_experiment(store, settings)
    mark_dead_runs_killed(store, experiment_id)
    holder = {HOLDER_TAG: f"{this_host()}:{os.getpid()}"}
    flow = (tags or {}).get("loopline.flow")
    source = run_source_tags(f"loopline.flows.{flow}_flow" if flow else "loopline")
    run = store.create_run(experiment_id, run_name=run_name, tags={**source, **(tags or {}), **holder})
    return str(run.info.run_id)


def run_source_tags(source: str) -> dict[str, str]:
    """Who made a run and from what: MLflow's own tags, the UI's User and Source columns (the client API,
    unlike ``mlflow.start_run``, sets none of them)."""
    return {
        MLFLOW_USER: current_user(),
        MLFLOW_SOURCE_NAME: source,
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.JOB),
    }


def mark_dead_runs_killed(store: MlflowClient, experiment_id: str) -> int:
    """RUNNING runs whose process (``loopline.holder`` host:pid) is gone → KILLED; returns how many."""
    runs = store.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=200)
    dead = [run for run in runs if holder_is_dead(run.data.tags.get(HOLDER_TAG, ""))]
    for run in dead:
        store.set_terminated(run.info.run_id, status="KILLED")
        logger.warning(
            "Run %s (%s) was left running by a killed process; marked KILLED",
            run.info.run_id,
            run.info.run_name,
        )
    return len(dead)


def name_run(run_id: str, name: str) -> None:
    """Rename a run once what it did is known (``train v1 (2,400 rows)``): the runs table explains itself."""
    mlflow_client().set_tag(run_id, MLFLOW_RUN_NAME, name)


def end_run(run_id: str, *, failed: bool = False) -> None:
    mlflow_client().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


@contextmanager
def active_run(run_id: str) -> Iterator[mlflow.ActiveRun | None]:
    """Make ``run_id`` the fluent API's active run for the block (re-entrant within one thread)."""
    current = mlflow.active_run()
    if current is not None and current.info.run_id == run_id:
        yield current
        return
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def log_json(run_id: str, payload: dict[str, Any], artifact_file: str) -> None:
    """Log a JSON-safe dict as an artifact of ``run_id``."""
    mlflow_client().log_dict(run_id, payload, artifact_file)


def log_file(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    mlflow_client().log_artifact(run_id, str(path), artifact_path)


def log_flat_params(run_id: str, params: dict[str, Any], prefix: str = "") -> None:
    """Log a (nested) dict of params as flat ``section.key`` names."""
    store = mlflow_client()
    for key, value in _flatten(params, prefix).items():
        store.log_param(run_id, key, value)


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | tuple) else value
    return flat


def git_commit() -> str:
    """The checkout's commit, or "unknown" outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
