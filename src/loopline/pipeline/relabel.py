"""O-label confusion in token feedback: entities of old types that new annotations left as ``O``.

Annotators of a new round often tag only what they were asked for (the new type), so a sentence's
old-type entities arrive as ``O``; training on them teaches the model to forget those types. Before a
retrain, the champion tags the feedback sentences, and each entity it finds entirely inside ``O`` words,
with every word's probability at or above the threshold, is written into the sentence's tags.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.inference import TokenClassifier, load_classifier

logger = logging.getLogger(__name__)


def relabel_outside(
    rows: pd.DataFrame, champion_dir: Path, threshold: float, max_length: int
) -> tuple[pd.DataFrame, int]:
    """``rows`` (text, label as tag strings) with the champion's confident entities filled into ``O``
    words, and how many words changed."""
    tagger = load_classifier(champion_dir, device="cpu", max_length=max_length)
    if not isinstance(tagger, TokenClassifier):
        return rows, 0
    words = [str(text).split() for text in rows["text"]]
    probabilities = tagger.word_probabilities(words)
    labels, changed = [], 0
    for tags, probs in zip(rows["label"], probabilities, strict=True):
        new_tags, count = fill_outside(str(tags).split(), probs, tagger.labels, threshold)
        labels.append(" ".join(new_tags))
        changed += count
    out = rows.copy()
    out["label"] = labels
    logger.info(
        "O-label confusion: %d O-tagged words of %d sentences set from the champion", changed, len(rows)
    )
    return out, changed


def fill_outside(
    tags: list[str], probabilities: np.ndarray, labels: list[str], threshold: float
) -> tuple[list[str], int]:
    """Write the predicted entities that lie wholly on ``O`` words (and are confident) into ``tags``."""
    best = probabilities.argmax(axis=-1) if len(probabilities) else np.zeros(0, dtype=int)
    predicted = [labels[int(i)] for i in best]
    confident = [float(probabilities[i, b]) >= threshold for i, b in enumerate(best)]
    out, changed, i = list(tags), 0, 0
    while i < len(predicted):
        if predicted[i] == "O":
            i += 1
            continue
        kind, end = predicted[i][2:], i + 1
        while end < len(predicted) and predicted[end] == f"I-{kind}":
            end += 1
        span = range(i, min(end, len(out)))
        if all(out[j] == "O" and confident[j] for j in span) and (
            end >= len(out) or not out[end].startswith("I-")
        ):
            for j in span:
                out[j] = ("B-" if j == i else "I-") + kind
            changed += len(span)
        i = end
    return out, changed
