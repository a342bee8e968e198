"""The reference a window is compared with: what the champion was trained on (embedded once per version)
and how it scores texts it never saw (predicted once per version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.config import Settings
from loopline.data.snapshots import load_snapshot
from loopline.errors import LooplineError
from loopline.inference import load_classifier
from loopline.monitoring.drift import ReferenceScores
from loopline.monitoring.embeddings import load_or_compute_reference_embeddings
from loopline.pipeline.champion import Champion
from loopline.pipeline.datasets import load_splits
from loopline.pipeline.retrain import load_past_holdouts


@dataclass(frozen=True)
class Reference:
    """Training texts (novelty, labels, descriptors) and the champion's scores on held-out texts
    (prediction and confidence drift)."""

    texts: list[str]
    labels: list[str]
    embeddings: np.ndarray
    held_out: ReferenceScores


def load_reference(settings: Settings, champion: Champion) -> Reference:
    """A seeded sample of the champion's training snapshot with its embeddings, and the champion's
    predictions on texts it never trained on; both cached per champion version (never recomputed
    per check)."""
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
    held_out = _cached_predictions(
        cache_dir / f"{key}-held-out-predictions.parquet",
        held_out_texts(settings, champion),
        settings,
        champion,
    )
    return Reference(texts, [str(x) for x in sample["label"]], embeddings, held_out)


def held_out_texts(settings: Settings, champion: Champion) -> list[str]:
    """Texts the champion never trained on: the frozen validation and test splits it is judged on and
    past rounds' feedback holdouts (so labels grown since the first model are represented)."""
    splits = load_splits(settings, champion.test_version)
    frames = [splits.validation, splits.test, load_past_holdouts(settings)]
    return [str(t) for t in pd.concat([f["text"] for f in frames], ignore_index=True)]


def _cached_predictions(
    path: Path, texts: list[str], settings: Settings, champion: Champion
) -> ReferenceScores:
    if path.exists():
        cached = pd.read_parquet(path)
        if cached["text"].tolist() == texts:
            return ReferenceScores(cached["predicted_label"].tolist(), cached["confidence"].to_numpy())
    classifier = load_classifier(champion.model_dir, max_length=settings.training.max_length)
    labels, confidences = classifier.predict(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pd.DataFrame({"text": texts, "predicted_label": labels, "confidence": confidences}).to_parquet(tmp)
    tmp.replace(path)
    return ReferenceScores(list(labels), np.asarray(confidences))
