"""The monitor's task-aware signals: the watched label share, drift units of token models."""

from __future__ import annotations

import numpy as np

from loopline.monitoring.drift import DriftInputs, ReferenceScores
from loopline.pipeline.monitor import monitor_run_name, watched_share


def test_watched_share_reports_the_window_beside_the_reference() -> None:
    window = DriftInputs(
        texts=["a", "b", "c", "d"],
        embeddings=np.zeros((4, 2), dtype=np.float32),
        predicted_labels=["bearish", "bearish", "bullish", "neutral"],
        confidences=np.ones(4),
    )
    reference = ReferenceScores(["bearish", "neutral", "neutral", "neutral", "bullish"], np.ones(5))
    watched = watched_share("bearish", window, reference)
    assert watched == {"label": "bearish", "share": 0.5, "reference_share": 0.2, "window": 4}


def test_a_monitor_run_is_named_for_what_it_found() -> None:
    alarms = {
        "window_size": 80,
        "too_small": False,
        "novelty_alarm": True,
        "label_alarm": True,
        "decay_alarm": False,
    }
    assert monitor_run_name("2", alarms, True) == "monitor v2 (drift: novelty, label) → retrain"
    quiet = {"window_size": 80, "too_small": False, "novelty_alarm": False}
    assert monitor_run_name("2", quiet, False) == "monitor v2 (no drift in 80 rows) → no retrain"
    assert (
        monitor_run_name("1", {"window_size": 0, "too_small": True}, False)
        == "monitor v1 (no new rows) → no retrain"
    )
    small = {"window_size": 12, "too_small": True}
    assert monitor_run_name("1", small, False) == "monitor v1 (window too small: 12 rows) → no retrain"
