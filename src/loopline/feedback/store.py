"""The feedback store: logged predictions, imported feedback batches, decisions and locks.

One :class:`FeedbackStore` per database URL — SQLite by default (a file under the loopline home),
PostgreSQL by URL (``postgresql+psycopg://user:pass@host/db``). Every write is one transaction:
a feedback file is imported completely or not at all, and importing the same content twice adds
nothing. Datetimes going in must be timezone-aware; datetimes coming out are aware UTC.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Engine,
    Executable,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from loopline.data.loading import load_labelled_text
from loopline.data.text import normalise_text
from loopline.errors import DataError, LooplineError
from loopline.faults import crash_point
from loopline.feedback.schema import (
    BATCH_STATUSES,
    DECISION_KINDS,
    ID_LENGTH,
    Base,
    DecisionRow,
    FeedbackBatchRow,
    FeedbackRow,
    LockRow,
    PredictionRow,
    utc_now,
)

logger = logging.getLogger(__name__)

IMPORT_CHUNK_ROWS = 500  # feedback rows sent per INSERT while importing (all in one transaction)
ID_CHUNK = 500  # ids per IN (...) list, well below SQLite's and PostgreSQL's parameter limits
OPTIONAL_FEEDBACK_COLUMNS = ("user", "source", "prediction_id")
FEEDBACK_COLUMNS = ["id", "text", "label", "user", "source", "source_row", "batch_id", "prediction_id"]
PREDICTION_COLUMNS = ["id", "text", "predicted_label", "confidence", "model_version", "created_at"]
SQLITE_BUSY_TIMEOUT_MS = 30_000
FEEDBACK_TABLE = Base.metadata.tables[FeedbackRow.__tablename__]


class FeedbackStoreError(LooplineError):
    """The feedback store refused an operation (unknown ids, a status change that is not allowed...)."""


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


@dataclass(frozen=True)
class ApiLabel:
    """A label received through the serving API: its feedback row, and whether this call stored it (False:
    the client's idempotency key was seen before, and ``id`` is the row stored then)."""

    id: int
    created: bool
    batch_id: str


@dataclass(frozen=True)
class ImportResult:
    """Outcome of importing one feedback file: its batch, how many rows were added, and how many were
    left out because the store already holds them from an earlier batch (same text, label and user)."""

    batch_id: str
    rows_added: int
    already_imported: bool
    duplicate_rows: int = 0


@dataclass(frozen=True)
class BatchInfo:
    """One imported feedback batch."""

    id: str
    source: str
    imported_at: datetime
    row_count: int
    status: str
    contract_summary: dict[str, Any] | None


@dataclass(frozen=True)
class Decision:
    """A recorded monitoring / retraining decision."""

    id: int
    kind: str
    created_at: datetime
    retrain: bool
    reason: str
    details: dict[str, Any]
    model_version: str | None
    run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``created_at`` as ISO 8601)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "retrain": self.retrain,
            "reason": self.reason,
            "details": self.details,
            "model_version": self.model_version,
            "run_id": self.run_id,
        }


def batch_id_for(content_hash: str) -> str:
    """The batch id of a feedback file with this sha256 content hash."""
    if len(content_hash) < 12 or any(c not in "0123456789abcdef" for c in content_hash.lower()):
        raise ValueError(f"content_hash must be a hex digest (sha256), got {content_hash!r}")
    return "fb-" + content_hash.lower()[:12]


def hash_file_content(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Feedback file not found: {path}", where=str(path), hint="Check the path.")
    digest = hashlib.sha256()
    if path.is_file():
        _update_digest(digest, path)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        _update_digest(digest, file)
    return digest.hexdigest()


def _update_digest(digest: Any, file: Path) -> None:
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


class FeedbackStore:
    """Predictions, feedback, decisions and locks in one SQL database (SQLite or PostgreSQL).

    Creates missing tables on open. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        shown = make_url(url).render_as_string(hide_password=True)
        try:
            self._engine = _create_engine(url)
            _create_schema(self._engine)
        except (SQLAlchemyError, ModuleNotFoundError) as err:
            reason = str(getattr(err, "orig", None) or err).splitlines()[0][:300]
            raise FeedbackStoreError(
                f"Cannot open the feedback store: {reason}",
                where=shown,
                hint="Check feedback_db_url (LOOPLINE_FEEDBACK_DB_URL), that the database answers and is a "
                "loopline feedback store; for PostgreSQL install loopline[postgres].",
            ) from None
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        # On SQLite, write transactions start with BEGIN IMMEDIATE (see _create_engine).
        writer = self._engine.execution_options(loopline_write=True)
        self._write_sessions = sessionmaker(writer, expire_on_commit=False)
        logger.debug("Feedback store open at %s", make_url(url).render_as_string(hide_password=True))

    def __repr__(self) -> str:
        return f"FeedbackStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close all pooled connections."""
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._write_sessions() as session, session.begin():
            yield session

    # ---- predictions -------------------------------------------------------------------------

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
        _check_aware(since)
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
        _check_aware(since)
        columns = ["prediction_id", "text", "predicted_label", "confidence", "label", "model_version"]
        frame = self._frame(stmt, [*columns, "created_at"])
        return frame.drop_duplicates("prediction_id", keep="last").reset_index(drop=True)

    def served_window(self, since: datetime | None) -> pd.DataFrame:
        """Served predictions created at or after ``since``, oldest first, with what the monitor needs:
        columns id, text, predicted_label, confidence, model_version, created_at, flagged, embedding
        (float32 array or None) and label (the latest label users sent back for it, or None)."""
        _check_aware(since)
        columns = [*PREDICTION_COLUMNS, "flagged", "embedding"]
        stmt = select(*(getattr(PredictionRow, c) for c in columns))
        if since is not None:
            stmt = stmt.where(PredictionRow.created_at >= since)
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

    def add_api_label(
        self,
        label: str,
        *,
        prediction_id: str | None = None,
        text: str | None = None,
        user: str | None = None,
        client_key: str | None = None,
    ) -> ApiLabel:
        """Store one label sent through the serving API, for a served prediction (its text is taken from the
        log) or for a text, as a pending row of today's API batch (reviewed by the feedback contract like
        any batch). The same ``client_key`` again returns the row stored the first time."""
        batch_id = "api-" + utc_now().strftime("%Y%m%d")
        for _ in range(5):  # two writers may pick the same source_row on PostgreSQL: try again
            try:
                with self._write() as session:
                    return self._add_api_label(
                        session, batch_id, label, prediction_id, text, user, client_key
                    )
            except IntegrityError:
                found = self._by_client_key(client_key)
                if found is not None:
                    return found
        raise FeedbackStoreError("Could not store the label after 5 attempts", where=batch_id)

    def _add_api_label(
        self,
        session: Session,
        batch_id: str,
        label: str,
        prediction_id: str | None,
        text_: str | None,
        user: str | None,
        client_key: str | None,
    ) -> ApiLabel:
        if client_key is not None:
            existing = session.scalars(
                select(FeedbackRow).where(FeedbackRow.client_key == client_key)
            ).first()
            if existing is not None:
                return ApiLabel(existing.id, False, existing.batch_id)
        if prediction_id is not None:
            prediction = session.get(PredictionRow, prediction_id)
            if prediction is None:
                raise FeedbackStoreError(
                    f"Unknown prediction id {prediction_id!r}",
                    where="predictions",
                    hint="Send back the prediction_id that /predict returned (predictions are logged within "
                    "a second; a dropped log event is counted on /metrics).",
                )
            text_ = prediction.text
        batch = session.get(FeedbackBatchRow, batch_id)
        if batch is None:
            batch = FeedbackBatchRow(id=batch_id, source="serving API", row_count=0, status="imported")
            session.add(batch)
            session.flush()
        batch.row_count += 1
        batch.status = "imported"  # new rows wait for the contract's review
        row = FeedbackRow(
            prediction_id=prediction_id,
            text=text_,
            label=label,
            user=user,
            source=None,  # not a flood key: the API's callers are told apart by ``user`` only
            created_at=utc_now(),
            batch_id=batch_id,
            source_row=batch.row_count,
            status="pending",
            row_key=row_key(text_, label, user),
            client_key=client_key,
        )
        session.add(row)
        session.flush()
        return ApiLabel(row.id, True, batch_id)

    def _by_client_key(self, client_key: str | None) -> ApiLabel | None:
        if client_key is None:
            return None
        with self._read() as session:
            row = session.scalars(select(FeedbackRow).where(FeedbackRow.client_key == client_key)).first()
            return None if row is None else ApiLabel(row.id, False, row.batch_id)

    def batches_with_pending(self) -> list[str]:
        """Ids of batches holding rows the contract has not reviewed yet (API batches fill up over a day)."""
        stmt = select(FeedbackRow.batch_id).where(FeedbackRow.status == "pending").distinct()
        with self._read() as session:
            return sorted(str(b) for b in session.scalars(stmt))

    # ---- feedback import ---------------------------------------------------------------------

    def import_feedback_file(
        self,
        path: str | Path,
        text_column: str = "text",
        label_column: str = "label",
        *,
        encoding: str = "utf-8",
        label_map: Mapping[str, str] | None = None,
        check: Callable[[pd.DataFrame], None] | None = None,
        read: Callable[[Path], pd.DataFrame] | None = None,
    ) -> ImportResult:
        """Import a feedback file (CSV/TSV, JSONL/JSON, Parquet, datasets folder) as one batch.

        Optional columns ``user``, ``source`` and ``prediction_id`` are carried through. The same
        content imported again (under any name) adds nothing and says ``already_imported``. ``check``
        may refuse the loaded rows (raising) before anything is stored. ``read`` replaces the loader for
        files of another task's format (token task: CoNLL or token JSONL, as text and tag strings).
        """
        path = Path(path)
        content_hash = hash_file_content(path)
        existing = self.get_batch(batch_id_for(content_hash))
        if existing is not None:
            logger.info("Feedback %s already imported as batch %s", path, existing.id)
            return ImportResult(existing.id, rows_added=0, already_imported=True)
        if read is not None:
            frame = read(path)
        else:
            frame = load_labelled_text(
                path,
                text_column,
                label_column,
                encoding,
                extra_columns=OPTIONAL_FEEDBACK_COLUMNS,
                label_map=label_map,
            )
        if check is not None:
            check(frame)
        return self.import_feedback(frame, source=str(path), content_hash=content_hash)

    def import_feedback(self, df: pd.DataFrame, source: str, content_hash: str) -> ImportResult:
        """Import feedback rows (columns text, label; optional source_row, user, source,
        prediction_id) as the batch ``"fb-" + content_hash[:12]``, in one transaction.

        A row the store already holds from an earlier batch (same normalised text, label and user, not
        quarantined) is not stored again; the result counts those rows.
        """
        batch_id = batch_id_for(content_hash)
        rows = _feedback_values(df, batch_id, source)
        try:
            with self._write() as session:
                if session.get(FeedbackBatchRow, batch_id) is not None:
                    return ImportResult(batch_id, rows_added=0, already_imported=True)
                known = _stored_row_keys(session, {row["row_key"] for row in rows if row["row_key"]})
                fresh = [row for row in rows if row["row_key"] is None or row["row_key"] not in known]
                summary = {"duplicate_rows": len(rows) - len(fresh)} if len(fresh) < len(rows) else None
                batch = FeedbackBatchRow(
                    id=batch_id,
                    source=source,
                    row_count=len(fresh),
                    status="imported" if fresh else "accepted",
                    contract_summary=json.dumps(summary) if summary else None,
                )
                session.add(batch)
                session.flush()
                for start in range(0, len(fresh), IMPORT_CHUNK_ROWS):
                    # Core insert: one executemany per chunk (the ORM would regroup rows by nulls).
                    session.execute(insert(FEEDBACK_TABLE), fresh[start : start + IMPORT_CHUNK_ROWS])
                crash_point("feedback.import")
        except IntegrityError:
            # Another process imported the same content between our check and our insert.
            if self.get_batch(batch_id) is None:
                raise
            return ImportResult(batch_id, rows_added=0, already_imported=True)
        duplicates = len(rows) - len(fresh)
        logger.info(
            "Imported %d feedback rows from %s as batch %s (%d already stored)",
            len(fresh),
            source,
            batch_id,
            duplicates,
        )
        return ImportResult(
            batch_id, rows_added=len(fresh), already_imported=False, duplicate_rows=duplicates
        )

    def get_batch(self, batch_id: str) -> BatchInfo | None:
        """The batch with this id, or None."""
        with self._read() as session:
            row = session.get(FeedbackBatchRow, batch_id)
            return None if row is None else _batch_info(row)

    def batches(self) -> list[BatchInfo]:
        """All imported batches, oldest first."""
        with self._read() as session:
            rows = session.scalars(select(FeedbackBatchRow).order_by(FeedbackBatchRow.imported_at))
            return [_batch_info(row) for row in rows]

    def set_batch_status(
        self, batch_id: str, status: str, contract_summary: dict[str, Any] | None = None
    ) -> None:
        """Set a batch's status; ``contract_summary`` (JSON-able) replaces the stored one if given."""
        _check_choice("batch status", status, BATCH_STATUSES)
        with self._write() as session:
            _set_batch_status(session, batch_id, status, contract_summary)

    # ---- feedback queries --------------------------------------------------------------------

    def pending_feedback(self, batch_id: str | None = None) -> pd.DataFrame:
        """Feedback rows not yet reviewed by the contract (columns FEEDBACK_COLUMNS)."""
        return self._feedback_frame("pending", batch_id)

    def accepted_unused_feedback(self) -> pd.DataFrame:
        """Accepted feedback rows not yet used to train a model (columns FEEDBACK_COLUMNS)."""
        return self._feedback_frame("accepted", None)

    def quarantined_feedback(self, batch_id: str | None = None) -> pd.DataFrame:
        """Quarantined feedback rows with their ``reason`` (FEEDBACK_COLUMNS + reason)."""
        return self._feedback_frame("quarantined", batch_id, extra=("reason",))

    def feedback_since(self, since: datetime | None) -> pd.DataFrame:
        """All feedback rows created at or after ``since`` (all when None), any status.

        Columns: FEEDBACK_COLUMNS + status, reason, used_in_version, created_at.
        """
        _check_aware(since)
        columns = [*FEEDBACK_COLUMNS, "status", "reason", "used_in_version", "created_at"]
        stmt = select(*(getattr(FeedbackRow, c) for c in columns)).order_by(FeedbackRow.id)
        if since is not None:
            stmt = stmt.where(FeedbackRow.created_at >= since)
        return self._frame(stmt, columns)

    def _feedback_frame(self, status: str, batch_id: str | None, extra: tuple[str, ...] = ()) -> pd.DataFrame:
        columns = [*FEEDBACK_COLUMNS, *extra]
        stmt = select(*(getattr(FeedbackRow, c) for c in columns)).where(FeedbackRow.status == status)
        if batch_id is not None:
            stmt = stmt.where(FeedbackRow.batch_id == batch_id)
        return self._frame(stmt.order_by(FeedbackRow.id), columns)

    def _frame(self, stmt: Executable, columns: list[str]) -> pd.DataFrame:
        with self._read() as session:
            records = [dict(row) for row in session.execute(stmt).mappings()]
        return pd.DataFrame.from_records(records, columns=columns)

    # ---- status transitions ------------------------------------------------------------------

    def mark_accepted(self, ids: Iterable[int]) -> None:
        """pending → accepted (already accepted rows are left as they are)."""
        with self._write() as session:
            todo = _check_transition(session, ids, "accepted", allowed_from={"pending", "accepted"})
            _update_ids(session, todo, status="accepted", reason=None)

    def mark_quarantined(self, reasons: Mapping[int, str]) -> None:
        """pending/quarantined → quarantined with a reason per row id."""
        with self._write() as session:
            _check_transition(session, reasons, "quarantined", allowed_from={"pending", "quarantined"})
            values = [{"id": int(i), "status": "quarantined", "reason": str(r)} for i, r in reasons.items()]
            if values:
                session.execute(update(FeedbackRow), values)

    def record_review(
        self,
        batch_id: str,
        accepted: Iterable[int],
        quarantined: Mapping[int, str],
        status: str,
        contract_summary: dict[str, Any],
    ) -> None:
        """The contract's verdict on a batch, in one transaction: rows accepted, rows quarantined with
        their reasons, and the batch's status and summary. A kill leaves the batch reviewed or not at all."""
        _check_choice("batch status", status, BATCH_STATUSES)
        with self._write() as session:
            accepted_ids = list(accepted)
            todo = _check_transition(session, accepted_ids, "accepted", allowed_from={"pending", "accepted"})
            _update_ids(session, todo, status="accepted", reason=None)
            _check_transition(session, quarantined, "quarantined", allowed_from={"pending", "quarantined"})
            values = [
                {"id": int(i), "status": "quarantined", "reason": str(r)} for i, r in quarantined.items()
            ]
            if values:
                session.execute(update(FeedbackRow), values)
            _set_batch_status(session, batch_id, status, contract_summary)
            crash_point("feedback.review")

    def mark_used(self, ids: Iterable[int], version: str) -> None:
        """accepted → used by model ``version`` (rows already used by that version are left)."""
        with self._write() as session:
            states = _load_states(session, ids)
            wrong = [i for i, (s, v) in states.items() if s != "accepted" and (s, v) != ("used", version)]
            _raise_if_wrong(wrong, states, "used")
            todo = [i for i, (s, _) in states.items() if s == "accepted"]
            _update_ids(session, todo, status="used", used_in_version=version)

    # ---- decisions ---------------------------------------------------------------------------

    def record_decision(
        self,
        kind: str,
        retrain: bool,
        reason: str,
        details: dict[str, Any],
        model_version: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Record a decision (kind monitor/retrain/skip) with its evidence; returns its id."""
        _check_choice("decision kind", kind, DECISION_KINDS)
        row = DecisionRow(
            kind=kind,
            retrain=bool(retrain),
            reason=reason,
            details=json.dumps(details, sort_keys=True, default=str),
            model_version=model_version,
            run_id=run_id,
            created_at=utc_now(),
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return row.id

    def decisions(self, kind: str | None = None, limit: int = 50) -> list[Decision]:
        """The latest decisions (newest first), optionally of one kind."""
        stmt = select(DecisionRow).order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc())
        if kind is not None:
            _check_choice("decision kind", kind, DECISION_KINDS)
            stmt = stmt.where(DecisionRow.kind == kind)
        with self._read() as session:
            return [_decision(row) for row in session.scalars(stmt.limit(limit))]

    def last_decision(self, kind: str | None = None) -> Decision | None:
        """The newest decision (of ``kind`` if given), or None."""
        found = self.decisions(kind, limit=1)
        return found[0] if found else None

    def last_retrain_at(self) -> datetime | None:
        """When the last completed retraining was recorded, or None.

        A completed retraining is a decision of kind ``"retrain"`` with ``retrain=True`` and
        ``details["status"] == "completed"`` (the retrain flow records it when training finished).
        """
        stmt = (
            select(DecisionRow)
            .where(DecisionRow.kind == "retrain", DecisionRow.retrain.is_(True))
            .order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc())
        )
        with self._read() as session:
            for row in session.scalars(stmt):
                if json.loads(row.details).get("status") == "completed":
                    return row.created_at
        return None

    # ---- locks -------------------------------------------------------------------------------

    def acquire_lock(
        self,
        name: str,
        holder: str,
        stale_after: timedelta,
        holder_is_dead: Callable[[str], bool] | None = None,
    ) -> bool:
        """Take the lock ``name`` for ``holder``; False if someone holds it and it is not stale.

        Insert-or-fail on the lock's primary key; a lock older than ``stale_after``, or whose holder
        ``holder_is_dead`` says has died (a killed process), is taken over with a compare-and-swap
        update. Not re-entrant: a holder asking again while it holds the lock gets False too.
        """
        now = utc_now()
        try:
            with self._write() as session:
                current = session.get(LockRow, name)
                if current is None:
                    session.add(LockRow(name=name, holder=holder, acquired_at=now))
                    session.flush()
                    return True
                dead = holder_is_dead is not None and holder_is_dead(current.holder)
                if current.acquired_at > now - stale_after and not dead:
                    return False
                return _take_over_lock(session, current, holder, now)
        except IntegrityError:  # another holder inserted the lock concurrently
            return False

    def release_lock(self, name: str, holder: str) -> bool:
        """Release ``name`` if ``holder`` holds it; False (and a warning) if it did not."""
        with self._write() as session:
            result = session.execute(delete(LockRow).where(LockRow.name == name, LockRow.holder == holder))
        released = bool(result.rowcount)  # type: ignore[attr-defined]
        if not released:
            logger.warning("Lock %r was not held by %r (taken over as stale?)", name, holder)
        return released


# ---- engine ------------------------------------------------------------------------------------


def _create_engine(url: str) -> Engine:
    """An engine; on SQLite: WAL, busy timeout, foreign keys and real transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not emit BEGIN itself; we do
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front, so two writers queue instead of failing on upgrade.
        write = connection.get_execution_options().get("loopline_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _create_schema(engine: Engine) -> None:
    try:
        Base.metadata.create_all(engine)
    except DBAPIError:  # two processes creating the tables at once: the second sees them now
        logger.debug("create_all raced with another process; retrying once", exc_info=True)
        Base.metadata.create_all(engine)
    _add_missing_columns(engine)


def _add_missing_columns(engine: Engine) -> None:
    """Stores written by an older loopline lack newer (nullable) columns: add them with their indexes,
    and fill the row keys of existing feedback rows."""
    inspector = inspect(engine)
    added: list[str] = []
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            missing = [column for column in table.columns if column.name not in present]
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                added.append(f"{table.name}.{column.name}")
            for index in table.indexes if missing else ():
                index.create(conn, checkfirst=True)
        if "feedback.row_key" in added:
            rows = conn.execute(
                select(FeedbackRow.id, FeedbackRow.text, FeedbackRow.label, FeedbackRow.user)
            ).all()
            keys = [{"row_id": r.id, "key": row_key(r.text, r.label, r.user)} for r in rows]
            if keys:
                conn.execute(
                    text(f"UPDATE {FEEDBACK_TABLE.name} SET row_key = :key WHERE id = :row_id"), keys
                )
    if added:
        logger.info("Feedback store migrated: added %s", ", ".join(added))


def _fill_row_keys(conn: Any) -> None:
    rows = conn.execute(select(FeedbackRow.id, FeedbackRow.text, FeedbackRow.label, FeedbackRow.user)).all()
    keys = [{"row_id": r.id, "key": row_key(r.text, r.label, r.user)} for r in rows]
    if keys:
        conn.execute(text(f"UPDATE {FEEDBACK_TABLE.name} SET row_key = :key WHERE id = :row_id"), keys)


# ---- helpers -----------------------------------------------------------------------------------


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown {what} {value!r}; use one of {', '.join(allowed)}.")


def _check_aware(moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"Naive datetime {moment!r}: pass a timezone-aware datetime (e.g. UTC).")


def _as_optional_str(value: Any) -> str | None:
    if value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value))):
        return None
    return value if isinstance(value, str) else str(value)


def _feedback_values(df: pd.DataFrame, batch_id: str, source: str) -> list[dict[str, Any]]:
    """Rows of ``df`` as insert values for the feedback table."""
    _check_feedback_frame(df, source)
    source_rows = df["source_row"].astype(int).tolist() if "source_row" in df else range(1, len(df) + 1)
    now = utc_now()
    optional = [c for c in OPTIONAL_FEEDBACK_COLUMNS if c in df.columns]
    records = df[["text", "label", *optional]].to_dict("records")
    keys = ("text", "label", *OPTIONAL_FEEDBACK_COLUMNS)
    values: list[dict[str, Any]] = []
    for record, row in zip(records, source_rows, strict=True):
        strings = {key: _as_optional_str(record.get(key)) for key in keys}
        values.append(
            {
                **strings,
                "batch_id": batch_id,
                "source_row": int(row),
                "status": "pending",
                "created_at": now,
                "row_key": row_key(strings["text"], strings["label"], strings["user"]),
            }
        )
    return values


def _check_feedback_frame(df: pd.DataFrame, source: str) -> None:
    """Raise DataError for feedback the tables cannot hold the same way on every database."""
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        raise DataError(
            f"Feedback is missing column(s) {', '.join(missing)}; it has {', '.join(map(str, df.columns))}",
            where=source,
            hint="Pass --text-col/--label-col with the names of the text and label columns.",
        )
    if "source_row" in df and df["source_row"].duplicated().any():
        raise DataError("Feedback has duplicate source_row values", where=source, hint="Number rows 1..n.")
    if "prediction_id" in df:
        too_long = df["prediction_id"].dropna().astype(str).str.len() > ID_LENGTH
        if too_long.any():
            raise DataError(
                f"prediction_id longer than {ID_LENGTH} characters in {int(too_long.sum())} row(s)",
                where=f"{source}, column prediction_id",
                hint="Send back the id the prediction API returned.",
            )


def _set_batch_status(
    session: Session, batch_id: str, status: str, contract_summary: dict[str, Any] | None
) -> None:
    values: dict[str, Any] = {"status": status}
    if contract_summary is not None:
        values["contract_summary"] = json.dumps(contract_summary, sort_keys=True, default=str)
    result = session.execute(update(FeedbackBatchRow).where(FeedbackBatchRow.id == batch_id).values(**values))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise FeedbackStoreError(
            f"Unknown feedback batch {batch_id!r}", hint="List batches with FeedbackStore.batches()."
        )


def row_key(text: str | None, label: str | None, user: str | None) -> str | None:
    """The identity of a feedback row across batches: normalised text, label and user; None for a row
    without text or label (the contract quarantines those, each with its own reason)."""
    if not text or not text.strip() or not label:
        return None
    payload = "\0".join([normalise_text(text or ""), label or "", user or ""])
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _stored_row_keys(session: Session, keys: set[str]) -> set[str]:
    """Which of ``keys`` the store holds already, quarantined rows aside (those may be sent again)."""
    found: set[str] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), ID_CHUNK):
        chunk = ordered[start : start + ID_CHUNK]
        stmt = select(FeedbackRow.row_key).where(
            FeedbackRow.row_key.in_(chunk), FeedbackRow.status != "quarantined"
        )
        found.update(key for key in session.scalars(stmt) if key)
    return found


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start : start + ID_CHUNK]


def _load_states(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """(status, used_in_version) of each id; unknown ids raise."""
    wanted = sorted({int(i) for i in ids})
    states: dict[int, tuple[str, str | None]] = {}
    for chunk in _chunks(wanted):
        stmt = select(FeedbackRow.id, FeedbackRow.status, FeedbackRow.used_in_version).where(
            FeedbackRow.id.in_(chunk)
        )
        states.update({row.id: (row.status, row.used_in_version) for row in session.execute(stmt)})
    unknown = [i for i in wanted if i not in states]
    if unknown:
        raise FeedbackStoreError(
            f"Unknown feedback id(s) {unknown[:10]}{' ...' if len(unknown) > 10 else ''}",
            hint="Use ids from pending_feedback() / accepted_unused_feedback().",
        )
    return states


def _raise_if_wrong(wrong: list[int], states: Mapping[int, tuple[str, str | None]], target: str) -> None:
    if wrong:
        shown = ", ".join(f"{i} ({states[i][0]})" for i in wrong[:10])
        raise FeedbackStoreError(
            f"Cannot mark feedback as {target}: row(s) {shown} are not in a state that allows it",
            hint="Feedback goes pending → accepted or quarantined, and accepted → used.",
        )


def _check_transition(session: Session, ids: Iterable[int], target: str, allowed_from: set[str]) -> list[int]:
    """Raise unless every id may move to ``target``; return the ids not already there."""
    states = _load_states(session, ids)
    _raise_if_wrong([i for i, (s, _) in states.items() if s not in allowed_from], states, target)
    return [i for i, (s, _) in states.items() if s != target]


def _update_ids(session: Session, ids: Sequence[int], **values: Any) -> None:
    for chunk in _chunks(ids):
        session.execute(update(FeedbackRow).where(FeedbackRow.id.in_(chunk)).values(**values))


def _take_over_lock(session: Session, current: LockRow, holder: str, now: datetime) -> bool:
    """Compare-and-swap a stale lock to ``holder``; False if someone else changed it first."""
    previous, acquired_at = current.holder, current.acquired_at
    result = session.execute(
        update(LockRow)
        .where(LockRow.name == current.name, LockRow.holder == previous, LockRow.acquired_at == acquired_at)
        .values(holder=holder, acquired_at=now)
        .execution_options(synchronize_session=False)
    )
    taken = bool(result.rowcount)  # type: ignore[attr-defined]
    if taken:
        logger.warning("Took over stale lock %r from %r (held since %s)", current.name, previous, acquired_at)
    return taken


def _batch_info(row: FeedbackBatchRow) -> BatchInfo:
    summary = json.loads(row.contract_summary) if row.contract_summary else None
    return BatchInfo(row.id, row.source, row.imported_at, row.row_count, row.status, summary)


def _decision(row: DecisionRow) -> Decision:
    return Decision(
        id=row.id,
        kind=row.kind,
        created_at=row.created_at,
        retrain=row.retrain,
        reason=row.reason,
        details=json.loads(row.details),
        model_version=row.model_version,
        run_id=row.run_id,
    )
