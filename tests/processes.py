"""Server processes for tests: launched in their own process group on free ports, logs in files.

Used by tests/servers (MLflow, Prefect, PostgreSQL) and tests/cli (a Prefect server for one-shot commands).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STOP_TIMEOUT_S = 20
PREFECT_START_TIMEOUT_S = 210
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}

# Servers started in this session, by name; read by report hooks to attach their logs to failures.
RUNNING: dict[str, ServerProcess] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **TELEMETRY_OFF}
    env.update(extra)
    return env


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ServerProcess:
    """One server launched in its own process group, logging to ``log_path``."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    health_url: str
    started_at: float = field(default_factory=time.monotonic)
    ready_after_s: float | None = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout_s: float) -> None:
        """Poll the health URL until it answers 2xx; fail with the log tail on exit or timeout.

        The timeout counts from the launch, and a server asked for after it (launched at session start,
        first needed by a late test) is still probed: one healthy answer is enough."""
        deadline = self.started_at + timeout_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} server exited with code {self.proc.returncode} before becoming healthy; "
                    f"log {self.log_path}:\n{self.log_tail()}",
                    pytrace=False,
                )
            if http_ok(self.health_url):
                self.ready_after_s = round(time.monotonic() - self.started_at, 1)
                print(f"\n[servers] {self.name} healthy after {self.ready_after_s} s ({self.health_url})")
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        pytest.fail(
            f"{self.name} server not healthy at {self.health_url} within {timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}",
            pytrace=False,
        )

    def stop(self) -> None:
        """SIGTERM the whole process group (servers spawn workers), SIGKILL after a bounded wait."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Children that outlive the leader still belong to its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        RUNNING.pop(self.name, None)


def launch(name: str, cmd: list[str], env: dict[str, str], workdir: Path, health_url: str) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(name=name, proc=proc, log_path=log_path, health_url=health_url)
    RUNNING[name] = server
    return server


def launch_prefect(workdir: Path, database_url: str | None = None) -> tuple[ServerProcess, str]:
    port = free_port()
    extra = {"PREFECT_HOME": str(workdir / "home"), "PREFECT_UI_ENABLED": "false"}
    if database_url is not None:
        extra["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env = server_env(**extra)
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    api_url = f"http://127.0.0.1:{port}/api"
    return launch("prefect", cmd, env, workdir, f"{api_url}/health"), api_url
