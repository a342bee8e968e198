"""The whole loop on the packaged MiniLM and the demo stream: bootstrap, three feedback rounds, then a
served round (real HTTP service: traffic, labels back, drift on the served window, retrain, swap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from loopline.data.demo import NEW_INTENT, minimum_functionality_examples
from loopline.flows.demo_flow import demo_flow
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.monitor_flow import monitor_flow

pytestmark = pytest.mark.integration
MODEL = "loopline-classifier"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_files: dict[str, Path]) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("demo-home")
    mft = home / "mft.csv"
    minimum_functionality_examples().to_csv(mft, index=False)
    overrides = {"home": str(home), "mft_path": str(mft), "training": {"epochs": 3}}
    result = demo_flow({k: str(v) for k, v in demo_files.items()}, overrides)
    return {"result": result, "overrides": overrides, "home": home}


def _checks(gate: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    return [c for c in gate["checks"] if c["name"].endswith(suffix)]


def test_bootstrap_reaches_macro_f1_and_is_production(demo_run: dict[str, Any]) -> None:
    bootstrap = demo_run["result"]["bootstrap"]
    assert bootstrap["version"] == "1"
    run = MlflowClient().get_run(bootstrap["run_id"])
    assert run.data.metrics["test.macro_f1"] >= 0.85


def test_round_one_in_distribution_does_not_retrain(demo_run: dict[str, Any]) -> None:
    first = demo_run["result"]["rounds"][0]
    assert first["intake"]["batch_status"] == "accepted"
    assert first["monitor"]["drift"]["drift_detected"] is False
    assert first["monitor"]["retrain"] is False


def test_round_two_drift_retrains_learns_new_intent_without_forgetting(demo_run: dict[str, Any]) -> None:
    second = demo_run["result"]["rounds"][1]
    assert second["monitor"]["drift"]["drift_detected"] is True
    retrain = second["monitor"]["retrain_result"]
    assert retrain["status"] == "promoted" and retrain["version"] == "2"
    assert retrain["new_labels"] == [NEW_INTENT]
    gate = retrain["gate"]
    assert gate["passed"]
    forgetting = _checks(gate, ".forgetting")
    assert forgetting and all(check["passed"] for check in forgetting), forgetting
    # No old class lost more than 2 points of recall on the frozen base test set.
    eval_dir = Path(demo_run["home"]) / "runs" / retrain["run_id"] / "evaluation"
    candidate = json.loads((eval_dir / "eval_test.json").read_text())
    champion_run = MlflowClient().get_run(demo_run["result"]["bootstrap"]["run_id"])
    champion_eval = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=champion_run.info.run_id, artifact_path="evaluation/eval_test.json"
            )
        ).read_text()
    )
    for label, stats in champion_eval["metrics"]["per_class"].items():
        assert candidate["metrics"]["per_class"][label]["recall"] >= stats["recall"] - 0.02, label


def test_round_three_corrupted_batch_is_quarantined_and_ignored(demo_run: dict[str, Any]) -> None:
    third = demo_run["result"]["rounds"][2]
    assert third["intake"]["batch_status"] == "rejected"
    assert third["intake"]["accepted"] == 0 and third["intake"]["quarantined"] > 0
    assert third["monitor"]["retrain"] is False


def test_round_four_served_traffic_drifts_retrains_and_the_service_follows(demo_run: dict[str, Any]) -> None:
    fourth = demo_run["result"]["rounds"][3]
    served, monitor = fourth["served"], fourth["monitor"]
    assert served["answered_by"] == {"2": 300} and served["runtime"] == "onnx"
    assert 200 <= served["labelled"] <= 280  # about 80% of the answers got their label back
    assert fourth["intake"]["batch_status"].endswith("accepted")  # the API labels passed the contract
    assert monitor["window_source"] == "served" and monitor["window_size"] == 300
    assert monitor["drift"]["drift_detected"] is True
    retrain = monitor["retrain_result"]
    assert retrain["status"] == "promoted" and retrain["version"] == "3" and retrain["gate"]["passed"]
    assert served["promoted"] == "3" and served["service_followed"] and served["served_now"] == "3"


def test_registry_keeps_every_version_and_serves_the_last_in_a_fresh_process(
    demo_run: dict[str, Any],
) -> None:
    client = MlflowClient()
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{MODEL}'")}
    assert set(versions) == {"1", "2", "3"}
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "3"
    assert versions["2"].tags["loopline.parent_version"] == "1"
    assert versions["3"].tags["loopline.parent_version"] == "2"
    code = (
        "import mlflow, pandas as pd, sys; mlflow.set_tracking_uri(sys.argv[1]);"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@production');"
        "texts = ['send bitcoin to my crypto wallet', 'my card has not arrived yet'];"
        "print(m.predict(pd.DataFrame({'text': texts})).to_json(orient='records'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, mlflow.get_tracking_uri()],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    predictions = pd.DataFrame(json.loads(out.stdout.strip().splitlines()[-1]))
    assert list(predictions.columns[:2]) == ["label", "confidence"]
    assert predictions["label"].iloc[0] == NEW_INTENT


def test_rerunning_a_round_neither_duplicates_feedback_nor_retrains(
    demo_run: dict[str, Any], demo_files: dict[str, Path]
) -> None:
    intake = feedback_flow(str(demo_files["feedback_round2"]), overrides=demo_run["overrides"])
    assert intake["already_imported"] and intake["rows_added"] == 0
    again = monitor_flow(trigger="subflow", overrides=demo_run["overrides"])
    assert again["retrain"] is False
    assert len(MlflowClient().search_model_versions(f"name='{MODEL}'")) == 3
