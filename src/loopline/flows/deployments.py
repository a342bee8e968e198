"""The flows as Prefect deployments with schedules (needs a real Prefect server: the ephemeral one does not
schedule). ``loopline schedule`` calls ``serve_deployments`` (the runs execute in that process), or with
``--work-pool NAME`` ``deploy_to_work_pool`` (a worker of the pool runs them: a process worker on some
machine, or a Kubernetes worker that starts each run as a Job)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from loopline.errors import ConfigError
from loopline.flows.monitor_flow import monitor_flow
from loopline.flows.retrain_flow import retrain_flow

# Where the stores are: on a work pool that is the worker's environment (LOOPLINE_HOME,
# LOOPLINE_TRACKING_URI, LOOPLINE_FEEDBACK_DB_URL from its job template), not the deploying machine's.
STORE_SETTINGS = ("home", "tracking_uri", "artifact_location", "feedback_db_url")
PATH_SETTINGS = ("mft_path", "base_model")
CREATE_POOL_HINT = (
    "Create it first, then start a worker for it: `prefect work-pool create {name} --type process` "
    "(runs on the machine of `prefect worker start --pool {name}`), or `prefect work-pool create {name} "
    "--type kubernetes --base-job-template infra/k8s/prefect-base-job-template.json` (each run a Job; "
    "see infra/README.md)."
)


def build_deployments(
    monitor_cron: str,
    fallback_cron: str,
    config_file: str | None,
    overrides: dict[str, Any] | None,
    work_pool: str | None = None,
) -> list[RunnerDeployment]:
    """``monitor/hourly`` checks drift and starts ``retrain/retrain`` when the policy says so;
    ``monitor/weekly`` is the scheduled fallback (retrains on any accepted labelled feedback).

    With ``work_pool`` the deployments name the pool and a module-path entrypoint
    (``loopline.flows.monitor_flow.monitor_flow``): a worker imports the installed package, no code
    upload or git pull involved."""
    common = {"config_file": config_file, "overrides": overrides}
    pool: dict[str, Any] = (
        {"work_pool_name": work_pool, "entrypoint_type": EntrypointType.MODULE_PATH} if work_pool else {}
    )
    # to_deployment/apply are sync here (Prefect's async_dispatch types them as "or a coroutine").
    deployments = [
        monitor_flow.to_deployment(
            name="hourly",
            cron=monitor_cron,
            parameters={**common, "trigger": "deployment", "scheduled": False},
            tags=["loopline"],
            description="Drift and decay checks on new feedback.",
            **pool,
        ),
        monitor_flow.to_deployment(
            name="weekly",
            cron=fallback_cron,
            parameters={**common, "trigger": "deployment", "scheduled": True},
            tags=["loopline"],
            description="Scheduled fallback retrain when labelled feedback waits.",
            **pool,
        ),
        retrain_flow.to_deployment(
            name="retrain",
            parameters={**common, "reason": "deployment"},
            concurrency_limit=1,
            tags=["loopline"],
            description="Continual retraining round (one at a time).",
            **pool,
        ),
    ]
    return [cast(RunnerDeployment, deployment) for deployment in deployments]


def serve_deployments(
    monitor_cron: str = "0 * * * *",
    fallback_cron: str = "0 3 * * 1",
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    serve(*build_deployments(monitor_cron, fallback_cron, config_file, overrides))


@dataclass(frozen=True)
class Deployed:
    name: str  # flow/deployment
    id: UUID
    cron: str | None


def pool_overrides(overrides: dict[str, Any] | None, folder: Path | None = None) -> dict[str, Any]:
    """The settings a pool's runs get as parameters: all but the store locations (and never a secret).

    A relative file setting (``mft_path``, a local ``base_model``) names a file of the deploying folder
    (``folder``, default the current one); a pool's run starts elsewhere (a process worker: in a temporary
    folder), so it travels as an absolute path. A ``base_model`` that is no local path (a model id) stays."""
    kept = {key: value for key, value in (overrides or {}).items() if key not in STORE_SETTINGS}
    here = folder or Path.cwd()
    for key in PATH_SETTINGS:
        value = kept.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute() and (here / value).exists():
            kept[key] = str((here / value).resolve())
    return kept


def deploy_to_work_pool(
    work_pool: str,
    monitor_cron: str = "0 * * * *",
    fallback_cron: str = "0 3 * * 1",
    overrides: dict[str, Any] | None = None,
    image: str | None = None,
) -> list[Deployed]:
    """Create or update the three deployments on the Prefect server (``PREFECT_API_URL``), bound to
    ``work_pool``; ``image`` is the job variable of container pools (Kubernetes, Docker). Nothing runs
    here: the pool's workers pick the scheduled runs up."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise ConfigError(
            "Deploying to a work pool needs a Prefect server: PREFECT_API_URL is not set",
            hint="Start one (`prefect server start`) and export PREFECT_API_URL=http://HOST:4200/api; "
            "Prefect's temporary server ends with this command and schedules nothing.",
        )
    try:
        with get_client(sync_client=True) as client:
            pool = client.read_work_pool(work_pool)
    except ObjectNotFound:
        raise ConfigError(
            f"No work pool named {work_pool!r} on the Prefect server",
            where=f"PREFECT_API_URL={api_url}",
            hint=CREATE_POOL_HINT.format(name=work_pool),
        ) from None
    except (httpx.TransportError, OSError) as err:
        raise ConfigError(
            f"Cannot reach the Prefect server: {err}",
            where=f"PREFECT_API_URL={api_url}",
            hint="Start it (`prefect server start`) or fix PREFECT_API_URL.",
        ) from None
    variables = (pool.base_job_template or {}).get("variables", {}).get("properties", {})
    if image and "image" not in variables:
        raise ConfigError(
            f"Work pool {work_pool!r} (type {pool.type}) takes no image",
            where="--image",
            hint="Leave --image out for a process pool (its worker runs the installed loopline); "
            "use it with a kubernetes or docker pool.",
        )
    deployments = build_deployments(monitor_cron, fallback_cron, None, pool_overrides(overrides), work_pool)
    crons = {"hourly": monitor_cron, "weekly": fallback_cron}
    return [
        Deployed(
            name=f"{deployment.flow_name}/{deployment.name}",
            id=cast(UUID, deployment.apply(work_pool_name=work_pool, image=image)),
            cron=crons.get(deployment.name),
        )
        for deployment in deployments
    ]
