"""Packaging: a saved classifier logged as a self-contained pyfunc, registered, loaded without loopline."""

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

from loopline.errors import RegistryError
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import promote

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
    assert "UserWarning" not in done.stderr, done.stderr[-3000:]  # e.g. MLflow on predict's type hints
    served = json.loads(done.stdout.strip().splitlines()[-1])

    from loopline.registry.pyfunc import TextClassifierModel

    local = TextClassifierModel()
    local.load_context(SimpleNamespace(artifacts={"model": str(tiny_classifier_dir)}, model_config={}))
    expected = local.predict(None, pd.DataFrame({"text": TEXTS}), params={"max_length": 32})
    assert served["label"] == expected["label"].tolist()
    assert set(served["label"]) <= set(LABELS)
    assert served["confidence"] == pytest.approx(expected["confidence"].tolist(), abs=1e-5)
