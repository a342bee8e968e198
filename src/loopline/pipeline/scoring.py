"""Batch scoring: predict every text of a file with a registered version, write the predictions next to
the texts (with prediction ids, so labels can come back for them), and log them under a batch id."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.config import Settings
from loopline.data.loading import load_labelled_text
from loopline.data.tagged import words_with_offsets
from loopline.errors import DataError
from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.store import FeedbackStore
from loopline.inference import Classifier, TokenClassifier, load_classifier
from loopline.monitoring.embeddings import embed_texts
from loopline.pipeline.champion import fetch_model_dir
from loopline.progress import tracked
from loopline.registry.lookups import get_alias_version, get_version

logger = logging.getLogger(__name__)

CHUNK = 256
OUTPUT_WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    ".csv": lambda frame, path: frame.to_csv(path, index=False),
    ".jsonl": lambda frame, path: frame.to_json(path, orient="records", lines=True, force_ascii=False),
    ".parquet": lambda frame, path: frame.to_parquet(path, index=False),
}


@dataclass(frozen=True)
class ScoreOutcome:
    rows: int
    version: str
    batch_id: str | None
    out: Path


def score_file(
    settings: Settings,
    data: Path,
    out: Path,
    *,
    alias: str = "production",
    version: str | None = None,
    log: bool = True,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ScoreOutcome:
    """Predict ``data``'s texts into ``out`` (written whole or not at all); ``on_chunk(done, total)``
    reports progress."""
    writer = OUTPUT_WRITERS.get(out.suffix.lower())
    if writer is None:
        raise DataError(
            f"Cannot write predictions as '{out.suffix or '(none)'}'",
            where=str(out),
            hint=f"Name the output with one of {', '.join(OUTPUT_WRITERS)}.",
        )
    frame = load_labelled_text(data, settings.text_column, None, settings.encoding)
    version = _resolve_version(settings, alias, version)
    classifier = load_classifier(
        fetch_model_dir(settings, version), device="cpu", max_length=settings.training.max_length
    )
    batch_id = f"score-{uuid.uuid4().hex[:12]}" if log else None
    texts = ["" if t is None else str(t) for t in frame["text"]]
    results: list[dict[str, object]] = []
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        for start in tracked(range(0, len(texts), CHUNK), "Scoring texts"):
            chunk = texts[start : start + CHUNK]
            records = _predict_chunk(classifier, chunk, version, batch_id, settings.serve.top_k)
            if log:
                vectors = embed_texts(settings.resolved_base_model, chunk, max_length=classifier.max_length)
                records = [replace(r, embedding=v) for r, v in zip(records, vectors, strict=True)]
                store.log_predictions(records)
            token = isinstance(classifier, TokenClassifier)
            results.extend(_row(record, words=token) for record in records)
            if on_chunk is not None:
                on_chunk(min(start + CHUNK, len(texts)), len(texts))
    scored = frame[["source_row", "text"]].reset_index(drop=True).join(pd.DataFrame(results))
    _write_atomically(writer, scored, out)
    logger.info(
        "Scored %d texts of %s with v%s into %s (batch %s)", len(scored), data, version, out, batch_id
    )
    return ScoreOutcome(len(scored), version, batch_id, out)


def _resolve_version(settings: Settings, alias: str, version: str | None) -> str:
    if version is not None:
        return str(get_version(settings.model_name, version).version)
    found = get_alias_version(settings.model_name, alias)
    if found is None:
        raise DataError(
            f"No model version of {settings.model_name} has the alias '{alias}'.",
            where=settings.model_name,
            hint="Pass --version, or promote a version to that alias first.",
        )
    return str(found.version)


def _predict_chunk(
    classifier: Classifier | TokenClassifier, texts: list[str], version: str, batch_id: str | None, top_k: int
) -> list[PredictionRecord]:
    if isinstance(classifier, TokenClassifier):  # one tag string per text, its lowest word confidence
        # Raw text → words and punctuation, as training data is split; the record keeps that form,
        # so a corrected tag string sent back lines up with its words.
        texts = [" ".join(word for word, _, _ in words_with_offsets(text)) for text in texts]
        tags, confidences = classifier.predict(texts)
        return [
            PredictionRecord(
                text=t, predicted_label=g, confidence=float(c), model_version=version, batch_id=batch_id
            )
            for t, g, c in zip(texts, tags, confidences, strict=True)
        ]
    probabilities = classifier.predict_proba(texts)
    labels = classifier.labels
    records = []
    for text, row in zip(texts, probabilities, strict=True):
        order = np.argsort(-row)[:top_k]
        top = tuple((labels[i], float(row[i])) for i in order)
        records.append(PredictionRecord(text, top[0][0], top[0][1], version, top_k=top, batch_id=batch_id))
    return records


def _row(record: PredictionRecord, *, words: bool = False) -> dict[str, object]:
    """An output row; token models add ``words``, the split text their tag string is over."""
    return {
        **({"words": record.text} if words else {}),
        "label": record.predicted_label,
        "confidence": record.confidence,
        "top_k": json.dumps([[label, round(p, 6)] for label, p in record.top_k]),
        "prediction_id": record.id,
        "model_version": record.model_version,
    }


def _write_atomically(writer: Callable[[pd.DataFrame, Path], None], frame: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}{out.suffix}")
    try:
        writer(frame, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
