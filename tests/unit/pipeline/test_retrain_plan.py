"""plan_retrain and finish_retrain on real files: frames, new labels, and the growing regression set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from loopline.config import Settings
from loopline.data.demo import generate_demo_dataset
from loopline.data.replay import ReplayBuffer
from loopline.data.snapshots import save_snapshot
from loopline.feedback.store import FeedbackStore
from loopline.pipeline.champion import Champion
from loopline.pipeline.retrain import finish_retrain, plan_retrain, regression_path


def _champion(settings: Settings, tmp_path: Path) -> Champion:
    base = generate_demo_dataset(n_rows=400, seed=0)[["text", "label"]]
    version = save_snapshot(base, settings.data_dir, source="bootstrap").version
    model_dir = tmp_path / "champion"
    model_dir.mkdir()
    labels = sorted(base["label"].unique())
    (model_dir / "config.json").write_text(json.dumps({"id2label": dict(enumerate(labels))}))
    return Champion("1", model_dir, {"loopline.test_version": version})


def _accept(store: FeedbackStore, rows: pd.DataFrame, name: str) -> None:
    store.import_feedback(rows, source=name, content_hash=hashlib.sha256(name.encode()).hexdigest())
    store.mark_accepted(store.pending_feedback()["id"].tolist())


def _feedback(label: str, n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": [f"{label} message number {i}" for i in range(start, start + n)], "label": label}
    )


def test_regression_set_collects_past_holdouts_so_later_rounds_check_new_labels(
    settings: Settings, tmp_path: Path
) -> None:
    champion = _champion(settings, tmp_path)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        _accept(store, _feedback("crypto_transfer", 50), "round1")
        first = plan_retrain(settings, store, champion, tmp_path / "round1")
        # No past round yet: the regression set would only repeat the frozen test set.
        assert first.eval_sets == ["test", "feedback"]
        assert first.new_labels == ["crypto_transfer"]
        holdout = first.frame("feedback")
        assert set(holdout["label"]) == {"crypto_transfer"} and len(holdout) == 10
        train_texts = set(first.frame("train")["text"])
        assert not train_texts & set(holdout["text"]), "a holdout row must never be trained on"

        finish_retrain(settings, store, first, "2")
        assert len(ReplayBuffer.load(regression_path(settings))) == len(holdout)

        _accept(store, _feedback("billing", 30, start=100), "round2")
        second = plan_retrain(settings, store, champion, tmp_path / "round2")
        assert second.eval_sets == ["test", "regression", "feedback"]
        regression = second.frame("regression")
        test = second.frame("test")
        assert len(regression) == len(test) + len(holdout)
        assert set(holdout["text"]) <= set(regression["text"])
        assert "crypto_transfer" in set(regression["label"])  # learnt in round 1, checked in round 2
        assert not set(second.frame("train")["text"]) & set(regression["text"])


def test_regression_set_off_keeps_the_test_set_alone(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(
        update={"gate": settings.gate.model_copy(update={"regression_per_class": 0})}
    )
    champion = _champion(settings, tmp_path)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        _accept(store, _feedback("crypto_transfer", 50), "round1")
        plan = plan_retrain(settings, store, champion, tmp_path / "round1")
        finish_retrain(settings, store, plan, "2")
        assert not regression_path(settings).exists()
        assert store.accepted_unused_feedback().empty
