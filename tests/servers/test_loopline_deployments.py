"""loopline's own deployments (what `loopline schedule` serves) registered on a real Prefect server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.servers.test_prefect_server import run_prefect_script

pytestmark = pytest.mark.servers

APPLY_LOOPLINE_DEPLOYMENTS = """
from loopline.flows.deployments import build_deployments

for deployment in build_deployments("*/15 * * * *", "0 3 * * 1", None, {"home": "/tmp/loopline-home"}):
    print("DEPLOYMENT_" + deployment.name.upper(), deployment.apply())
"""


def test_monitor_and_retrain_deployments_have_schedules_and_one_retrain_at_a_time(
    prefect_server: str, client: Any, tmp_path: Path
) -> None:
    import uuid

    out = run_prefect_script(APPLY_LOOPLINE_DEPLOYMENTS, prefect_server, tmp_path)
    hourly = client.read_deployment(uuid.UUID(out["DEPLOYMENT_HOURLY"]))
    weekly = client.read_deployment(uuid.UUID(out["DEPLOYMENT_WEEKLY"]))
    retrain = client.read_deployment(uuid.UUID(out["DEPLOYMENT_RETRAIN"]))

    assert [s.schedule.cron for s in hourly.schedules] == ["*/15 * * * *"]
    assert hourly.parameters["trigger"] == "deployment" and hourly.parameters["scheduled"] is False
    assert [s.schedule.cron for s in weekly.schedules] == ["0 3 * * 1"]
    assert weekly.parameters["scheduled"] is True
    assert retrain.schedules == []  # started by the monitor, never by the clock
    assert retrain.global_concurrency_limit is not None and retrain.global_concurrency_limit.limit == 1
    assert client.read_flow(retrain.flow_id).name == "retrain"
    assert hourly.parameters["overrides"] == {"home": "/tmp/loopline-home"}
