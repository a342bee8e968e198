from __future__ import annotations

import pandas as pd
import pytest

from loopline.evaluation.behaviour import BehaviourReport, add_typo, run_behaviour_checks, sample_texts

TEXTS = [
    "I want a refund for my order.",
    "Where is my parcel, please?",
    "Why was I charged twice",
    "please refund the delivery fee!",
]


def test_case_sensitive_classifier_fails_casing_invariance(keyword_classifier) -> None:
    report = run_behaviour_checks(keyword_classifier, TEXTS, mft=None, seed=0)

    upper = report.check("uppercase")
    assert upper.n == 4
    # "REFUND"/"PARCEL" no longer match, so 3 of 4 predictions flip (the billing one stays billing).
    assert upper.passed == 1
    assert {
        "text": "I want a refund for my order.",
        "perturbed": "I WANT A REFUND FOR MY ORDER.",
        "expected": "refund",
        "got": "billing",
    } in upper.failures
    # Lower-casing changes only texts with capitals; none of the keywords carries one.
    assert report.check("lowercase").pass_rate == 1.0
    assert report.check("added_punctuation").pass_rate == 1.0
    assert report.overall_pass_rate < 1.0
    assert keyword_classifier.calls == 1  # everything predicted in one batch


def test_invariant_classifier_passes_everything(constant_classifier) -> None:
    mft = pd.DataFrame({"text": ["charged twice"], "label": ["billing"]})
    report = run_behaviour_checks(constant_classifier, TEXTS, mft=mft, seed=0)
    assert report.overall_pass_rate == 1.0
    assert {c.name for c in report.checks} == {
        "lowercase",
        "uppercase",
        "no_punctuation",
        "added_punctuation",
        "typo",
        "minimum_functionality",
    }
    assert all(not c.failures for c in report.checks)


def test_minimum_functionality_failures_and_unknown_labels(keyword_classifier) -> None:
    mft = pd.DataFrame(
        {
            "text": ["refund me", "my parcel is late", "return my money", "my warranty claim"],
            "label": ["refund", "shipping", "refund", "warranty"],  # warranty: unknown to the model
        }
    )
    report = run_behaviour_checks(keyword_classifier, TEXTS, mft=mft, seed=0)
    mft_check = report.check("minimum_functionality")
    assert (mft_check.n, mft_check.passed) == (3, 2)
    assert mft_check.failures == [{"text": "return my money", "expected": "refund", "got": "billing"}]
    # The overall rate weighs each check the same, so this MFT miss shows up clearly.
    rates = [c.pass_rate for c in report.checks if c.n]
    assert report.overall_pass_rate == pytest.approx(sum(rates) / len(rates))


def test_failures_are_capped(keyword_classifier) -> None:
    texts = [f"refund number {i}" for i in range(30)]
    report = run_behaviour_checks(keyword_classifier, texts, seed=0)
    upper = report.check("uppercase")
    assert upper.n == 30 and upper.passed == 0
    assert len(upper.failures) == 10


def test_typo_is_deterministic_and_small() -> None:
    text = "Please refund my order"
    typo = add_typo(text, seed=3)
    assert typo == add_typo(text, seed=3)
    assert typo != text and len(typo) == len(text)
    changed = [i for i, (a, b) in enumerate(zip(text, typo, strict=True)) if a != b]
    assert len(changed) == 2 and changed[1] == changed[0] + 1  # one adjacent swap
    assert sorted(text) == sorted(typo)
    assert add_typo("a cat sat", seed=0) == "a cat sat"  # no word of four letters
    assert add_typo("good", seed=0) == "good"  # only inner letters (o, o) are equal: nothing to swap


def test_sample_is_seeded_capped_and_deduplicated() -> None:
    texts = [f"text {i}" for i in range(500)] + ["text 1", "", "   "]
    first = sample_texts(texts, seed=1)
    assert len(first) == 200 and len(set(first)) == 200
    assert first == sample_texts(texts, seed=1)
    assert first != sample_texts(texts, seed=2)
    assert sample_texts(["b", "a", "b", " "], seed=0) == ["b", "a"]


def test_report_round_trip(keyword_classifier) -> None:
    report = run_behaviour_checks(keyword_classifier, TEXTS, seed=0)
    data = report.to_dict()
    assert data["overall_pass_rate"] == report.overall_pass_rate
    assert BehaviourReport.from_dict(data) == report
