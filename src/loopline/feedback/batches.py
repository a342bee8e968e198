"""Feedback batches and their rows: files imported whole or not at all, labels sent through the serving
API, and the contract's review of each batch (pending → accepted or quarantined, accepted → used).

A feedback file is imported completely or not at all, and importing the same content twice adds nothing;
a row the store already holds from an earlier batch (same normalised text, label and user) is not added
again. Files are read by :func:`loopline.data.loading.load_labelled_text`, the one reader of labelled
files, which keeps the optional columns (``user``, ``source``, ``prediction_id``) beside text and label.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopline.data.loading import load_labelled_text
from loopline.errors import DataError
from loopline.faults import crash_point
from loopline.feedback.engine import FEEDBACK_TABLE, FeedbackStoreError, StoreCore, check_aware, check_choice
from loopline.feedback.schema import (
    BATCH_STATUSES,
    FEEDBACK_STATUSES,
    ID_LENGTH,
    FeedbackBatchRow,
    FeedbackRow,
    PredictionRow,
    row_key,
    utc_now,
)
from loopline.progress import tracked

logger = logging.getLogger(__name__)

IMPORT_CHUNK_ROWS = 500  # feedback rows sent per INSERT while importing (all in one transaction)
ID_CHUNK = 500  # ids per IN (...) list, well below SQLite's and PostgreSQL's parameter limits
OPTIONAL_FEEDBACK_COLUMNS = ("user", "source", "prediction_id")
FEEDBACK_COLUMNS = ["id", "text", "label", "user", "source", "source_row", "batch_id", "prediction_id"]


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


class FeedbackBatches(StoreCore):
    """The ``feedback_batches`` and ``feedback`` tables: imports, API labels, queries and the review."""

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
        rows = _FeedbackValues.of(df, batch_id, source)
        try:
            with self._write() as session:
                if session.get(FeedbackBatchRow, batch_id) is not None:
                    return ImportResult(batch_id, rows_added=0, already_imported=True)
                known = _stored_row_keys(session, {key for key in rows.keys if key})
                fresh = [i for i, key in enumerate(rows.keys) if key is None or key not in known]
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
                for start in tracked(range(0, len(fresh), IMPORT_CHUNK_ROWS), "Importing feedback"):
                    # Core insert: one executemany per chunk (the ORM would regroup rows by nulls).
                    chunk = rows.values(fresh[start : start + IMPORT_CHUNK_ROWS])
                    session.execute(insert(FEEDBACK_TABLE), chunk)
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
        check_choice("batch status", status, BATCH_STATUSES)
        with self._write() as session:
            _set_batch_status(session, batch_id, status, contract_summary)

    # ---- feedback queries --------------------------------------------------------------------

    def pending_feedback(self, batch_id: str | None = None) -> pd.DataFrame:
        """Feedback rows not yet reviewed by the contract (columns FEEDBACK_COLUMNS)."""
        return self._feedback_frame("pending", batch_id)

    def accepted_unused_feedback(self) -> pd.DataFrame:
        """Accepted feedback rows not yet used to train a model (columns FEEDBACK_COLUMNS)."""
        return self._feedback_frame("accepted", None)

    def count_accepted_unused(self) -> int:
        """How many accepted feedback rows no model has trained on yet: a COUNT in the database, not the
        rows (the monitor asks on every pass, and the rows pile up until the next retraining)."""
        stmt = select(func.count()).select_from(FeedbackRow).where(FeedbackRow.status == "accepted")
        with self._read() as session:
            return int(session.scalar(stmt) or 0)

    def quarantined_feedback(self, batch_id: str | None = None) -> pd.DataFrame:
        """Quarantined feedback rows with their ``reason`` (FEEDBACK_COLUMNS + reason)."""
        return self._feedback_frame("quarantined", batch_id, extra=("reason",))

    def feedback_since(self, since: datetime | None, statuses: Collection[str] | None = None) -> pd.DataFrame:
        """All feedback rows created at or after ``since`` (all when None), of ``statuses`` (any when None).

        Columns: FEEDBACK_COLUMNS + status, reason, used_in_version, created_at.
        """
        check_aware(since)
        columns = [*FEEDBACK_COLUMNS, "status", "reason", "used_in_version", "created_at"]
        stmt = select(*(getattr(FeedbackRow, c) for c in columns)).order_by(FeedbackRow.id)
        if since is not None:
            stmt = stmt.where(FeedbackRow.created_at >= since)
        if statuses is not None:  # filtered by the database: rows left out are never read
            for status in statuses:
                check_choice("feedback status", status, FEEDBACK_STATUSES)
            stmt = stmt.where(FeedbackRow.status.in_(sorted(statuses)))
        return self._frame(stmt, columns)

    def _feedback_frame(self, status: str, batch_id: str | None, extra: tuple[str, ...] = ()) -> pd.DataFrame:
        columns = [*FEEDBACK_COLUMNS, *extra]
        stmt = select(*(getattr(FeedbackRow, c) for c in columns)).where(FeedbackRow.status == status)
        if batch_id is not None:
            stmt = stmt.where(FeedbackRow.batch_id == batch_id)
        return self._frame(stmt.order_by(FeedbackRow.id), columns)

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
        check_choice("batch status", status, BATCH_STATUSES)
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


# ---- helpers -----------------------------------------------------------------------------------


def _as_optional_str(value: Any) -> str | None:
    if value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value))):
        return None
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class _FeedbackValues:
    """Insert values of a feedback frame, built one chunk of rows at a time: as columns they are lists
    of the frame's own strings, not one dict per row held all at once (1M rows: peak RSS 1,003 → 931 MB)."""

    batch_id: str
    columns: dict[str, list[str | None]]  # text, label and the optional columns, one value per row
    source_rows: list[int]
    keys: list[str | None]  # row_key of each row
    created_at: datetime

    @classmethod
    def of(cls, df: pd.DataFrame, batch_id: str, source: str) -> _FeedbackValues:
        _check_feedback_frame(df, source)
        source_rows = df["source_row"].astype(int).tolist() if "source_row" in df else range(1, len(df) + 1)
        absent: list[str | None] = [None] * len(df)
        columns = {
            key: [_as_optional_str(v) for v in df[key]] if key in df.columns else absent
            for key in ("text", "label", *OPTIONAL_FEEDBACK_COLUMNS)
        }
        keys = [row_key(*row) for row in zip(columns["text"], columns["label"], columns["user"], strict=True)]
        return cls(batch_id, columns, [int(row) for row in source_rows], keys, utc_now())

    def __len__(self) -> int:
        return len(self.keys)

    def values(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Insert values of the rows at ``positions``."""
        return [
            {
                **{name: column[i] for name, column in self.columns.items()},
                "batch_id": self.batch_id,
                "source_row": self.source_rows[i],
                "status": "pending",
                "created_at": self.created_at,
                "row_key": self.keys[i],
            }
            for i in positions
        ]


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


def _batch_info(row: FeedbackBatchRow) -> BatchInfo:
    summary = json.loads(row.contract_summary) if row.contract_summary else None
    return BatchInfo(row.id, row.source, row.imported_at, row.row_count, row.status, summary)
