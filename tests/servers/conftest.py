"""Real server processes for tests/servers: PostgreSQL, an MLflow tracking server and a Prefect server.

Everything binds 127.0.0.1 on free ports, lives in throw-away folders and is stopped at session end.
PostgreSQL starts as this conftest loads (so test modules that read ``LOOPLINE_TEST_POSTGRES_URL`` at
import see it) and stops at the end of the run. MLflow and Prefect are launched side by side (both are slow to
boot on 2 cores) as soon as the first server test needs either, and each fixture then waits for its own
health endpoint with a bounded timeout. Server logs go to files; their last lines are attached to the
report of any failing test here and printed when a server does not come up.

Fixtures:
- ``postgres_cluster`` — the running cluster (``PostgresCluster``), skipped when PostgreSQL binaries
  are absent. ``postgres_url`` — SQLAlchemy URL (psycopg 3 driver) of its maintenance database.
- ``postgres_feedback_url`` — a separate database for the feedback store; the same URL is exported as
  ``LOOPLINE_TEST_POSTGRES_URL`` (a value set by the user wins, and is what this fixture returns).
- ``mlflow_server`` — ``MlflowServer`` on Postgres (SQLite when Postgres is unavailable) with
  proxied artifacts in a temporary folder.
- ``prefect_server`` — the API URL (``http://127.0.0.1:N/api``) of ``prefect server start``
  (database on Postgres when available, else SQLite in a temporary PREFECT_HOME).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import (
    PREFECT_START_TIMEOUT_S,
    RUNNING,
    ServerProcess,
    free_port,
    launch,
    launch_prefect,
    server_env,
)

HERE = Path(__file__).parent
PG_START_TIMEOUT_S = 60
MLFLOW_START_TIMEOUT_S = 150
FEEDBACK_DB = "loopline_feedback"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in tests/servers runs real processes: mark it ``servers``."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.servers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if report.failed and HERE in Path(str(item.path)).parents:
        for server in RUNNING.values():
            report.sections.append((f"{server.name} server log ({server.log_path})", server.log_tail()))
    return report


# ---------------------------------------------------------------------------------------------- processes


# ---------------------------------------------------------------------------------------------- postgres


def find_postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb, else the folder of an initdb on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresCluster:
    """A throw-away cluster: trust auth, 127.0.0.1 only, user ``postgres``."""

    bindir: Path
    root: Path
    port: int
    run_as: pwd.struct_passwd | None
    user: str = "postgres"
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/mlflow``."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def run(self, *args: str, timeout: float = PG_START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary (as the ``postgres`` OS user when we are root); fail on error."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        kwargs: dict[str, object] = {}
        if self.run_as is not None:
            kwargs = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = {**os.environ, "HOME": str(self.root), "LC_ALL": "C"}
        try:
            result = subprocess.run(
                cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s\n{self.log_tail()}", pytrace=False)
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{self.log_tail()}",
                pytrace=False,
            )
        return result

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no postgres log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data_dir), "-U", self.user, "-A", "trust", "-E", "UTF8",
                 "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
                 "-w", "-t", str(PG_START_TIMEOUT_S), "start")  # fmt: skip

    def create_database(self, name: str) -> str:
        self.run("createdb", "-h", self.host, "-p", str(self.port), "-U", self.user, name)
        return self.url(name)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(BaseException):
                self.run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")


def _postgres_unavailable_reason() -> str | None:
    if find_postgres_bindir() is None:
        return (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb or initdb on PATH); "
            "install them, e.g. `apt-get install -y postgresql`"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run initdb/pg_ctl as"
    return None


@dataclass
class _PostgresState:
    cluster: PostgresCluster | None = None
    error: str | None = None  # binaries present but the cluster did not start
    exported_env: bool = False


_PG = _PostgresState()


def _start_postgres() -> None:
    """Start the session cluster and its databases; record (not raise) a failure for the fixtures."""
    bindir = find_postgres_bindir()
    assert bindir is not None
    run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    # Not under pytest's basetemp: that folder is 0700 root and the postgres user must enter it.
    root = Path(tempfile.mkdtemp(prefix="loopline-pg-"))
    if run_as is not None:
        os.chown(root, run_as.pw_uid, run_as.pw_gid)
    cluster = PostgresCluster(bindir=bindir, root=root, port=free_port(), run_as=run_as)
    started = time.monotonic()
    try:
        cluster.start()
        for database in ("mlflow", "prefect", FEEDBACK_DB):
            cluster.create_database(database)
    except (Exception, pytest.fail.Exception) as exc:
        _PG.error = f"PostgreSQL did not start: {exc}"
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        return
    _PG.cluster = cluster
    print(f"[servers] postgres ready after {time.monotonic() - started:.1f} s on port {cluster.port}")


def pytest_configure(config: pytest.Config) -> None:
    """Start PostgreSQL as this conftest loads, before the test modules here are imported.

    Modules may read ``LOOPLINE_TEST_POSTGRES_URL`` at import time (e.g. in a ``skipif``), so the
    variable is exported now, pointing at the feedback database; a value set by the user wins.
    Nothing starts when the run deselects these tests with ``-m "not servers"``.
    """
    if "not servers" in (config.option.markexpr or "") or _postgres_unavailable_reason():
        return
    _start_postgres()
    if _PG.cluster is not None and not os.environ.get("LOOPLINE_TEST_POSTGRES_URL"):
        os.environ["LOOPLINE_TEST_POSTGRES_URL"] = _PG.cluster.url(FEEDBACK_DB)
        _PG.exported_env = True


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PG.exported_env:
        os.environ.pop("LOOPLINE_TEST_POSTGRES_URL", None)
    if _PG.cluster is not None:
        _PG.cluster.stop()
        shutil.rmtree(_PG.cluster.root, ignore_errors=True)
        _PG.cluster = None


@pytest.fixture(scope="session")
def _postgres_or_none() -> PostgresCluster | None:
    """The session cluster; None when PostgreSQL cannot run here; fails when it should but did not."""
    if _PG.error:
        pytest.fail(_PG.error, pytrace=False)
    if _PG.cluster is None:
        print(f"\n[servers] no PostgreSQL: {_postgres_unavailable_reason() or 'not started'}")
    return _PG.cluster


@pytest.fixture(scope="session")
def postgres_cluster(_postgres_or_none: PostgresCluster | None) -> PostgresCluster:
    if _postgres_or_none is None:
        pytest.skip(_postgres_unavailable_reason() or "PostgreSQL not started")
    return _postgres_or_none


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL (psycopg 3) of the cluster's ``postgres`` maintenance database."""
    return postgres_cluster.url("postgres")


@pytest.fixture(scope="session")
def postgres_feedback_url(_postgres_or_none: PostgresCluster | None) -> str:
    """SQLAlchemy URL of a database for the feedback store (LOOPLINE_TEST_POSTGRES_URL wins if set)."""
    preset = os.environ.get("LOOPLINE_TEST_POSTGRES_URL")
    if preset:
        return preset
    if _postgres_or_none is None:
        pytest.skip(_postgres_unavailable_reason() or "PostgreSQL not started")
    return _postgres_or_none.url(FEEDBACK_DB)


# ---------------------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store_uri: str
    artifacts_dir: Path
    log_path: Path


def _launch_mlflow(workdir: Path, cluster: PostgresCluster | None) -> tuple[ServerProcess, MlflowServer]:
    port = free_port()
    backend = cluster.url("mlflow") if cluster else f"sqlite:///{workdir / 'mlflow.db'}"
    artifacts = workdir / "artifacts"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--artifacts-destination", str(artifacts), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    # The server-side job runner (GenAI scorers) is unused by loopline and costs 7 processes.
    env = server_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    url = f"http://127.0.0.1:{port}"
    proc = launch("mlflow", cmd, env, workdir, f"{url}/health")
    server = MlflowServer(url=url, backend_store_uri=backend, artifacts_dir=artifacts, log_path=proc.log_path)
    return proc, server


class ServerLauncher:
    """Launches the servers the collected tests need together, so their slow boots overlap."""

    def __init__(self, tmp_factory: pytest.TempPathFactory, cluster: PostgresCluster | None) -> None:
        self._tmp = tmp_factory
        self._cluster = cluster
        self.mlflow: tuple[ServerProcess, MlflowServer] | None = None
        self.prefect: tuple[ServerProcess, str] | None = None

    def launch(self, mlflow: bool, prefect: bool) -> None:
        if mlflow and self.mlflow is None:
            self.mlflow = _launch_mlflow(self._tmp.mktemp("mlflow-server"), self._cluster)
        if prefect and self.prefect is None:
            url = self._cluster.url("prefect", driver="asyncpg") if self._cluster is not None else None
            self.prefect = launch_prefect(self._tmp.mktemp("prefect-server"), url)

    def stop(self) -> None:
        for launched in (self.mlflow, self.prefect):
            if launched is not None:
                launched[0].stop()


@pytest.fixture(scope="session")
def _launcher(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _postgres_or_none: PostgresCluster | None,
) -> Iterator[ServerLauncher]:
    launcher = ServerLauncher(tmp_path_factory, _postgres_or_none)
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    launcher.launch(mlflow="mlflow_server" in needed, prefect="prefect_server" in needed)
    try:
        yield launcher
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def mlflow_server(_launcher: ServerLauncher) -> MlflowServer:
    """A running ``mlflow server`` (Postgres backend when available) with proxied artifact serving."""
    _launcher.launch(mlflow=True, prefect=False)
    assert _launcher.mlflow is not None
    process, server = _launcher.mlflow
    process.wait_healthy(MLFLOW_START_TIMEOUT_S)
    return server


@pytest.fixture(scope="session")
def prefect_server(_launcher: ServerLauncher) -> str:
    """The API URL of a running ``prefect server start`` (scheduler and other services on)."""
    _launcher.launch(mlflow=False, prefect=True)
    assert _launcher.prefect is not None
    process, api_url = _launcher.prefect
    process.wait_healthy(PREFECT_START_TIMEOUT_S)
    return api_url


@pytest.fixture(scope="session")
def client(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A sync Prefect client (and settings for ``concurrency``) pointed at the session's server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path_factory.mktemp("prefect-client-home")
    with (
        temporary_settings({PREFECT_API_URL: prefect_server, PREFECT_HOME: str(home)}),
        get_client(sync_client=True) as sync_client,
    ):
        yield sync_client
