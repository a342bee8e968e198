"""The monitor's task-aware signals: the watched label share, drift units of token models."""

from __future__ import annotations

import numpy as np

from loopline.monitoring.drift import DriftInputs, ReferenceScores
from loopline.pipeline.monitor import watched_share


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
