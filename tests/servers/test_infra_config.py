"""infra/: the compose stack, .env.example and the local start/stop scripts (the Kubernetes manifests:
tests/unit/infra).

No Docker daemon is needed: the compose file is checked as data, the Postgres init script
runs against the session's real cluster, and the scripts start and stop real server processes.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:  # conftest is not importable as a package module at run time
    from conftest import PostgresCluster

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_PATH = INFRA / "docker-compose.yml"
SCRIPTS = [*sorted((INFRA / "scripts").glob("*.sh")), INFRA / "postgres" / "init-databases.sh"]
SCRIPT_TIMEOUT_S = 240
# ${VAR}, ${VAR:-default}, ${VAR:?message}; `$$VAR` is an escaped, container-side variable.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
LOOPLINE_READS = {"LOOPLINE_TRACKING_URI", "LOOPLINE_FEEDBACK_DB_URL", "PREFECT_API_URL"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_PATH.read_text()))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def test_compose_services_are_the_stack(compose: dict[str, Any]) -> None:
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect-server", "prefect-worker"} <= set(
        services(compose)
    )
    built_here = {s["image"] for s in services(compose).values() if "build" in s and "image" in s}
    for name, service in services(compose).items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "build" not in service and service["image"] not in built_here:  # third-party: pinned
            tag = service["image"].rpartition(":")[2]
            assert "/" not in tag and tag not in {"", "latest"}, f"{name}: unpinned image {service['image']}"


def test_long_running_services_have_healthchecks_and_one_shots_are_awaited(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        if is_one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test {check['test']}"
    for name, service in all_services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown service {dependency}"
            target = all_services[dependency]
            expected = "service_completed_successfully" if is_one_shot(target) else None
            if expected:
                assert spec["condition"] == expected, f"{name} must wait for one-shot {dependency} to finish"


def test_mlflow_and_prefect_server_commands(compose: dict[str, Any]) -> None:
    mlflow = services(compose)["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--backend-store-uri postgresql+psycopg2://" in command
    assert "--artifacts-destination s3://${MLFLOW_BUCKET}" in command
    assert "--serve-artifacts" in command
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    prefect = services(compose)["prefect-server"]
    assert prefect["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    worker = services(compose)["prefect-worker"]
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    assert "process" in worker["command"] and "${PREFECT_WORK_POOL:-loopline}" in worker["command"]
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["environment"]["LOOPLINE_TRACKING_URI"] == "http://mlflow:5000"


def test_telemetry_off_and_ports_on_localhost_only(compose: dict[str, Any]) -> None:
    for name in ("mlflow", "prefect-server", "prefect-worker"):
        env = services(compose)[name]["environment"]
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "true", name
        assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false", name
        assert env["DO_NOT_TRACK"] == "1", name
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_env_example_covers_every_compose_variable(env_example: dict[str, str]) -> None:
    referenced = set(COMPOSE_VAR.findall(COMPOSE_PATH.read_text()))
    assert referenced, "no ${VAR} found: the pattern is broken"
    assert referenced - set(env_example) == set()
    assert LOOPLINE_READS | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env_example)
    assert env_example["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env_example["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_loopline_variables_are_real_settings(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """A LOOPLINE_* name that no Settings field reads would be silently ignored."""
    from loopline.config import Settings, settings_env_names

    names = set(env_example)
    for service in services(compose).values():
        names |= set(service.get("environment") or {})
    loopline_names = {n for n in names if n.startswith("LOOPLINE_") and n != "LOOPLINE_DATABASES"}
    assert {"LOOPLINE_TRACKING_URI", "LOOPLINE_FEEDBACK_DB_URL", "LOOPLINE_HOME"} <= loopline_names
    assert loopline_names - set(settings_env_names()) == set()
    assert "LOOPLINE_SERVE__API_KEY" in settings_env_names() and Settings.model_fields["serve"]


def test_compose_files_it_points_at_exist(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        build = service.get("build")
        if build:
            context = (INFRA / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_worker_dockerfile_copies_what_the_package_needs() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"infra/Dockerfile copies missing {source}"
    assert "psycopg[binary]" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_executable_with_valid_syntax(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_postgres_init_script_creates_the_databases_idempotently(postgres_cluster: PostgresCluster) -> None:
    env = {
        **os.environ,
        "PATH": f"{postgres_cluster.bindir}:{os.environ['PATH']}",
        "PGHOST": postgres_cluster.host,
        "PGPORT": str(postgres_cluster.port),
        "POSTGRES_USER": postgres_cluster.user,
        "LOOPLINE_DATABASES": "init_check_a init_check_b",
    }
    script = str(INFRA / "postgres" / "init-databases.sh")
    for _ in range(2):  # a second run must not fail on existing databases
        result = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    import psycopg

    with psycopg.connect(postgres_cluster.url("postgres").replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'init_check_%'").fetchall()
    assert sorted(r[0] for r in rows) == ["init_check_a", "init_check_b"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_and_stop_local_servers_scripts(_postgres_or_none: PostgresCluster | None) -> None:
    """The scripts start MLflow + Prefect (on Postgres when it can run here) and stop all of it."""
    state_dir = Path(tempfile.mkdtemp(prefix="loopline-servers-"))
    ports = {"mlflow": free_port(), "prefect": free_port(), "postgres": free_port()}
    args = ["--state-dir", str(state_dir), "--python", sys.executable,
            "--timeout", str(SCRIPT_TIMEOUT_S - 30),
            "--mlflow-port", str(ports["mlflow"]), "--prefect-port", str(ports["prefect"]),
            "--postgres-port", str(ports["postgres"])]  # fmt: skip
    with_postgres = _postgres_or_none is not None
    if not with_postgres:
        args.append("--no-postgres")
    stop = [str(INFRA / "scripts" / "stop-local-servers.sh"), "--state-dir", str(state_dir)]
    try:
        start = subprocess.run(
            [str(INFRA / "scripts" / "start-local-servers.sh"), *args],
            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
        )  # fmt: skip
        assert start.returncode == 0, start.stdout + start.stderr
        env_sh = (state_dir / "env.sh").read_text()
        assert f"export LOOPLINE_TRACKING_URI=http://127.0.0.1:{ports['mlflow']}" in env_sh
        assert f"export PREFECT_API_URL=http://127.0.0.1:{ports['prefect']}/api" in env_sh
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['mlflow']}/health", timeout=5) as response:
            assert response.read() == b"OK"
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['prefect']}/api/health", timeout=5) as response:
            assert response.read() == b"true"
        if with_postgres:
            feedback_url = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/loopline_feedback"
            assert f"export LOOPLINE_FEEDBACK_DB_URL={feedback_url.replace('ql:', 'ql+psycopg:')}" in env_sh
            assert mlflow_tables(feedback_url.replace("/loopline_feedback", "/mlflow")) >= {
                "runs",
                "experiments",
            }
        pids = [int((state_dir / "run" / f"{name}.pid").read_text()) for name in ("mlflow", "prefect")]
    finally:
        stopped = subprocess.run(stop, capture_output=True, text=True, timeout=90)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name, port in ports.items():
        assert not port_open(port), f"{name} still listening on {port} after stop-local-servers.sh"
    for pid in pids:
        assert process_gone(pid), f"process {pid} survived stop-local-servers.sh"
    shutil.rmtree(state_dir, ignore_errors=True)


def mlflow_tables(dsn: str) -> set[str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status
