"""MLflow tracking plumbing: one experiment, runs addressed by id so any task (or process) can log to them."""

from __future__ import annotations

import getpass
import json
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from loopline.config import Settings

logger = logging.getLogger(__name__)


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store and make sure the experiment exists; returns its id."""
    if settings.tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(
            settings.experiment_name, artifact_location=settings.resolved_artifact_location
        )
    )


def start_run(settings: Settings, run_name: str, tags: dict[str, str] | None = None) -> str:
    """Create a run (not bound to this thread) and return its id; finish it with ``end_run``."""
    experiment_id = configure_mlflow(settings)
    run = MlflowClient().create_run(experiment_id, run_name=run_name, tags=tags or {})
    return str(run.info.run_id)


def end_run(run_id: str, *, failed: bool = False) -> None:
    MlflowClient().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


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
    MlflowClient().log_dict(run_id, payload, artifact_file)


def log_file(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    MlflowClient().log_artifact(run_id, str(path), artifact_path)


def log_flat_params(run_id: str, params: dict[str, Any], prefix: str = "") -> None:
    """Log a (nested) dict of params as flat ``section.key`` names."""
    client = MlflowClient()
    for key, value in _flatten(params, prefix).items():
        client.log_param(run_id, key, value)


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | tuple) else value
    return flat


def current_user() -> str:
    """Who is acting, for promotion history and decisions."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "loopline"


def git_commit() -> str:
    """The checkout's commit, or "unknown" outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
