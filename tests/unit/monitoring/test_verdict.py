"""loopline's decision laid out per signal: values, thresholds and statuses match the checks that decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from tests.unit.monitoring.conftest import make_texts, sample_clusters

from loopline.config import MonitorConfig
from loopline.monitoring.drift import DriftInputs, NoveltyDetector, check_drift
from loopline.monitoring.policy import decide_retrain
from loopline.monitoring.verdict import SIGNAL_COLUMNS, Verdict, build_verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _inputs(embeddings: np.ndarray, rng: np.random.Generator, labels: list[str] | None = None) -> DriftInputs:
    n = len(embeddings)
    labels = labels or list(rng.choice(["a", "b", "c"], size=n))
    return DriftInputs(make_texts(n, rng), embeddings, labels, labels, rng.beta(8, 1, size=n))


@pytest.fixture(scope="module")
def reference(reference_embeddings: np.ndarray) -> DriftInputs:
    return _inputs(reference_embeddings, np.random.default_rng(4))


@pytest.fixture(scope="module")
def fitted(reference_embeddings: np.ndarray):
    return NoveltyDetector().fit(reference_embeddings, seed=0)


def _rows(verdict: Verdict) -> dict[str, list[str]]:
    return {signal.name: signal.as_row() for signal in verdict.signals}


def test_a_drifted_window_with_feedback_reads_retrain_with_the_alarming_signals(
    reference, fitted, known_centres, new_centre
) -> None:
    rng = np.random.default_rng(6)
    embeddings = np.vstack([sample_clusters(known_centres, 240, rng), sample_clusters(new_centre, 60, rng)])
    current = _inputs(embeddings, rng, list(rng.choice(["a", "b", "c"], size=240)) + ["new"] * 60)
    cfg = MonitorConfig(min_labelled_feedback=50, cooldown_hours=1)
    report = check_drift(reference, current, cfg, fitted, reference_accuracy=0.9)
    decision = decide_retrain(report, 80, NOW - timedelta(hours=5), NOW, cfg)
    verdict = build_verdict(report, decision, cfg)

    assert verdict.retrain and verdict.headline == "loopline decision: RETRAIN"
    assert verdict.reason == decision.reason
    rows = _rows(verdict)
    novelty = rows["Embedding novelty (share of novel texts)"]
    assert novelty[1].startswith(f"{report.novelty.novel_share:.1%}")
    assert f"{report.novelty.bound:.1%}" in novelty[2] and novelty[3] == "ALARM" and novelty[4] == "decides"
    label = rows["Label drift (total variation)"]
    assert report.label is not None and f"{report.label.threshold:.3f}" in label[2]
    assert "new: new" in label[1] and label[3] == "ALARM"
    assert rows["Labelled feedback"][1:4] == ["80 accepted rows", "≥ 50", "ok"]
    assert rows["Cooldown"][1:4] == ["5.0 h since the last retrain", "≥ 1 h", "ok"]
    assert rows["Text length (characters)"][4] == "advisory"
    assert all(len(signal.as_row()) == len(SIGNAL_COLUMNS) for signal in verdict.signals)


def test_a_quiet_window_reads_no_retrain_and_a_too_small_one_judges_nothing(
    reference, fitted, known_centres
) -> None:
    rng = np.random.default_rng(5)
    cfg = MonitorConfig(min_window=100, min_labelled_feedback=50)
    quiet = check_drift(reference, _inputs(sample_clusters(known_centres, 300, rng), rng), cfg, fitted)
    verdict = build_verdict(quiet, decide_retrain(quiet, 3, None, NOW, cfg), cfg)
    rows = _rows(verdict)
    assert not verdict.retrain and verdict.headline == "loopline decision: no retrain"
    assert rows["Embedding novelty (share of novel texts)"][3] == "ok"
    assert rows["Labelled feedback"][3] == "blocks retrain"
    assert rows["Cooldown"][1] == "no earlier retrain"
    assert rows["Performance decay"][3] == "no data"  # no reference accuracy given

    small = check_drift(reference, _inputs(sample_clusters(known_centres, 40, rng), rng), cfg, fitted)
    rows = _rows(build_verdict(small, decide_retrain(small, 3, None, NOW, cfg), cfg))
    window = ["40 rows (reference 1000)", "≥ 100 rows to judge", "too small: no alarms"]
    assert rows["Window size"][1:4] == window
    assert rows["Embedding novelty (share of novel texts)"][3] == "not judged"


def test_a_scheduled_run_needs_one_labelled_row_and_no_report_still_lists_the_policy() -> None:
    cfg = MonitorConfig(min_labelled_feedback=50)
    verdict = build_verdict(None, decide_retrain(None, 2, None, NOW, cfg, scheduled=True), cfg)
    rows = _rows(verdict)
    assert verdict.retrain and set(rows) == {"Labelled feedback", "Cooldown", "Scheduled run"}
    assert rows["Labelled feedback"][2:4] == ["≥ 1 (scheduled run)", "ok"]
