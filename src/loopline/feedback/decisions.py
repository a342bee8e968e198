"""Monitoring and retraining decisions, each with its evidence: what the monitor decided on a window,
and how each retrain round ended (completed, skipped)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from loopline.feedback.engine import StoreCore, check_choice
from loopline.feedback.schema import DECISION_KINDS, DecisionRow, utc_now


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


class DecisionLog(StoreCore):
    """The ``decisions`` table."""

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
        check_choice("decision kind", kind, DECISION_KINDS)
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
            check_choice("decision kind", kind, DECISION_KINDS)
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
