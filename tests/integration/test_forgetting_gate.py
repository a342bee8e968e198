"""The forgetting gate on the packaged MiniLM: feedback of a new label only, replay off → blocked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from flows.feedback_flow import feedback_flow
from flows.retrain_flow import retrain_flow
from flows.train_flow import train_flow
from mlflow import MlflowClient

from loopline.data.demo import NEW_INTENT, generate_feedback_batch
from loopline.errors import GateFailed
from loopline.feedback.store import FeedbackStore

pytestmark = pytest.mark.integration


def test_collapse_of_old_classes_is_blocked_by_the_forgetting_gate(
    tmp_path: Path, demo_files: dict[str, Path]
):
    home = tmp_path / "home"
    overrides = {"home": str(home), "training": {"epochs": 2}, "replay": {"per_class": 0}}
    train_csv = tmp_path / "train.csv"
    pd.read_csv(demo_files["train"]).groupby("label").head(60).to_csv(train_csv, index=False)
    train_flow(str(train_csv), overrides=overrides)
    only_new = generate_feedback_batch("drifted", 600, seed=5)
    only_new = only_new[only_new["label"] == NEW_INTENT]
    feedback_csv = tmp_path / "only_new.csv"
    only_new.to_csv(feedback_csv, index=False)
    intake = feedback_flow(str(feedback_csv), overrides=overrides)
    assert intake["batch_status"] == "accepted"

    with pytest.raises(GateFailed) as err:
        retrain_flow(overrides=overrides)

    message = str(err.value)
    assert "forgetting" in message and "recall" in message
    failed = [c.name for c in err.value.report.failed_checks]  # type: ignore[attr-defined]
    assert any(name.endswith(".forgetting") for name in failed)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("loopline-classifier", "production").version) == "1"
    assert len(client.search_model_versions("name='loopline-classifier'")) == 1
    with FeedbackStore(f"sqlite:///{home / 'feedback.db'}") as store:
        decision = store.last_decision("retrain")
        assert decision is not None and decision.details["gate"] == "failed"
        assert len(store.accepted_unused_feedback()) == intake["accepted"]  # not consumed by a blocked round
