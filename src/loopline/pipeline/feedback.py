"""Feedback in: import a file into the store, hold the batch to the feedback contract, record the verdict."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loopline.config import Settings
from loopline.contracts import ContractResult
from loopline.errors import ContractViolation, DataError
from loopline.faults import crash_point
from loopline.feedback.batches import BatchInfo, ImportResult
from loopline.feedback.store import FeedbackStore
from loopline.tasks import get_task

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
    duplicate_rows: int = 0  # rows the store already held from earlier batches, not added again
    quarantine_dir: str = ""


def intake_feedback(
    settings: Settings,
    store: FeedbackStore,
    path: str | Path,
    known_labels: Collection[str],
    *,
    text_column: str | None = None,
    label_column: str | None = None,
) -> FeedbackIntake:
    """Import (idempotent, atomic) then review the batch's pending rows (one transaction).

    Import and review are two transactions, so a kill between them leaves the batch ``imported`` with
    pending rows; the next call (the same file again) reviews exactly those rows.
    """
    task = get_task(settings.task)
    text_column, label_column = text_column or settings.text_column, label_column or settings.label_column
    read = None
    if task.name != "sequence":  # the task's own file formats (CoNLL, token JSONL)
        read = lambda file: task.read_labelled(  # noqa: E731 - one call, named by its parameter
            file, text_column, label_column, settings.encoding, settings.label_map
        )
    imported = store.import_feedback_file(
        path,
        text_column,
        label_column,
        encoding=settings.encoding,
        label_map=settings.label_map,
        check=lambda frame: check_label_names(frame, known_labels, str(path)),
        read=read,
    )
    return _review_imported(settings, store, imported, str(path), known_labels)


def intake_feedback_rows(
    settings: Settings,
    store: FeedbackStore,
    frame: pd.DataFrame,
    source: str,
    content_hash: str,
    known_labels: Collection[str],
) -> FeedbackIntake:
    """:func:`intake_feedback` for rows that come from elsewhere than a file (Label Studio annotations):
    columns text, label and optionally source_row, user, source, prediction_id; the batch id derives from
    ``content_hash`` as a file's does from its bytes, so the same rows again add nothing."""
    check_label_names(frame, known_labels, source)
    imported = store.import_feedback(frame, source=source, content_hash=content_hash)
    return _review_imported(settings, store, imported, source, known_labels)


def _review_imported(
    settings: Settings,
    store: FeedbackStore,
    imported: ImportResult,
    source: str,
    known_labels: Collection[str],
) -> FeedbackIntake:
    """The second transaction of an intake: review the batch's pending rows (none: already reviewed)."""
    crash_point("feedback.imported")
    batch = store.get_batch(imported.batch_id)
    assert batch is not None, "an import returns the id of a stored batch"
    pending = store.pending_feedback(imported.batch_id)
    if batch.status != "imported" or pending.empty:
        return _already_reviewed(settings, batch, imported)
    return _review_batch(
        settings,
        store,
        batch.id,
        pending,
        source,
        known_labels,
        imported.rows_added,
        imported.already_imported,
        imported.duplicate_rows,
    )


def review_pending_feedback(
    settings: Settings, store: FeedbackStore, known_labels: Collection[str]
) -> list[FeedbackIntake]:
    """Hold every batch with unreviewed rows to the feedback contract: the labels the serving API took
    during the day (already checked row by row at the door), and any batch a kill left imported."""
    reviewed = []
    for batch_id in store.batches_with_pending():
        batch = store.get_batch(batch_id)
        source = batch.source if batch else batch_id
        pending = store.pending_feedback(batch_id)
        reviewed.append(_review_batch(settings, store, batch_id, pending, source, known_labels, 0, True, 0))
    return reviewed


def check_label_names(frame: pd.DataFrame, known_labels: Collection[str], source: str) -> None:
    """Refuse class ids where the model has names: ``0, 1, 2`` would otherwise become new labels."""
    labels = {str(label) for label in frame["label"].dropna()}
    known = {str(label) for label in known_labels}
    if not labels or labels & known or not all(label.lstrip("-").isdigit() for label in labels):
        return
    if all(label.lstrip("-").isdigit() for label in known):
        return
    shown = ", ".join(sorted(labels, key=lambda x: int(x))[:6])
    names = ", ".join(sorted(known)[:6])
    raise DataError(
        f"The labels look like class ids ({shown}) but the model's labels are names ({names}, ...); "
        "they would be taken as new classes",
        where=f"{source}, column label",
        hint="Map them with --label-map 0=NAME,1=NAME (or label_map in loopline.toml), then import again.",
    )


def _already_reviewed(settings: Settings, batch: BatchInfo, imported: ImportResult) -> FeedbackIntake:
    """A batch imported and reviewed before (or one whose every row the store already held)."""
    summary = batch.contract_summary or {}
    logger.info("Feedback batch %s was already reviewed (%s); nothing to do", batch.id, batch.status)
    return FeedbackIntake(
        batch.id,
        imported.rows_added,
        imported.already_imported,
        int(summary.get("accepted_rows", 0)),
        int(summary.get("quarantined_rows", 0)),
        batch.status if batch.status != "imported" else "accepted",
        str(summary.get("reason", "already imported")),
        imported.duplicate_rows or int(summary.get("duplicate_rows", 0)),
        str(settings.quarantine_dir / "feedback"),
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
    duplicates: int,
) -> FeedbackIntake:
    quarantine_dir = settings.quarantine_dir / "feedback"
    try:
        task = get_task(settings.task)
        result = task.validate_feedback(pending, known_labels, settings.contract, source, quarantine_dir)
    except ContractViolation as err:
        rejected = err.result if isinstance(err.result, ContractResult) else None
        why = f"batch rejected by the feedback contract: {err}"
        reasons = _reasons(rejected) if rejected else {}
        reasons.update({int(i): why for i in pending["id"] if int(i) not in reasons})
        summary = {**_summary(rejected, len(pending), duplicates), "reason": why}
        store.record_review(batch_id, [], reasons, "rejected", summary)
        logger.warning("Feedback batch %s rejected: %s", batch_id, err)
        return FeedbackIntake(
            batch_id,
            rows_added,
            already_imported,
            0,
            len(reasons),
            "rejected",
            str(err),
            duplicates,
            str(quarantine_dir),
        )
    accepted = [int(i) for i in result.accepted["id"]]
    summary = {**_summary(result, len(pending), duplicates), "reason": result.summary()}
    store.record_review(batch_id, accepted, _reasons(result), "accepted", summary)
    logger.info(
        "Feedback batch %s: %d accepted, %d quarantined", batch_id, len(accepted), len(result.quarantined)
    )
    return FeedbackIntake(
        batch_id,
        rows_added,
        already_imported,
        len(accepted),
        len(result.quarantined),
        "accepted",
        result.summary(),
        duplicates,
        str(quarantine_dir),
    )


def _reasons(result: ContractResult) -> dict[int, str]:
    return {int(row["id"]): str(row["reason"]) for _, row in result.quarantined.iterrows()}


def _summary(result: ContractResult | None, rows: int, duplicates: int) -> dict[str, object]:
    base = result.to_dict() if result else {}
    return {
        **base,
        "rows": rows,
        "duplicate_rows": duplicates,
        "accepted_rows": len(result.accepted) if result else 0,
        "quarantined_rows": rows - (len(result.accepted) if result else 0),
    }
