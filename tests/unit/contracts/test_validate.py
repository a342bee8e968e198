"""validate_training_data: each defect is quarantined with its reason, nothing is lost, bad batches fail."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from loopline.config import ContractConfig
from loopline.contracts import ContractResult, validate_training_data
from loopline.contracts.gx_runner import gx_context
from loopline.errors import ContractViolation

from .conftest import assert_nothing_lost, clean_frame, read_quarantine, with_rows

SOURCE = "data/train.csv"


def check(result: ContractResult, rule: str):
    return next(c for c in result.checks if c.rule == rule)


def test_clean_data_passes(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame()
    result = validate_training_data(frame, cfg, SOURCE, qdir)
    assert result.success
    assert result.quarantine_path is None and result.quarantined.empty
    assert result.truncated_rows == 0
    pd.testing.assert_frame_equal(result.accepted, frame)
    assert all(c.success for c in result.checks)
    report = json.loads(result.report_path.read_text())
    assert report["success"] is True and report["num_accepted"] == len(frame)
    assert report["accepted_label_counts"] == {"billing": 20, "login": 20, "refund": 20}


DEFECTS = [
    pytest.param(
        None,
        "billing",
        "text_not_null",
        "text is missing (expect_column_values_to_not_be_null on text)",
        id="null-text",
    ),
    pytest.param("", "billing", "text_not_blank", "text is empty or only whitespace", id="empty-text"),
    pytest.param(
        "  \t ", "refund", "text_not_blank", "text is empty or only whitespace", id="whitespace-text"
    ),
    pytest.param(
        "x",
        "login",
        "text_min_length",
        "text is too short: 1 character(s), fewer than min_text_chars=2",
        id="too-short",
    ),
    pytest.param(
        "a perfectly good sentence",
        "lonely",
        "label_min_support",
        "label 'lonely' has only 1 example(s), fewer than min_examples_per_label=5",
        id="single-example-label",
    ),
    pytest.param("text without a label", None, "label_not_null", "label is missing", id="null-label"),
]


@pytest.mark.parametrize(("text", "label", "rule", "reason"), DEFECTS)
def test_defective_row_is_quarantined_with_reason(
    cfg: ContractConfig, qdir: Path, text: object, label: object, rule: str, reason: str
) -> None:
    frame = with_rows(clean_frame(), [(text, label)])
    bad_row = int(frame["source_row"].iloc[-1])

    result = validate_training_data(frame, cfg, SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == [bad_row]
    assert reason in quarantined["reason"].iloc[0]
    assert list(quarantined.columns) == [*frame.columns, "reason"]
    assert check(result, rule).failed_rows == [bad_row] and not check(result, rule).success
    assert bad_row not in set(result.accepted["source_row"])
    assert_nothing_lost(result, frame)
    report = json.loads(result.report_path.read_text())
    assert report["quarantined_by_rule"] == {rule: 1}


def test_empty_text_gets_one_reason_not_two(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("", "billing")])
    result = validate_training_data(frame, cfg, SOURCE, qdir)
    assert result.quarantined["reason"].iloc[0].count(";") == 0
    assert check(result, "text_min_length").success


def test_huge_text_is_truncated_counted_and_reported(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("y" * 100_000, "billing")])
    row = int(frame["source_row"].iloc[-1])

    result = validate_training_data(frame, cfg, SOURCE, qdir)

    assert result.success and result.quarantined.empty and result.quarantine_path is None
    assert result.truncated_rows == 1
    kept = result.accepted.loc[result.accepted["source_row"] == row, "text"].iloc[0]
    assert kept == "y" * cfg.max_text_chars
    truncation = check(result, "text_max_length")
    assert truncation.failed_rows == [row] and "truncated to max_text_chars=2000" in truncation.detail
    assert json.loads(result.report_path.read_text())["truncated_rows"] == 1
    assert "1 text(s) truncated" in result.summary()
    assert frame["text"].iloc[-1] == "y" * 100_000, "the caller's frame is not modified"
    assert_nothing_lost(result, frame)


def test_label_support_counts_only_valid_rows(cfg: ContractConfig, qdir: Path) -> None:
    # 5 rows of "rare", but one has an empty text: 4 valid rows < min_examples_per_label=5.
    rare = [(f"rare question {i}", "rare") for i in range(4)] + [("", "rare")]
    frame = with_rows(clean_frame(), rare)
    result = validate_training_data(frame, cfg.model_copy(update={"max_quarantine_rate": 0.2}), SOURCE, qdir)
    quarantined = read_quarantine(result)
    assert set(quarantined["label"]) == {"rare"} and len(quarantined) == 5
    support = quarantined[quarantined["reason"].str.contains("label_support")]
    assert len(support) == 4 and support["reason"].str.contains("has only 4 example").all()
    assert_nothing_lost(result, frame)


def test_conflicting_duplicates_are_all_quarantined(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(
        clean_frame(), [("Where is my parcel?", "billing"), ("where is my   PARCEL?", "refund")]
    )
    conflict_rows = frame["source_row"].iloc[-2:].tolist()

    result = validate_training_data(frame, cfg.model_copy(update={"max_conflict_rate": 0.05}), SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == conflict_rows
    assert quarantined["reason"].str.contains(r"different labels \(billing, refund\)").all()
    assert check(result, "no_conflicting_labels").failed_rows == conflict_rows
    assert_nothing_lost(result, frame)


def test_exact_duplicates_keep_the_first_row(qdir: Path) -> None:
    frame = clean_frame()
    first = frame.iloc[0]
    frame = with_rows(
        frame, [(first["text"].upper(), first["label"]), (first["text"] + "  ", first["label"])]
    )
    dup_rows = frame["source_row"].iloc[-2:].tolist()
    # Duplicates have their own budget: even with no room for bad rows the batch passes.
    cfg = ContractConfig(max_quarantine_rate=0.0)

    result = validate_training_data(frame, cfg, SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == dup_rows
    assert quarantined["reason"].str.contains(f"exact duplicate of row {first['source_row']}").all()
    assert int(first["source_row"]) in set(result.accepted["source_row"])
    assert_nothing_lost(result, frame)


def test_too_many_duplicates_fail_the_batch(qdir: Path) -> None:
    frame = clean_frame(per_label=5)
    frame = with_rows(frame, [(frame["text"].iloc[0], frame["label"].iloc[0])] * 5)
    with pytest.raises(ContractViolation, match="max_duplicate_rate") as err:
        validate_training_data(frame, ContractConfig(), SOURCE, qdir)
    assert "column 'text'" in str(err.value)
    assert_nothing_lost(err.value.result, frame)


def test_all_rows_one_label_raises_clear_violation(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame(labels=("billing",))
    with pytest.raises(ContractViolation) as err:
        validate_training_data(frame, cfg, SOURCE, qdir)
    message = str(err.value)
    assert SOURCE in message and "column 'label'" in message
    assert "min_labels" in message and "expect_column_unique_value_count_to_be_between" in message
    assert "rows 2, 3, 4" in message and "label 'billing'" in message
    assert "What to do:" in message and "--label-col" in message
    result = err.value.result
    assert isinstance(result, ContractResult) and not result.success
    assert json.loads(result.report_path.read_text())["success"] is False
    assert_nothing_lost(result, frame)


def test_too_many_bad_rows_raise_after_quarantine_is_written(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("", "billing")] * 6 + [(None, "refund")] * 3)
    bad_rows = frame["source_row"].iloc[-9:].tolist()

    with pytest.raises(ContractViolation) as err:
        validate_training_data(frame, cfg, SOURCE, qdir)

    message = str(err.value)
    assert SOURCE in message and "column 'text'" in message
    assert "max_quarantine_rate" in message and "expect_column_mean_to_be_between" in message
    assert re.search(rf"rows {bad_rows[0]}, {bad_rows[1]}", message)
    assert "text is empty or only whitespace" in message and "text is missing" in message
    result = err.value.result
    assert str(result.quarantine_path) in message and str(result.report_path) in message
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == bad_rows
    assert quarantined["reason"].notna().all()
    assert_nothing_lost(result, frame)


def test_thresholds_come_from_config(qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("short one", "billing")])
    assert validate_training_data(frame, ContractConfig(), SOURCE, qdir).quarantined.empty
    strict = validate_training_data(frame, ContractConfig(min_text_chars=10), SOURCE, qdir)
    assert strict.quarantined["reason"].iloc[0].startswith("text is too short: 9 character(s)")


def test_missing_label_column_is_refused(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame().rename(columns={"label": "intent"})
    with pytest.raises(ContractViolation, match="--label-col") as err:
        validate_training_data(frame, cfg, SOURCE, qdir)
    assert "intent" in str(err.value)


def test_quarantine_file_is_named_by_source_and_content(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("", "billing")])
    frame["note"] = "kept"
    first = validate_training_data(frame, cfg, SOURCE, qdir)
    again = validate_training_data(frame, cfg, SOURCE, qdir)
    assert first.quarantine_path == again.quarantine_path
    assert re.fullmatch(r"train-[0-9a-f]{8}\.csv", first.quarantine_path.name)
    assert first.quarantine_path.parent == qdir
    assert read_quarantine(first)["note"].tolist() == ["kept"]
    assert list(first.accepted.index) == list(frame.index[:-1]), "accepted rows keep the input's index"


def test_result_to_dict_is_json_safe_and_summary_readable(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [(None, "billing"), ("y" * 3000, "refund")])
    result = validate_training_data(frame, cfg, SOURCE, qdir)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["num_rows"] == len(frame) and data["num_quarantined"] == 1 and data["truncated_rows"] == 1
    assert data["parameters"]["max_text_chars"] == 2000
    assert {c["rule"] for c in data["checks"]} >= {"text_not_null", "min_labels", "max_quarantine_rate"}
    summary = result.summary()
    assert "passed" in summary and "1 quarantined" in summary and str(result.quarantine_path) in summary


def test_data_docs_are_rendered_when_asked(cfg: ContractConfig, qdir: Path, tmp_path: Path) -> None:
    frame = with_rows(clean_frame(), [("", "billing")])
    result = validate_training_data(frame, cfg, SOURCE, qdir, docs_dir=tmp_path / "docs")
    assert result.docs_path == tmp_path / "docs" / "index.html"
    assert result.docs_path.is_file()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))


def test_data_docs_list_only_their_own_run_and_a_failed_build_is_not_fatal(
    cfg: ContractConfig, qdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = validate_training_data(clean_frame(), cfg, "first.csv", qdir, docs_dir=tmp_path / "one")
    second = validate_training_data(clean_frame(), cfg, "second.csv", qdir, docs_dir=tmp_path / "two")
    assert first.docs_path is not None and second.docs_path is not None
    index = second.docs_path.read_text(encoding="utf-8")
    assert "second.csv" in index and "first.csv" not in index
    assert gx_context().validation_results_store.list_keys() == []  # a worker's context keeps no results

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the docs folder should be")
    with caplog.at_level("WARNING", logger="loopline.contracts.validate"):
        result = validate_training_data(clean_frame(), cfg, SOURCE, qdir, docs_dir=blocked)
    assert result.success and result.docs_path is None
    assert "GX Data Docs could not be built" in caplog.text and str(blocked) in caplog.text
