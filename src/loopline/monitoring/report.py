"""Evidently 0.7 report of a drift window, for people to look at; loopline's detector decides.

The report holds, for the same reference and window that ``check_drift`` judged: Evidently's
``EmbeddingsDrift`` on the sentence embeddings (its default: a domain classifier, drift when its
ROC AUC > 0.55), ``ValueDrift`` per column (label, predicted_label, confidence, text_length,
oov_rate and the first principal components of the embeddings) with Evidently's default tests,
and optionally its text drift on the raw ``text`` column. A second, smaller report
(``make_scores_frames``) compares the champion's predicted labels and confidences on the window with
its scores on held-out texts: those are other rows than the reference texts, and scores on the
training texts themselves would show every window as drifted.

Why Evidently's numbers are logged but do not decide: on BANKING77 with 12 intents held out as
new, Evidently's embedding and text drift defaults miss most windows with a 10–20% share of new
intents (0–25% detected, MEASURED.md), and its chi-square label drift alarms on same-distribution
windows with 77 classes (p = 6e-6). loopline's detector looks at novelty directly and is
calibrated on the reference at the window's size (see ``drift.py`` and benchmarks/RESULTS.md).
So each page opens with loopline's decision and the signals it was made from (``verdict.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.errors import DataError
from loopline.monitoring.drift import (
    DriftInputs,
    ReferenceScores,
    oov_rates,
    reference_vocabulary,
    text_lengths,
)
from loopline.monitoring.verdict import Verdict
from loopline.telemetry import disable_telemetry

logger = logging.getLogger(__name__)

EMBEDDING_PREFIX = "emb_"
COMPONENT_PREFIX = "pc_"
EMBEDDINGS_NAME = "text_embedding"
CATEGORICAL_COLUMNS = ("label", "predicted_label")
NUMERICAL_COLUMNS = ("confidence", "text_length", "oov_rate")
#: Evidently's ModelDriftMethod default: drift when the domain classifier's ROC AUC exceeds this.
EMBEDDINGS_DRIFT_THRESHOLD = 0.55


def _principal_axes(reference: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top principal axes (rows) of the reference embeddings."""
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    return mean, vt[: min(n_components, vt.shape[0])]


def _frame(
    inputs: DriftInputs, oov: np.ndarray, axes: tuple[np.ndarray, np.ndarray], with_embeddings: bool
) -> pd.DataFrame:
    embeddings = np.asarray(inputs.embeddings, dtype=np.float32)
    columns: dict[str, Any] = {"text": [t if isinstance(t, str) else "" for t in inputs.texts]}
    if inputs.labels is not None:
        columns["label"] = [None if v is None else str(v) for v in inputs.labels]
    if inputs.predicted_labels is not None:
        columns["predicted_label"] = [str(v) for v in inputs.predicted_labels]
    if inputs.confidences is not None:
        columns["confidence"] = np.asarray(inputs.confidences, dtype=np.float64)
    columns["text_length"] = text_lengths(inputs.texts)
    columns["oov_rate"] = oov
    mean, components = axes
    projected = (embeddings - mean) @ components.T
    for i in range(projected.shape[1]):
        columns[f"{COMPONENT_PREFIX}{i + 1}"] = projected[:, i]
    frame = pd.DataFrame(columns)
    if with_embeddings:
        names = [f"{EMBEDDING_PREFIX}{i}" for i in range(embeddings.shape[1])]
        frame = pd.concat([frame, pd.DataFrame(embeddings, columns=names)], axis=1)
    return frame


def make_report_frames(
    reference: DriftInputs, current: DriftInputs, *, n_components: int = 5, with_embeddings: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames for Evidently: text, label, predicted_label, confidence,
    text_length, oov_rate (reference: leave-one-out), ``pc_1..`` and the ``emb_*`` columns."""
    vocabulary, reference_oov = reference_vocabulary(reference.texts)
    axes = _principal_axes(np.asarray(reference.embeddings, dtype=np.float64), n_components)
    return (
        _frame(reference, reference_oov, axes, with_embeddings),
        _frame(current, oov_rates(current.texts, vocabulary), axes, with_embeddings),
    )


def make_scores_frames(held_out: ReferenceScores, current: DriftInputs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames of ``predicted_label`` and ``confidence``: the champion's scores on
    held-out texts and on the window."""
    if current.predicted_labels is None or current.confidences is None:
        raise DataError(
            "The window has no predicted labels or confidences to compare.",
            where="make_scores_frames(current=...)",
            hint="Predict the window with the champion first (monitor does).",
        )

    def frame(labels: Any, confidences: Any) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "predicted_label": [str(v) for v in labels],
                "confidence": np.asarray(confidences, dtype=np.float64),
            }
        )

    return (
        frame(held_out.predicted_labels, held_out.confidences),
        frame(current.predicted_labels, current.confidences),
    )


def _usable(column: str, reference_df: pd.DataFrame, current_df: pd.DataFrame) -> bool:
    return all(column in df.columns and df[column].notna().any() for df in (reference_df, current_df))


def _definition_and_metrics(
    reference_df: pd.DataFrame, current_df: pd.DataFrame, text_drift: bool
) -> tuple[Any, list[Any]]:
    from evidently import DataDefinition
    from evidently.metrics import ValueDrift
    from evidently.metrics.embeddings import EmbeddingsDrift
    from evidently.presets import DataDriftPreset

    categorical = [c for c in CATEGORICAL_COLUMNS if _usable(c, reference_df, current_df)]
    components = sorted(c for c in reference_df.columns if c.startswith(COMPONENT_PREFIX))
    numerical = [c for c in NUMERICAL_COLUMNS if _usable(c, reference_df, current_df)] + components
    embedding_columns = [c for c in reference_df.columns if c.startswith(EMBEDDING_PREFIX)]
    definition = DataDefinition(
        numerical_columns=numerical + embedding_columns,
        categorical_columns=categorical,
        text_columns=["text"] if text_drift else [],
        embeddings={EMBEDDINGS_NAME: embedding_columns} if embedding_columns else None,
    )
    metrics: list[Any] = [DataDriftPreset(columns=categorical + numerical)]
    if text_drift:
        metrics.append(ValueDrift(column="text"))
    if embedding_columns:
        metrics.append(EmbeddingsDrift(embeddings_name=EMBEDDINGS_NAME))
    return definition, metrics


def build_evidently_report(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    text_drift: bool = False,
    verdict: Verdict | None = None,
) -> Any:
    """Run Evidently's drift report on two frames from ``make_report_frames``; returns the snapshot.

    ``text_drift`` adds Evidently's domain-classifier drift on the raw ``text`` column (a few
    seconds per window on 2 cores). ``verdict``: loopline's decision, shown first on the page (the
    decision, its reason, each signal with value and threshold). Telemetry is switched off first
    (DO_NOT_TRACK=1).
    """
    disable_telemetry()
    from evidently import Dataset, Report

    for name, frame in (("reference_df", reference_df), ("current_df", current_df)):
        if frame.empty or (text_drift and "text" not in frame.columns):
            raise DataError(
                f"{name} is empty" + (" or has no 'text' column" if text_drift else "") + ".",
                where=f"build_evidently_report({name}=...)",
                hint="Build the frames with make_report_frames or make_scores_frames.",
            )
    definition, metrics = _definition_and_metrics(reference_df, current_df, text_drift)
    if verdict is not None:
        from loopline.monitoring.evidently_verdict import decision_metric

        metrics.insert(0, decision_metric(verdict))
    report = Report(metrics, include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current_df, data_definition=definition),
        Dataset.from_pandas(reference_df, data_definition=definition),
    )
    logger.info(
        "Evidently report built: %d reference rows, %d current rows", len(reference_df), len(current_df)
    )
    return snapshot


def save_report_html(snapshot: Any, path: Path) -> Path:
    """Write the snapshot as a self-contained HTML file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def _test_status_by_metric(tests: list[dict[str, Any]]) -> dict[str, str]:
    status = {}
    for test in tests:
        metric_id = (test.get("metric_config") or {}).get("metric_id")
        if metric_id and test.get("id") == "drift":
            raw = test.get("status")
            status[metric_id] = str(getattr(raw, "value", raw))
    return status


def extract_evidently_numbers(snapshot: Any) -> dict[str, Any]:
    """The key numbers of the snapshot as a JSON-safe dict.

    ``columns``: per column the method, threshold, score and Evidently's verdict;
    ``drifted_columns``: count and share; ``embeddings``: the domain classifier's ROC AUC and
    whether it exceeds 0.55; ``text``: the raw-text drift (when it was computed).
    """
    data = snapshot.dict()
    status = _test_status_by_metric(data.get("tests", []))
    numbers: dict[str, Any] = {"columns": {}, "drifted_columns": None, "embeddings": None, "text": None}
    for metric in data.get("metrics", []):
        config, value = metric.get("config", {}), metric.get("value")
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount") and isinstance(value, dict):
            numbers["drifted_columns"] = {"count": float(value["count"]), "share": float(value["share"])}
        elif kind.endswith("EmbeddingsDrift"):
            score = float(value)
            numbers["embeddings"] = {
                "score": score,
                "threshold": EMBEDDINGS_DRIFT_THRESHOLD,
                "drift_detected": score > EMBEDDINGS_DRIFT_THRESHOLD,
            }
        elif kind.endswith("ValueDrift"):
            entry = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": None if value is None else float(value),
                "drift_detected": status.get(metric.get("id", "")) == "FAIL",
            }
            numbers["columns"][config.get("column")] = entry
    numbers["text"] = numbers["columns"].pop("text", None)
    return numbers
