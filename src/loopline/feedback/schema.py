"""Tables of the feedback store (SQLAlchemy 2 ORM), portable between SQLite and PostgreSQL.

Portability rules kept here: no dialect-specific types (JSON is stored as text), enum-like columns are
plain strings guarded by CHECK constraints, and datetimes go through :class:`UTCDateTime`, which stores
UTC (``timestamptz`` on PostgreSQL, naive UTC text on SQLite) and always gives back aware UTC values.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from loopline.data.text import normalise_text

FEEDBACK_STATUSES = ("pending", "accepted", "quarantined", "used")
BATCH_STATUSES = ("imported", "accepted", "rejected", "used")
DECISION_KINDS = ("monitor", "retrain", "skip")

ID_LENGTH = 64  # uuids, batch ids, model versions and run ids fit comfortably


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def row_key(text: str | None, label: str | None, user: str | None) -> str | None:
    """The identity of a feedback row across batches (``FeedbackRow.row_key``): normalised text, label and
    user; None for a row without text or label (the contract quarantines those, each with its own reason)."""
    if not text or not text.strip() or not label:
        return None
    payload = "\0".join([normalise_text(text or ""), label or "", user or ""])
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _in_check(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"Naive datetime {value!r}: pass a timezone-aware datetime (e.g. UTC).")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC so text comparisons order correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the feedback store's tables."""


class PredictionRow(Base):
    """One prediction served by a model version (logged by the serving API)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_created_at", "created_at"),
        Index("ix_predictions_flagged", "flagged"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    predicted_label: Mapped[str] = mapped_column(String)
    confidence: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # Added with the serving API (nullable, so older stores gain them in place):
    top_k: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[label, probability], ...]
    # The text's sentence embedding (float32 bytes) for the drift check: computed once, when served.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    flagged: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # abstained or low margin: label it
    batch_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)  # batch scoring run


class FeedbackBatchRow(Base):
    """One imported feedback file; its id derives from the file's content hash."""

    __tablename__ = "feedback_batches"
    __table_args__ = (_in_check("status", BATCH_STATUSES, "ck_feedback_batches_status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    row_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="imported")
    contract_summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON text


class FeedbackRow(Base):
    """One labelled example from a feedback batch, with its review status."""

    __tablename__ = "feedback"
    __table_args__ = (
        _in_check("status", FEEDBACK_STATUSES, "ck_feedback_status"),
        UniqueConstraint("batch_id", "source_row", name="uq_feedback_batch_row"),
        Index("ix_feedback_status", "status"),
        Index("ix_feedback_created_at", "created_at"),
        Index("ix_feedback_prediction_id", "prediction_id"),
        Index("ix_feedback_row_key", "row_key"),
        Index("uq_feedback_client_key", "client_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Not a real foreign key: labels may arrive for predictions logged elsewhere or not at all.
    prediction_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    label: Mapped[str | None] = mapped_column(String, nullable=True)
    user: Mapped[str | None] = mapped_column(String, nullable=True)
    source: Mapped[str | None] = mapped_column(String, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    batch_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("feedback_batches.id"))
    source_row: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    used_in_version: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    # sha256 of (normalised text, label, user): the same row re-sent in a later export is stored once.
    row_key: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    # The idempotency key a client sent with a label through the API: the same key is stored once.
    client_key: Mapped[str | None] = mapped_column(String(128), nullable=True)


class DecisionRow(Base):
    """A monitoring / retraining decision with its evidence (details as JSON text)."""

    __tablename__ = "decisions"
    __table_args__ = (
        _in_check("kind", DECISION_KINDS, "ck_decisions_kind"),
        Index("ix_decisions_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    retrain: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)  # JSON text
    model_version: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)


class LockRow(Base):
    """A named lock held by one holder (e.g. one retraining run at a time)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
