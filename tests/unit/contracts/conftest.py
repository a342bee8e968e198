"""Small frames and checks shared by the contract tests (no model, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from loopline.config import ContractConfig
from loopline.contracts import ContractResult
from loopline.telemetry import disable_telemetry

disable_telemetry()

LABELS = ("billing", "refund", "login")
TOPICS = {
    "billing": "why was I charged twice for invoice",
    "refund": "please send my money back for order",
    "login": "I cannot sign in to account",
}


def clean_frame(per_label: int = 20, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    """Distinct, valid texts; source_row starts at 2 like a CSV with a header line."""
    rows = [(f"{TOPICS.get(label, label)} number {i}", label) for label in labels for i in range(per_label)]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame["source_row"] = range(2, len(frame) + 2)
    return frame


def with_rows(frame: pd.DataFrame, rows: Sequence[tuple[object, object]]) -> pd.DataFrame:
    """``frame`` plus ``rows`` of (text, label), numbered after the last source_row."""
    extra = pd.DataFrame(rows, columns=["text", "label"])
    start = int(frame["source_row"].max()) + 1
    extra["source_row"] = range(start, start + len(extra))
    return pd.concat([frame, extra], ignore_index=True)


def read_quarantine(result: ContractResult) -> pd.DataFrame:
    assert result.quarantine_path is not None, "expected a quarantine file"
    assert result.quarantine_path.is_file()
    return pd.read_csv(result.quarantine_path)


def assert_nothing_lost(result: ContractResult, frame: pd.DataFrame) -> None:
    """Accepted and quarantined rows partition the input: same count, no overlap, no row missing."""
    accepted = set(result.accepted["source_row"])
    quarantined = set(result.quarantined["source_row"])
    assert len(result.accepted) + len(result.quarantined) == len(frame)
    assert not accepted & quarantined
    assert accepted | quarantined == set(frame["source_row"])


@pytest.fixture()
def cfg() -> ContractConfig:
    return ContractConfig()


@pytest.fixture()
def qdir(tmp_path: Path) -> Path:
    return tmp_path / "quarantine"
