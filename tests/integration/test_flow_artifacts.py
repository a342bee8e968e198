"""Each flow run shows what it decided in the Prefect UI: artifacts under stable keys on the run, and a run
name with the version or batch (tiny model; the session's temporary Prefect server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import State

from loopline.flows.artifacts import CONTRACT_KEY, DRIFT_KEY, FEEDBACK_CONTRACT_KEY, GATE_KEY, PROMOTION_KEY
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.monitor_flow import monitor_flow
from loopline.flows.train_flow import train_flow
from tests.integration.conftest import tiny_overrides

pytestmark = pytest.mark.integration


def _run(state: State[Any]) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The flow's summary, its run's name and its artifacts (key → Markdown)."""
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(run_id).name
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))]))
        )
    return state.result(), name, {str(a.key): str(a.data) for a in found}


def test_train_feedback_and_monitor_runs_publish_what_they_decided(
    tmp_path: Path, tiny_model_dir: Path, demo_files: dict[str, Path]
) -> None:
    # No retrain: the monitor records its decision and stops (the gate artifact comes from train_flow).
    overrides = tiny_overrides(
        tmp_path / "home", tiny_model_dir, monitor={"min_labelled_feedback": 100_000, "reference_size": 200}
    )
    train_csv, feedback_csv = tmp_path / "train.csv", tmp_path / "feedback.csv"
    pd.read_csv(demo_files["train"]).groupby("label").head(25).to_csv(train_csv, index=False)
    pd.read_csv(demo_files["feedback_round2"]).head(150).to_csv(feedback_csv, index=False)

    trained, train_name, train_artifacts = _run(
        train_flow(str(train_csv), overrides=overrides, return_state=True)
    )
    assert train_name == "train train.csv → v1"
    assert set(train_artifacts) == {CONTRACT_KEY, GATE_KEY, PROMOTION_KEY}
    assert train_artifacts[CONTRACT_KEY].startswith("# Training-data contract: passed")
    assert (
        f"| 250 | {250 - trained['quarantined_rows']} | {trained['quarantined_rows']} | 0 |"
        in (train_artifacts[CONTRACT_KEY])
    )
    checks = trained["gate"]["checks"]
    assert train_artifacts[GATE_KEY].startswith(f"# Gate passed ({len(checks)}/{len(checks)} checks)")
    assert all(f"| {check['name']} | ok |" in train_artifacts[GATE_KEY] for check in checks)
    assert "`candidate`, `production`" in train_artifacts[PROMOTION_KEY]

    intake, feedback_name, feedback_artifacts = _run(
        feedback_flow(str(feedback_csv), overrides=overrides, return_state=True)
    )
    assert feedback_name == f"feedback batch {intake['batch_id']}"
    assert set(feedback_artifacts) == {FEEDBACK_CONTRACT_KEY}
    assert (
        f"| 150 | {intake['accepted']} | {intake['quarantined']} |"
        in feedback_artifacts[FEEDBACK_CONTRACT_KEY]
    )

    monitored, monitor_name, monitor_artifacts = _run(
        monitor_flow(trigger="none", overrides=overrides, return_state=True)
    )
    assert monitor_name == f"monitor v1: {monitored['window_size']} feedback rows → no retrain"
    assert set(monitor_artifacts) == {DRIFT_KEY}
    decision = monitor_artifacts[DRIFT_KEY]
    assert decision.startswith("# Monitor decision: no retrain") and monitored["reason"] in decision
    novelty = monitored["drift"]["novelty"]
    assert f"| novelty | {novelty['novel_share']:.1%} novel ({novelty['novel_count']} texts) |" in decision
