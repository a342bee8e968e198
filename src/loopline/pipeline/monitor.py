"""One monitoring pass: the window since the last check vs the champion's reference → drift, decision."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
from loopline.inference import load_classifier
from loopline.metric_names import DRIFT_FLAGS, DRIFT_NOVEL_SHARE, MONITOR_WINDOW_SIZE, TEST_ACCURACY
from loopline.monitoring.drift import (
    DriftInputs,
    DriftReport,
    NoveltyDetector,
    ReferenceScores,
    check_drift,
)
from loopline.monitoring.embeddings import embed_texts
from loopline.monitoring.policy import TriggerDecision, decide_retrain
from loopline.monitoring.verdict import build_verdict
from loopline.pipeline.champion import Champion, require_champion, require_task
from loopline.pipeline.reference import load_reference
from loopline.tasks import get_task, task_of_model
from loopline.tracking import log_file, log_json, mlflow_client, name_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorOutcome:
    champion_version: str
    window_size: int
    labelled_feedback: int
    drift: dict[str, Any]
    retrain: bool
    reason: str
    decision_id: int
    report_paths: list[Path]  # Evidently HTML: texts and embeddings; the champion's scores
    window_source: str = "feedback"  # "served": the service's logged predictions (with labels sent back)


def monitor_window(
    settings: Settings,
    store: FeedbackStore,
    *,
    run_id: str | None = None,
    scheduled: bool = False,
    now: datetime | None = None,
) -> MonitorOutcome:
    """Judge the feedback that arrived since the last check; record and return the retrain decision."""
    now = now or datetime.now(UTC)
    champion = require_champion(settings)
    require_task(settings, champion)
    last_check = store.last_decision("monitor")
    window = _window(store, last_check.created_at if last_check else None, champion.version)
    checked = _check_window(settings, champion, window) if not window.empty else None
    report = checked[0] if checked else None
    labelled = store.count_accepted_unused()
    decision = decide_retrain(
        report, labelled, store.last_retrain_at(), now, settings.monitor, scheduled=scheduled
    )
    # Built once the decision is made: each page opens with it and the signals it was made from.
    reports = _evidently_html(settings, *checked, decision, run_id) if checked else []
    drift = report.to_dict() if report else {"window_size": 0, "too_small": True}
    decision_id = store.record_decision(
        "monitor",
        decision.retrain,
        decision.reason,
        {
            "drift": drift,
            "checks": decision.checks,
            "scheduled": scheduled,
            "window_size": len(window),
            "window_source": _source(window),
        },
        model_version=champion.version,
        run_id=run_id,
    )
    if run_id:
        _log_monitoring(run_id, drift, decision, reports)
        name_run(run_id, monitor_run_name(champion.version, drift, decision.retrain))
    logger.info("Monitor decision: %s — %s", "RETRAIN" if decision.retrain else "no retrain", decision.reason)
    return MonitorOutcome(
        champion.version,
        len(window),
        labelled,
        drift,
        decision.retrain,
        decision.reason,
        decision_id,
        reports,
        _source(window),
    )


def _window(store: FeedbackStore, since: datetime | None, champion_version: str) -> pd.DataFrame:
    """What arrived since the last check: the champion's served predictions (with the labels sent back
    for them) when the service logged any, else accepted (or used) feedback; quarantined rows never count.
    A served window has the columns predicted_label, confidence and embedding."""
    served = store.served_window(since, model_version=champion_version)
    if not served.empty:
        return served
    return store.feedback_since(since, statuses=("accepted", "used"))


def _source(window: pd.DataFrame) -> str:
    return "served" if "predicted_label" in window.columns else "feedback"


def _current_inputs(settings: Settings, champion: Champion, window: pd.DataFrame) -> DriftInputs:
    texts = [str(t) for t in window["text"]]
    labels = [None if x is None or pd.isna(x) else str(x) for x in window["label"]]
    max_length = settings.training.max_length
    if _source(window) == "served":
        # What the service answered and the embeddings it logged: nothing is predicted or embedded again
        # (but the embeddings of predictions logged without one).
        missing = [i for i, vector in enumerate(window["embedding"]) if vector is None]
        fresh = embed_texts(settings.resolved_base_model, [texts[i] for i in missing], max_length=max_length)
        vectors = list(window["embedding"])
        for i, vector in zip(missing, fresh, strict=True):
            vectors[i] = vector
        return DriftInputs(
            texts=texts,
            embeddings=np.vstack(vectors).astype(np.float32),
            labels=labels,
            predicted_labels=[str(x) for x in window["predicted_label"]],
            confidences=window["confidence"].to_numpy(dtype=float),
        )
    # Shadow predictions of the champion on the feedback window: prediction/confidence drift and decay
    # need them when no serving logs exist (the labels are the users' corrections).
    predicted, confidences = load_classifier(champion.model_dir, max_length=max_length).predict(texts)
    return DriftInputs(
        texts=texts,
        embeddings=embed_texts(settings.resolved_base_model, texts, max_length=max_length),
        labels=labels,
        predicted_labels=list(predicted),
        confidences=np.asarray(confidences),
    )


@dataclass(frozen=True)
class _ReportInputs:
    """What the Evidently pages compare: the reference, the window and the held-out scores."""

    reference: DriftInputs
    current: DriftInputs
    held_out: ReferenceScores


def _check_window(
    settings: Settings, champion: Champion, window: pd.DataFrame
) -> tuple[DriftReport, _ReportInputs]:
    loaded = load_reference(settings, champion)
    # No reference predictions here: they come from held-out texts, other rows than these.
    reference = DriftInputs(loaded.texts, loaded.embeddings, loaded.labels)
    current = _current_inputs(settings, champion, window)
    detector = NoveltyDetector().fit(reference.embeddings, seed=settings.training.seed)
    report = check_drift(
        reference,
        current,
        settings.monitor,
        detector,
        reference_accuracy=_champion_accuracy(champion),
        held_out=loaded.held_out,
        label_units=_label_units(champion.model_dir),
    )
    if settings.monitor.watch_label is not None:
        report = replace(
            report, watched=watched_share(settings.monitor.watch_label, current, loaded.held_out)
        )
    held_out = loaded.held_out
    if task_of_model(champion.model_dir).name == "token":  # Evidently: a category per sentence, not per tags
        reference, current, held_out = _as_strata(reference), _as_strata(current), _as_strata(held_out)
    return report, _ReportInputs(reference, current, held_out)


def watched_share(label: str, current: DriftInputs, held_out: ReferenceScores) -> dict[str, Any]:
    """The share of the window the champion predicts as ``label`` (e.g. the bearish share of financial
    news), beside its share on the held-out reference: a business signal shown with every decision."""
    predicted = [str(p) for p in current.predicted_labels or []]
    reference = [str(p) for p in held_out.predicted_labels]
    share = sum(p == label for p in predicted) / len(predicted) if predicted else None
    return {
        "label": label,
        "share": share,
        "reference_share": sum(p == label for p in reference) / len(reference) if reference else None,
        "window": len(predicted),
    }


_Inputs = TypeVar("_Inputs", DriftInputs, ReferenceScores)


def _as_strata(inputs: _Inputs) -> _Inputs:
    """Tag strings → the sentence's entity types (``LOC+PER``, or ``O``) for Evidently's pages."""
    strata = get_task("token").strata

    def mapped(values: Sequence[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        keys = strata(pd.Series([v if v is not None else "" for v in values], dtype=object)).tolist()
        return [None if v is None else k for v, k in zip(values, keys, strict=True)]

    changes: dict[str, Any] = {"predicted_labels": mapped(inputs.predicted_labels)}
    if isinstance(inputs, DriftInputs):
        changes["labels"] = mapped(inputs.labels)
    return replace(inputs, **changes)


def _label_units(model_dir: Path) -> Callable[[Sequence[str]], list[str]] | None:
    """Token models: drift on entity types per mention (sequence models: the labels as they are)."""
    task = task_of_model(model_dir)
    if task.name == "sequence":
        return None
    return lambda values: task.label_units(pd.Series(list(values), dtype=object)).tolist()


def _champion_accuracy(champion: Champion) -> float | None:
    """The champion's held-out test accuracy, as logged by the run that produced it."""
    run_id = champion.tags.get("loopline.run_id")
    if not run_id:
        return None
    return mlflow_client().get_run(run_id).data.metrics.get(TEST_ACCURACY)


def _evidently_html(
    settings: Settings,
    report: DriftReport,
    pages: _ReportInputs,
    decision: TriggerDecision,
    run_id: str | None,
) -> list[Path]:
    """Evidently's reports for people, each opening with loopline's decision (what decides): texts and
    embeddings against the training reference; predicted labels and confidences against held-out scores."""
    from loopline.monitoring.report import (
        build_evidently_report,
        make_report_frames,
        make_scores_frames,
        save_report_html,
    )

    stem = f"drift-{run_id or datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    reports = {
        stem: lambda: make_report_frames(pages.reference, pages.current),
        f"{stem}-scores": lambda: make_scores_frames(pages.held_out, pages.current),
    }
    paths = []
    for name, frames in reports.items():
        try:
            verdict = build_verdict(report, decision, settings.monitor)
            snapshot = build_evidently_report(*frames(), verdict=verdict)
            paths.append(save_report_html(snapshot, settings.home / "reports" / f"{name}.html"))
        except Exception as err:  # a report for people must never fail the monitor
            logger.warning("Evidently report %s could not be built: %s", name, err)
    return paths


def monitor_run_name(champion_version: str, drift: dict[str, Any], retrain: bool) -> str:
    """``monitor v2 (drift: novelty, label) → retrain``: the runs table says what each check found."""
    size = int(drift.get("window_size") or 0)
    alarms = [key.removesuffix("_alarm") for key, on in drift.items() if key.endswith("_alarm") and on]
    if size == 0:
        found = "no new rows"
    elif drift.get("too_small"):
        found = f"window too small: {size} rows"
    elif alarms:
        found = f"drift: {', '.join(alarms)}"
    else:
        found = f"no drift in {size} rows"
    return f"monitor v{champion_version} ({found}) → {'retrain' if retrain else 'no retrain'}"


def _log_monitoring(
    run_id: str, drift: dict[str, Any], decision: TriggerDecision, reports: list[Path]
) -> None:
    client = mlflow_client()
    client.log_metric(run_id, MONITOR_WINDOW_SIZE, float(drift.get("window_size", 0)))
    novelty = drift.get("novelty") or {}
    if "novel_share" in novelty:
        client.log_metric(run_id, DRIFT_NOVEL_SHARE, float(novelty["novel_share"]))
    for key, metric in DRIFT_FLAGS.items():
        client.log_metric(run_id, metric, float(bool(drift.get(key))))
    watched = drift.get("watched") or {}
    if watched.get("share") is not None:
        client.log_metric(run_id, "watched.share", float(watched["share"]))
    client.set_tag(run_id, "loopline.decision", "retrain" if decision.retrain else "no-retrain")
    client.set_tag(run_id, "loopline.decision_reason", decision.reason[:5000])
    log_json(
        run_id,
        {
            "drift": drift,
            "decision": {"retrain": decision.retrain, "reason": decision.reason, "checks": decision.checks},
        },
        "monitoring/drift_report.json",
    )
    for path in reports:
        log_file(run_id, path, "monitoring")
