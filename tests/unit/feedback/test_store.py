"""FeedbackStore on SQLite: import, idempotency, atomicity, status transitions and queries."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event

import loopline.feedback.batches as batches_module
from loopline.errors import DataError
from loopline.feedback import (
    FEEDBACK_COLUMNS,
    FeedbackStore,
    FeedbackStoreError,
    ImportResult,
    PredictionRecord,
)

# ---- import ---------------------------------------------------------------------------------------


def test_import_file_stores_every_row_with_optional_columns(store: FeedbackStore, feedback_csv: Path) -> None:
    result = store.import_feedback_file(feedback_csv)

    digest = hashlib.sha256(feedback_csv.read_bytes()).hexdigest()
    assert result == ImportResult(batch_id="fb-" + digest[:12], rows_added=6, already_imported=False)
    pending = store.pending_feedback()
    assert list(pending.columns) == FEEDBACK_COLUMNS
    assert pending["source_row"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pending["text"].tolist()[:4] == ["msg 0", "msg 1", None, "msg 3"]  # empty text kept
    assert pending["user"].tolist()[:3] == ["user0", "user1", "user2"]
    assert pending["prediction_id"].tolist()[3:] == ["p3", None, None]
    assert set(pending["source"]) == {"app"}
    assert set(pending["batch_id"]) == {result.batch_id}
    batch = store.get_batch(result.batch_id)
    assert batch is not None
    assert (batch.source, batch.row_count, batch.status) == (str(feedback_csv), 6, "imported")
    assert batch.imported_at.tzinfo is not None


def test_same_content_twice_adds_nothing_under_any_name(
    store: FeedbackStore, feedback_csv: Path, tmp_path: Path, make_feedback_csv: Callable[..., Path]
) -> None:
    first = store.import_feedback_file(feedback_csv)
    copy = shutil.copy(feedback_csv, tmp_path / "renamed.csv")

    again = store.import_feedback_file(feedback_csv)
    renamed = store.import_feedback_file(copy)

    assert again == ImportResult(first.batch_id, rows_added=0, already_imported=True)
    assert renamed == ImportResult(first.batch_id, rows_added=0, already_imported=True)
    assert len(store.feedback_since(None)) == 6
    other = store.import_feedback_file(make_feedback_csv(tmp_path / "other.csv", n_rows=3, prefix="new"))
    assert (other.rows_added, other.already_imported) == (3, False)
    assert other.batch_id != first.batch_id
    assert [b.id for b in store.batches()] == [first.batch_id, other.batch_id]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".tsv"])
def test_optional_columns_are_carried_from_every_file_type(
    store: FeedbackStore, tmp_path: Path, suffix: str
) -> None:
    frame = pd.DataFrame(
        {"text": ["a", "b"], "label": ["x", "y"], "user": ["u1", None], "prediction_id": ["p1", "p2"]}
    )
    path = tmp_path / f"feedback{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n\n")
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict("records")))
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t", index=False)

    store.import_feedback_file(path)

    pending = store.pending_feedback()
    assert pending["user"].tolist() == ["u1", None]
    assert pending["prediction_id"].tolist() == ["p1", "p2"]
    assert pending["source"].tolist() == [None, None]


def test_import_with_other_column_names(store: FeedbackStore, tmp_path: Path) -> None:
    path = tmp_path / "renamed_columns.csv"
    pd.DataFrame({"message": ["hello"], "intent": ["greet"]}).to_csv(path, index=False)

    store.import_feedback_file(path, text_column="message", label_column="intent")

    assert store.pending_feedback()[["text", "label"]].values.tolist() == [["hello", "greet"]]


def test_import_refuses_bad_input(store: FeedbackStore) -> None:
    with pytest.raises(DataError, match="label"):
        store.import_feedback(pd.DataFrame({"text": ["a"]}), source="api", content_hash="ab" * 32)
    with pytest.raises(ValueError, match="hex digest"):
        store.import_feedback(pd.DataFrame({"text": ["a"], "label": ["x"]}), source="api", content_hash="zz")
    with pytest.raises(DataError, match="not found"):
        store.import_feedback_file("/nonexistent/feedback.csv")
    with pytest.raises(DataError, match="duplicate source_row"):
        rows = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"], "source_row": [1, 1]})
        store.import_feedback(rows, source="api", content_hash="ab" * 32)
    with pytest.raises(DataError, match="prediction_id longer"):
        rows = pd.DataFrame({"text": ["a"], "label": ["x"], "prediction_id": ["p" * 65]})
        store.import_feedback(rows, source="api", content_hash="ab" * 32)
    with pytest.raises(ValueError, match="at most 64"):
        PredictionRecord("a", "x", 0.5, "1", id="p" * 65)
    assert store.batches() == []


@pytest.fixture()
def fail_on_second_feedback_insert(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Raise after the first chunk of feedback rows went to the database (inside the transaction).

    Yields a function that disarms the failure, for the rerun.
    """
    monkeypatch.setattr(batches_module, "IMPORT_CHUNK_ROWS", 2)
    inserts: list[str] = []
    armed = [True]

    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if armed[0] and statement.startswith("INSERT INTO feedback ("):
            inserts.append(statement)
            if len(inserts) == 2:
                raise RuntimeError("simulated crash mid-import")

    event.listen(Engine, "after_cursor_execute", fail)
    yield lambda: armed.__setitem__(0, False)
    event.remove(Engine, "after_cursor_execute", fail)


def test_failed_import_leaves_nothing_and_rerun_imports_once(
    store: FeedbackStore, feedback_csv: Path, fail_on_second_feedback_insert: Callable[[], None]
) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.import_feedback_file(feedback_csv)
    assert store.batches() == []
    assert store.feedback_since(None).empty

    fail_on_second_feedback_insert()  # disarm
    result = store.import_feedback_file(feedback_csv)

    assert result.rows_added == 6
    assert store.feedback_since(None)["source_row"].tolist() == [1, 2, 3, 4, 5, 6]


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
            if len(inserts) == 2:  # 8 of 20 rows written inside the open transaction
                probe = conn.connection.dbapi_connection.cursor()
                probe.execute("SELECT count(*) FROM feedback")
                print("rows-in-transaction", probe.fetchone()[0], flush=True)
                os._exit(17)

    event.listen(Engine, "after_cursor_execute", crash)
    FeedbackStore(sys.argv[1]).import_feedback_file(sys.argv[2])
    print("import finished")
    """
)


def test_process_killed_mid_import_leaves_nothing_and_rerun_completes(
    store_url: str, tmp_path: Path, make_feedback_csv: Callable[..., Path]
) -> None:
    path = make_feedback_csv(tmp_path / "big.csv", n_rows=20)
    script = tmp_path / "crash_import.py"
    script.write_text(CRASHING_IMPORT)

    proc = subprocess.run(
        [sys.executable, str(script), store_url, str(path)], capture_output=True, text=True, timeout=120
    )

    assert proc.returncode == 17, proc.stderr
    assert "rows-in-transaction 8" in proc.stdout
    with FeedbackStore(store_url) as reopened:
        assert reopened.batches() == []
        assert reopened.feedback_since(None).empty
        assert reopened.import_feedback_file(path).rows_added == 20
        assert reopened.import_feedback_file(path).already_imported
        assert len(reopened.feedback_since(None)) == 20


def test_concurrent_imports_of_one_file_add_it_once(store_url: str, feedback_csv: Path) -> None:
    FeedbackStore(store_url).close()  # create the schema before the race
    results: list[ImportResult] = []

    def run() -> None:
        with FeedbackStore(store_url) as own:
            results.append(own.import_feedback(pd.read_csv(feedback_csv), "race", "cd" * 32))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.rows_added for r in results) == [0, 0, 0, 6]
    with FeedbackStore(store_url) as store:
        assert len(store.feedback_since(None)) == 6


def test_sqlite_store_uses_wal(store: FeedbackStore, store_url: str) -> None:
    path = store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---- status transitions -----------------------------------------------------------------------------


def test_status_transitions(store: FeedbackStore, feedback_csv: Path) -> None:
    store.import_feedback_file(feedback_csv)
    ids = store.pending_feedback()["id"].tolist()

    store.mark_accepted(ids[:4])
    store.mark_quarantined({ids[4]: "empty text", ids[5]: "unknown label"})

    assert store.pending_feedback().empty
    assert store.accepted_unused_feedback()["id"].tolist() == ids[:4]
    store.mark_accepted(ids[:2])  # a retried task changes nothing
    store.mark_used(ids[:3], version="7")
    store.mark_used(ids[:1], version="7")  # already used by that version: fine
    assert store.accepted_unused_feedback()["id"].tolist() == [ids[3]]
    used = store.feedback_since(None).set_index("id")
    assert used.loc[ids[:3], "status"].tolist() == ["used"] * 3
    assert used.loc[ids[:3], "used_in_version"].tolist() == ["7"] * 3


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda s, ids: s.mark_used([ids[0], ids[4]], version="2"), "quarantined"),  # → used
        (lambda s, ids: s.mark_accepted([ids[0], ids[4]]), "quarantined"),  # quarantined → accepted
        (lambda s, ids: s.mark_used([ids[1]], version="3"), "used"),  # used by another version
        (lambda s, ids: s.mark_quarantined({ids[1]: "late"}), "quarantined"),  # used → quarantined
        (lambda s, ids: s.mark_accepted([ids[0], 999]), "999"),  # unknown id
    ],
)
def test_refused_transition_changes_nothing(
    store: FeedbackStore, feedback_csv: Path, action: Callable[[FeedbackStore, list[int]], None], match: str
) -> None:
    store.import_feedback_file(feedback_csv)
    ids = store.pending_feedback()["id"].tolist()
    store.mark_quarantined({ids[4]: "empty text"})
    store.mark_accepted(ids[1:2])
    store.mark_used(ids[1:2], version="2")
    before = store.feedback_since(None)

    with pytest.raises(FeedbackStoreError, match=match):
        action(store, ids)

    pd.testing.assert_frame_equal(store.feedback_since(None), before)


def test_quarantined_rows_stay_queryable_with_reasons(
    store: FeedbackStore, feedback_csv: Path, tmp_path: Path, make_feedback_csv: Callable[..., Path]
) -> None:
    first = store.import_feedback_file(feedback_csv)
    second = store.import_feedback_file(make_feedback_csv(tmp_path / "b.csv", n_rows=2, prefix="other"))
    first_ids = store.pending_feedback(first.batch_id)["id"].tolist()
    second_ids = store.pending_feedback(second.batch_id)["id"].tolist()

    store.mark_quarantined({first_ids[2]: "text is empty", second_ids[0]: "label flood by user0"})

    quarantined = store.quarantined_feedback(first.batch_id)
    assert quarantined[["id", "reason", "source_row"]].values.tolist() == [[first_ids[2], "text is empty", 3]]
    assert store.quarantined_feedback()["reason"].tolist() == ["text is empty", "label flood by user0"]
    assert len(store.pending_feedback(first.batch_id)) == 5


def test_batch_status_and_contract_summary(store: FeedbackStore, feedback_csv: Path) -> None:
    batch_id = store.import_feedback_file(feedback_csv).batch_id

    store.set_batch_status(batch_id, "accepted", {"success": True, "quarantined": 1})
    store.set_batch_status(batch_id, "used")

    batch = store.get_batch(batch_id)
    assert batch is not None
    assert (batch.status, batch.contract_summary) == ("used", {"quarantined": 1, "success": True})
    with pytest.raises(ValueError, match="batch status"):
        store.set_batch_status(batch_id, "done")
    with pytest.raises(FeedbackStoreError, match="Unknown feedback batch"):
        store.set_batch_status("fb-000000000000", "accepted")


# ---- predictions and time windows ---------------------------------------------------------------------

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _predictions() -> list[PredictionRecord]:
    return [
        PredictionRecord(
            f"msg {i}", "refund", 0.5 + i / 20, "1", id=f"p{i}", created_at=T0 + timedelta(hours=i)
        )
        for i in range(5)
    ]


def test_late_labels_join_logged_predictions(
    store: FeedbackStore, feedback_csv: Path, tmp_path: Path
) -> None:
    store.log_predictions(_predictions())
    store.import_feedback_file(feedback_csv)  # labels for p0..p3
    ids = store.pending_feedback()["id"].tolist()
    store.mark_quarantined({ids[1]: "label flood"})  # p1's label is not trusted
    relabel = tmp_path / "relabel.csv"
    pd.DataFrame({"text": ["msg 0"], "label": ["account"], "prediction_id": ["p0"]}).to_csv(
        relabel, index=False
    )
    store.import_feedback_file(relabel)  # a later label for p0 wins

    joined = store.labelled_predictions(None)

    assert joined[["prediction_id", "label", "predicted_label"]].values.tolist() == [
        ["p0", "account", "refund"],
        ["p2", "refund", "refund"],
        ["p3", "billing", "refund"],
    ]
    assert list(joined.columns) == [
        "prediction_id", "text", "predicted_label", "confidence", "label", "model_version", "created_at"
    ]  # fmt: skip
    assert joined["confidence"].tolist() == pytest.approx([0.5, 0.6, 0.65])
    assert store.labelled_predictions(T0 + timedelta(hours=2))["prediction_id"].tolist() == ["p2", "p3"]


def test_predictions_since_is_a_utc_window(store: FeedbackStore) -> None:
    store.log_predictions(_predictions())

    window = store.predictions_since(T0 + timedelta(hours=3))
    everything = store.predictions_since(None)

    assert window["id"].tolist() == ["p3", "p4"]
    assert len(everything) == 5
    assert everything["created_at"].iloc[0] == pd.Timestamp(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.predictions_since(datetime(2025, 1, 1))
    with pytest.raises(FeedbackStoreError, match="already logged"):
        store.log_predictions(_predictions()[:1])


def test_feedback_since(store: FeedbackStore, feedback_csv: Path) -> None:
    before = datetime.now(UTC)
    store.import_feedback_file(feedback_csv)

    assert len(store.feedback_since(before)) == 6
    assert store.feedback_since(datetime.now(UTC) + timedelta(seconds=1)).empty
