"""What a contract run found: per-rule outcomes and the accepted / quarantined rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class CheckOutcome:
    """One rule of a suite: did it pass, which rows (``source_row``) failed it, and in words."""

    rule: str
    column: str | None
    success: bool
    failed_rows: list[int]
    detail: str
    expectation: str = ""  # the GX rule behind it: "expect_... on column"
    action: str = ""  # quarantine | truncate | fail | abort

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "success": self.success,
            "failed_rows": [int(row) for row in self.failed_rows],
            "detail": self.detail,
            "expectation": self.expectation,
            "action": self.action,
        }


@dataclass(frozen=True)
class ContractResult:
    """Outcome of validating one dataset or feedback batch.

    ``accepted`` keeps the input's columns and index (texts over max_text_chars, or sentences over
    max_sentence_tokens, truncated); ``quarantined`` keeps the input's columns and index plus
    ``reason``. Together they hold every input row exactly once. ``success`` is False only when a
    batch rule failed. ``label_counts``: what the contract counts of the accepted labels (rows per
    label; entity mentions per type for token data); None counts the label column's values.
    """

    suite: str
    source: str
    success: bool
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    checks: list[CheckOutcome]
    truncated_rows: int
    quarantine_path: Path | None
    report_path: Path | None
    parameters: dict[str, Any] = field(default_factory=dict)
    docs_path: Path | None = None
    label_counts: dict[str, int] | None = None

    @property
    def num_rows(self) -> int:
        return len(self.accepted) + len(self.quarantined)

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [check for check in self.checks if not check.success]

    def quarantined_by_rule(self) -> dict[str, int]:
        """How many rows each quarantine rule failed (a row failing two rules counts for both)."""
        rules = Counter[str]()
        for check in self.checks:
            if check.action == "quarantine" and not check.success:
                rules[check.rule] += len(check.failed_rows)
        return dict(rules)

    def accepted_label_counts(self) -> dict[str, int]:
        """``label_counts``, else rows per value of the accepted label column; sorted by label."""
        if self.label_counts is not None:
            counts = self.label_counts
        elif "label" in self.accepted:
            counts = self.accepted["label"].astype(str).value_counts().to_dict()
        else:
            counts = {}
        return {str(label): int(count) for label, count in sorted(counts.items())}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (no row data besides row numbers)."""
        return {
            "suite": self.suite,
            "source": self.source,
            "success": self.success,
            "num_rows": self.num_rows,
            "num_accepted": len(self.accepted),
            "num_quarantined": len(self.quarantined),
            "truncated_rows": self.truncated_rows,
            "accepted_label_counts": self.accepted_label_counts(),
            "quarantined_by_rule": self.quarantined_by_rule(),
            "checks": [check.to_dict() for check in self.checks],
            "parameters": {key: _json_safe(value) for key, value in self.parameters.items()},
            "quarantine_path": str(self.quarantine_path) if self.quarantine_path else None,
            "report_path": str(self.report_path) if self.report_path else None,
            "docs_path": str(self.docs_path) if self.docs_path else None,
        }

    def summary(self) -> str:
        """A few lines for a person: verdict, counts, where the quarantined rows went, failed rules."""
        verdict = "passed" if self.success else "FAILED"
        lines = [
            f"Data contract '{self.suite}' {verdict} for {self.source}: {len(self.accepted)} of "
            f"{self.num_rows} rows accepted, {len(self.quarantined)} quarantined, "
            f"{self.truncated_rows} text(s) truncated."
        ]
        for check in self.checks:
            if not check.success:
                lines.append(f"  - {check.rule} ({check.action}): {check.detail}")
        if self.quarantine_path:
            lines.append(f"  Quarantined rows with reasons: {self.quarantine_path}")
        if self.report_path:
            lines.append(f"  Validation report: {self.report_path}")
        return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
