"""Flow runs, scheduled deployments and a global concurrency limit against a real ``prefect server start``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.servers

SUBPROCESS_TIMEOUT_S = 120
SCHEDULER_WAIT_S = 60

SMOKE_FLOW = """
from prefect import flow, task

@task
def double(x: int) -> int:
    return 2 * x

@flow(name="loopline-smoke")
def smoke(x: int) -> int:
    return double(x)

if __name__ == "__main__":
    state = smoke(21, return_state=True)
    print("FLOW_RUN_ID", state.state_details.flow_run_id)
    print("RESULT", state.result())
"""

NIGHTLY_DEPLOYMENT = """
from prefect import flow
from prefect.schedules import Cron

@flow(name="loopline-nightly")
def nightly() -> None:
    pass

if __name__ == "__main__":
    deployment = nightly.to_deployment(
        name="nightly-retrain",
        schedules=[Cron("0 3 * * *", timezone="UTC")],
        work_pool_name="loopline",
    )
    print("DEPLOYMENT_ID", deployment.apply())
"""


def run_prefect_script(source: str, api_url: str, workdir: Path) -> dict[str, str]:
    """Run ``source`` as a script with PREFECT_API_URL set; return its ``KEY value`` output lines."""
    script = workdir / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert result.returncode == 0, f"script failed:\n{result.stdout}\n{result.stderr}"
    pairs = (line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {key: value for key, value in pairs if key.isupper()}


def test_flow_run_in_subprocess_is_recorded_as_completed(
    prefect_server: str, client: Any, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    out = run_prefect_script(SMOKE_FLOW, prefect_server, tmp_path)
    assert out["RESULT"] == "42"

    flow_run = client.read_flow_run(uuid.UUID(out["FLOW_RUN_ID"]))
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    assert flow_run.state.name == "Completed"
    assert flow_run.parameters == {"x": 21}
    assert client.read_flow(flow_run.flow_id).name == "loopline-smoke"
    task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    assert [(t.name.split("-")[0], t.state_name) for t in task_runs] == [("double", "Completed")]


def test_cron_deployment_is_stored_and_the_scheduler_creates_runs(
    prefect_server: str, client: Any, tmp_path: Path
) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    if not _pool_exists(client, "loopline"):
        client.create_work_pool(WorkPoolCreate(name="loopline", type="process"))

    out = run_prefect_script(NIGHTLY_DEPLOYMENT, prefect_server, tmp_path)
    deployment_id = uuid.UUID(out["DEPLOYMENT_ID"])
    deployment = client.read_deployment(deployment_id)
    assert deployment.work_pool_name == "loopline"
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
        ("0 3 * * *", "UTC", True)
    ]

    # The server's scheduler service (not the client) must create the upcoming runs.
    deadline = time.monotonic() + SCHEDULER_WAIT_S
    runs: list[Any] = []
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        if len(runs) >= 3:
            break
        time.sleep(1)
    assert len(runs) >= 3, (
        f"the server's scheduler created {len(runs)} runs in {SCHEDULER_WAIT_S} s. "
        "Known cause: prefect 3.8.8's scheduler fails with SQLAlchemy 2.1 "
        f"('Can't evaluate bulk DML statement'; installed: {_sqlalchemy_version()}): "
        "pin sqlalchemy<2.1. See the prefect server log below."
    )
    assert {run.state_name for run in runs} == {"Scheduled"}
    starts = sorted(run.expected_start_time for run in runs)
    assert all((t.hour, t.minute, t.utcoffset().total_seconds()) == (3, 0, 0) for t in starts)
    assert len({t.date() for t in starts}) == len(starts)


def test_global_concurrency_limit_allows_one_holder_at_a_time(client: Any) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency

    name = f"loopline-retrain-{uuid.uuid4().hex[:8]}"
    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    limit = client.read_global_concurrency_limit_by_name(name)
    assert (limit.name, limit.limit, limit.active, limit.active_slots) == (name, 1, True, 0)

    with concurrency(name, occupy=1, timeout_seconds=30, strict=True):
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 1
        with pytest.raises(TimeoutError), concurrency(name, occupy=1, timeout_seconds=2, strict=True):
            pytest.fail("a second retrain acquired the slot while the first held it")
    assert client.read_global_concurrency_limit_by_name(name).active_slots == 0


def _pool_exists(client: Any, name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        return False
    return True


def _sqlalchemy_version() -> str:
    import sqlalchemy

    return str(sqlalchemy.__version__)
