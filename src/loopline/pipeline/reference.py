"""The reference a window is compared with: what the champion was trained on, embedded once per version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.config import Settings
from loopline.data.snapshots import load_snapshot
from loopline.errors import LooplineError
from loopline.inference import load_classifier
from loopline.monitoring.embeddings import load_or_compute_reference_embeddings
from loopline.pipeline.champion import Champion


@dataclass(frozen=True)
class Reference:
    texts: list[str]
    labels: list[str]
    embeddings: np.ndarray
    predicted_labels: list[str]
    confidences: np.ndarray


def load_reference(settings: Settings, champion: Champion) -> Reference:
    """A seeded sample of the champion's training snapshot, with embeddings and the champion's own
    predictions, both cached per champion version (never recomputed per check)."""
    version = champion.tags.get("loopline.dataset_version")
    if not version:
        raise LooplineError(
            f"Model version {champion.version} has no loopline.dataset_version tag.",
            where=f"{settings.model_name} v{champion.version}",
            hint="register models through loopline (train or retrain) so lineage tags are set.",
        )
    _, frame = load_snapshot(settings.data_dir, version)
    sample = frame.sample(
        n=min(settings.monitor.reference_size, len(frame)), random_state=settings.training.seed
    )
    texts = [str(t) for t in sample["text"]]
    cache_dir = settings.home / "cache" / "reference"
    key = f"{settings.model_name}-v{champion.version}"
    embeddings = load_or_compute_reference_embeddings(cache_dir, key, texts, settings.resolved_base_model)
    predicted, confidences = _cached_predictions(
        cache_dir / f"{key}-predictions.parquet", texts, settings, champion
    )
    return Reference(texts, [str(x) for x in sample["label"]], embeddings, predicted, confidences)


def _cached_predictions(
    path: Path, texts: list[str], settings: Settings, champion: Champion
) -> tuple[list[str], np.ndarray]:
    if path.exists():
        cached = pd.read_parquet(path)
        if cached["text"].tolist() == texts:
            return cached["predicted_label"].tolist(), cached["confidence"].to_numpy()
    classifier = load_classifier(champion.model_dir, max_length=settings.training.max_length)
    labels, confidences = classifier.predict(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pd.DataFrame({"text": texts, "predicted_label": labels, "confidence": confidences}).to_parquet(tmp)
    tmp.replace(path)
    return list(labels), np.asarray(confidences)
