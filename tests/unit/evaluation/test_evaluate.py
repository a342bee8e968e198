from __future__ import annotations

import json

import pandas as pd
import pytest

from loopline.errors import DataError
from loopline.evaluation.evaluate import evaluate_model, load_eval_report, save_eval_report

FRAME = pd.DataFrame(
    {
        "text": ["refund please", "my parcel", "charged twice", "Refund now", "parcel lost"],
        "label": ["refund", "shipping", "billing", "refund", "shipping"],
        "source_row": [1, 2, 3, 4, 5],
    }
)


def test_evaluate_model_reports_metrics_behaviour_and_latency(keyword_classifier, tmp_path) -> None:
    report = evaluate_model(keyword_classifier, FRAME, "test", mft=None, behaviour=True)

    assert report.dataset == "test" and report.num_rows == 5
    assert report.metrics.accuracy == pytest.approx(4 / 5)  # "Refund now" is missed (case-sensitive)
    assert report.metrics.labels == ["billing", "refund", "shipping"]
    assert report.metrics.per_class["refund"]["recall"] == pytest.approx(0.5)
    assert report.latency_ms_per_text >= 0.0
    assert report.behaviour is not None and report.behaviour.check("uppercase").passed < 5

    path = save_eval_report(report, tmp_path / "reports" / "test.json")
    assert json.loads(path.read_text())["metrics"]["accuracy"] == pytest.approx(0.8)
    assert load_eval_report(path) == report


def test_evaluate_without_behaviour(keyword_classifier) -> None:
    report = evaluate_model(keyword_classifier, FRAME, "feedback", behaviour=False)
    assert report.behaviour is None
    assert report.to_dict()["behaviour"] is None


def test_bad_frames_raise_data_error(keyword_classifier) -> None:
    with pytest.raises(DataError, match="lacks column"):
        evaluate_model(keyword_classifier, FRAME.drop(columns="label"), "test")
    with pytest.raises(DataError, match="empty"):
        evaluate_model(keyword_classifier, FRAME.iloc[:0], "test")
