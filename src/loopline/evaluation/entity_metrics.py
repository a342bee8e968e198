"""Named-entity metrics: entity-level precision/recall/F1 per type (seqeval, exact match, BIO) and the
token-level report (every tag, ``O`` included) in the layout of the documents loopline grew from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from seqeval.metrics import classification_report as entity_report
from seqeval.scheme import IOB2
from sklearn.metrics import classification_report as token_report
from sklearn.metrics import confusion_matrix

from loopline.data.tagged import entity_type
from loopline.errors import DataError
from loopline.evaluation.metrics import EvalMetrics, expected_calibration_error
from loopline.metric_names import ENTITY_F1


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
        kind: {("f1" if k == "f1-score" else k): float(v) for k, v in row.items()}
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


def token_eval_metrics(
    true_tags: Sequence[str], predicted_tags: Sequence[str], confidences: np.ndarray, labels: Sequence[str]
) -> EvalMetrics:
    """:class:`EvalMetrics` of tagged sentences (each a space-joined tag string, as stored in frames).

    ``primary`` is the entity-level micro F1 and ``per_class`` holds precision/recall/F1/support per
    entity type (seqeval, strict), so the gate's forgetting and new-label checks work per type;
    ``accuracy`` is the token-level micro F1 (every word, ``O`` included), ``confusion`` is over word
    types (``O`` and each entity type), ``ece`` is over sentences (right when every tag is right,
    against the sentence's lowest word confidence) and ``details`` holds the token-level report.
    """
    true = [str(t).split() for t in true_tags]
    pred = [str(p).split() for p in predicted_tags]
    entity = compute_entity_metrics(true, pred)
    kinds = [entity_type(tag) for tag in labels]
    order = list(dict.fromkeys(["O", *kinds]))
    flat_true = [entity_type(tag) for sentence in true for tag in sentence]
    flat_pred = [entity_type(tag) for sentence in pred for tag in sentence]
    order += sorted(set(flat_true + flat_pred) - set(order))
    exact = np.array([t == p for t, p in zip(true, pred, strict=True)], dtype=np.float64)
    return EvalMetrics(
        accuracy=entity.token_micro_f1,
        macro_f1=entity.macro_f1,
        per_class=entity.per_class,
        confusion=confusion_matrix(flat_true, flat_pred, labels=order).astype(int).tolist(),
        labels=order,
        ece=float(expected_calibration_error(exact, np.asarray(confidences, dtype=np.float64))),
        primary_name=ENTITY_F1,
        primary=entity.primary,
        details={
            "entity_micro_precision": entity.micro_precision,
            "entity_micro_recall": entity.micro_recall,
            "token_report": entity.token_report,
        },
    )
