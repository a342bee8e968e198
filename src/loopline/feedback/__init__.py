"""Store of served predictions, imported user feedback, monitoring decisions and locks."""

from __future__ import annotations

from loopline.feedback.store import (
    FEEDBACK_COLUMNS,
    BatchInfo,
    Decision,
    FeedbackStore,
    FeedbackStoreError,
    ImportResult,
    PredictionRecord,
    batch_id_for,
    hash_file_content,
)

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
