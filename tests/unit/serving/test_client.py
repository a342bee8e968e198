"""The serving client against the app in this process: predictions, labels back, the log's counters."""

from __future__ import annotations

from tests.unit.serving.test_app import KEY, Service

from loopline.serving.client import ServiceClient


def test_the_client_predicts_sends_labels_and_waits_for_the_log(service: Service) -> None:
    test_client, store, _, _ = service
    client = ServiceClient("http://testserver")
    client._http = test_client  # the same httpx interface, served in this process
    test_client.headers.update(KEY)
    answer = client.predict(["my refund please", "where is my parcel"])
    assert answer["model_version"] == "1" and len(answer["predictions"]) == 2
    assert client.wait_logged(2, timeout_s=30)
    assert client.metrics()["loopline_prediction_log_written"] == 2
    first = answer["predictions"][0]["prediction_id"]
    assert client.feedback(first, "refund", idempotency_key=first)["created"] is True
    assert store.pending_feedback()["prediction_id"].tolist() == [first]
    assert client.model()["version"] == "1"
