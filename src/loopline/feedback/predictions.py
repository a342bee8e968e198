"""The served prediction log: what the service answered (logged once, by id), and the labels sent back.

Serving writes here through a bounded queue; the monitor reads served windows, never re-predicts them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from loopline.feedback.engine import FeedbackStoreError, StoreCore, check_aware
from loopline.feedback.schema import ID_LENGTH, FeedbackRow, PredictionRow, utc_now

PREDICTION_COLUMNS = ["id", "text", "predicted_label", "confidence", "model_version", "created_at"]


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction to log; ``id`` is what clients send back with their label."""

    text: str
    predicted_label: str
    confidence: float
    model_version: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=utc_now)
    top_k: tuple[tuple[str, float], ...] = ()
    embedding: np.ndarray | None = None  # the sentence embedding the drift check compares
    flagged: bool = False  # abstained or low margin: worth a person's label
    batch_id: str | None = None  # set by batch scoring

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("PredictionRecord.created_at must be timezone-aware (UTC).")
        if len(self.id) > ID_LENGTH or len(self.model_version) > ID_LENGTH:
            raise ValueError(f"PredictionRecord id and model_version must be at most {ID_LENGTH} characters.")


class PredictionLog(StoreCore):
    """The ``predictions`` table: served predictions, joined with the labels users sent back for them."""

    def log_predictions(self, rows: Sequence[PredictionRecord]) -> None:
        """Store served predictions (one transaction); a prediction id logged twice is refused."""
        if not rows:
            return
        values = [
            {
                "id": r.id,
                "text": r.text,
                "predicted_label": r.predicted_label,
                "confidence": float(r.confidence),
                "model_version": r.model_version,
                "created_at": r.created_at,
                "top_k": json.dumps([[label, round(float(p), 6)] for label, p in r.top_k])
                if r.top_k
                else None,
                "embedding": None if r.embedding is None else np.asarray(r.embedding, np.float32).tobytes(),
                "flagged": bool(r.flagged),
                "batch_id": r.batch_id,
            }
            for r in rows
        ]
        try:
            with self._write() as session:
                session.execute(insert(PredictionRow), values)
        except IntegrityError as err:
            raise FeedbackStoreError(
                "A prediction id was already logged",
                where=f"predictions, ids {[r.id for r in rows][:5]}",
                hint="Give every prediction a fresh id (the default is a new uuid4).",
            ) from err

    def predictions_since(self, since: datetime | None) -> pd.DataFrame:
        """Logged predictions created at or after ``since`` (all when None), oldest first."""
        check_aware(since)
        stmt = select(*(getattr(PredictionRow, c) for c in PREDICTION_COLUMNS))
        if since is not None:
            stmt = stmt.where(PredictionRow.created_at >= since)
        return self._frame(stmt.order_by(PredictionRow.created_at, PredictionRow.id), PREDICTION_COLUMNS)

    def labelled_predictions(self, since: datetime | None = None) -> pd.DataFrame:
        """Predictions joined with the labels users sent back for them (late labels).

        Joins feedback to predictions on ``prediction_id``; feedback without a label or quarantined
        is ignored, and when a prediction got several labels the latest one counts. ``since``
        filters on the prediction's time. Columns: prediction_id, text, predicted_label,
        confidence, label, model_version, created_at (of the prediction).
        """
        stmt = (
            select(
                PredictionRow.id.label("prediction_id"),
                PredictionRow.text,
                PredictionRow.predicted_label,
                PredictionRow.confidence,
                FeedbackRow.label,
                PredictionRow.model_version,
                PredictionRow.created_at,
            )
            .join(FeedbackRow, FeedbackRow.prediction_id == PredictionRow.id)
            .where(FeedbackRow.label.is_not(None), FeedbackRow.status != "quarantined")
            .order_by(PredictionRow.created_at, PredictionRow.id, FeedbackRow.id)
        )
        if since is not None:
            stmt = stmt.where(PredictionRow.created_at >= since)
        check_aware(since)
        columns = ["prediction_id", "text", "predicted_label", "confidence", "label", "model_version"]
        frame = self._frame(stmt, [*columns, "created_at"])
        return frame.drop_duplicates("prediction_id", keep="last").reset_index(drop=True)

    def served_window(self, since: datetime | None, model_version: str | None = None) -> pd.DataFrame:
        """Served predictions created at or after ``since`` (of ``model_version`` only, if given), oldest
        first, with what the monitor needs: columns id, text, predicted_label, confidence, model_version,
        created_at, flagged, embedding (float32 array or None) and label (the latest label users sent
        back for it, or None)."""
        check_aware(since)
        columns = [*PREDICTION_COLUMNS, "flagged", "embedding"]
        stmt = select(*(getattr(PredictionRow, c) for c in columns))
        if since is not None:
            stmt = stmt.where(PredictionRow.created_at >= since)
        if model_version is not None:  # other versions' rows (and their embeddings) are never read
            stmt = stmt.where(PredictionRow.model_version == model_version)
        frame = self._frame(stmt.order_by(PredictionRow.created_at, PredictionRow.id), columns)
        frame["embedding"] = [None if b is None else np.frombuffer(b, np.float32) for b in frame["embedding"]]
        labels = self.labelled_predictions(since).set_index("prediction_id")["label"]
        frame["label"] = [labels.get(i) for i in frame["id"]]
        return frame

    def flagged_unlabelled(self, limit: int = 10_000) -> pd.DataFrame:
        """Flagged predictions (abstained or low margin) nobody has labelled yet, oldest first."""
        labelled = select(FeedbackRow.prediction_id).where(FeedbackRow.prediction_id.is_not(None))
        columns = ["id", "text", "predicted_label", "confidence", "top_k", "model_version", "created_at"]
        stmt = (
            select(*(getattr(PredictionRow, c) for c in columns))
            .where(PredictionRow.flagged.is_(True), PredictionRow.id.not_in(labelled))
            .order_by(PredictionRow.created_at, PredictionRow.id)
            .limit(limit)
        )
        return self._frame(stmt, columns)

    def least_confident_unlabelled(self, limit: int) -> pd.DataFrame:
        """The ``limit`` least confident logged predictions nobody has labelled yet (batch scoring flags
        none: before a service answers, these are what a person's label helps most), least confident first;
        the columns of :meth:`flagged_unlabelled`."""
        labelled = select(FeedbackRow.prediction_id).where(FeedbackRow.prediction_id.is_not(None))
        columns = ["id", "text", "predicted_label", "confidence", "top_k", "model_version", "created_at"]
        stmt = (
            select(*(getattr(PredictionRow, c) for c in columns))
            .where(PredictionRow.id.not_in(labelled))
            .order_by(PredictionRow.confidence, PredictionRow.created_at, PredictionRow.id)
            .limit(limit)
        )
        return self._frame(stmt, columns)

    def any_flagged(self) -> bool:
        """Whether any logged prediction was flagged for labelling (a service has answered with flags)."""
        with self._read() as session:
            return (
                session.scalars(
                    select(PredictionRow.id).where(PredictionRow.flagged.is_(True)).limit(1)
                ).first()
                is not None
            )
