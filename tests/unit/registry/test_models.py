from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from loopline.errors import RegistryError
from loopline.registry.models import (
    GATE_TAG,
    get_alias_version,
    list_versions,
    log_model,
    register_model,
)
from loopline.registry.promotion import promote, promotion_history, rollback

from .conftest import LABELS, MlflowStore

TEXTS = ["I want my money back", "where is my parcel?", "why was I charged twice"]


@pytest.fixture(scope="module")
def logged(mlflow_store: MlflowStore, tiny_classifier_dir: Path) -> tuple[str, str]:
    """Log the tiny classifier once for the module (each logging takes seconds); (model URI, run id)."""
    with mlflow.start_run(experiment_id=mlflow_store.experiment_id) as run:
        mlflow.log_metric("test_macro_f1", 0.42)
        mlflow.log_param("dataset_version", "ds-run")
        uri = log_model(tiny_classifier_dir, max_length=32)
    return uri, run.info.run_id


def register(uri: str, name: str, versions: int = 1, tags: dict[str, str] | None = None) -> None:
    for _ in range(versions):
        register_model(uri, name, tags=tags)


def test_log_model_records_signature_requirements_and_labels(logged: tuple[str, str]) -> None:
    uri, run_id = logged
    assert uri.startswith("models:/")
    info = mlflow.models.get_model_info(uri)
    assert info.run_id == run_id
    assert info.signature.inputs.input_names() == ["text"]
    assert info.signature.outputs.input_names() == ["label", "confidence"]
    assert info.metadata["loopline_labels"] == LABELS
    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().split()
    pinned = {line.split("==")[0] for line in requirements if "==" in line}
    assert {"torch", "transformers", "mlflow", "pandas", "safetensors"} <= pinned
    assert not any("+cpu" in line for line in requirements)


def test_log_model_rejects_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a saved transformers model"):
        log_model(tmp_path)


def test_register_promote_and_load_alias_in_a_fresh_process(
    logged: tuple[str, str], mlflow_store: MlflowStore, tiny_classifier_dir: Path
) -> None:
    version = register_model(logged[0], "served", tags={"loopline.dataset_version": "ds-1"})
    assert (str(version.version), version.status) == ("1", "READY")
    assert version.tags["loopline.dataset_version"] == "ds-1"
    event = promote("served", 1, actor="tester", reason="first model")
    assert (event.version, event.previous_version, event.kind) == ("1", None, "promotion")

    # A fresh interpreter where importing loopline is impossible: only mlflow, torch and transformers.
    code = (
        "import sys, json; sys.modules['loopline'] = None\n"
        "import mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/served@production')\n"
        f"out = model.predict(pd.DataFrame({{'text': {TEXTS!r}}}))\n"
        "print(json.dumps({'label': out['label'].tolist(), 'confidence': out['confidence'].tolist()}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store.tracking_uri}
    command = [sys.executable, "-c", code]  # a fresh interpreter
    done = subprocess.run(command, env=env, cwd=mlflow_store.root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])

    from loopline.registry.pyfunc import TextClassifierModel

    local = TextClassifierModel()
    local.load_context(SimpleNamespace(artifacts={"model": str(tiny_classifier_dir)}, model_config={}))
    expected = local.predict(None, pd.DataFrame({"text": TEXTS}), params={"max_length": 32})
    assert served["label"] == expected["label"].tolist()
    assert set(served["label"]) <= set(LABELS)
    assert served["confidence"] == pytest.approx(expected["confidence"].tolist(), abs=1e-5)


def test_promotion_history_and_rollback(logged: tuple[str, str], mlflow_store: MlflowStore) -> None:
    register(logged[0], "history", versions=2)
    first = promote("history", 1, actor="alice", reason="first", gate_report={"passed": True, "checks": []})
    second = promote("history", "2", actor="bob", reason="better on feedback")
    assert str(get_alias_version("history", "production").version) == "2"
    assert (second.previous_version, second.gate_passed) == ("1", None)

    events = promotion_history("history", "production")
    assert [(e.version, e.previous_version, e.actor, e.kind) for e in events] == [
        ("1", None, "alice", "promotion"),
        ("2", "1", "bob", "promotion"),
    ]
    assert events[0].gate_passed is True and events[0].run_id == first.run_id

    back = rollback("history", actor="carol", reason="complaints")
    assert (back.kind, back.version, back.previous_version, back.actor) == ("rollback", "1", "2", "carol")
    assert str(get_alias_version("history", "production").version) == "1"
    assert [e.kind for e in promotion_history("history")] == ["promotion", "promotion", "rollback"]

    # The history lives in MLflow: a run per event, gate report as an artifact, beside the model's artifacts.
    client = MlflowClient()
    run = client.get_run(first.run_id)
    assert run.data.tags["loopline.event"] == "promotion"
    assert run.data.params["reason"] == "first"
    report_path = mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="gate_report.json")
    assert json.loads(Path(report_path).read_text())["passed"] is True
    experiment = client.get_experiment_by_name("history-promotions")
    assert experiment.artifact_location.startswith(mlflow_store.artifact_location)

    # Promoting the version that already holds the alias changes and records nothing.
    same = promote("history", 1, actor="dave")
    assert same.kind == "unchanged" and same.run_id is None
    assert len(promotion_history("history")) == 3


def test_promotion_refuses_a_failed_gate_unless_forced(logged: tuple[str, str]) -> None:
    register(logged[0], "gated")
    register(logged[0], "gated", tags={GATE_TAG: "failed"})
    with pytest.raises(RegistryError, match="gate failed") as err:
        promote("gated", 2, actor="alice", reason="try")
    assert "loopline.gate=failed on version 2" in str(err.value)
    assert get_alias_version("gated", "production") is None
    with pytest.raises(RegistryError, match="passed=false"):
        promote("gated", 1, gate_report={"passed": False})

    forced = promote("gated", 2, actor="alice", reason="hotfix, accepted risk", force=True)
    assert forced.gate_passed is False
    run = MlflowClient().get_run(forced.run_id)
    assert run.data.params["forced"] == "true"
    assert str(get_alias_version("gated", "production").version) == "2"


def test_clear_errors_for_unknown_model_version_alias_and_history(logged: tuple[str, str]) -> None:
    with pytest.raises(RegistryError, match="No registered model named 'nope'"):
        promote("nope", 1)
    register(logged[0], "errors")
    with pytest.raises(RegistryError, match="has no version '7'") as err:
        promote("errors", 7)
    assert "Existing versions: [1]" in str(err.value)
    assert get_alias_version("errors", "staging") is None
    with pytest.raises(RegistryError, match="not a usable alias"):
        promote("errors", 1, alias="prod uction")
    with pytest.raises(RegistryError, match="no promotion of this alias is recorded"):
        rollback("errors")
    promote("errors", 1, alias="staging")
    with pytest.raises(RegistryError, match="first version"):
        rollback("errors", alias="staging")
    with pytest.raises(RegistryError, match="Could not register"):
        register_model("models:/m-doesnotexist", "errors")


def test_list_versions(logged: tuple[str, str]) -> None:
    register(logged[0], "listed")
    register(logged[0], "listed", tags={"loopline.dataset_version": "ds-2", GATE_TAG: "passed"})
    promote("listed", 2)
    versions = list_versions("listed")
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[0].aliases == [] and versions[1].aliases == ["production"]
    assert versions[0].data_version == "ds-run"  # from the training run's params
    assert versions[1].data_version == "ds-2"  # a version tag wins
    assert versions[1].tags[GATE_TAG] == "passed"
    assert versions[0].metrics == {"test_macro_f1": 0.42}
    assert versions[0].created.endswith("+00:00") and versions[0].status == "READY"
    json.dumps([v.to_dict() for v in versions])
