"""`loopline schedule --work-pool NAME`, run as its own process against a real Prefect server: the three
deployments land on the server bound to the pool, with module-path entrypoints a worker can import,
their schedules and parameters; a pool that does not exist (or an option that cannot apply) is exit 2.

No worker runs here: executing the deployed runs is the worker's side (infra/k8s, `prefect worker start`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
BASE_JOB_TEMPLATE = ROOT / "infra" / "k8s" / "prefect-base-job-template.json"
COMMAND_TIMEOUT_S = 240
DEPLOYMENTS = {
    "monitor/hourly": "loopline.flows.monitor_flow.monitor_flow",
    "monitor/weekly": "loopline.flows.monitor_flow.monitor_flow",
    "retrain/retrain": "loopline.flows.retrain_flow.retrain_flow",
}


def schedule(tmp_path: Path, api_url: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``loopline schedule ARGS`` in a fresh folder, with none of this process' loopline/Prefect variables."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_", "PREFECT_"))}
    full_env = {
        **keep,
        "HOME": str(tmp_path / "user"),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "COLUMNS": "200",
        **({"PREFECT_API_URL": api_url} if api_url else {}),
        **env,
    }
    (tmp_path / "user").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", "schedule", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def create_pool(client: Any, kind: str, base_job_template: dict[str, Any] | None = None) -> str:
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"loopline-{kind}-{uuid.uuid4().hex[:8]}"
    client.create_work_pool(WorkPoolCreate(name=name, type=kind, base_job_template=base_job_template or {}))
    return name


def read_deployments(client: Any) -> dict[str, Any]:
    return {name: client.read_deployment_by_name(name) for name in DEPLOYMENTS}


def test_schedule_deploys_the_three_deployments_to_a_process_pool(
    prefect_server: str, client: Any, tmp_path: Path
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    pool = create_pool(client, "process")
    done = schedule(
        tmp_path, prefect_server, "--work-pool", pool, "--monitor-cron", "*/15 * * * *",
        # A setting travels as a parameter; where the stores are does not (the worker's environment says).
        LOOPLINE_TRAINING__EPOCHS="3",
        LOOPLINE_HOME=str(tmp_path / "deployer-home"),
        LOOPLINE_FEEDBACK_DB_URL="postgresql+psycopg://me:secret@db.example:5432/feedback",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for name in DEPLOYMENTS:
        assert f"Deployed {name} to work pool {pool}" in done.stdout
    assert not (tmp_path / "deployer-home").exists()  # nothing local was connected

    found = read_deployments(client)
    for name, deployment in found.items():
        assert deployment.work_pool_name == pool, name
        assert deployment.entrypoint == DEPLOYMENTS[name]
        assert load_flow_from_entrypoint(deployment.entrypoint).name == name.split("/")[0]
        assert not deployment.pull_steps  # the worker imports the installed package: nothing to pull
        assert deployment.job_variables == {}
        overrides = deployment.parameters["overrides"]
        assert overrides["training"]["epochs"] == 3
        assert not {"home", "tracking_uri", "artifact_location", "feedback_db_url"} & set(overrides)
        assert "secret" not in json.dumps(deployment.parameters)
        assert deployment.parameters["config_file"] is None
    hourly, weekly, retrain = (found[name] for name in DEPLOYMENTS)
    assert [s.schedule.cron for s in hourly.schedules] == ["*/15 * * * *"]
    assert hourly.parameters["trigger"] == "deployment" and hourly.parameters["scheduled"] is False
    assert [s.schedule.cron for s in weekly.schedules] == ["0 3 * * 1"]
    assert weekly.parameters["scheduled"] is True
    assert retrain.schedules == []
    assert retrain.global_concurrency_limit is not None and retrain.global_concurrency_limit.limit == 1


def test_schedule_on_a_kubernetes_pool_with_the_infra_template_sets_the_image(
    prefect_server: str, client: Any, tmp_path: Path
) -> None:
    """The server accepts infra/k8s's base job template for a kubernetes pool, and the deployments' image
    job variable (checked by the server against the template's variables)."""
    template = json.loads(BASE_JOB_TEMPLATE.read_text(encoding="utf-8"))
    pool = create_pool(client, "kubernetes", template)
    assert client.read_work_pool(pool).base_job_template == template

    image = "registry.example/loopline/worker:1.2"
    done = schedule(tmp_path, prefect_server, "--work-pool", pool, "--image", image)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, deployment in read_deployments(client).items():
        assert deployment.work_pool_name == pool, name
        assert deployment.job_variables == {"image": image}


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("unknown pool", ["--work-pool", "no-such-pool"], "prefect work-pool create no-such-pool --type"),
        ("image on a process pool", ["--work-pool", "{process}", "--image", "x/y:1"], "takes no image"),
        ("no Prefect server", ["--work-pool", "any"], "PREFECT_API_URL is not set"),
    ],
)
def test_schedule_refusals_are_exit_2_with_what_to_do(
    prefect_server: str, client: Any, tmp_path: Path, case: str, args: list[str], expected: str
) -> None:
    if "{process}" in args:
        args = [create_pool(client, "process") if a == "{process}" else a for a in args]
    before = {d.id: d.updated for d in client.read_deployments()}
    done = schedule(tmp_path, None if case == "no Prefect server" else prefect_server, *args)
    assert done.returncode == 2, f"{case}: {done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr
    assert expected in " ".join(done.stderr.split()), done.stderr
    assert {d.id: d.updated for d in client.read_deployments()} == before  # nothing was deployed
