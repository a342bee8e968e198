"""plan_retrain and finish_retrain on real files: frames, new labels, and the growing regression set; the
retrain lock and the decisions a round records."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from loopline.config import Settings
from loopline.data.demo import generate_demo_dataset
from loopline.data.replay import ReplayBuffer
from loopline.data.snapshots import save_snapshot
from loopline.errors import GateFailed
from loopline.evaluation.gate import GateReport
from loopline.feedback.store import FeedbackStore
from loopline.pipeline.champion import Champion
from loopline.pipeline.retrain import (
    RETRAIN_LOCK,
    drift_state,
    finish_retrain,
    plan_retrain,
    record_gate_failed,
    record_retrain_registered,
    record_retrain_skipped,
    regression_path,
    retrain_lock,
)


def _champion(settings: Settings, tmp_path: Path) -> Champion:
    base = generate_demo_dataset(n_rows=400, seed=0)[["text", "label"]]
    version = save_snapshot(base, settings.data_dir, source="bootstrap").version
    model_dir = tmp_path / "champion"
    model_dir.mkdir()
    labels = sorted(base["label"].unique())
    (model_dir / "config.json").write_text(
        json.dumps({"id2label": dict(enumerate(labels)), "architectures": ["BertForSequenceClassification"]})
    )
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


def test_replay_max_share_repeats_a_small_batch_so_replay_does_not_drown_it(
    settings: Settings, tmp_path: Path
) -> None:
    champion = _champion(settings, tmp_path)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        _accept(store, _feedback("crypto_transfer", 20), "round1")
        once = plan_retrain(settings, store, champion, tmp_path / "once")
        shared = settings.model_copy(update={"replay": settings.replay.model_copy(update={"max_share": 0.5})})
        mixed = plan_retrain(shared, store, champion, tmp_path / "mixed")

    batch = once.frame("feedback_train")
    assert mixed.frame("feedback_train").equals(batch)  # the holdouts and the batch itself are unchanged
    replay_rows = len(once.frame("train")) - len(batch)
    assert replay_rows > 4 * len(batch), "the test needs a buffer that outweighs the batch"
    train = mixed.frame("train")
    counts = train["text"].value_counts()
    repeats = counts[batch["text"]].unique()
    assert len(repeats) == 1 and repeats[0] > 1  # every batch row equally often
    assert mixed.feedback_repeats == repeats[0] and once.feedback_repeats == 1
    batch_rows = repeats[0] * len(batch)
    assert len(train) - batch_rows == replay_rows  # every replay row still trains, once
    assert replay_rows / len(train) <= 0.5 < replay_rows / (len(train) - len(batch))  # no more than needed


def test_retrain_lock_is_held_for_the_block_and_refused_meanwhile(tmp_path: Path) -> None:
    with FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}") as store:
        with retrain_lock(store, "host:1:a") as held:
            assert held
            with retrain_lock(store, "host:2:b") as second:
                assert not second
        assert store.acquire_lock(RETRAIN_LOCK, "host:3:c", stale_after=timedelta(hours=1))


def test_a_round_s_decisions_say_whether_it_completed(settings: Settings, tmp_path: Path) -> None:
    champion = _champion(settings, tmp_path)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        _accept(store, _feedback("crypto_transfer", 50), "round1")
        plan = plan_retrain(settings, store, champion, tmp_path / "round1")
        record_retrain_skipped(store, "manual", "skipped: another retrain holds the lock")
        assert store.last_retrain_at() is None  # a skipped round starts no cooldown
        before = datetime.now(UTC)
        record_gate_failed(store, "manual", GateFailed("macro-F1 too low"), "1", "run-1")
        failed = store.last_decision("retrain")
        assert failed is not None and failed.details == {
            "status": "completed",
            "gate": "failed",
            "trigger": "manual",
        }
        assert (failed.reason, failed.model_version, failed.run_id) == (
            "gate failed: macro-F1 too low.",
            "1",
            "run-1",
        )
        gate = GateReport(passed=True, checks=[], candidate={}, champion=None)
        record_retrain_registered(
            store, "monitor: drift", plan, gate, "2", ("candidate", "production"), "run-2"
        )
        registered = store.last_decision("retrain")
        assert registered is not None and registered.reason == "registered v2 (candidate, production)"
        assert (
            registered.details["new_labels"] == ["crypto_transfer"] and registered.details["gate"] == "passed"
        )
        last = store.last_retrain_at()
        assert last is not None and last >= before


def test_a_plan_counts_feedback_rows_per_batch_and_records_the_drift_state(
    settings: Settings, tmp_path: Path
) -> None:
    champion = _champion(settings, tmp_path)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        assert drift_state(store) == "no monitoring check was recorded before this round"
        _accept(store, _feedback("crypto_transfer", 30), "round1")
        _accept(store, _feedback("crypto_transfer", 12, start=30), "round2")
        store.record_decision(
            "monitor",
            True,
            "Retrain: drift detected (novel share 0.4).",
            {
                "drift": {"novelty_alarm": True, "label_alarm": False},
                "checks": {"drift_detected": True},
                "window_size": 42,
            },
            model_version="1",
        )
        plan = plan_retrain(settings, store, champion, tmp_path / "round")
    assert sorted(plan.batch_rows.values()) == [12, 30] and set(plan.batch_rows) == set(plan.batch_ids)
    assert plan.drift_state.startswith("drift detected (signals: novelty) by the monitor check of ")
    assert plan.drift_state.endswith("on v1 (42 rows): Retrain: drift detected (novel share 0.4).")
