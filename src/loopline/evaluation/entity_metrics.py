"""Named-entity metrics: entity-level precision/recall/F1 per type (seqeval, exact match, BIO) and the
token-level report (every tag, ``O`` included) in the layout of the documents loopline grew from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seqeval.metrics import classification_report as entity_report
from seqeval.scheme import IOB2
from sklearn.metrics import classification_report as token_report

from loopline.errors import DataError


@dataclass(frozen=True)
class EntityMetrics:
    """``primary`` is the entity-level micro F1 (the gate's number); ``per_class`` is keyed by type."""

    primary: float
    micro_precision: float
    micro_recall: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # type → precision, recall, f1, support
    token_micro_f1: float  # over every token, O included
    token_report: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compute_entity_metrics(
    true: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> EntityMetrics:
    """Metrics of predicted BIO tag sequences against the true ones (same sentences, same lengths)."""
    if len(true) != len(predicted) or any(len(t) != len(p) for t, p in zip(true, predicted, strict=True)):
        raise DataError("True and predicted tags must have one tag per token of the same sentences.")
    y_true, y_pred = [list(t) for t in true], [list(p) for p in predicted]
    report = entity_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_class = {
        kind: {k: float(v) for k, v in row.items()}
        for kind, row in report.items()
        if not kind.endswith(" avg")
    }
    flat_true = [tag for sentence in y_true for tag in sentence]
    flat_pred = [tag for sentence in y_pred for tag in sentence]
    tokens = token_report(flat_true, flat_pred, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    return EntityMetrics(
        primary=float(micro["f1-score"]),
        micro_precision=float(micro["precision"]),
        micro_recall=float(micro["recall"]),
        macro_f1=float(report.get("macro avg", {}).get("f1-score", 0.0)),
        per_class=per_class,
        token_micro_f1=float(tokens["accuracy"]),  # micro F1 over all tokens equals token accuracy
        token_report={k: v for k, v in tokens.items() if isinstance(v, dict)},
    )
