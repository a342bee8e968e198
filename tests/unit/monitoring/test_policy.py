from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from tests.unit.monitoring.conftest import make_texts, sample_clusters

from loopline.config import MonitorConfig
from loopline.monitoring.drift import DriftInputs, DriftReport, NoveltyDetector, check_drift
from loopline.monitoring.policy import decide_retrain

CFG = MonitorConfig(min_labelled_feedback=50, cooldown_hours=2.0, min_window=100)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def quiet_report(reference_embeddings, known_centres) -> DriftReport:
    rng = np.random.default_rng(11)
    detector = NoveltyDetector().fit(reference_embeddings)
    reference = DriftInputs(make_texts(len(reference_embeddings), rng), reference_embeddings)
    current = DriftInputs(make_texts(200, rng), sample_clusters(known_centres, 200, rng))
    report = check_drift(reference, current, CFG, detector)
    assert not report.drift_detected
    return report


@pytest.mark.parametrize(("drift", "enough", "cooled"), list(itertools.product([True, False], repeat=3)))
def test_truth_table(quiet_report, drift: bool, enough: bool, cooled: bool) -> None:
    report = replace(quiet_report, drift_detected=drift, novelty_alarm=drift)
    feedback = 120 if enough else 20
    last = NOW - timedelta(hours=5 if cooled else 1)
    decision = decide_retrain(report, feedback, last, NOW, CFG)
    assert decision.retrain is (drift and enough and cooled)
    assert decision.checks["enough_feedback"] is enough and decision.checks["cooldown_passed"] is cooled
    assert decision.reason.startswith("Retrain" if decision.retrain else "No retrain")
    if drift and not enough:
        assert "only 20 labelled feedback rows (< 50 needed)" in decision.reason
    if drift and enough and not cooled:
        assert "cooldown" in decision.reason and "1.0 h ago" in decision.reason


def test_decay_alone_triggers_and_first_retrain_has_no_cooldown(quiet_report) -> None:
    report = replace(quiet_report, decay_detected=True, decay_alarm=True)
    decision = decide_retrain(report, 80, None, NOW, CFG)
    assert (
        decision.retrain and "decay detected" in decision.reason and "no earlier retrain" in decision.reason
    )


def test_no_report_or_too_small_window_does_not_trigger(quiet_report) -> None:
    assert not decide_retrain(None, 500, None, NOW, CFG).retrain
    small = replace(quiet_report, too_small=True, window_size=40)
    decision = decide_retrain(small, 500, None, NOW, CFG)
    assert not decision.retrain and "too small" in decision.reason and "40 < 100" in decision.reason


def test_scheduled_runs_need_some_feedback_and_the_cooldown(quiet_report) -> None:
    long_ago = NOW - timedelta(days=1)
    assert decide_retrain(quiet_report, 3, long_ago, NOW, CFG, scheduled=True).retrain
    empty = decide_retrain(quiet_report, 0, long_ago, NOW, CFG, scheduled=True)
    assert not empty.retrain and "no new labelled feedback" in empty.reason
    recent = decide_retrain(quiet_report, 30, NOW - timedelta(minutes=30), NOW, CFG, scheduled=True)
    assert not recent.retrain and "cooldown" in recent.reason


def test_naive_and_aware_datetimes_compare_as_utc(quiet_report) -> None:
    report = replace(quiet_report, drift_detected=True)
    naive_last = datetime(2025, 6, 1, 11, 0)  # one hour before NOW, read as UTC
    decision = decide_retrain(report, 100, naive_last, NOW, CFG)
    assert not decision.retrain and decision.checks["hours_since_last_retrain"] == pytest.approx(1.0)
