"""The Markdown the flows publish to Prefect: counts, verdicts and numbers from the flows' own summaries."""

from __future__ import annotations

import re

from loopline.flows.artifacts import (
    CONTRACT_KEY,
    DRIFT_KEY,
    FEEDBACK_CONTRACT_KEY,
    GATE_KEY,
    PROMOTION_KEY,
    RETRAIN_KEY,
    ROUNDS_KEY,
    ContractCounts,
    contract_markdown,
    drift_markdown,
    gate_markdown,
    promotion_markdown,
    rounds_table,
)

DRIFT = {
    "window_size": 120,
    "too_small": False,
    "drift_detected": True,
    "decay_detected": False,
    "novelty": {"novel_share": 0.42, "novel_count": 50, "bound": 0.12, "alarm": True},
    "label": {"distance": 0.31, "threshold": 0.17, "alarm": True, "new_categories": ["crypto_transfer"]},
    "prediction": None,
    "confidence": {"reference_mean": 0.9, "current_mean": 0.89, "ks_pvalue": 0.4, "alarm": False},
    "descriptors": {
        "current_mean_length": 61.0,
        "length_low": 50.0,
        "length_high": 70.0,
        "length_alarm": False,
        "current_oov_rate": 0.05,
        "oov_bound": 0.08,
        "oov_alarm": False,
    },
    "decay": None,
}


def _table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([cell.strip() for cell in cells])
    return rows


def test_keys_are_what_prefect_accepts_and_distinct() -> None:
    keys = [CONTRACT_KEY, FEEDBACK_CONTRACT_KEY, DRIFT_KEY, GATE_KEY, PROMOTION_KEY, RETRAIN_KEY, ROUNDS_KEY]
    assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in keys)
    assert len(set(keys)) == len(keys)
    assert GATE_KEY == "loopline-gate" and DRIFT_KEY == "loopline-drift-decision"


def test_training_contract_shows_counts_and_each_rule() -> None:
    contract = {
        "source": "data.csv",
        "success": True,
        "num_rows": 400,
        "num_accepted": 395,
        "num_quarantined": 5,
        "quarantined_by_rule": {"no_duplicate_texts": 3, "text_not_empty": 2},
    }
    markdown = contract_markdown("Training-data contract", ContractCounts.from_contract(contract))

    assert markdown.startswith("# Training-data contract: passed")
    rows = _table_rows(markdown)
    assert rows[0] == ["rows in", "accepted", "quarantined", "already stored"]
    assert rows[1] == ["400", "395", "5", "0"]
    assert ["no_duplicate_texts", "3"] in rows and ["text_not_empty", "2"] in rows
    assert rows.index(["no_duplicate_texts", "3"]) < rows.index(["text_not_empty", "2"])  # most first


def test_rejected_feedback_batch_says_why_and_user_text_cannot_break_the_table() -> None:
    intake = {
        "accepted": 0,
        "quarantined": 200,
        "batch_status": "rejected",
        "reason": "69.5% of the rows failed row rules",
        "duplicate_rows": 0,
    }
    summary = {"rows": 200, "quarantined_by_rule": {"label|weird\nrule": 139}}
    markdown = contract_markdown(
        "Feedback batch fb-1", ContractCounts.from_feedback(intake, summary, "fb.csv")
    )

    assert "# Feedback batch fb-1: rejected" in markdown
    assert "**Why:** 69.5% of the rows failed row rules" in markdown
    assert ["label\\|weird rule", "139"] in _table_rows(markdown)


def test_drift_decision_lists_every_signal_with_its_limit() -> None:
    monitor = {
        "champion_version": "2",
        "window_size": 120,
        "window_source": "served",
        "labelled_feedback": 80,
        "drift": DRIFT,
        "retrain": True,
        "reason": "Retrain: drift detected",
    }
    markdown = drift_markdown(monitor)

    assert markdown.startswith("# Monitor decision: retrain")
    assert "Champion v2, window 120 served rows, 80 labelled" in markdown
    rows = {row[0]: row for row in _table_rows(markdown)[1:]}
    assert rows["novelty"][1:] == ["42.0% novel (50 texts)", "bound 12.0%", "ALARM"]
    assert rows["label drift"][1:] == ["TV distance 0.310, new: crypto_transfer", "threshold 0.170", "ALARM"]
    assert rows["confidence drift"][3] == "ok"
    assert rows["text length"][2] == "range 50.0–70.0"
    assert "prediction drift" not in rows  # not measured
    assert "drift detected: yes, decay detected: no" in markdown


def test_too_small_window_has_no_signal_table() -> None:
    monitor = {
        "window_size": 3,
        "drift": {"window_size": 3, "too_small": True},
        "retrain": False,
        "reason": "r",
    }
    markdown = drift_markdown(monitor)
    assert "# Monitor decision: no retrain" in markdown and "## Signals" not in markdown


def test_gate_shows_each_check_and_scores_against_the_champion() -> None:
    gate = {
        "passed": False,
        "checks": [
            {"name": "test.macro_f1", "passed": True, "value": 0.91, "threshold": 0.8, "detail": "ok"},
            {"name": "test.forgetting", "passed": False, "value": 0.4, "threshold": 0.1, "detail": "drop"},
        ],
        "candidate": {"test": {"num_rows": 60, "macro_f1": 0.91, "accuracy": 0.92}},
        "champion": {"test": {"num_rows": 60, "macro_f1": 0.93, "accuracy": 0.94}},
    }
    markdown = gate_markdown(gate, "3")

    assert markdown.startswith("# Gate FAILED for v3 (1/2 checks)")
    rows = _table_rows(markdown)
    assert ["test.forgetting", "FAIL", "0.4000", "0.1000", "drop"] in rows
    assert ["test", "60", "0.9100", "0.9300", "0.9200"] in rows


def test_promotion_says_whether_production_moved() -> None:
    promoted = promotion_markdown("clf", "2", ("candidate", "production"), "1")
    assert promoted.startswith("# clf v2: `candidate`, `production`")
    assert "models:/clf@production" in promoted and "Warm-started from v1" in promoted
    assert "production did not move" in promotion_markdown("clf", "3", ("candidate",))


def test_rounds_table_has_one_row_per_round() -> None:
    rounds = [
        {
            "round": "1: in-distribution",
            "intake": {"batch_status": "accepted", "accepted": 299, "quarantined": 1},
            "monitor": {"retrain": False, "drift": {"novelty": {"novel_share": 0.0368}}},
        },
        {
            "round": "2: drifted",
            "intake": {"batch_status": "accepted", "accepted": 396, "quarantined": 4},
            "monitor": {
                "retrain": True,
                "drift": {},
                "retrain_result": {"version": "2", "gate": {"passed": True}},
            },
        },
    ]
    table = rounds_table(rounds)
    assert [row["decision"] for row in table] == ["none", "retrain"]
    assert table[0]["novel share"] == "0.037" and table[1]["version"] == "v2" and table[1]["gate"] == "passed"
