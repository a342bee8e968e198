from __future__ import annotations

import json

import pytest

from loopline.config import GateConfig
from loopline.errors import DataError, GateFailed
from loopline.evaluation.behaviour import BehaviourCheck, BehaviourReport
from loopline.evaluation.evaluate import EvalReport
from loopline.evaluation.gate import evaluate_gate
from loopline.evaluation.metrics import EvalMetrics

CFG = GateConfig(
    min_accuracy=0.8,
    min_macro_f1=0.8,
    tolerance=0.01,
    max_class_recall_drop=0.05,
    min_new_label_recall=0.6,
    min_behaviour_pass_rate=0.9,
)


def behaviour(rate: float) -> BehaviourReport:
    passed = round(rate * 100)
    failure = {"text": "Refund", "perturbed": "REFUND", "expected": "a", "got": "b"}
    failures = [] if passed == 100 else [failure]
    return BehaviourReport([BehaviourCheck("uppercase", "invariance", 100, passed, failures)], 100, 0)


def report(
    dataset: str = "test",
    *,
    accuracy: float = 0.9,
    macro_f1: float = 0.9,
    recall: dict[str, float] | None = None,
    support: dict[str, int] | None = None,
    behaviour_rate: float | None = 1.0,
) -> EvalReport:
    """An EvalReport with chosen numbers (per-class recall; support 10 unless given)."""
    recall = recall or {"billing": 0.9, "refund": 0.9}
    support = support or {}
    per_class = {
        label: {"precision": r, "recall": r, "f1": r, "support": float(support.get(label, 10))}
        for label, r in recall.items()
    }
    labels = list(recall)
    metrics = EvalMetrics(accuracy, macro_f1, per_class, [[0] * len(labels)] * len(labels), labels, 0.05)
    rate = None if behaviour_rate is None else behaviour(behaviour_rate)
    return EvalReport(dataset, metrics, rate, 1.0, 100)


def names(gate) -> dict[str, bool]:
    return {c.name: c.passed for c in gate.checks}


def test_first_model_passes_absolute_floors() -> None:
    gate = evaluate_gate({"test": report(accuracy=0.8, macro_f1=0.85)}, None, CFG)
    assert gate.passed
    assert names(gate) == {"test.accuracy": True, "test.macro_f1": True, "test.behaviour": True}
    assert gate.champion is None
    gate.raise_if_failed()  # does not raise


def test_first_model_below_floor_fails_and_raises_with_numbers() -> None:
    gate = evaluate_gate({"test": report(accuracy=0.75, macro_f1=0.7)}, None, CFG)
    assert not gate.passed
    assert names(gate)["test.accuracy"] is False and names(gate)["test.macro_f1"] is False
    with pytest.raises(GateFailed) as err:
        gate.raise_if_failed()
    message = str(err.value)
    assert "2 of 3 gate checks" in message
    assert "accuracy 0.7500 < floor 0.8000" in message
    assert "macro-F1 0.7000 < floor 0.8000" in message
    assert err.value.report is gate


def test_behaviour_pass_rate_below_threshold_fails() -> None:
    gate = evaluate_gate({"test": report(behaviour_rate=0.85)}, None, CFG)
    check = next(c for c in gate.checks if c.name == "test.behaviour")
    assert not check.passed and check.value == pytest.approx(0.85) and check.threshold == 0.9
    assert "uppercase 0.850" in check.detail and "REFUND" in check.detail


def test_missing_behaviour_is_a_failure_not_a_pass() -> None:
    gate = evaluate_gate({"test": report(behaviour_rate=None)}, None, CFG)
    assert names(gate)["behaviour"] is False


@pytest.mark.parametrize(
    ("candidate_f1", "passes"),
    [(0.79, True), (0.7899, False), (0.95, True)],  # 0.80 - 0.01 = 0.79 is exactly on the edge
)
def test_macro_f1_tolerance_edges(candidate_f1: float, passes: bool) -> None:
    champion = {"test": report(macro_f1=0.80)}
    gate = evaluate_gate({"test": report(macro_f1=candidate_f1)}, champion, CFG)
    check = next(c for c in gate.checks if c.name == "test.macro_f1_vs_champion")
    assert check.passed is passes
    assert check.threshold == pytest.approx(0.79)
    assert gate.passed is passes


def test_every_shared_set_is_compared() -> None:
    champion = {"test": report(), "feedback": report("feedback", macro_f1=0.9)}
    candidate = {"test": report(), "feedback": report("feedback", macro_f1=0.8), "extra": report("extra")}
    gate = evaluate_gate(candidate, champion, CFG)
    assert names(gate)["feedback.macro_f1_vs_champion"] is False
    assert "extra.macro_f1_vs_champion" not in names(gate)
    with pytest.raises(GateFailed, match=r"feedback\.macro_f1_vs_champion"):
        gate.raise_if_failed()


def test_forgetting_fails_naming_the_class_and_numbers() -> None:
    rows = {"billing": 100, "refund": 100}
    champion = {
        "test": report(),
        "regression": report("regression", recall={"billing": 0.9, "refund": 0.8}, support=rows),
    }
    candidate = {
        "test": report(),  # same macro-F1 on test: only the regression set shows the forgetting
        "regression": report("regression", recall={"billing": 0.7, "refund": 0.78}, support=rows),
    }
    gate = evaluate_gate(candidate, champion, CFG)
    check = next(c for c in gate.checks if c.name == "regression.forgetting")
    assert not check.passed
    assert check.value == pytest.approx(0.2) and check.threshold == 0.05
    assert "class 'billing' recall 0.9000 -> 0.7000 (drop 0.2000, 100 rows, p=" in check.detail
    assert "refund" not in check.detail  # 0.02 drop is within the limit
    with pytest.raises(GateFailed, match="billing"):
        gate.raise_if_failed()


def test_forgetting_one_miss_among_few_rows_is_noise_not_forgetting() -> None:
    # 6 rows of a class (BANKING77's frozen split): one miss is a 0.1667 drop, far above 0.05.
    champion = {"test": report(recall={"billing": 1.0, "refund": 5 / 6}, support={"billing": 6, "refund": 6})}
    candidate = {
        "test": report(recall={"billing": 5 / 6, "refund": 4 / 6}, support={"billing": 6, "refund": 6})
    }
    gate = evaluate_gate(candidate, champion, CFG)
    check = next(c for c in gate.checks if c.name == "test.forgetting")
    assert check.passed, check.detail
    assert "2 of 2 past classes dropped more than 0.0500 recall, none significantly" in check.detail
    assert "6 rows" in check.detail

    strict = CFG.model_copy(update={"forgetting_alpha": 1.0})  # the drop alone decides
    strict_check = next(c for c in evaluate_gate(candidate, champion, strict).checks if c.name == check.name)
    assert not strict_check.passed and "2 of 2 past classes lost more than" in strict_check.detail


def test_forgetting_a_collapsed_small_class_is_caught() -> None:
    support = {"billing": 6, "refund": 6}
    champion = {"test": report(recall={"billing": 1.0, "refund": 1.0}, support=support)}
    candidate = {"test": report(recall={"billing": 1.0, "refund": 1 / 6}, support=support)}
    check = next(c for c in evaluate_gate(candidate, champion, CFG).checks if c.name == "test.forgetting")
    assert not check.passed
    assert check.value == pytest.approx(5 / 6)
    assert "1 of 2 past classes lost more than 0.0500 recall (significant at p<=0.05)" in check.detail
    assert "class 'refund' recall 1.0000 -> 0.1667" in check.detail


def test_forgetting_uses_test_without_regression_set_and_passes_on_the_edge() -> None:
    champion = {"test": report(recall={"billing": 0.9, "refund": 0.8})}
    candidate = {"test": report(recall={"billing": 0.85, "refund": 0.8})}  # drop exactly 0.05
    gate = evaluate_gate(candidate, champion, CFG)
    check = next(c for c in gate.checks if c.name == "test.forgetting")
    assert check.passed, check.detail
    assert gate.passed


def test_new_label_recall_rule() -> None:
    champion = {"test": report()}
    new = {"billing": 0.9, "refund": 0.9, "warranty": 0.5}
    candidate = {
        "test": report(recall=new),
        "feedback": report("feedback", recall={"billing": 0.9, "warranty": 0.8}),
    }
    gate = evaluate_gate(candidate, champion, CFG, new_labels=["warranty"])
    check = next(c for c in gate.checks if c.name == "new_label.warranty")
    assert not check.passed and check.value == pytest.approx(0.5)  # the worst set counts
    assert "test 0.5000 (10 examples)" in check.detail and "feedback 0.8000" in check.detail
    # The new label is not a "past class": no forgetting complaint about it.
    assert names(gate)["test.forgetting"] is True

    good = {"test": report(recall={**new, "warranty": 0.7})}
    assert evaluate_gate(good, champion, CFG, new_labels=["warranty"]).passed


def test_new_label_is_judged_only_on_sets_with_enough_examples() -> None:
    """A miss on 2 examples is not evidence (CrossNER holdouts held 0-3 mentions of a new type)."""
    champion = {"test": report()}
    few = {"billing": 0.9, "refund": 0.9, "warranty": 0.0}
    candidate = {
        "test": report(recall=few, support={"warranty": 2}),
        "feedback": report("feedback", recall={"billing": 0.9, "warranty": 0.8}, support={"warranty": 5}),
    }
    gate = evaluate_gate(candidate, champion, CFG, new_labels=["warranty"])
    check = next(c for c in gate.checks if c.name == "new_label.warranty")
    assert check.passed and check.value == pytest.approx(0.8), check.detail  # the test set's 2 do not count
    assert "test 0.0000 (2 examples)" in check.detail

    # The same recall on 5 examples is judged, and fails.
    enough = {**candidate, "test": report(recall=few, support={"warranty": 5})}
    assert not evaluate_gate(enough, champion, CFG, new_labels=["warranty"]).passed
    # A stricter setting judges the 2 examples too.
    strict = CFG.model_copy(update={"min_new_label_examples": 1})
    assert not evaluate_gate(candidate, champion, strict, new_labels=["warranty"]).passed


@pytest.mark.parametrize("warranty_examples", [0, 4])
def test_new_label_with_too_few_examples_everywhere_is_reported_not_judged(
    warranty_examples: int, caplog: pytest.LogCaptureFixture
) -> None:
    recall = {"billing": 0.9, "warranty": 0.0}
    candidate = {"test": report(recall=recall, support={"warranty": warranty_examples})}
    gate = evaluate_gate(candidate, {"test": report()}, CFG, new_labels=["warranty"])
    check = next(c for c in gate.checks if c.name == "new_label.warranty")
    assert check.passed and check.value is None
    assert "not judged: no evaluation set has 5 examples" in check.detail
    assert f"({warranty_examples} examples)" in check.detail
    assert "not judged" in caplog.text  # a warning, so the run's log shows it


def test_no_shared_set_fails_and_missing_test_is_an_error() -> None:
    gate = evaluate_gate({"test": report()}, {"feedback": report("feedback")}, CFG)
    assert names(gate)["shared_sets"] is False
    with pytest.raises(DataError, match="'test'"):
        evaluate_gate({"feedback": report("feedback")}, None, CFG)


def test_report_to_dict_is_json_safe() -> None:
    champion = {"test": report(), "regression": report("regression")}
    gate = evaluate_gate({"test": report(), "regression": report("regression")}, champion, CFG, ["x"])
    data = json.loads(json.dumps(gate.to_dict(), allow_nan=False))
    assert data["passed"] is True  # new label "x" has no examples: not judged
    assert next(c for c in data["checks"] if c["name"] == "new_label.x")["value"] is None
    assert data["candidate"]["test"]["recall"] == {"billing": 0.9, "refund": 0.9}
    assert data["champion"]["regression"]["macro_f1"] == 0.9
    assert {c["name"] for c in data["checks"]} >= {"test.macro_f1_vs_champion", "regression.forgetting"}
