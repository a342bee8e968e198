"""Evaluate a classifier on one labelled evaluation set: metrics, behaviour checks, latency."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.errors import DataError
from loopline.evaluation.behaviour import BehaviourReport, SupportsPredict, run_behaviour_checks
from loopline.evaluation.metrics import EvalMetrics, compute_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalReport:
    """Everything measured on one evaluation set (``dataset`` names it: "test", "regression", ...)."""

    dataset: str
    metrics: EvalMetrics
    behaviour: BehaviourReport | None
    latency_ms_per_text: float
    num_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "num_rows": self.num_rows,
            "latency_ms_per_text": self.latency_ms_per_text,
            "metrics": self.metrics.to_dict(),
            "behaviour": self.behaviour.to_dict() if self.behaviour is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        behaviour = data.get("behaviour")
        return cls(
            dataset=str(data["dataset"]),
            metrics=EvalMetrics.from_dict(data["metrics"]),
            behaviour=BehaviourReport.from_dict(behaviour) if behaviour else None,
            latency_ms_per_text=float(data["latency_ms_per_text"]),
            num_rows=int(data["num_rows"]),
        )


def _validate_frame(df: pd.DataFrame, dataset: str) -> None:
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise DataError(
            f"Evaluation set '{dataset}' lacks column(s) {sorted(missing)}; it has {list(df.columns)}.",
            hint="Pass the canonical frame with 'text' and 'label' columns.",
        )
    if df.empty:
        raise DataError(f"Evaluation set '{dataset}' is empty.", hint="Evaluate on a set with rows.")


def evaluate_model(
    classifier: SupportsPredict,
    df: pd.DataFrame,
    dataset: str,
    mft: pd.DataFrame | None = None,
    behaviour: bool = True,
    seed: int = 0,
) -> EvalReport:
    """Predict ``df`` once (timed: latency is wall time per text over the batch), compute metrics against
    its labels and, with ``behaviour``, run the behaviour checks on a sample of its texts plus ``mft``."""
    _validate_frame(df, dataset)
    texts = df["text"].astype(str).tolist()
    started = time.perf_counter()
    predicted, confidences = classifier.predict(texts)
    latency_ms = (time.perf_counter() - started) * 1000.0 / len(texts)
    task = getattr(classifier, "task", None)
    metrics = (task.metrics if task is not None else compute_metrics)(
        df["label"].astype(str).tolist(), list(predicted), np.asarray(confidences), classifier.labels
    )
    behaviour = behaviour and (task is None or task.has_behaviour_checks)
    checks = run_behaviour_checks(classifier, texts, mft, seed=seed) if behaviour else None
    logger.info(
        "Evaluated on '%s' (%d rows): accuracy %.4f, %s %.4f, ECE %.4f, %.2f ms/text",
        dataset,
        len(texts),
        metrics.accuracy,
        metrics.primary_name,
        metrics.primary,
        metrics.ece,
        latency_ms,
    )
    return EvalReport(dataset, metrics, checks, float(latency_ms), len(texts))


def save_eval_report(report: EvalReport, path: Path | str) -> Path:
    """Write ``report`` as JSON (the results file the gate and tests read back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
    return path


def load_eval_report(path: Path | str) -> EvalReport:
    """Read a report written by ``save_eval_report``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No evaluation report at {path}.", hint="Run the evaluation first.")
    return EvalReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
