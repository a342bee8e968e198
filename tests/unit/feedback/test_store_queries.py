"""Queries the monitor runs on every pass answer in the database, not by loading whole tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from loopline.feedback import FeedbackStore
from loopline.feedback import batches as batches_module
from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.schema import FeedbackRow
from loopline.pipeline.monitor import _window


def _reviewed(store: FeedbackStore, feedback_csv: Path) -> list[int]:
    """Six rows: two accepted, one used, two quarantined, one pending."""
    store.import_feedback_file(feedback_csv)
    ids = store.pending_feedback()["id"].tolist()
    store.mark_accepted(ids[:3])
    store.mark_used(ids[2:3], version="1")
    store.mark_quarantined({ids[3]: "empty text", ids[4]: "unknown label"})
    return ids


def test_count_accepted_unused_matches_the_rows(store: FeedbackStore, feedback_csv: Path) -> None:
    assert store.count_accepted_unused() == 0
    ids = _reviewed(store, feedback_csv)

    assert store.count_accepted_unused() == 2 == len(store.accepted_unused_feedback())
    store.mark_used(ids[:2], version="2")
    assert store.count_accepted_unused() == 0


def test_feedback_since_reads_only_the_statuses_asked_for(store: FeedbackStore, feedback_csv: Path) -> None:
    ids = _reviewed(store, feedback_csv)

    window = store.feedback_since(None, statuses=("accepted", "used"))
    assert window["id"].tolist() == ids[:3]
    assert set(window["status"]) == {"accepted", "used"}
    assert len(store.feedback_since(None)) == 6  # no statuses: every row, as before
    with pytest.raises(ValueError, match="Unknown feedback status 'done'"):
        store.feedback_since(None, statuses=("done",))


def test_monitor_window_of_feedback_leaves_out_pending_and_quarantined(
    store: FeedbackStore, feedback_csv: Path
) -> None:
    ids = _reviewed(store, feedback_csv)

    window = _window(store, None, "1")
    assert window["id"].tolist() == ids[:3]
    assert list(window.index) == [0, 1, 2]


def _served(version: str, n: int) -> list[PredictionRecord]:
    vector = np.ones(4, dtype=np.float32)
    return [
        PredictionRecord(f"{version} text {i}", "refund", 0.9, version, embedding=vector) for i in range(n)
    ]


def test_served_window_of_one_model_version(store: FeedbackStore) -> None:
    store.log_predictions(_served("1", 3) + _served("2", 2))

    assert len(store.served_window(None)) == 5
    window = store.served_window(None, model_version="2")
    assert window["text"].tolist() == ["2 text 0", "2 text 1"]
    assert window["model_version"].unique().tolist() == ["2"]
    monitored = _window(store, None, "2")  # the champion's predictions only, none of version 1
    assert monitored["text"].tolist() == ["2 text 0", "2 text 1"]
    assert _window(store, None, "3").empty  # no predictions of the champion, no feedback reviewed


def test_import_builds_insert_values_one_chunk_at_a_time(
    store: FeedbackStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches_module, "IMPORT_CHUNK_ROWS", 3)
    built: list[int] = []
    values = batches_module._FeedbackValues.values

    def counted(self: batches_module._FeedbackValues, rows: list[int]) -> list[dict[str, object]]:
        built.append(len(rows))
        return values(self, rows)

    monkeypatch.setattr(batches_module._FeedbackValues, "values", counted)
    store.import_feedback(pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}), "first", "a" * 64)
    frame = pd.DataFrame(
        {
            "text": ["b", "c", None, "d", "e", "f", "g", "h"],
            "label": ["y", "x", "x", 3, "x", "x", "x", "x"],  # a non-string label is stored as a string
            "source_row": [10, 11, 12, 13, 14, 15, 16, 17],
        }
    )
    built.clear()
    result = store.import_feedback(frame, "second", "b" * 64)

    assert built == [3, 3, 1]  # never all rows as dicts at once
    assert (result.rows_added, result.duplicate_rows) == (7, 1)  # "b"/"y" is stored already
    stored = store.pending_feedback(result.batch_id)
    assert stored["source_row"].tolist() == [11, 12, 13, 14, 15, 16, 17]
    assert stored["text"].tolist() == ["c", None, "d", "e", "f", "g", "h"]
    assert stored["label"].tolist()[2] == "3"
    assert stored["user"].isna().all() and stored["prediction_id"].isna().all()


def test_frames_are_read_by_column_name_in_the_order_asked(store: FeedbackStore, feedback_csv: Path) -> None:
    store.import_feedback_file(feedback_csv)
    stmt = select(FeedbackRow.label, FeedbackRow.id, FeedbackRow.text).order_by(FeedbackRow.id)

    frame = store._frame(stmt, ["id", "text", "label"])  # another order than the SELECT's
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame["text"].tolist()[:2] == ["msg 0", "msg 1"]
    assert frame["label"].tolist()[:2] == ["refund", "billing"]
    assert frame["id"].is_monotonic_increasing
    empty = store._frame(stmt.where(FeedbackRow.id < 0), ["id", "text", "label"])
    assert empty.empty and list(empty.columns) == ["id", "text", "label"]
