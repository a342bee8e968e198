"""A small client of the serving API: what an application calling ``loopline serve`` does."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class ServiceClient:
    url: str
    api_key: str | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout_s)

    def predict(self, texts: list[str]) -> dict[str, Any]:
        return self._json(self._http.post("/predict", json={"texts": texts}))

    def feedback(self, prediction_id: str, label: str, idempotency_key: str | None = None) -> dict[str, Any]:
        body = {"prediction_id": prediction_id, "label": label, "idempotency_key": idempotency_key}
        return self._json(self._http.post("/feedback", json=body))

    def model(self) -> dict[str, Any]:
        return self._json(self._http.get("/model"))

    def metrics(self) -> dict[str, float]:
        """The samples of ``/metrics`` by name (the first one of each name)."""
        response = self._http.get("/metrics")
        response.raise_for_status()
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                found.setdefault(sample.name, float(sample.value))
        return found

    def wait_logged(self, at_least: int, timeout_s: float = 60) -> bool:
        """Until the prediction log has written ``at_least`` predictions and holds none back."""

        def logged() -> bool:
            metrics = self.metrics()
            return (
                metrics["loopline_prediction_log_written"] >= at_least
                and metrics["loopline_prediction_log_waiting"] == 0
            )

        return self._wait(logged, timeout_s)

    def wait_for_version(self, version: str, timeout_s: float = 120) -> bool:
        """Until the service answers with ``version`` (it follows the production alias by itself)."""
        return self._wait(lambda: self.model().get("version") == version, timeout_s)

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def _wait(ready: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.5)
        return bool(ready())

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        return dict(response.json())
