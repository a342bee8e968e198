"""Feedback in: import a file into the store, hold the batch to the feedback contract, record the verdict."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loopline.config import Settings
from loopline.contracts import ContractResult, validate_feedback_batch
from loopline.errors import ContractViolation
from loopline.feedback.store import FeedbackStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackIntake:
    batch_id: str
    rows_added: int
    already_imported: bool
    accepted: int
    quarantined: int
    batch_status: str  # accepted | rejected (a rejected batch never feeds training)
    reason: str


def intake_feedback(
    settings: Settings,
    store: FeedbackStore,
    path: str | Path,
    known_labels: Collection[str],
    *,
    text_column: str | None = None,
    label_column: str | None = None,
) -> FeedbackIntake:
    """Import (idempotent, atomic) then validate the batch's pending rows.

    Import and review are two steps so that a crash between them is harmless: the batch stays
    ``imported`` with pending rows, and the next call reviews exactly those rows.
    """
    imported = store.import_feedback_file(
        path, text_column or settings.text_column, label_column or settings.label_column
    )
    batch = store.get_batch(imported.batch_id)
    pending = store.pending_feedback(imported.batch_id)
    if batch is not None and batch.status != "imported" and pending.empty:
        logger.info("Feedback batch %s was already reviewed (%s); nothing to do", batch.id, batch.status)
        summary = batch.contract_summary or {}
        return FeedbackIntake(
            batch.id,
            0,
            True,
            int(summary.get("accepted_rows", 0)),
            int(summary.get("quarantined_rows", 0)),
            batch.status,
            "already imported",
        )
    return _review_batch(
        settings,
        store,
        imported.batch_id,
        pending,
        str(path),
        known_labels,
        imported.rows_added,
        imported.already_imported,
    )


def _review_batch(
    settings: Settings,
    store: FeedbackStore,
    batch_id: str,
    pending: pd.DataFrame,
    source: str,
    known_labels: Collection[str],
    rows_added: int,
    already_imported: bool,
) -> FeedbackIntake:
    quarantine_dir = settings.quarantine_dir / "feedback"
    try:
        result = validate_feedback_batch(pending, known_labels, settings.contract, source, quarantine_dir)
    except ContractViolation as err:
        rejected: ContractResult = err.result  # type: ignore[assignment]
        reasons = _reasons(rejected)
        why = f"batch rejected by the feedback contract: {err.what}"
        reasons.update({int(i): why for i in pending["id"] if int(i) not in reasons})
        store.mark_quarantined(reasons)
        store.set_batch_status(batch_id, "rejected", _summary(rejected, len(pending)))
        logger.warning("Feedback batch %s rejected: %s", batch_id, err)
        return FeedbackIntake(batch_id, rows_added, already_imported, 0, len(reasons), "rejected", str(err))
    store.mark_quarantined(_reasons(result))
    store.mark_accepted([int(i) for i in result.accepted["id"]])
    store.set_batch_status(batch_id, "accepted", _summary(result, len(pending)))
    logger.info(
        "Feedback batch %s: %d accepted, %d quarantined",
        batch_id,
        len(result.accepted),
        len(result.quarantined),
    )
    return FeedbackIntake(
        batch_id,
        rows_added,
        already_imported,
        len(result.accepted),
        len(result.quarantined),
        "accepted",
        result.summary(),
    )


def _reasons(result: ContractResult) -> dict[int, str]:
    return {int(row["id"]): str(row["reason"]) for _, row in result.quarantined.iterrows()}


def _summary(result: ContractResult, rows: int) -> dict[str, object]:
    return {
        **result.to_dict(),
        "rows": rows,
        "accepted_rows": len(result.accepted),
        "quarantined_rows": len(result.quarantined),
    }
