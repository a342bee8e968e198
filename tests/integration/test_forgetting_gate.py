"""The forgetting gate on the packaged MiniLM: a retrain that really wipes out an old class is blocked.

Feedback of a new label alone does not make MiniLM forget here: best-epoch selection on a validation
set that holds the old classes keeps them. What does is an intent split gone wrong: feedback that
files one old intent's messages under a new label, with replay off. That class's recall collapses,
and the gate must name it, significantly, among otherwise healthy classes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from loopline.data.demo import DEMO_INTENTS, NEW_INTENT, generate_demo_dataset
from loopline.errors import GateFailed
from loopline.feedback.store import FeedbackStore
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.retrain_flow import retrain_flow
from loopline.flows.train_flow import train_flow

pytestmark = pytest.mark.integration


def test_collapse_of_old_classes_is_blocked_by_the_forgetting_gate(
    tmp_path: Path, demo_files: dict[str, Path]
):
    home = tmp_path / "home"
    overrides = {"home": str(home), "training": {"epochs": 2}, "replay": {"per_class": 0}}
    train_csv = tmp_path / "train.csv"
    pd.read_csv(demo_files["train"]).groupby("label").head(60).to_csv(train_csv, index=False)
    train_flow(str(train_csv), overrides=overrides)
    victim = DEMO_INTENTS[0]
    fresh = generate_demo_dataset(n_rows=3000, seed=99)  # another seed: texts unlike the training rows
    relabelled = fresh[fresh["label"] == victim].head(200).assign(label=NEW_INTENT)
    feedback_csv = tmp_path / "relabelled.csv"
    relabelled.to_csv(feedback_csv, index=False)
    intake = feedback_flow(str(feedback_csv), overrides=overrides)
    assert intake["batch_status"] == "accepted"

    with pytest.raises(GateFailed) as err:
        retrain_flow(overrides=overrides)

    message = str(err.value)
    assert "forgetting" in message and "recall" in message
    checks = err.value.report.failed_checks  # type: ignore[attr-defined]
    forgetting = next(check for check in checks if check.name.endswith(".forgetting"))
    assert "(significant at p<=0.05)" in forgetting.detail
    assert f"class '{victim}' recall" in forgetting.detail, forgetting.detail
    assert forgetting.value is not None and forgetting.value >= 0.5  # a collapse, not one unlucky row
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("loopline-classifier", "production").version) == "1"
    assert len(client.search_model_versions("name='loopline-classifier'")) == 1
    with FeedbackStore(f"sqlite:///{home / 'feedback.db'}") as store:
        decision = store.last_decision("retrain")
        assert decision is not None and decision.details["gate"] == "failed"
        assert len(store.accepted_unused_feedback()) == intake["accepted"]  # not consumed by a blocked round
