"""FeedbackStore against a real PostgreSQL: the core checks of the SQLite unit tests.

Runs when ``LOOPLINE_TEST_POSTGRES_URL`` names a database the tests may create schemas in, e.g.
``postgresql+psycopg://loopline:loopline@localhost:5432/loopline_test``. Each test works in its own
fresh schema (dropped afterwards), so nothing else in that database is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loopline.feedback import FeedbackStore, FeedbackStoreError, ImportResult, PredictionRecord

POSTGRES_URL = os.environ.get("LOOPLINE_TEST_POSTGRES_URL")

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="LOOPLINE_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://user:pass@host:5432/db)",
    ),
]
HOUR = timedelta(hours=1)


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema of their own (search_path), dropped afterwards."""
    assert POSTGRES_URL is not None
    schema = f"loopline_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture()
def store(pg_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore(pg_url) as opened:
        yield opened


def _write_feedback(path: Path, n_rows: int = 6) -> Path:
    pd.DataFrame(
        {
            "text": [None if i == 2 else f"msg {i}" for i in range(n_rows)],
            "label": ["billing" if i % 2 else "refund" for i in range(n_rows)],
            "user": [f"user{i % 3}" for i in range(n_rows)],
            "prediction_id": [f"p{i}" if i < 4 else None for i in range(n_rows)],
        }
    ).to_csv(path, index=False)
    return path


def test_import_is_idempotent_and_keeps_optional_columns(store: FeedbackStore, tmp_path: Path) -> None:
    path = _write_feedback(tmp_path / "feedback.csv")

    first = store.import_feedback_file(path)
    again = store.import_feedback_file(path)

    assert (first.rows_added, first.already_imported) == (6, False)
    assert again == ImportResult(first.batch_id, rows_added=0, already_imported=True)
    pending = store.pending_feedback()
    assert pending["source_row"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pending["text"].tolist()[2] is None
    assert pending["user"].tolist()[:2] == ["user0", "user1"]


CRASHING_IMPORT = textwrap.dedent(
    """
    import os, sys
    from sqlalchemy import Engine, event
    import loopline.feedback.batches as batches_module
    from loopline.feedback import FeedbackStore

    batches_module.IMPORT_CHUNK_ROWS = 4
    inserts = []

    def crash(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO feedback ("):
            inserts.append(statement)
            if len(inserts) == 2:
                os._exit(17)

    event.listen(Engine, "after_cursor_execute", crash)
    FeedbackStore(sys.argv[1]).import_feedback_file(sys.argv[2])
    """
)


def test_process_killed_mid_import_leaves_nothing(pg_url: str, tmp_path: Path) -> None:
    path = _write_feedback(tmp_path / "big.csv", n_rows=20)
    script = tmp_path / "crash_import.py"
    script.write_text(CRASHING_IMPORT)

    proc = subprocess.run([sys.executable, str(script), pg_url, str(path)], capture_output=True, timeout=120)

    assert proc.returncode == 17, proc.stderr
    with FeedbackStore(pg_url) as store:
        assert store.batches() == []
        assert store.feedback_since(None).empty
        assert store.import_feedback_file(path).rows_added == 20


def test_transitions_quarantine_and_late_labels(store: FeedbackStore, tmp_path: Path) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    store.log_predictions(
        [
            PredictionRecord(f"msg {i}", "refund", 0.9, "1", id=f"p{i}", created_at=t0 + i * HOUR)
            for i in range(4)
        ]
    )
    batch_id = store.import_feedback_file(_write_feedback(tmp_path / "feedback.csv")).batch_id
    ids = store.pending_feedback()["id"].tolist()

    store.mark_accepted(ids[:4])
    store.mark_quarantined({ids[4]: "empty text", ids[5]: "unknown label"})
    store.mark_used(ids[:2], version="2")
    store.set_batch_status(batch_id, "accepted", {"success": True})

    assert store.accepted_unused_feedback()["id"].tolist() == ids[2:4]
    assert store.quarantined_feedback(batch_id)["reason"].tolist() == ["empty text", "unknown label"]
    with pytest.raises(FeedbackStoreError):
        store.mark_used([ids[4]], version="2")
    joined = store.labelled_predictions(t0 + HOUR)
    assert joined["prediction_id"].tolist() == ["p1", "p2", "p3"]
    assert joined["created_at"].iloc[0] == pd.Timestamp(t0 + HOUR)
    batch = store.get_batch(batch_id)
    assert batch is not None
    assert batch.contract_summary == {"success": True}


def test_decisions_and_last_retrain(store: FeedbackStore) -> None:
    store.record_decision("retrain", True, "drift", {"status": "started"})
    done = store.record_decision("retrain", True, "drift", {"status": "completed"}, model_version="2")
    store.record_decision("monitor", False, "quiet", {})

    decisions = store.decisions()
    assert [d.kind for d in decisions] == ["monitor", "retrain", "retrain"]
    assert store.last_retrain_at() == next(d.created_at for d in decisions if d.id == done)


def test_lock_exclusive_and_stale_takeover(store: FeedbackStore, pg_url: str) -> None:
    won: list[str] = []
    barrier = threading.Barrier(4)

    def contend(holder: str) -> None:
        with FeedbackStore(pg_url) as own:
            barrier.wait()
            if own.acquire_lock("retrain", holder, stale_after=HOUR):
                won.append(holder)

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1
    assert not store.acquire_lock("retrain", "late-run", stale_after=HOUR)
    assert store.acquire_lock("retrain", "late-run", stale_after=timedelta(0))
    assert not store.release_lock("retrain", won[0])
    assert store.release_lock("retrain", "late-run")


def test_concurrent_imports_of_one_file_add_it_once(
    store: FeedbackStore, pg_url: str, tmp_path: Path
) -> None:
    frame = pd.read_csv(_write_feedback(tmp_path / "feedback.csv"))
    results: list[ImportResult] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        with FeedbackStore(pg_url) as own:
            barrier.wait()
            results.append(own.import_feedback(frame, "race", "cd" * 32))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.rows_added for r in results) == [0, 0, 0, 6]
    assert len(store.feedback_since(None)) == 6
