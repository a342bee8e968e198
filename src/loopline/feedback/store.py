"""The feedback store: one object over one database for every kind of record the loop keeps.

Each kind lives in its own module — served predictions in ``predictions``, feedback batches and their rows
in ``batches``, monitoring and retraining decisions in ``decisions``, locks in ``locks`` — over the shared
engine and schema of ``engine`` and ``schema``. Import the record types (``PredictionRecord``,
``ImportResult``, ``Decision``...) from the module that defines them; this one only puts them together.
"""

from __future__ import annotations

from loopline.feedback.batches import FeedbackBatches
from loopline.feedback.decisions import DecisionLog
from loopline.feedback.locks import LockTable
from loopline.feedback.predictions import PredictionLog


class FeedbackStore(PredictionLog, FeedbackBatches, DecisionLog, LockTable):
    """Predictions, feedback, decisions and locks in one SQL database (SQLite or PostgreSQL).

    ``FeedbackStore(url)`` creates missing tables on open. Use as a context manager, or call :meth:`close`.
    """
