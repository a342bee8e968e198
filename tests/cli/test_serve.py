"""`loopline serve` as a real uvicorn process: concurrent predictions all logged, labels stored once, a
promotion and a rollback swapped in under load with no failed request, the OpenAPI schema fuzzed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import LOOPLINE, Cli, copy_project
from tests.processes import ServerProcess, free_port, launch

API_KEY = "test-key"
SERVE_ENV = {"LOOPLINE_SERVE__API_KEY": API_KEY, "LOOPLINE_SERVE__POLL_SECONDS": "1"}

# One service for the module: its tests share a worker (`make test` runs pytest with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("serve")


@dataclass
class Service:
    url: str
    home: Path
    cli: Cli
    process: ServerProcess

    def call(self, method: str, path: str, body: object | None = None, key: bool = False) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if key:
            request.add_header("X-API-Key", API_KEY)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def count(self, sql: str) -> int:
        conn = sqlite3.connect(self.home / "feedback.db")
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()

    def wait_logged(self, expected: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.count("SELECT count(*) FROM predictions")
            if found >= expected:
                return found
            time.sleep(0.5)
        return self.count("SELECT count(*) FROM predictions")


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, projects: dict[str, Path], prefect_api: str
) -> Iterator[Service]:
    """v1 and v2 registered, v1 in production, the service running on it."""
    folder = tmp_path_factory.mktemp("serve") / "project"
    copy_project(projects["feedback"], folder)
    cli = Cli(cwd=folder, user_home=folder.parent / "user", prefect_api=prefect_api, env_extra=SERVE_ENV)
    cli.ok("retrain")  # v2, promoted
    cli.ok("rollback", "--reason", "serve v1 first")
    port = free_port()
    home = folder / ".loopline"
    command = [LOOPLINE, "serve", "--port", str(port), "--home", str(home)]
    process = launch("loopline-serve", command, cli.env(), folder, f"http://127.0.0.1:{port}/ready")
    try:
        process.wait_healthy(180)
        yield Service(f"http://127.0.0.1:{port}", home, cli, process)
    finally:
        process.stop()


def test_concurrent_predictions_are_all_answered_and_logged_and_labels_stored_once(service: Service) -> None:
    before = service.count("SELECT count(*) FROM predictions")
    texts = [f"request {i}: my card has not arrived" for i in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda text: service.call("POST", "/predict", {"texts": [text]}), texts))
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    ids = [body["predictions"][0]["prediction_id"] for _, body in answers]
    assert len(set(ids)) == 200
    assert service.wait_logged(before + 200) == before + 200
    with ThreadPoolExecutor(max_workers=16) as pool:
        posted = list(
            pool.map(
                lambda pid: service.call(
                    "POST",
                    "/feedback",
                    {"prediction_id": pid, "label": "card_arrival", "idempotency_key": pid},
                    key=True,
                ),
                ids + ids,  # every label twice
            )
        )
    assert sorted({status for status, _ in posted}) == [200, 201], posted[:3]
    assert service.count("SELECT count(*) FROM feedback WHERE batch_id LIKE 'api-%'") == 200


def test_a_promotion_and_a_rollback_swap_in_under_load_without_a_failed_request(service: Service) -> None:
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            status, body = service.call("POST", "/predict", {"texts": ["where is my parcel"]})
            seen.append((time.monotonic(), status, body.get("model_version")))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert _wait_for_version(seen, "1", 30)
        promoted_at = time.monotonic()
        service.cli.ok("promote", "2", "--reason", "canary ok")
        assert _wait_for_version(seen, "2", 60), "the service did not swap to v2"
        swap_s = _first_time(seen, "2", promoted_at) - promoted_at
        service.cli.ok("rollback", "--reason", "back")
        assert _wait_for_version(seen, "1", 60), "the service did not swap back to v1"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failures = [entry for entry in seen if entry[1] != 200]
    assert not failures, failures[:5]
    print(
        f"{len(seen)} requests during two swaps, none failed; v2 answered {swap_s:.1f} s after the promotion"
    )
    status, model = service.call("GET", "/model")
    assert status == 200 and model["version"] == "1" and model["swaps"] >= 3
    assert model["runtime"]["used"] == "onnx", model["runtime"]  # the fast path, judged on the test set


def test_the_monitor_judges_the_served_window_and_reviews_the_api_labels(service: Service) -> None:
    before = service.count("SELECT count(*) FROM predictions")
    ids = []
    for i in range(20):
        status, body = service.call("POST", "/predict", {"texts": [f"monitor {i}: where is my new card"]})
        assert status == 200
        ids.append(body["predictions"][0]["prediction_id"])
    assert service.wait_logged(before + 20) >= before + 20
    assert all(service.call("POST", "/feedback", _label(pid), key=True)[0] in (200, 201) for pid in ids)
    done = service.cli.ok("monitor", "--trigger", "none")
    assert "Window" in done.output
    assert (
        service.count("SELECT count(*) FROM feedback WHERE batch_id LIKE 'api-%' AND status = 'pending'") == 0
    )
    quoted = ",".join(f"'{pid}'" for pid in ids)
    accepted = f"SELECT count(*) FROM feedback WHERE status = 'accepted' AND prediction_id IN ({quoted})"
    assert service.count(accepted) == 20
    conn = sqlite3.connect(service.home / "feedback.db")
    try:
        (details,) = conn.execute(
            "SELECT details FROM decisions WHERE kind = 'monitor' ORDER BY id DESC"
        ).fetchone()
    finally:
        conn.close()
    decision = json.loads(details)
    assert decision["window_source"] == "served" and decision["window_size"] > 0


def test_schemathesis_finds_no_server_error(service: Service, tmp_path: Path) -> None:
    st = str(Path(LOOPLINE).with_name("st"))
    done = subprocess.run(
        [
            st,
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "-H",
            f"X-API-Key: {API_KEY}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def _label(prediction_id: str) -> dict[str, str]:
    return {"prediction_id": prediction_id, "label": "card_arrival", "idempotency_key": prediction_id}


def _wait_for_version(seen: list[tuple[float, int, str | None]], version: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen and seen[-1][2] == version:
            return True
        time.sleep(0.2)
    return False


def _first_time(seen: list[tuple[float, int, str | None]], version: str, after: float) -> float:
    return next(at for at, _, v in seen if v == version and at >= after)
