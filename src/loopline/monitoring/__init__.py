"""Drift, decay and the retraining trigger.

``drift`` (calibrated detectors, ``check_drift`` → ``DriftReport``) and ``policy``
(``decide_retrain``) are light; ``embeddings`` (torch/transformers) and ``report`` (Evidently)
are imported from their modules when needed.
"""

from __future__ import annotations

from loopline.monitoring.drift import (
    DriftInputs,
    DriftReport,
    DriftSettings,
    FittedNoveltyDetector,
    NoveltyDetector,
    NoveltyResult,
    check_drift,
)
from loopline.monitoring.policy import TriggerDecision, decide_retrain

__all__ = [
    "DriftInputs",
    "DriftReport",
    "DriftSettings",
    "FittedNoveltyDetector",
    "NoveltyDetector",
    "NoveltyResult",
    "TriggerDecision",
    "check_drift",
    "decide_retrain",
]
