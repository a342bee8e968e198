"""train_flow wiring on the tiny random model: what lands in MLflow, and what bad input leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from loopline.errors import ContractViolation, DataError, GateFailed
from loopline.flows.train_flow import train_flow
from loopline.processes import current_user
from tests.integration.conftest import tiny_overrides

pytestmark = pytest.mark.integration


@pytest.fixture()
def small_train_csv(tmp_path: Path, demo_files: dict[str, Path]) -> Path:
    frame = pd.read_csv(demo_files["train"]).groupby("label").head(40)
    path = tmp_path / "support.csv"
    frame.rename(columns={"text": "t", "label": "y"}).to_csv(path, index=False)
    return path


def _registered_names(home: Path) -> list[str]:
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    return [m.name for m in MlflowClient().search_registered_models()]


def test_train_flow_registers_and_promotes_with_lineage(
    tmp_path: Path, tiny_model_dir: Path, small_train_csv: Path
):
    home = tmp_path / "home"
    summary = train_flow(
        str(small_train_csv),
        text_column="t",
        label_column="y",
        overrides=tiny_overrides(home, tiny_model_dir),
    )

    assert summary["version"] == "1"
    assert summary["aliases"] == ["candidate", "production"]
    client = MlflowClient()
    version = client.get_model_version_by_alias("loopline-classifier", "production")
    for tag in (
        "loopline.dataset_version",
        "loopline.dataset_hash",
        "loopline.base_model",
        "loopline.git_commit",
        "loopline.prefect_flow_run_id",
        "loopline.run_id",
    ):
        assert version.tags.get(tag), f"missing lineage tag {tag}"
    assert version.tags["loopline.gate"] == "passed"
    assert version.tags["loopline.dataset_version"] == summary["dataset_version"]

    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert "training.learning_rate" in run.data.params
    assert {"test.accuracy", "test.macro_f1", "train.samples_per_s"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "epoch.val_macro_f1")) == 1
    assert run.inputs.dataset_inputs[0].dataset.name == summary["dataset_version"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"contract", "evaluation", "gate", "training", "data_docs"} <= artifacts
    nested = {
        a.path
        for d in ("evaluation", "training", "gate", "data_docs")
        for a in client.list_artifacts(run.info.run_id, d)
    }
    assert {"training/results.json", "gate/gate_report.json", "evaluation/confusion_test.png"} <= nested
    assert {"data_docs/index.html", "data_docs/validations"} <= nested  # the contract's GX Data Docs
    results = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="training/results.json")
        ).read_text()
    )
    assert results["epochs_run"] == 1

    # The run explains itself, and the version carries its model card (the MLflow UI renders it).
    assert run.data.tags["mlflow.runName"] == f"train v1 ({int(run.data.params['train_rows']):,} rows)"
    assert run.data.tags["mlflow.user"] == current_user()
    assert run.data.tags["mlflow.source.name"] == "loopline.flows.train_flow"
    card = client.get_model_version("loopline-classifier", "1").description
    assert card.startswith("# Model card: loopline-classifier v1\n")
    assert "## Intended use" in card and "| `test.accuracy` |" in card
    assert f"`{summary['dataset_version']}`" in card
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/model_card.md")
    assert logged == card
    gate_md = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/gate/gate_report.md")
    assert gate_md.startswith("# Gate PASSED") and "| check | value | threshold | passed |" in gate_md
    assert "candidate" in client.get_registered_model("loopline-classifier").description


def test_missing_label_column_fails_before_anything_is_registered(
    tmp_path: Path, tiny_model_dir: Path, small_train_csv: Path
):
    home = tmp_path / "home"
    with pytest.raises(DataError, match="--label-col"):
        train_flow(str(small_train_csv), text_column="t", overrides=tiny_overrides(home, tiny_model_dir))
    assert _registered_names(home) == []


def test_single_label_file_stops_at_the_contract(tmp_path: Path, tiny_model_dir: Path):
    home = tmp_path / "home"
    path = tmp_path / "one_label.csv"
    pd.DataFrame({"text": [f"where is my card number {i}" for i in range(30)], "label": "card"}).to_csv(path)
    with pytest.raises(ContractViolation) as err:
        train_flow(str(path), overrides=tiny_overrides(home, tiny_model_dir))
    assert "label" in str(err.value)
    assert _registered_names(home) == []


def test_failed_gate_registers_nothing(tmp_path: Path, tiny_model_dir: Path, small_train_csv: Path):
    home = tmp_path / "home"
    overrides = tiny_overrides(home, tiny_model_dir, gate={"min_macro_f1": 0.999, "min_accuracy": 0.999})
    with pytest.raises(GateFailed, match="macro"):
        train_flow(str(small_train_csv), text_column="t", label_column="y", overrides=overrides)
    assert _registered_names(home) == []
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("loopline").experiment_id], "tags.`loopline.gate` = 'failed'"
    )
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
