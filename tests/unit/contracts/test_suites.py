"""The suites in data_contracts/ are valid GX 1.x suites with complete loopline metadata."""

from __future__ import annotations

import json
import re
from pathlib import Path

import great_expectations as gx
import pytest

from loopline.config import ContractConfig
from loopline.contracts import (
    default_suites_dir,
    feedback_parameters,
    load_suite,
    training_parameters,
    validate_training_data,
)
from loopline.contracts.suites import STAGES
from loopline.errors import LooplineError

from .conftest import clean_frame, with_rows

SUITES = ("training_data", "feedback", "token_data", "token_feedback")
PARAMETERS = {
    "training_data": training_parameters(ContractConfig()),
    "feedback": feedback_parameters(ContractConfig(), 5, 0.5, 20),
    "token_data": training_parameters(ContractConfig()),
    "token_feedback": feedback_parameters(ContractConfig(), 5, 0.5, 20),
}


@pytest.mark.parametrize("name", SUITES)
def test_suite_file_is_a_valid_gx_suite(name: str) -> None:
    raw = json.loads((default_suites_dir() / f"{name}.json").read_text(encoding="utf-8"))
    suite = gx.ExpectationSuite(**raw)
    assert suite.name == name
    assert len(suite.expectations) == len(raw["expectations"])
    # Round trip: GX writes back the same expectation types and kwargs.
    again = suite.to_json_dict()
    assert [e["type"] for e in again["expectations"]] == [e["type"] for e in raw["expectations"]]


@pytest.mark.parametrize("name", SUITES)
def test_every_rule_has_loopline_metadata_and_docs(name: str) -> None:
    suite = load_suite(name)
    readme = (default_suites_dir() / "README.md").read_text(encoding="utf-8")
    ids = [rule.rule for rule in suite.rules]
    assert len(ids) == len(set(ids)), "rule ids must be unique"
    for rule in suite.rules:
        assert rule.stage in STAGES
        assert rule.reason
        assert f"`{rule.rule}`" in readme, f"rule {rule.rule} is not explained in data_contracts/README.md"
        if rule.action == "fail":
            assert rule.hint, f"batch rule {rule.rule} needs a hint (what to do)"
            assert rule.examples_from, f"batch rule {rule.rule} needs examples_from"


@pytest.mark.parametrize("name", SUITES)
def test_parameters_are_provided_by_config(name: str) -> None:
    suite = load_suite(name)
    assert suite.parameter_names() <= set(PARAMETERS[name])
    assert "max_quarantine_rate" in suite.parameter_names()


def test_row_condition_parameters_are_filled_in() -> None:
    suite = load_suite("feedback").to_gx("labels", PARAMETERS["feedback"])
    text = json.dumps(suite.to_json_dict())
    assert '$PARAMETER": "min_flood_batch_rows' not in text
    flood = next(e for e in suite.expectations if e.meta["loopline"]["rule"] == "no_label_flood")
    assert flood.row_condition.parameter == 20
    # Thresholds stay $PARAMETERs: GX substitutes those itself.
    assert re.search(r'"max_value": \{"\$PARAMETER": "max_flood_share"\}', text)


def test_stage_suite_holds_only_that_stage() -> None:
    suite = load_suite("training_data")
    row = suite.to_gx("row", PARAMETERS["training_data"])
    assert {e.meta["loopline"]["stage"] for e in row.expectations} == {"row"}
    assert row.name == "training_data.row"


def _edited_suite_dir(tmp_path: Path, edit) -> Path:
    raw = json.loads((default_suites_dir() / "training_data.json").read_text(encoding="utf-8"))
    edit(raw)
    (tmp_path / "training_data.json").write_text(json.dumps(raw), encoding="utf-8")
    return tmp_path


def test_suite_with_unknown_parameter_is_refused(tmp_path: Path) -> None:
    def edit(raw: dict) -> None:
        raw["expectations"][4]["kwargs"]["min_value"] = {"$PARAMETER": "no_such_setting"}

    suites_dir = _edited_suite_dir(tmp_path, edit)
    with pytest.raises(LooplineError, match="no_such_setting"):
        validate_training_data(
            clean_frame(), ContractConfig(), "x.csv", tmp_path / "q", suites_dir=suites_dir
        )


def test_gx_errors_are_reported_as_suite_problems(tmp_path: Path) -> None:
    def edit(raw: dict) -> None:  # a rule on a column loopline never derives
        raw["expectations"][2]["kwargs"]["column"] = "no_such_column"

    suites_dir = _edited_suite_dir(tmp_path, edit)
    with pytest.raises(LooplineError, match="could not evaluate rule 'text_not_null'"):
        validate_training_data(
            clean_frame(), ContractConfig(), "x.csv", tmp_path / "q", suites_dir=suites_dir
        )


def test_a_rule_edited_in_the_json_changes_behaviour(tmp_path: Path) -> None:
    """The rules really are data: tighten text_min_length in the file, not in code."""

    def edit(raw: dict) -> None:
        (rule,) = [e for e in raw["expectations"] if e["meta"]["loopline"]["rule"] == "text_min_length"]
        rule["kwargs"]["min_value"] = 30

    suites_dir = _edited_suite_dir(tmp_path, edit)
    frame = with_rows(clean_frame(), [("a rather short text", "billing")])
    result = validate_training_data(frame, ContractConfig(), "x.csv", tmp_path / "q", suites_dir=suites_dir)
    assert result.quarantined["source_row"].tolist() == [frame["source_row"].iloc[-1]]
