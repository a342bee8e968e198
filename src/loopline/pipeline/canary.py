"""The canary: load a version as the service would and answer a fixed set of texts within a latency budget.

``loopline serve`` runs it before swapping a version in; ``promote``/``rollback`` to production run it
before moving the alias, so a version that would not serve is not made production (``--force`` overrides,
and the history records it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from loopline.config import Settings
from loopline.errors import LooplineError
from loopline.inference import ProbabilityClassifier, TokenClassifier, load_classifier
from loopline.pipeline.champion import fetch_model_dir

logger = logging.getLogger(__name__)

CANARY_TEXTS = (
    "I would like a refund for my last order.",
    "How do I change my password?",
    "my card has not arrived yet",
    "hello",
)
CANARY_BUDGET_MS = 2_000.0  # the canary's slowest text, on a cold model; far above a healthy answer


def run_canary(
    classifier: ProbabilityClassifier | TokenClassifier, texts: Sequence[str] = CANARY_TEXTS
) -> None:
    """Answer a fixed set of texts as the service would, within the latency budget, with probabilities
    (one distribution per text, or per word for a token classifier)."""
    for text in texts:
        started = time.perf_counter()
        if isinstance(classifier, TokenClassifier):
            rows = classifier.word_probabilities([text.split()])[0]
        else:
            rows = classifier.predict_proba([text])
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > CANARY_BUDGET_MS:
            raise RuntimeError(f"canary: {elapsed_ms:.0f} ms for one text (budget {CANARY_BUDGET_MS:.0f} ms)")
        if not np.all(np.isfinite(rows)) or np.any(np.abs(rows.sum(axis=-1) - 1.0) > 1e-3):
            raise RuntimeError("canary: the model does not return probabilities (damaged weights?)")


def canary_failure(settings: Settings, version: str) -> str | None:
    """Why ``version`` would not serve (download, load or canary), or None when it passes."""
    try:
        model_dir = fetch_model_dir(settings, version)
        run_canary(load_classifier(model_dir, device="cpu", max_length=settings.training.max_length))
    except (LooplineError, OSError, RuntimeError, ValueError) as err:
        logger.warning("v%s failed the canary: %s", version, err)
        return str(err)
    return None
