"""Which Label Studio annotations became which feedback rows: the ``label_studio_annotations`` table.

One row per (server, project, annotation): the annotation's ``updated_at`` when it was imported and the
feedback batch and row it went into. A link counts only once its batch exists in the store, so links are
written *before* the batch is imported: a kill between the two leaves links that count for nothing, and
the next pull imports those annotations again (as one batch, or row by row when more arrived meanwhile).
The table lives beside the feedback tables (same database, same declarative base), created on open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, PrimaryKeyConstraint, String, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from loopline.feedback.engine import StoreCore
from loopline.feedback.schema import ID_LENGTH, Base, FeedbackBatchRow, FeedbackRow, UTCDateTime, utc_now


class AnnotationLinkRow(Base):
    """One Label Studio annotation imported as feedback."""

    __tablename__ = "label_studio_annotations"
    __table_args__ = (PrimaryKeyConstraint("server", "project_id", "annotation_id", name="pk_label_studio"),)

    server: Mapped[str] = mapped_column(String(255))  # the base URL: two servers number projects alike
    project_id: Mapped[int] = mapped_column(Integer)
    annotation_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[str] = mapped_column(String(64))  # as Label Studio wrote it: compared, not parsed
    task_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    batch_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    source_row: Mapped[int] = mapped_column(Integer)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


@dataclass(frozen=True)
class AnnotationLink:
    annotation_id: int
    updated_at: str
    task_id: int
    label: str | None
    batch_id: str
    source_row: int


class AnnotationLinks(StoreCore):
    """The links of one Label Studio project, in the feedback store's database."""

    def __init__(self, url: str, server: str, project_id: int) -> None:
        super().__init__(url)  # creates the table with the feedback tables (same metadata)
        self.server, self.project_id = server, project_id

    def imported(self) -> dict[int, AnnotationLink]:
        """Annotation id → its link, for links whose feedback batch the store holds."""
        stmt = (
            select(AnnotationLinkRow)
            .join(FeedbackBatchRow, FeedbackBatchRow.id == AnnotationLinkRow.batch_id)
            .where(AnnotationLinkRow.server == self.server, AnnotationLinkRow.project_id == self.project_id)
        )
        with self._read() as session:
            return {
                row.annotation_id: AnnotationLink(
                    row.annotation_id, row.updated_at, row.task_id, row.label, row.batch_id, row.source_row
                )
                for row in session.scalars(stmt)
            }

    def record(
        self, links: Iterable[AnnotationLink], superseded: Iterable[AnnotationLink], reason: str
    ) -> int:
        """In one transaction: record (or move) these annotations' links, and quarantine the feedback rows of
        ``superseded`` links, earlier versions of re-annotated tasks, that no model has trained on yet
        (pending or accepted), so the correction replaces the first label instead of training beside it; a
        row already used stays as the history of that model. Returns how many rows were quarantined."""
        values = [
            {
                "server": self.server,
                "project_id": self.project_id,
                "annotation_id": link.annotation_id,
                "updated_at": link.updated_at,
                "task_id": link.task_id,
                "label": link.label,
                "batch_id": link.batch_id,
                "source_row": link.source_row,
                "linked_at": utc_now(),
            }
            for link in links
        ]
        moved = 0
        with self._write() as session:
            for old in superseded:
                result = session.execute(
                    update(FeedbackRow)
                    .where(
                        FeedbackRow.batch_id == old.batch_id,
                        FeedbackRow.source_row == old.source_row,
                        FeedbackRow.status.in_(("pending", "accepted")),
                    )
                    .values(status="quarantined", reason=f"{reason} (annotation {old.annotation_id})")
                )
                moved += int(result.rowcount or 0)  # type: ignore[attr-defined]
            if values:
                session.execute(
                    delete(AnnotationLinkRow).where(
                        AnnotationLinkRow.server == self.server,
                        AnnotationLinkRow.project_id == self.project_id,
                        AnnotationLinkRow.annotation_id.in_([v["annotation_id"] for v in values]),
                    )
                )
                session.execute(insert(AnnotationLinkRow), values)
        return moved
