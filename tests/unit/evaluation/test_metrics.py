from __future__ import annotations

import numpy as np
import pytest

from loopline.errors import DataError
from loopline.evaluation.metrics import (
    EvalMetrics,
    compute_metrics,
    expected_calibration_error,
    save_confusion_matrix_png,
)

Y_TRUE = ["a", "a", "b", "b", "c"]
Y_PRED = ["a", "b", "b", "b", "a"]
CONF = [0.9, 0.62, 0.82, 0.95, 0.3]  # bins 13, 9, 12, 14, 4 of 15: one row per bin


def test_compute_metrics_matches_hand_computed_values() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, np.array(CONF), labels=["a", "b", "c", "d"])

    assert m.accuracy == pytest.approx(0.6)
    # F1: a 0.5, b 0.8, c 0.0; d is neither true nor predicted, so it is not averaged in.
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m.per_class["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m.per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m.per_class["c"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert m.per_class["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0.0}
    assert m.labels == ["a", "b", "c", "d"]
    assert m.confusion == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    # Each row alone in its bin: ECE = mean |correct - confidence| = (0.1+0.62+0.18+0.05+0.3)/5.
    assert m.ece == pytest.approx(0.25)
    assert m.recall("b") == 1.0
    assert m.recall("d") is None


def test_ece_averages_within_a_shared_bin() -> None:
    # 0.91 and 0.92 share bin 13: accuracy 0.5, mean confidence 0.915.
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([0.91, 0.92])) == pytest.approx(0.415)
    # Perfectly calibrated: every row right with confidence 1.0.
    assert expected_calibration_error(np.ones(4), np.ones(4)) == pytest.approx(0.0)


def test_labels_only_in_the_data_are_appended_sorted() -> None:
    m = compute_metrics(["a", "z", "y"], ["a", "a", "a"], [0.5, 0.5, 0.5], labels=["b", "a"])
    assert m.labels == ["b", "a", "y", "z"]
    assert m.per_class["z"]["support"] == 1
    assert m.per_class["z"]["recall"] == 0.0
    assert m.confusion[1] == [0, 1, 0, 0]  # true "a" predicted "a"


def test_round_trip_through_dict() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, CONF, labels=["a", "b", "c"])
    assert EvalMetrics.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    ("y_true", "y_pred", "conf", "message"),
    [
        ([], [], [], "empty"),
        (["a"], ["a", "b"], [0.5, 0.5], "Lengths differ"),
        (["a"], ["a"], [1.5], "Confidences"),
    ],
)
def test_bad_inputs_raise_data_error(y_true, y_pred, conf, message) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(y_true, y_pred, conf, labels=["a", "b"])


def test_confusion_matrix_png_small_and_many_labels(tmp_path) -> None:
    small = compute_metrics(Y_TRUE, Y_PRED, CONF, labels=["a", "b", "c"])
    path = save_confusion_matrix_png(small, tmp_path / "plots" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    labels = [f"intent_{i:02d}" for i in range(80)]
    rng = np.random.default_rng(0)
    y_true = [labels[i % 80] for i in range(400)]
    y_pred = [labels[i] for i in rng.integers(0, 80, 400)]
    many = compute_metrics(y_true, y_pred, rng.random(400), labels=labels)
    big = save_confusion_matrix_png(many, tmp_path / "cm80.png")
    import matplotlib.image

    height, width = matplotlib.image.imread(big).shape[:2]
    assert width >= 1500 and height >= 1500  # grows with the label count to stay readable


def test_macro_f1_ignores_labels_absent_from_the_set() -> None:
    # A grown model that once predicts its new label on a frozen set of old labels: the new label
    # has no rows here, so it must not enter the average as an F1 of 0.
    y_true = ["a", "a", "b", "b"]
    y_pred = ["a", "new", "b", "b"]
    metrics = compute_metrics(y_true, y_pred, [0.9] * 4, ["a", "b", "new"])
    f1_a, f1_b = 2 * 1.0 * 0.5 / 1.5, 2 * (2 / 2) * (2 / 2) / 2
    assert metrics.macro_f1 == pytest.approx((f1_a + f1_b) / 2)
    assert metrics.per_class["new"]["support"] == 0
