"""One retrain through a Prefect work pool, end to end on real servers: a process worker pulls the run.

v1 is trained (``loopline train``) with MLflow tracking on the session's ``mlflow server`` (Postgres
backend) and the feedback store on Postgres; ``loopline feedback import`` accepts a batch with a new
intent, so a retrain has work; ``loopline schedule --work-pool`` deploys to a process pool; a flow run of
``retrain/retrain`` is created through the Prefect API, and ``prefect worker start --run-once`` picks it
up and runs it in a process of its own, with the store locations from its environment only (the
deployment's parameters carry the rest of loopline.toml, none of the stores; its relative file settings
made absolute). Then the real stores are read: the new version and its aliases, the retrain's MLflow run,
the feedback rows used by the version, the decision. A second run the worker takes, of ``monitor/hourly``
with a relative home (a per-run env job variable), fails first thing, saying why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from loopline.data.demo import (
    NEW_INTENT,
    generate_demo_dataset,
    generate_feedback_batch,
    minimum_functionality_examples,
)
from tests.processes import TELEMETRY_OFF
from tests.tiny_settings import TINY_TRAINING_AND_GATE

if TYPE_CHECKING:  # conftest is not importable as a package module at run time
    from conftest import MlflowServer, PostgresCluster

pytestmark = pytest.mark.servers

STORE_ENV = ("LOOPLINE_HOME", "LOOPLINE_TRACKING_URI", "LOOPLINE_FEEDBACK_DB_URL")
COMMAND_TIMEOUT_S = 300
NEVER = "0 0 1 1 *"  # a cron of New Year's midnight
FLOW_RUN_TIMEOUT_S = 300
# The tiny random model learns little: short training and the gate's floors off, so the round registers.
# Relative file settings: they name the project's files, and must reach a run that starts elsewhere.
TINY_TOML = (
    """\
base_model = "base-model"
mft_path = "mft.csv"
model_name = "{model_name}"
experiment_name = "{experiment_name}"
"""
    + TINY_TRAINING_AND_GATE
    + "[monitor]\nreference_size = 200\n"
)


@dataclass(frozen=True)
class Project:
    """A loopline project whose stores are the session's servers, and the environment its commands get."""

    folder: Path
    home: Path
    model_name: str
    experiment_name: str
    feedback_db_url: str
    env: dict[str, str]

    def start(self, *args: str) -> Command:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopline.cli", *args],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Command(args, proc, time.monotonic())

    def run(self, *args: str) -> str:
        return self.start(*args).ok()


@dataclass(frozen=True)
class Command:
    """``loopline ARGS`` running as a process of its own."""

    args: tuple[str, ...]
    proc: subprocess.Popen[str]
    started: float

    def ok(self) -> str:
        """Its stdout once it exited 0 without a traceback; fails with its output otherwise."""
        try:
            stdout, stderr = self.proc.communicate(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
        output = stdout + stderr
        print(f"\n[servers] loopline {self.args[0]}: {time.monotonic() - self.started:.1f} s", end="")
        where = f"loopline {' '.join(self.args)} → exit {self.proc.returncode}\n{output[-6000:]}"
        assert self.proc.returncode == 0, where
        assert "Traceback" not in output, where
        return stdout


def clean_env(user_home: Path, prefect_api: str, **extra: str) -> dict[str, str]:
    """This process' environment less its loopline/MLflow/Prefect variables (PYTHONPATH stays: the
    worker's runs import this checkout's loopline), plus ``extra``."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_", "PREFECT_"))}
    user_home.mkdir(parents=True, exist_ok=True)
    return {
        **keep,
        **TELEMETRY_OFF,
        "HOME": str(user_home),
        "PREFECT_HOME": str(user_home / ".prefect"),
        "PREFECT_API_URL": prefect_api,
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
        **extra,
    }


@pytest.fixture()
def project(
    tmp_path: Path,
    tiny_model_dir: Path,
    postgres_cluster: PostgresCluster,
    mlflow_server: MlflowServer,
    prefect_server: str,
) -> Project:
    """A project folder (its loopline.toml, training data, a feedback batch with a new intent) whose
    stores are the MLflow server and a Postgres database of its own; nothing run yet."""
    suffix = uuid.uuid4().hex[:8]
    folder = tmp_path / "project"
    folder.mkdir()
    model_name, experiment_name = f"loopline-worker-{suffix}", f"loopline-worker-{suffix}"
    (folder / "loopline.toml").write_text(
        TINY_TOML.format(model_name=model_name, experiment_name=experiment_name)
    )
    (folder / "base-model").symlink_to(tiny_model_dir, target_is_directory=True)
    minimum_functionality_examples().to_csv(folder / "mft.csv", index=False)
    generate_demo_dataset(300, seed=5).to_csv(folder / "data.csv", index=False)
    generate_feedback_batch("drifted", 120, seed=5).to_csv(folder / "feedback.csv", index=False)
    feedback_db_url = postgres_cluster.create_database(f"feedback_worker_{suffix}")
    home = tmp_path / "home"
    stores = dict(zip(STORE_ENV, (str(home), mlflow_server.url, feedback_db_url), strict=True))
    env = clean_env(tmp_path / "user", prefect_server, **stores)
    return Project(folder, home, model_name, experiment_name, feedback_db_url, env)


def start_worker(pool: str, env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``prefect worker start`` for one poll (``--run-once``), waiting for the runs it took (``--limit``)."""
    log_path = workdir / "worker.log"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
           "--run-once", "--limit", "2"]  # fmt: skip
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
    return proc, log_path


def wait_final(client: Any, flow_run_id: uuid.UUID, worker: subprocess.Popen[bytes], log: Path) -> Any:
    """The flow run once final; fails with the worker's log on a timeout or a worker that quit early."""
    deadline = time.monotonic() + FLOW_RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if worker.poll() is not None:
            time.sleep(2)  # its last state change may still be on its way
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            pytest.fail(
                f"the worker exited ({worker.returncode}) with flow run {flow_run_id} "
                f"{run.state.name if run.state else 'without a state'}\n{tail(log)}",
                pytrace=False,
            )
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} not final within {FLOW_RUN_TIMEOUT_S} s\n{tail(log)}", pytrace=False)


def tail(log: Path, chars: int = 8000) -> str:
    return f"worker log {log}:\n" + log.read_text(errors="replace")[-chars:]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def deployed_ids(schedule_output: str) -> dict[str, uuid.UUID]:
    """flow/deployment → id, from ``loopline schedule --work-pool``'s lines."""
    found = re.findall(r"Deployed (\S+) to work pool .*?; id ([0-9a-f-]{36})\)", schedule_output)
    return {name: uuid.UUID(value) for name, value in found}


def test_a_process_worker_runs_the_retrain_deployment_on_the_real_stores(
    project: Project, client: Any, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from prefect.client.schemas.actions import WorkPoolCreate
    from sqlalchemy import create_engine, text

    pool = f"loopline-process-{uuid.uuid4().hex[:8]}"
    client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    # Deploying needs neither v1 nor feedback: it runs beside the training. Crons that do not fire
    # while the test runs: the only runs are the two made below.
    deploying = project.start(
        "schedule", "--work-pool", pool, "--monitor-cron", NEVER, "--fallback-cron", NEVER
    )
    try:
        project.run("train", "--data", "data.csv")  # v1, in production
        project.run("feedback", "import", "feedback.csv")  # accepted, with a new intent: a retrain has work
    except BaseException:
        deploying.proc.kill()
        deploying.proc.communicate()
        raise
    ids = deployed_ids(deploying.ok())
    overrides = client.read_deployment(ids["retrain/retrain"]).parameters["overrides"]
    assert overrides["mft_path"] == str((project.folder / "mft.csv").resolve())  # the run starts elsewhere
    assert overrides["model_name"] == project.model_name and "home" not in overrides
    retrain = client.create_flow_run_from_deployment(
        ids["retrain/retrain"], parameters={"reason": "servers test"}
    )
    # A run of the pool with a relative home (a per-run env job variable): refused before any store.
    refused = client.create_flow_run_from_deployment(
        ids["monitor/hourly"], job_variables={"env": {"LOOPLINE_HOME": "relative-home"}}
    )

    # The worker knows where the stores are, nothing else: its runs start in a temporary folder, so
    # neither loopline.toml nor a relative home can be found by accident.
    stores = {k: project.env[k] for k in STORE_ENV}
    worker_env = clean_env(tmp_path / "worker-user", project.env["PREFECT_API_URL"], **stores)
    started = time.monotonic()
    worker, log = start_worker(pool, worker_env, tmp_path / "worker")
    try:
        final = wait_final(client, retrain.id, worker, log)
        assert final.state.is_completed(), f"flow run {final.state.name}: {final.state.message}\n{tail(log)}"
        bad = wait_final(client, refused.id, worker, log)
        worker.wait(timeout=60)  # --run-once: done once its runs are
        assert worker.returncode == 0, tail(log)
    finally:
        stop(worker)
    print(f"\n[servers] worker ran the retrain in {time.monotonic() - started:.1f} s")
    assert final.work_pool_name == pool
    assert bad.state.is_failed(), f"{bad.state.name}: {bad.state.message}"
    assert "The loopline home relative-home is relative" in log.read_text(errors="replace"), tail(log)
    assert not (tmp_path / "worker" / "relative-home").exists()

    # MLflow (the server, on Postgres): v2 from one retrain run of this flow run, candidate and production.
    mlflow = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    v2 = mlflow.get_model_version(project.model_name, "2")
    assert sorted(v2.aliases) == ["candidate", "production"]
    assert mlflow.get_model_version_by_alias(project.model_name, "production").version == "2"
    experiment = mlflow.get_experiment_by_name(project.experiment_name)
    retrains = mlflow.search_runs([experiment.experiment_id], "tags.`loopline.flow` = 'retrain'")
    assert len(retrains) == 1, [run.info for run in retrains]
    (retrain_run,) = retrains
    assert retrain_run.info.status == "FINISHED"
    assert retrain_run.data.tags["prefect.flow_run_id"] == str(retrain.id)
    assert retrain_run.data.tags["loopline.trigger"] == "servers test"
    assert v2.run_id == retrain_run.info.run_id
    assert mlflow.search_runs([experiment.experiment_id], "tags.`loopline.flow` = 'monitor'") == []  # refused

    # The feedback store (Postgres): every accepted row used by v2, and the round's decision.
    engine = create_engine(project.feedback_db_url)
    try:
        with engine.connect() as conn:
            statuses = conn.execute(
                text("SELECT status, used_in_version, count(*) FROM feedback GROUP BY 1, 2")
            ).all()
            decisions = conn.execute(
                text("SELECT retrain, model_version, run_id, details FROM decisions WHERE kind = 'retrain'")
            ).all()
    finally:
        engine.dispose()
    assert {(status, version) for status, version, _ in statuses} <= {("used", "2"), ("quarantined", None)}
    assert sum(n for status, _, n in statuses if status == "used") > 0
    assert [tuple(row[:3]) for row in decisions] == [(True, "2", retrain_run.info.run_id)]
    details = json.loads(decisions[0].details)
    assert details["trigger"] == "servers test" and details["gate"] == "passed"
    assert NEW_INTENT in details["new_labels"]  # the head grew: the batch's new intent was learnt
    # The home the worker was given holds the round's folder; the project folder got nothing.
    assert (project.home / "runs" / retrain_run.info.run_id).is_dir()
    assert not (project.folder / ".loopline").exists()
