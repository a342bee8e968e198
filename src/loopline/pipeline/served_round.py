"""Traffic through the serving API as an application sends it: predictions, then some labels back."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from loopline.serving.client import ServiceClient


@dataclass
class TrafficSummary:
    """What was sent: predictions made, labels sent back for them, and which versions answered."""

    predictions: int = 0
    labelled: int = 0
    flagged: int = 0
    correct: int = 0
    batch_ids: set[str] = field(default_factory=set)
    versions: Counter[str] = field(default_factory=Counter)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.predictions if self.predictions else None


def send_traffic(
    client: ServiceClient, frame: pd.DataFrame, label_share: float, batch_size: int = 8, seed: int = 0
) -> TrafficSummary:
    """``frame`` (text, label) through ``/predict`` in small requests; for ``label_share`` of the answers
    the true label goes back to ``/feedback`` (keyed by prediction id, so a resend stores it once)."""
    rng = random.Random(seed)
    summary = TrafficSummary()
    rows = list(zip(frame["text"].astype(str), frame["label"].astype(str), strict=True))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        answer = client.predict([text for text, _ in chunk])
        summary.versions[str(answer["model_version"])] += len(chunk)
        for prediction, (_, label) in zip(answer["predictions"], chunk, strict=True):
            summary.predictions += 1
            summary.flagged += bool(prediction["flagged"])
            summary.correct += prediction["best_guess"] == label
            if rng.random() < label_share:
                key = prediction["prediction_id"]
                stored = client.feedback(key, label, idempotency_key=key)
                summary.labelled += 1
                summary.batch_ids.add(str(stored["batch_id"]))
    return summary
