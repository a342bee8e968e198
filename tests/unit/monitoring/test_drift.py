from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from tests.unit.monitoring.conftest import WORDS, make_texts, sample_clusters

from loopline.config import MonitorConfig
from loopline.errors import DataError
from loopline.monitoring.drift import (
    DriftInputs,
    NoveltyDetector,
    ReferenceScores,
    categorical_drift,
    check_drift,
    confidence_drift,
    knn_distances,
    performance_decay,
    reference_vocabulary,
    text_descriptors,
)

SEEDS = range(20)


@pytest.fixture(scope="module")
def fitted(reference_embeddings: np.ndarray):
    return NoveltyDetector().fit(reference_embeddings, seed=0)


def test_knn_distances_leave_one_out_skips_the_query_itself() -> None:
    points = np.eye(4, dtype=np.float32)
    assert np.allclose(knn_distances(points, points, 1), 0.0)
    assert np.allclose(knn_distances(points, points, 1, self_positions=np.arange(4)), 1.0)
    with pytest.raises(DataError, match="at least 5 reference rows"):
        knn_distances(points, points, 5)


def test_fit_calibrates_expected_novel_share_near_five_percent(fitted) -> None:
    assert 0.04 <= fitted.expected_share <= 0.06
    assert fitted.share_bound(300) > fitted.share_bound(3000) > fitted.expected_share


@pytest.mark.parametrize("calibration", ["loo", "split"])
def test_same_distribution_windows_do_not_alarm(reference_embeddings, known_centres, calibration) -> None:
    detector = NoveltyDetector(calibration=calibration).fit(reference_embeddings, seed=3)
    results = [
        detector.score(sample_clusters(known_centres, 300, np.random.default_rng(100 + seed)))
        for seed in SEEDS
    ]
    assert sum(r.alarm for r in results) <= 1  # alpha = 1% per window
    assert abs(np.mean([r.novel_share for r in results]) - detector.expected_share) < 0.02


def test_windows_with_a_fifth_from_a_new_cluster_alarm(fitted, known_centres, new_centre) -> None:
    for seed in SEEDS:
        rng = np.random.default_rng(200 + seed)
        window = np.vstack([sample_clusters(known_centres, 240, rng), sample_clusters(new_centre, 60, rng)])
        result = fitted.score(window)
        assert result.alarm, (seed, result.to_dict())
        assert result.novel_share > result.bound
        assert result.per_text_novel[240:].mean() > 0.9  # the new texts are the ones marked novel
        assert result.per_text_novel[:240].mean() < 0.15


def test_score_rejects_embeddings_of_another_model(fitted) -> None:
    with pytest.raises(DataError, match="same model"):
        fitted.score(np.ones((5, 7), dtype=np.float32))


def test_label_drift_does_not_over_alarm_on_77_class_windows() -> None:
    classes = [f"intent_{i}" for i in range(77)]
    weights = 1.0 / np.arange(1, 78) ** 0.6  # unequal class sizes, many small counts
    weights /= weights.sum()
    rng = np.random.default_rng(0)
    reference = list(rng.choice(classes, size=1000, p=weights))
    alarms = [
        categorical_drift("label", reference, list(rng.choice(classes, size=500, p=weights)), seed=s).alarm
        for s in range(40)
    ]
    assert sum(alarms) <= 2  # alpha = 1%; chi-square p-values alarm far more often here


def test_label_drift_detects_a_new_label_and_names_it() -> None:
    rng = np.random.default_rng(1)
    classes = [f"intent_{i}" for i in range(77)]
    reference = list(rng.choice(classes, size=1000))
    current = list(rng.choice(classes, size=400)) + ["brand_new_intent"] * 100
    result = categorical_drift("label", reference, current)
    assert result.alarm and result.distance > result.threshold
    assert result.new_categories == ("brand_new_intent",)
    assert result.top_shifts[0][0] == "brand_new_intent"


def test_confidence_drift_needs_a_real_drop() -> None:
    rng = np.random.default_rng(2)
    reference = rng.beta(8, 1, size=1000)
    assert not confidence_drift(reference, rng.beta(8, 1, size=500)).alarm
    dropped = confidence_drift(reference, rng.beta(4, 2, size=500))
    assert dropped.alarm and dropped.mean_drop > 0.1 and dropped.ks_pvalue < 1e-6


def test_oov_rate_of_the_reference_is_leave_one_out() -> None:
    vocabulary, rates = reference_vocabulary(["card lost", "card stolen", "card lost again"])
    assert vocabulary == {"card", "lost", "stolen", "again"}
    assert rates.tolist() == [0.0, 0.5, pytest.approx(1 / 3)]


def test_descriptors_flag_new_vocabulary_and_long_texts() -> None:
    rng = np.random.default_rng(3)
    reference = make_texts(800, rng)
    same = text_descriptors(reference, make_texts(300, rng))
    assert not same.oov_alarm and not same.length_alarm
    new_words = [f"novel{i}" for i in range(50)]
    shifted = text_descriptors(
        reference, make_texts(200, rng) + make_texts(100, rng, new_words) + ["x" * 900] * 30
    )
    assert shifted.oov_alarm and shifted.current_oov_rate > 0.25
    assert shifted.length_alarm and shifted.current_mean_length > shifted.length_high


def test_performance_decay_needs_rows_drop_and_significance() -> None:
    labels = ["a"] * 100
    good = performance_decay(labels, ["a"] * 90 + ["b"] * 10, 0.92, min_drop=0.05)
    assert not good.alarm and good.accuracy == pytest.approx(0.9)
    bad = performance_decay(labels, ["a"] * 70 + ["b"] * 30, 0.92, min_drop=0.05)
    assert bad.alarm and bad.accuracy_drop == pytest.approx(0.22) and bad.pvalue < 0.05
    few = performance_decay(labels[:10], ["b"] * 10, 0.92, min_drop=0.05, min_rows=30)
    assert not few.alarm and few.labelled_rows == 10
    unlabelled = performance_decay([None, "a", None], ["a", "a", "b"], 0.9, min_drop=0.05)
    assert unlabelled.labelled_rows == 1


def _inputs(embeddings: np.ndarray, rng: np.random.Generator, labels: list[str] | None = None) -> DriftInputs:
    n = len(embeddings)
    labels = labels or list(rng.choice(["a", "b", "c"], size=n))
    return DriftInputs(
        texts=make_texts(n, rng),
        embeddings=embeddings,
        labels=labels,
        predicted_labels=labels,
        confidences=rng.beta(8, 1, size=n),
    )


@pytest.fixture(scope="module")
def reference_inputs(reference_embeddings) -> DriftInputs:
    return _inputs(reference_embeddings, np.random.default_rng(4))


def _drifted_window(known_centres, new_centre, n: int, rng: np.random.Generator) -> DriftInputs:
    embeddings = np.vstack(
        [sample_clusters(known_centres, n - n // 5, rng), sample_clusters(new_centre, n // 5, rng)]
    )
    labels = list(rng.choice(["a", "b", "c"], size=n - n // 5)) + ["new"] * (n // 5)
    return _inputs(embeddings, rng, labels)


def test_check_drift_on_a_same_distribution_window(reference_inputs, fitted, known_centres) -> None:
    rng = np.random.default_rng(5)
    current = _inputs(sample_clusters(known_centres, 300, rng), rng)
    report = check_drift(reference_inputs, current, MonitorConfig(), fitted, reference_accuracy=0.9)
    assert not report.drift_detected and not report.too_small
    assert report.window_size == 300 and report.reference_size == 1000
    assert report.label is not None and not report.label_alarm
    json.dumps(report.to_dict())  # JSON-safe, without the per-text arrays


def test_check_drift_on_a_drifted_window(reference_inputs, fitted, known_centres, new_centre) -> None:
    current = _drifted_window(known_centres, new_centre, 300, np.random.default_rng(6))
    report = check_drift(reference_inputs, current, MonitorConfig(), fitted, reference_accuracy=0.9)
    assert report.drift_detected and report.novelty_alarm and report.label_alarm and report.prediction_alarm
    assert report.label is not None and report.label.new_categories == ("new",)
    assert "novel share" in report.summary() and "ALARM" in report.summary()


def test_too_small_window_never_alarms(reference_inputs, fitted, known_centres, new_centre) -> None:
    current = _drifted_window(known_centres, new_centre, 50, np.random.default_rng(7))
    report = check_drift(reference_inputs, current, MonitorConfig(min_window=100), fitted)
    assert report.too_small and report.novelty.novel_share > 0.15  # measured, but not judged
    assert not report.drift_detected and not report.decay_detected
    assert not any(v for k, v in report.to_dict().items() if k.endswith("_alarm"))
    assert "too small" in report.summary()


def test_check_drift_detects_decay_on_labelled_feedback(reference_inputs, fitted, known_centres) -> None:
    rng = np.random.default_rng(8)
    current = _inputs(sample_clusters(known_centres, 200, rng), rng)
    wrong = [("b" if y == "a" else "a") if i % 3 == 0 else y for i, y in enumerate(current.labels or [])]
    current = DriftInputs(current.texts, current.embeddings, current.labels, wrong, current.confidences)
    report = check_drift(
        reference_inputs, current, MonitorConfig(decay_threshold=0.05), fitted, reference_accuracy=0.95
    )
    assert report.decay_detected and report.decay is not None and report.decay.accuracy < 0.7


def test_drift_inputs_must_have_one_value_per_text() -> None:
    with pytest.raises(DataError, match="labels has 2 rows but texts has 3"):
        DriftInputs(texts=["a", "b", "c"], embeddings=np.zeros((3, 4)), labels=["x", "y"])


def test_synthetic_words_are_shared_by_reference_and_window() -> None:
    # Guards the descriptor tests: same-distribution texts must share a vocabulary.
    counts = Counter(" ".join(make_texts(200, np.random.default_rng(9))).split())
    assert set(counts) <= set(WORDS)


def test_prediction_and_confidence_drift_compare_with_held_out_scores(
    reference_inputs, fitted, known_centres
) -> None:
    # The champion on its own training texts: sure of itself (mean ~0.96). On unseen texts of the same
    # distribution it is less so (mean ~0.80) - a window of those is no drift.
    rng = np.random.default_rng(9)
    current = _inputs(sample_clusters(known_centres, 300, rng), rng)
    unsure = rng.beta(4, 1, size=len(current))
    current = DriftInputs(current.texts, current.embeddings, current.labels, current.predicted_labels, unsure)
    training = DriftInputs(
        reference_inputs.texts,
        reference_inputs.embeddings,
        reference_inputs.labels,
        reference_inputs.predicted_labels,
        rng.beta(24, 1, size=len(reference_inputs)),
    )
    against_training = check_drift(training, current, MonitorConfig(), fitted)
    assert against_training.confidence_alarm  # the false alarm a training-text reference raises

    held_out = ReferenceScores(list(rng.choice(["a", "b", "c"], size=800)), rng.beta(4, 1, size=800))
    report = check_drift(training, current, MonitorConfig(), fitted, held_out=held_out)
    assert report.confidence is not None and not report.confidence_alarm
    assert report.confidence.reference_mean == pytest.approx(float(held_out.confidences.mean()))
    assert report.prediction is not None and report.prediction.reference_rows == 800
    assert not report.drift_detected


def test_reference_scores_need_one_confidence_per_label() -> None:
    with pytest.raises(DataError, match="2 labels and 3 confidences"):
        ReferenceScores(["a", "b"], np.array([0.9, 0.8, 0.7]))
