"""The model card renderer, on facts built by hand: a first sequence model and a retrained token model."""

from __future__ import annotations

import json

from loopline.evaluation.evaluate import EvalReport
from loopline.evaluation.gate_markdown import gate_markdown
from loopline.evaluation.metrics import EvalMetrics
from loopline.registry.model_card import (
    DESCRIPTION_LIMIT,
    CardFacts,
    card_for_description,
    model_description,
    render_model_card,
    training_run_name,
)


def _report(name: str, per_class: dict[str, tuple[float, float, float, int]], **kw: float) -> EvalReport:
    stats = {
        k: {"precision": p, "recall": r, "f1": f, "support": float(n)}
        for k, (p, r, f, n) in per_class.items()
    }
    metrics = EvalMetrics(
        accuracy=kw.get("accuracy", 0.9),
        macro_f1=kw.get("macro_f1", 0.85),
        per_class=stats,
        confusion=[],
        labels=list(per_class),
        ece=kw.get("ece", 0.04),
        primary_name="entity_f1" if "entity_f1" in kw else "macro_f1",
        primary=kw.get("entity_f1", kw.get("macro_f1", 0.85)),
    )
    rows = int(sum(n for *_, n in per_class.values()))
    return EvalReport(name, metrics, None, 1.25, rows)


GATE = {
    "passed": True,
    "checks": [
        {
            "name": "test.accuracy",
            "passed": True,
            "value": 0.9,
            "threshold": 0.8,
            "detail": "accuracy 0.9000 >= floor 0.8000",
        },
        {"name": "test.behaviour", "passed": True, "value": 1.0, "threshold": 0.9, "detail": "a | b"},
    ],
    "candidate": {},
    "champion": None,
}


def sequence_facts() -> CardFacts:
    return CardFacts(
        model_name="support-intents",
        version="1",
        task="sequence",
        labels=["card_arrival", "change_pin", "refund_request"],
        registered_at="2026-12-03T07:00:00+00:00",
        lineage={
            "loopline.dataset_version": "ds-20261203-abc123",
            "loopline.dataset_hash": "abc123",
            "loopline.dataset_source": "data.csv",
            "loopline.quarantined_rows": "2",
            "loopline.base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "loopline.parent_version": "",
            "loopline.git_commit": "0634f69",
            "loopline.prefect_flow_run_id": "f-123",
            "loopline.prefect_flow_run_name": "crimson-otter",
            "loopline.train_key": "k1",
        },
        run_id="r1",
        run_tags={"loopline.flow": "train", "mlflow.user": "ada"},
        params={"train_rows": "2400", "training.max_length": "64"},
        evaluations={
            "test": _report(
                "test",
                {
                    "card_arrival": (0.9, 0.95, 0.92, 200),
                    "change_pin": (0.8, 0.7, 0.75, 150),
                    "refund_request": (0.5, 0.3, 0.4, 12),
                },
            )
        },
        gate=GATE,
    )


def token_facts() -> CardFacts:
    return CardFacts(
        model_name="news-ner",
        version="3",
        task="token",
        labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-PRODUCT", "I-PRODUCT"],
        registered_at="2026-12-03T08:00:00+00:00",
        lineage={
            "loopline.dataset_version": "ds-retrain-9",
            "loopline.test_version": "ds-base-1",
            "loopline.parent_version": "2",
            "loopline.feedback_batches": "b-1,b-2",
            "loopline.feedback_rows": "412",
            "loopline.feedback_batch_rows": json.dumps({"b-1": 300, "b-2": 112}),
            "loopline.new_labels": "B-PRODUCT,I-PRODUCT",
            "loopline.drift_at_training": "drift detected (signals: novelty) by the monitor check of ...",
            "loopline.retrain_key": "rk",
        },
        run_id="r3",
        run_tags={"loopline.flow": "retrain", "loopline.trigger": "monitor: Retrain: drift detected"},
        params={"train_rows": "900", "training.max_length": "32"},
        evaluations={
            "test": _report(
                "test", {"PER": (0.9, 0.9, 0.9, 300), "LOC": (0.8, 0.8, 0.8, 250)}, entity_f1=0.86
            ),
            "feedback": _report("feedback", {"PRODUCT": (0.7, 0.6, 0.65, 40)}, entity_f1=0.65),
        },
        gate={**GATE, "passed": False, "checks": [{**GATE["checks"][0], "passed": False, "value": 0.7}]},
    )


def test_a_sequence_card_has_every_section_with_the_numbers() -> None:
    card = render_model_card(sequence_facts())
    assert card.splitlines()[0] == "# Model card: support-intents v1"
    sections = [line for line in card.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Intended use",
        "## Label set",
        "## Training data",
        "## Metrics",
        "## Gate",
        "## Lineage",
        "## Drift state at training time",
        "## Known limits",
    ]
    assert "3 labels: `card_arrival`, `change_pin`, `refund_request`." in card
    assert "- Rows trained on: 2,400" in card and "`ds-20261203-abc123`" in card
    assert "Feedback: none" in card
    assert "| `test` | 362 | 0.9000 | 0.8500 | 0.0400 | 1.25 |" in card  # overall
    assert "| `change_pin` | 0.8000 | 0.7000 | 0.7500 | 150 |" in card  # per class
    assert "Verdict: **PASSED (2/2 checks)**" in card
    assert "| `test.accuracy` | 0.9000 | 0.8000 | yes | accuracy 0.9000 >= floor 0.8000 |" in card
    assert "a \\| b" in card  # a pipe in a detail does not break the table
    assert "- Parent version: none (first model of this name)" in card
    assert "`crimson-otter` (id `f-123`)" in card and "`0634f69`" in card and "Trained by: ada" in card
    assert "Not applicable: trained on a labelled file" in card
    assert "`refund_request`" in card.split("## Known limits")[1]  # few examples and weak F1
    assert "Reads at most 64 tokens" in card
    assert training_run_name(sequence_facts()) == "train v1 (2,400 rows)"


def test_a_retrained_token_card_names_parent_feedback_entity_types_and_drift() -> None:
    facts = token_facts()
    card = render_model_card(facts)
    assert card.startswith("# Model card: news-ner v3\n")
    assert "continual retrain of v2" in card and "- Parent version: v2" in card
    assert "Entity types (3): `PER`, `LOC`, `PRODUCT`." in card
    assert "`B-PRODUCT` (new)" in card
    assert "- Feedback: 412 accepted rows from 2 batch(es)" in card
    assert "| `b-1` | 300 |" in card and "| `b-2` | 112 |" in card
    assert "entity F1 |" in card and "| `test` | 550 | 0.9000 | 0.8500 | 0.8600 |" in card
    assert (
        "Per entity type on `feedback`:" in card and "| `PRODUCT` | 0.7000 | 0.6000 | 0.6500 | 40 |" in card
    )
    assert "Verdict: **FAILED (0/1 checks)**" in card and "| **no** |" in card
    assert "trigger: monitor: Retrain: drift detected" in card
    assert "drift detected (signals: novelty)" in card.split("## Drift state at training time")[1]
    assert "words past it are tagged O" in card
    assert training_run_name(facts) == "retrain v3 ← v2 (412 feedback rows)"


def test_a_card_too_long_for_a_description_is_shortened_but_keeps_its_header() -> None:
    many = {f"label_{i:03d}": (0.5, 0.5, 0.5, 30) for i in range(300)}
    facts = sequence_facts()
    facts = CardFacts(
        **{**facts.__dict__, "labels": list(many), "evaluations": {"test": _report("test", many)}}
    )
    full = render_model_card(facts)
    assert len(full) > DESCRIPTION_LIMIT
    short = card_for_description(facts, full)
    assert len(short) <= DESCRIPTION_LIMIT
    assert short.startswith("# Model card: support-intents v1\n") and "## Intended use" in short
    assert "artifact `model_card.md` of run `r1`" in short
    assert card_for_description(sequence_facts()) == render_model_card(sequence_facts())  # fits: whole


def test_gate_markdown_and_model_description() -> None:
    page = gate_markdown(GATE)
    assert page.startswith("# Gate PASSED (2/2 checks)\n")
    assert "| check | value | threshold | passed | detail |" in page
    empty = gate_markdown({"passed": True, "checks": []})
    assert "no checks" in empty
    text = model_description("news-ner", "token")
    assert "token classifier" in text and "`loopline promote VERSION`" in text and "candidate" in text
