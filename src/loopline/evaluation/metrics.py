"""Classification metrics of one model on one evaluation set, and a confusion-matrix picture."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from loopline.errors import DataError
from loopline.metric_names import MACRO_F1

logger = logging.getLogger(__name__)

ECE_BINS = 15


@dataclass(frozen=True)
class EvalMetrics:
    """Metrics of predictions against true labels.

    ``labels`` is the model's label order followed (sorted) by any label that only occurs in the data,
    e.g. a new intent the champion never learnt; ``per_class`` and ``confusion`` follow that order
    (confusion rows are true labels, columns predictions). ``macro_f1`` averages over the labels that
    occur in the true or predicted labels (scikit-learn's default), so a label that is neither in the set
    nor predicted does not count as a zero. ``ece`` is the expected calibration error of the confidences.

    ``primary`` is the task's headline score, the one the gate compares (``primary_name`` says which:
    macro-F1 for sequence classification, entity-level micro F1 for token classification, where
    ``per_class`` is keyed by entity type and ``details`` holds the token-level report).
    """

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    labels: list[str]
    ece: float
    primary_name: str = MACRO_F1
    primary: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary_name == MACRO_F1 and math.isnan(self.primary):
            object.__setattr__(self, "primary", self.macro_f1)

    def recall(self, label: str) -> float | None:
        """Recall of ``label``, or None when the set has no example of it."""
        stats = self.per_class.get(label)
        if stats is None or stats["support"] == 0:
            return None
        return stats["recall"]

    def support(self, label: str) -> int:
        stats = self.per_class.get(label)
        return 0 if stats is None else int(stats["support"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalMetrics:
        return cls(
            accuracy=float(data["accuracy"]),
            macro_f1=float(data["macro_f1"]),
            per_class={k: {m: float(v) for m, v in s.items()} for k, s in data["per_class"].items()},
            confusion=[[int(v) for v in row] for row in data["confusion"]],
            labels=[str(label) for label in data["labels"]],
            ece=float(data["ece"]),
            primary_name=str(data.get("primary_name", MACRO_F1)),
            primary=float(data.get("primary", data["macro_f1"])),
            details=dict(data.get("details") or {}),
        )


def expected_calibration_error(correct: np.ndarray, confidences: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: bin confidences into ``n_bins`` equal-width bins (lower edge open, 0 in the first bin) and
    average |accuracy - mean confidence| of the bins, weighted by their share of rows."""
    if len(confidences) == 0:
        return 0.0
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        gap = abs(float(correct[in_bin].mean()) - float(confidences[in_bin].mean()))
        total += gap * float(in_bin.mean())
    return total


def _label_order(labels: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str]) -> list[str]:
    order = [str(label) for label in labels]
    known = set(order)
    extra = sorted({str(v) for v in (*y_true, *y_pred)} - known)
    if extra:
        logger.info("Labels not in the model's label list, appended: %s", extra)
    return order + extra


def _validate_inputs(y_true: Sequence[str], y_pred: Sequence[str], confidences: np.ndarray) -> None:
    if len(y_true) == 0:
        raise DataError("Cannot compute metrics on an empty evaluation set.", hint="Pass at least one row.")
    if not len(y_true) == len(y_pred) == len(confidences):
        raise DataError(
            f"Lengths differ: {len(y_true)} true labels, {len(y_pred)} predictions, "
            f"{len(confidences)} confidences.",
            hint="Pass one prediction and one confidence per row.",
        )
    if np.any(~np.isfinite(confidences)) or np.any((confidences < 0) | (confidences > 1)):
        raise DataError("Confidences must be probabilities in [0, 1].", hint="Pass softmax probabilities.")


def compute_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidences: np.ndarray | Sequence[float],
    labels: Sequence[str],
) -> EvalMetrics:
    """Accuracy, macro-F1, per-class precision/recall/F1/support for every label, confusion matrix, ECE."""
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    _validate_inputs(y_true, y_pred, confidences)
    true = [str(v) for v in y_true]
    pred = [str(v) for v in y_pred]
    order = _label_order(labels, true, pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=order, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": float(support[i]),
        }
        for i, label in enumerate(order)
    }
    correct = np.array([t == p for t, p in zip(true, pred, strict=True)], dtype=np.float64)
    return EvalMetrics(
        accuracy=float(accuracy_score(true, pred)),
        # Over the labels this set holds: a label with no rows here (a new intent scored on a frozen
        # set of old ones) would add an F1 of 0 for each wrong guess and bias against grown models.
        macro_f1=float(f1_score(true, pred, labels=sorted(set(true)), average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(true, pred, labels=order).astype(int).tolist(),
        labels=order,
        ece=float(expected_calibration_error(correct, confidences)),
    )


def _figure_inches(labels: Sequence[str], font_pt: float) -> float:
    """Square figure side: a cell per label (bigger when few) plus room for the longest tick label."""
    cell = 0.5 if len(labels) <= 20 else 0.3
    longest = max((len(label) for label in labels), default=1)
    margin = longest * font_pt * 0.62 / 72 + 1.2
    return min(60.0, max(5.0, len(labels) * cell) + margin + 1.5)


def save_confusion_matrix_png(metrics: EvalMetrics, path: Path | str, title: str | None = None) -> Path:
    """Draw the confusion matrix (colour = share of the true label's row, counts written when it fits).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch); the figure grows with
    the number of labels and their length, so ~80 labels stay readable (7 pt tick labels).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(metrics.labels)
    counts = np.asarray(metrics.confusion, dtype=float).reshape(n, n)
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    font = 9.0 if n <= 40 else 7.0
    side = _figure_inches(metrics.labels, font)
    fig = Figure(figsize=(side, side), dpi=100 if side <= 20 else 80, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="share of the true label's rows")
    ax.set_xticks(range(n), labels=metrics.labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels=metrics.labels, fontsize=font)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title or f"accuracy {metrics.accuracy:.3f}, macro-F1 {metrics.macro_f1:.3f}", fontsize=10)
    if n <= 30:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=font - 1, color=colour)
    fig.savefig(path, format="png")
    logger.info("Confusion matrix of %d labels written to %s", n, path)
    return path


def json_float(value: float | None) -> float | None:
    """A float that JSON can hold: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
