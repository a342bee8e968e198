"""FeedbackStore on SQLite: recorded decisions, the last retraining time and the retrain lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from loopline.feedback import FeedbackStore

HOUR = timedelta(hours=1)


def test_decisions_are_recorded_newest_first(store: FeedbackStore) -> None:
    first = store.record_decision("monitor", False, "no drift", {"drift_share": 0.01})
    second = store.record_decision(
        "retrain", True, "drift", {"status": "started", "rows": 120}, model_version="3", run_id="r1"
    )
    third = store.record_decision("monitor", True, "decay", {"at": datetime(2025, 1, 1, tzinfo=UTC)})

    assert [d.id for d in store.decisions()] == [third, second, first]
    assert [d.id for d in store.decisions("monitor")] == [third, first]
    assert [d.id for d in store.decisions(limit=1)] == [third]
    retrain = store.last_decision("retrain")
    assert retrain is not None
    assert (retrain.retrain, retrain.reason, retrain.model_version, retrain.run_id) == (
        True,
        "drift",
        "3",
        "r1",
    )
    assert retrain.details == {"status": "started", "rows": 120}
    assert retrain.created_at.tzinfo == UTC
    assert store.decisions()[0].details == {"at": "2025-01-01 00:00:00+00:00"}  # JSON-safe
    assert store.decisions()[0].to_dict()["kind"] == "monitor"
    assert store.last_decision("skip") is None
    with pytest.raises(ValueError, match="decision kind"):
        store.record_decision("deploy", False, "?", {})


def test_last_retrain_at_counts_only_completed_retrains(store: FeedbackStore) -> None:
    assert store.last_retrain_at() is None
    store.record_decision("retrain", True, "drift", {"status": "started"})
    store.record_decision("retrain", False, "cooldown", {"status": "completed"})  # not a retrain
    store.record_decision("monitor", True, "decay", {"status": "completed"})  # not a retrain decision
    assert store.last_retrain_at() is None

    completed = store.record_decision("retrain", True, "drift", {"status": "completed", "version": "4"})
    store.record_decision("retrain", True, "drift", {"status": "failed"})

    expected = next(d.created_at for d in store.decisions("retrain") if d.id == completed)
    assert store.last_retrain_at() == expected


def test_lock_is_exclusive_until_released(store: FeedbackStore) -> None:
    assert store.acquire_lock("retrain", "run-a", stale_after=HOUR)
    assert not store.acquire_lock("retrain", "run-b", stale_after=HOUR)
    assert not store.acquire_lock("retrain", "run-a", stale_after=HOUR)  # not re-entrant
    assert store.acquire_lock("other", "run-b", stale_after=HOUR)  # locks are per name

    assert not store.release_lock("retrain", "run-b")  # only the holder releases
    assert not store.acquire_lock("retrain", "run-b", stale_after=HOUR)
    assert store.release_lock("retrain", "run-a")
    assert store.acquire_lock("retrain", "run-b", stale_after=HOUR)


def test_stale_lock_is_taken_over(store: FeedbackStore) -> None:
    assert store.acquire_lock("retrain", "crashed-run", stale_after=HOUR)

    assert not store.acquire_lock("retrain", "run-b", stale_after=HOUR)
    assert store.acquire_lock("retrain", "run-b", stale_after=timedelta(0))

    assert not store.release_lock("retrain", "crashed-run")  # it lost the lock
    assert not store.acquire_lock("retrain", "run-c", stale_after=HOUR)
    assert store.release_lock("retrain", "run-b")


def test_only_one_of_many_concurrent_holders_gets_the_lock(store_url: str) -> None:
    FeedbackStore(store_url).close()  # create the schema before the race
    barrier = threading.Barrier(6)
    won: list[str] = []

    def contend(holder: str) -> None:
        with FeedbackStore(store_url) as own:
            barrier.wait()
            if own.acquire_lock("retrain", holder, stale_after=HOUR):
                won.append(holder)

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1
