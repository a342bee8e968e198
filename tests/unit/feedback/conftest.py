"""Fixtures of the feedback store tests: a store on SQLite in tmp_path and small feedback files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from loopline.feedback import FeedbackStore


def write_feedback_csv(path: Path, n_rows: int = 6, prefix: str = "msg") -> Path:
    """A feedback CSV with the optional columns; row 3 has an empty text."""
    frame = pd.DataFrame(
        {
            "text": [None if i == 2 else f"{prefix} {i}" for i in range(n_rows)],
            "label": ["billing" if i % 2 else "refund" for i in range(n_rows)],
            "user": [f"user{i % 3}" for i in range(n_rows)],
            "source": ["app"] * n_rows,
            "prediction_id": [f"p{i}" if i < 4 else None for i in range(n_rows)],
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture()
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.db'}"


@pytest.fixture()
def store(store_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore(store_url) as opened:
        yield opened


@pytest.fixture()
def make_feedback_csv() -> Callable[..., Path]:
    """``make_feedback_csv(path, n_rows=6, prefix="msg")`` writes a feedback CSV."""
    return write_feedback_csv


@pytest.fixture()
def feedback_csv(tmp_path: Path) -> Path:
    return write_feedback_csv(tmp_path / "feedback.csv")
