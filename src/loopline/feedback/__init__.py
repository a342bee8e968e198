"""Store of served predictions, imported user feedback, monitoring decisions and locks."""

from __future__ import annotations

from loopline.feedback.batches import (
    FEEDBACK_COLUMNS,
    BatchInfo,
    ImportResult,
    batch_id_for,
    hash_file_content,
)
from loopline.feedback.decisions import Decision
from loopline.feedback.engine import FeedbackStoreError
from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.store import FeedbackStore

__all__ = [
    "FEEDBACK_COLUMNS",
    "BatchInfo",
    "Decision",
    "FeedbackStore",
    "FeedbackStoreError",
    "ImportResult",
    "PredictionRecord",
    "batch_id_for",
    "hash_file_content",
]
