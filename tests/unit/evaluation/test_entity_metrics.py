"""Entity-level (seqeval, exact match) and token-level NER metrics on hand-checked examples."""

from __future__ import annotations

import pytest

from loopline.errors import DataError
from loopline.evaluation.entity_metrics import compute_entity_metrics


def test_exact_match_entities_and_the_token_report() -> None:
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "I-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "O"]]  # LOC missed; a LOC cut short (not a match)
    metrics = compute_entity_metrics(true, pred)
    assert metrics.micro_precision == pytest.approx(1 / 2)  # PER right, the short LOC wrong
    assert metrics.micro_recall == pytest.approx(1 / 3)
    assert metrics.primary == pytest.approx(0.4)
    assert metrics.per_class["PER"]["f1"] == 1.0 and metrics.per_class["LOC"]["recall"] == 0.0
    assert metrics.token_micro_f1 == pytest.approx(5 / 7)  # tokens right, O included
    assert metrics.token_report["O"]["support"] == 2


def test_sentences_must_line_up() -> None:
    with pytest.raises(DataError):
        compute_entity_metrics([["O", "O"]], [["O"]])
