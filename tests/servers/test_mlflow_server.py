"""Tracking, registry and proxied artifacts against a real ``mlflow server`` (on Postgres when possible)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

if TYPE_CHECKING:  # conftest is not importable as a package module at run time
    from conftest import MlflowServer, PostgresCluster

pytestmark = pytest.mark.servers


class UpperCaseModel(mlflow.pyfunc.PythonModel):
    """A tiny pyfunc: enough to exercise logging, registration, aliases and loading by alias."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pd.DataFrame({"label": [text.upper() + self.suffix for text in model_input["text"]]})


@pytest.fixture(scope="module")
def client(mlflow_server: MlflowServer) -> Iterator[MlflowClient]:
    """Fluent API and client pointed at the server for this module, restored afterwards."""
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    try:
        yield MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def rest_get(server: MlflowServer, path: str, **query: str) -> dict[str, Any]:
    url = f"{server.url}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.load(response))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_server_is_backed_by_the_expected_store(
    mlflow_server: MlflowServer, _postgres_or_none: PostgresCluster | None
) -> None:
    if _postgres_or_none is None:  # fallback when PostgreSQL cannot run here
        assert mlflow_server.backend_store_uri.startswith("sqlite:///")
        assert Path(mlflow_server.backend_store_uri.removeprefix("sqlite:///")).is_file()
        return
    import psycopg

    assert mlflow_server.backend_store_uri == _postgres_or_none.url("mlflow")
    dsn = mlflow_server.backend_store_uri.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables


def test_run_params_metrics_and_artifact_go_through_the_server(
    client: MlflowClient, mlflow_server: MlflowServer
) -> None:
    experiment_id = client.create_experiment(unique("loopline-servers"))
    experiment = client.get_experiment(experiment_id)
    # --serve-artifacts: new experiments store artifacts behind the server's proxy, not on client disk.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({"lr": "0.0001", "epochs": "2"})
        for step, f1 in enumerate([0.5, 0.75]):
            mlflow.log_metric("val_macro_f1", f1, step=step)
        mlflow.log_text("hello from loopline\n", "reports/notes.txt")
    run_id = run.info.run_id

    # Read back through the plain REST API, as any other client would.
    payload = rest_get(mlflow_server, "/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
    params = {p["key"]: p["value"] for p in payload["data"]["params"]}
    assert params == {"lr": "0.0001", "epochs": "2"}
    assert payload["info"]["status"] == "FINISHED"
    history = rest_get(
        mlflow_server, "/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key="val_macro_f1"
    )["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(0, 0.5), (1, 0.75)]

    # The artifact is listed and served by the server, and stored under --artifacts-destination.
    assert [f.path for f in client.list_artifacts(run_id, "reports")] == ["reports/notes.txt"]
    rel = f"{experiment_id}/{run_id}/artifacts/reports/notes.txt"
    with urllib.request.urlopen(f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{rel}") as resp:
        assert resp.read().decode() == "hello from loopline\n"
    assert (mlflow_server.artifacts_dir / rel).read_text() == "hello from loopline\n"


def log_upper_model(experiment_id: str, suffix: str) -> str:
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=UpperCaseModel(suffix),
            input_example=pd.DataFrame({"text": ["hi"]}),
            pip_requirements=["mlflow"],  # skip requirement inference (slow, and fails for transformers here)
        )
    return f"runs:/{run.info.run_id}/model"


def load_by_alias(name: str, alias: str, dst: Path) -> Any:
    dst.mkdir()
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}", dst_path=str(dst))


def test_register_versions_move_alias_and_load_by_alias(
    client: MlflowClient, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    name = unique("loopline-classifier")
    experiment_id = client.create_experiment(unique("loopline-registry"))
    v1 = mlflow.register_model(log_upper_model(experiment_id, "-v1"), name, tags={"gate": "passed"})
    v2 = mlflow.register_model(log_upper_model(experiment_id, "-v2"), name)
    assert (v1.version, v2.version) == ("1", "2")
    # Both models' files were uploaded through the server into its --artifacts-destination.
    assert len(list(mlflow_server.artifacts_dir.rglob("MLmodel"))) >= 2

    client.set_registered_model_alias(name, "production", v1.version)
    assert client.get_model_version_by_alias(name, "production").version == "1"
    assert client.get_model_version(name, "1").tags == {"gate": "passed"}

    # Loading by alias downloads the model's artifacts through the server's proxy.
    model = load_by_alias(name, "production", tmp_path / "v1")
    assert model.predict(pd.DataFrame({"text": ["refund"]}))["label"].tolist() == ["REFUND-v1"]

    client.set_registered_model_alias(name, "production", v2.version)
    registered = rest_get(mlflow_server, "/api/2.0/mlflow/registered-models/get", name=name)
    aliases = {a["alias"]: a["version"] for a in registered["registered_model"]["aliases"]}
    assert aliases == {"production": "2"}
    model = load_by_alias(name, "production", tmp_path / "v2")
    assert model.predict(pd.DataFrame({"text": ["refund"]}))["label"].tolist() == ["REFUND-v2"]
