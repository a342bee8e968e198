from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.unit.monitoring.conftest import make_texts, sample_clusters

from loopline.errors import DataError
from loopline.monitoring.drift import DriftInputs, ReferenceScores
from loopline.monitoring.evidently_verdict import escape_markdown
from loopline.monitoring.report import (
    build_evidently_report,
    extract_evidently_numbers,
    make_report_frames,
    make_scores_frames,
    save_report_html,
)
from loopline.monitoring.verdict import Signal, Verdict


def _inputs(centres: np.ndarray, n: int, seed: int, labels: list[str]) -> DriftInputs:
    rng = np.random.default_rng(seed)
    predicted = list(rng.choice(labels, size=n))
    return DriftInputs(
        texts=make_texts(n, rng),
        embeddings=sample_clusters(centres, n, rng),
        labels=predicted,
        predicted_labels=predicted,
        confidences=rng.beta(8, 1, size=n),
    )


@pytest.fixture(scope="module")
def frames(known_centres, new_centre):
    reference = _inputs(known_centres, 120, 0, ["a", "b", "c"])
    current = _inputs(np.vstack([known_centres[:2], new_centre]), 80, 1, ["a", "new"])
    return make_report_frames(reference, current, n_components=3)


def test_frames_hold_descriptors_components_and_embeddings(frames) -> None:
    reference_df, current_df = frames
    for column in (
        "text",
        "label",
        "predicted_label",
        "confidence",
        "text_length",
        "oov_rate",
        "pc_1",
        "pc_3",
    ):
        assert column in reference_df.columns and column in current_df.columns
    assert sum(c.startswith("emb_") for c in current_df.columns) == 32
    assert 0 < reference_df["oov_rate"].mean() < 0.1  # leave-one-out: a word seen in no other text


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Evidently chi-square on an unseen label
def test_evidently_report_builds_extracts_and_saves_html(frames, tmp_path: Path) -> None:
    reference_df, current_df = frames
    snapshot = build_evidently_report(reference_df, current_df)
    numbers = extract_evidently_numbers(snapshot)
    json.dumps(numbers)
    assert set(numbers["columns"]) >= {
        "label",
        "predicted_label",
        "confidence",
        "text_length",
        "oov_rate",
        "pc_1",
    }
    assert numbers["columns"]["label"]["drift_detected"]  # a new label with 50% of the rows
    assert numbers["embeddings"]["score"] > 0.55 and numbers["embeddings"]["drift_detected"]
    assert numbers["drifted_columns"]["count"] >= 1 and numbers["text"] is None
    path = save_report_html(snapshot, tmp_path / "reports" / "drift.html")
    assert path.is_file() and "<html" in path.read_text(encoding="utf-8")[:2000].lower()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_scores_report_compares_window_scores_with_held_out_scores(known_centres, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    held_out = ReferenceScores(list(rng.choice(["a", "b"], size=300)), rng.beta(8, 1, size=300))
    window = _inputs(known_centres, 200, 4, ["a", "b"])
    unsure = DriftInputs(
        window.texts, window.embeddings, window.labels, window.predicted_labels, rng.beta(2, 2, size=200)
    )
    reference_df, current_df = make_scores_frames(held_out, unsure)
    assert list(reference_df.columns) == ["predicted_label", "confidence"] and len(reference_df) == 300
    numbers = extract_evidently_numbers(build_evidently_report(reference_df, current_df))
    assert set(numbers["columns"]) == {"predicted_label", "confidence"}
    assert numbers["columns"]["confidence"]["drift_detected"]  # mean 0.89 -> 0.5
    assert numbers["embeddings"] is None
    path = save_report_html(build_evidently_report(reference_df, current_df), tmp_path / "scores.html")
    assert path.is_file()

    with pytest.raises(DataError, match="no predicted labels or confidences"):
        make_scores_frames(held_out, DriftInputs(window.texts, window.embeddings))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_report_opens_with_loopline_decision_and_its_signals(frames, tmp_path: Path) -> None:
    reference_df, current_df = frames
    verdict = Verdict(
        retrain=True,
        reason="Retrain: drift detected (novel share 20.0% (expected 5.0%, bound 9.1%) ALARM).",
        signals=(Signal("Embedding novelty", "20.0%", "alarm above 9.1%", "ALARM", "decides"),),
    )
    snapshot = build_evidently_report(reference_df, current_df, verdict=verdict)
    first = snapshot.dict()["metrics"][0]
    assert first["config"]["type"].endswith("LooplineDecision") and first["value"] == 1.0
    assert first["config"]["reason"] == verdict.reason
    row = ["Embedding novelty", "20.0%", "alarm above 9.1%", "ALARM", "decides"]
    assert first["config"]["signals"] == [row]
    numbers = extract_evidently_numbers(snapshot)  # Evidently's own numbers are unchanged
    assert numbers["embeddings"]["drift_detected"] and "label" in numbers["columns"]
    html = save_report_html(snapshot, tmp_path / "drift.html").read_text(encoding="utf-8")
    # The page's widgets are JSON in the HTML, rendered by Evidently's script (tests/servers: in Chromium).
    assert "## loopline decision: RETRAIN" in html and "alarm above 9.1%" in html
    assert escape_markdown("share 20.0% (bound 9.1%) a_b") == r"share 20.0% \(bound 9.1%\) a\_b"
