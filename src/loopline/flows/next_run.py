"""The next scheduled loopline run, read from the Prefect server that ``loopline schedule`` deployed to.

Only a configured server (``PREFECT_API_URL``) is asked, with a short timeout and no retries: a status
line must not start Prefect's temporary server (it schedules nothing) or wait on a server that is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

NO_SCHEDULE = "no schedule (run `loopline schedule`)"
LOOPLINE_FLOWS = ["monitor", "retrain"]


@dataclass(frozen=True)
class NextRun:
    """When the next scheduled run of a loopline deployment starts; ``note`` says why none is known."""

    expected_start: datetime | None
    deployment: str | None  # flow/deployment, e.g. monitor/hourly
    note: str

    def to_dict(self) -> dict[str, str | None]:
        return {
            "expected_start": self.expected_start.isoformat() if self.expected_start else None,
            "deployment": self.deployment,
            "note": self.note,
        }


def read_next_run(timeout_s: float = 3.0) -> NextRun:
    """The earliest scheduled run of the monitor or retrain deployments on the configured server."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    api_url = PREFECT_API_URL.value()
    if not api_url:
        return NextRun(None, None, NO_SCHEDULE)
    runs_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        deployment_id=FlowRunFilterDeploymentId(is_null_=False),
    )
    try:
        with (
            temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}),
            get_client(sync_client=True, httpx_settings={"timeout": timeout_s}) as client,
        ):
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=LOOPLINE_FLOWS)),
                flow_run_filter=runs_filter,
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            if not runs:
                return NextRun(None, None, NO_SCHEDULE)
            run = runs[0]
            flow = client.read_flow(run.flow_id)
            try:
                deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
            except ObjectNotFound:  # deleted since the run was scheduled
                deployment = None
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as err:
        return NextRun(
            None, None, f"Prefect server {api_url} not reachable ({type(err).__name__}); {NO_SCHEDULE}"
        )
    name = f"{flow.name}/{deployment.name}" if deployment else flow.name
    return NextRun(run.expected_start_time, name, "scheduled")
