"""validate_feedback_batch: new labels need support, floods are quarantined, bad batches fail."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopline.config import ContractConfig
from loopline.contracts import validate_feedback_batch
from loopline.errors import ContractViolation

from .conftest import LABELS, assert_nothing_lost, clean_frame, read_quarantine, with_rows

SOURCE = "feedback/round1.csv"
KNOWN = set(LABELS)


def users(frame: pd.DataFrame, n_users: int = 7) -> pd.DataFrame:
    """Spread the rows over a few users, as real feedback is."""
    return frame.assign(user=[f"user{i % n_users}" for i in range(len(frame))])


def flooded_batch(key: str = "user") -> pd.DataFrame:
    """15 ordinary rows plus 25 rows (source_row 100-124) of one label from one sender."""
    normal = clean_frame(per_label=5).assign(**{key: [f"{key}{i % 7}" for i in range(15)]})
    flood = pd.DataFrame({"text": [f"refund me now {i}" for i in range(25)], "label": "refund"})
    flood[key] = "bot"
    flood["source_row"] = range(100, 125)
    return pd.concat([normal, flood], ignore_index=True)


def test_in_distribution_batch_passes(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(clean_frame(per_label=10))
    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)
    assert result.success and result.quarantined.empty
    assert result.suite == "feedback"
    assert json.loads(result.report_path.read_text())["suite"] == "feedback"


def test_new_label_with_enough_support_is_accepted(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(
        with_rows(clean_frame(per_label=10), [(f"send bitcoin to wallet {i}", "crypto") for i in range(5)])
    )
    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)
    assert result.success and result.quarantined.empty
    assert (result.accepted["label"] == "crypto").sum() == 5
    assert result.to_dict()["accepted_label_counts"]["crypto"] == 5


def test_new_label_with_one_row_is_quarantined(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(with_rows(clean_frame(per_label=10), [("what about my loyalty points", "loyalty_points")]))
    row = int(frame["source_row"].iloc[-1])

    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == [row]
    assert "unknown label 'loyalty_points' with too little support: 1 row(s)" in quarantined["reason"].iloc[0]
    assert "user" in quarantined.columns
    assert_nothing_lost(result, frame)


def test_known_label_with_one_row_is_fine(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(clean_frame(per_label=1))
    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)
    assert result.success and result.quarantined.empty


def test_label_flood_by_one_user_is_quarantined(qdir: Path) -> None:
    frame = flooded_batch()
    cfg = ContractConfig(max_quarantine_rate=0.9)  # judge the rows here, not the batch

    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)

    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == list(range(100, 125))
    assert quarantined["reason"].str.contains("label flood: user 'bot' gave label 'refund' to 62%").all()
    assert set(result.accepted["source_row"]) == set(range(2, 17))
    assert_nothing_lost(result, frame)


def test_flood_falls_back_to_source_column(qdir: Path) -> None:
    frame = flooded_batch(key="source")
    result = validate_feedback_batch(frame, KNOWN, ContractConfig(max_quarantine_rate=0.9), SOURCE, qdir)
    assert len(result.quarantined) == 25
    assert result.quarantined["reason"].str.contains("source 'bot'").all()


def test_small_batches_are_not_judged_for_floods(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame(per_label=5, labels=("refund",)).assign(user="alice")  # 5 rows < 20
    result = validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)
    assert result.success and result.quarantined.empty


def test_flood_fails_the_batch_with_default_limits(cfg: ContractConfig, qdir: Path) -> None:
    frame = flooded_batch()

    with pytest.raises(ContractViolation) as err:
        validate_feedback_batch(frame, KNOWN, cfg, SOURCE, qdir)

    message = str(err.value)
    assert SOURCE in message and "max_quarantine_rate" in message and "column 'user'" in message
    assert "rows 100, 101" in message
    result = err.value.result
    assert read_quarantine(result)["source_row"].tolist() == list(range(100, 125))
    assert_nothing_lost(result, frame)


def test_feedback_text_rules_and_conflicts(qdir: Path) -> None:
    frame = users(
        with_rows(
            clean_frame(per_label=10),
            [
                (None, "billing"),
                ("y" * 100_000, "refund"),
                ("same words", "billing"),
                ("Same words", "login"),
            ],
        )
    )
    result = validate_feedback_batch(frame, KNOWN, ContractConfig(max_conflict_rate=0.1), SOURCE, qdir)
    reasons = read_quarantine(result).set_index("source_row")["reason"]
    rows = frame["source_row"].iloc[-4:].tolist()
    assert reasons.index.tolist() == [rows[0], rows[2], rows[3]]
    assert reasons[rows[0]].startswith("text is missing")
    assert "different labels (billing, login)" in reasons[rows[2]]
    assert result.truncated_rows == 1
    assert_nothing_lost(result, frame)
