"""The serving API in this process: ids, logging, labels back, limits, keys, metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import LABELS

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
from loopline.inference import load_classifier
from loopline.serving.app import create_app
from loopline.serving.holder import ModelHolder, Served
from loopline.serving.prediction_log import PredictionLog
from loopline.serving.runtime import RuntimeVerdict

Service = tuple[TestClient, FeedbackStore, PredictionLog, ModelHolder]
KEY = {"X-API-Key": "s3cret"}


def predict(client: TestClient, *texts: str) -> dict:
    response = client.post("/predict", json={"texts": list(texts)})
    assert response.status_code == 200, response.text
    return response.json()


def test_predict_answers_with_ids_top_k_and_version_and_logs_every_prediction(service: Service) -> None:
    client, store, log, _ = service
    body = predict(client, "my refund please", "where is my parcel", "charged twice")
    assert body["model_version"] == "1"
    ids = [p["prediction_id"] for p in body["predictions"]]
    assert len(set(ids)) == 3
    for prediction in body["predictions"]:
        assert prediction["label"] in LABELS and prediction["best_guess"] == prediction["label"]
        assert prediction["top_k"][0]["label"] == prediction["label"]
        assert len(prediction["top_k"]) == 3
    assert log.flush(30)
    served = store.served_window(None)
    assert sorted(served["id"]) == sorted(ids)
    assert all(vector is not None and vector.shape == (4,) for vector in served["embedding"])
    assert set(served["model_version"]) == {"1"}


def test_abstain_below_the_threshold_keeps_the_best_guess_and_flags(service: Service) -> None:
    client, store, log, holder = service
    holder.settings.serve.abstain_below = 0.99  # the random tiny model is never that sure
    (prediction,) = predict(client, "anything at all")["predictions"]
    assert prediction["label"] == "abstain" and prediction["abstained"] and prediction["flagged"]
    assert prediction["best_guess"] in LABELS
    assert log.flush(30)
    flagged = store.flagged_unlabelled()
    assert flagged["id"].tolist() == [prediction["prediction_id"]]


def test_feedback_joins_the_prediction_once_per_idempotency_key(service: Service) -> None:
    client, store, log, _ = service
    (prediction,) = predict(client, "please refund me")["predictions"]
    assert log.flush(30)
    body = {"prediction_id": prediction["prediction_id"], "label": "refund", "idempotency_key": "k-1"}
    first = client.post("/feedback", json=body, headers=KEY)
    again = client.post("/feedback", json=body, headers=KEY)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["feedback_id"] == again.json()["feedback_id"] and again.json()["created"] is False
    pending = store.pending_feedback()
    assert pending["prediction_id"].tolist() == [prediction["prediction_id"]]
    assert pending["text"].tolist() == ["please refund me"]
    assert store.batches_with_pending() == [first.json()["batch_id"]]
    assert store.flagged_unlabelled().empty  # labelled now


def test_a_label_sent_before_its_prediction_is_written_waits_for_the_writer(service: Service) -> None:
    client, store, _, _ = service
    (prediction,) = predict(client, "refund the hotel room")["predictions"]
    assert store.served_window(None).empty  # not written yet: the writer lingers to gather a batch
    body = {"prediction_id": prediction["prediction_id"], "label": "refund"}
    response = client.post("/feedback", json=body, headers=KEY)  # no flush first: a client's real timing
    assert response.status_code == 201, response.text
    assert store.pending_feedback()["prediction_id"].tolist() == [prediction["prediction_id"]]


def test_bad_feedback_gets_a_4xx_with_a_message_and_writes_nothing(service: Service) -> None:
    client, store, _, _ = service
    cases = [
        ({"prediction_id": "nope", "label": "refund"}, KEY, 404, "Unknown prediction id"),
        ({"text": "a text", "label": "no-such-label"}, KEY, 422, "unknown label"),
        ({"text": "\u200b \u200b", "label": "refund"}, KEY, 422, "empty"),
        ({"text": "nul\x00byte", "label": "refund"}, KEY, 422, "control character"),
        ({"label": "refund"}, KEY, 422, "exactly one"),
        ({"text": "t", "prediction_id": "p", "label": "refund"}, KEY, 422, "exactly one"),
        ({"text": "a text", "label": "refund"}, {}, 401, "API key"),
        ({"text": "a text", "label": "refund"}, {"X-API-Key": "wrong"}, 401, "API key"),
    ]
    for body, headers, status, message in cases:
        response = client.post("/feedback", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert message in response.text, (body, response.text)
    assert store.feedback_since(None).empty


def test_request_limits(service: Service) -> None:
    client, _, _, _ = service
    assert client.post("/predict", json={"texts": []}).status_code == 422
    too_many = client.post("/predict", json={"texts": ["x"] * 9})
    assert too_many.status_code == 413 and "at most 8" in too_many.text
    too_big = client.post("/predict", json={"texts": ["x" * 5000]})
    assert too_big.status_code == 413 and "4096 bytes" in too_big.text
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert client.post("/predict", json={"texts": [1, 2]}).status_code == 422


def test_health_ready_model_and_metrics(service: Service) -> None:
    client, _, log, holder = service
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "model_version": "1"}
    model = client.get("/model").json()
    assert model["version"] == "1" and model["labels"] == LABELS
    predict(client, "one", "two")
    assert log.flush(30)
    text = client.get("/metrics").text
    assert 'loopline_model_version{version="1"} 1.0' in text
    assert "loopline_prediction_log_written 2.0" in text
    assert 'loopline_requests_total{endpoint="/predict",status="200"}' in text
    assert "loopline_predict_texts_bucket" in text
    holder.current = None
    not_ready = client.get("/ready")
    assert not_ready.status_code == 503 and "no model loaded" in not_ready.text
    assert client.post("/predict", json={"texts": ["x"]}).status_code == 503


def test_a_full_log_drops_and_counts_but_the_request_succeeds(service: Service) -> None:
    _, store, _, holder = service
    stalled = PredictionLog(store, embed=None, capacity=2)  # never started: nobody writes, the queue fills
    client = TestClient(create_app(holder.settings, holder, store, stalled))
    body = predict(client, "a", "b", "c", "d", "e")
    assert len(body["predictions"]) == 5
    assert stalled.counters.dropped_full == 3 and stalled.waiting == 2
    assert "loopline_prediction_log_dropped_queue_full 3.0" in client.get("/metrics").text


def test_a_failing_store_is_counted_not_raised(service: Service) -> None:
    _, store, _, holder = service

    def broken_embed(texts: list[str]) -> object:
        raise RuntimeError("disk full")

    failing = PredictionLog(store, embed=broken_embed, capacity=10)  # type: ignore[arg-type]
    failing.start()
    client = TestClient(create_app(holder.settings, holder, store, failing))
    predict(client, "a", "b")
    assert failing.flush(30)
    failing.stop()
    assert (failing.counters.dropped_failed, failing.counters.written) == (2, 0)


def test_micro_batching_answers_each_request_with_its_own_rows(
    serve_settings: Settings, tiny_classifier_dir: Path
) -> None:
    settings = serve_settings.model_copy(
        update={"serve": serve_settings.serve.model_copy(update={"micro_batch": True})}
    )
    classifier = load_classifier(tiny_classifier_dir, device="cpu", max_length=32)
    holder = ModelHolder(settings)
    holder.current = Served("1", classifier, {}, "now", RuntimeVerdict("torch", "torch", "test"))
    holder.start = lambda: None  # type: ignore[method-assign]  # no registry to follow here
    texts = [f"message number {i} about " + "refunds " * (i % 7) for i in range(24)]
    store = FeedbackStore(settings.resolved_feedback_db_url)
    try:
        # ``with`` runs the lifespan: the batcher's worker starts
        with TestClient(create_app(settings, holder, store, None)) as client, ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda text: predict(client, text)["predictions"][0], texts))
    finally:
        store.close()
    expected_labels, expected_confidences = classifier.predict(texts)
    assert [a["best_guess"] for a in answers] == expected_labels
    assert [a["confidence"] for a in answers] == pytest.approx(expected_confidences.tolist(), abs=1e-5)
