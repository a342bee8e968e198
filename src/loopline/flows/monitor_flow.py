"""``monitor_flow``: drift and decay checks on the feedback since the last check; triggers a retrain.

``trigger`` says how a retrain is started when the policy says so: ``subflow`` runs ``retrain_flow``
in this process (the embedded default), ``deployment`` starts the served ``retrain/retrain``
deployment and waits for it (so a failed retrain fails this run visibly), ``none`` only records.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
from loopline.flows import artifacts
from loopline.flows.common import current_flow_run_id, flow_settings
from loopline.flows.retrain_flow import retrain_flow
from loopline.pipeline.champion import champion_labels
from loopline.pipeline.feedback import review_pending_feedback
from loopline.pipeline.monitor import MonitorOutcome, monitor_window
from loopline.tracking import end_run, start_run

RETRAIN_DEPLOYMENT = "retrain/retrain"


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def review_served_feedback(settings: Settings) -> int:
    """Labels sent to the serving API wait in daily batches: the contract reviews them before the check."""
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        known = champion_labels(settings)
        return sum(intake.accepted for intake in review_pending_feedback(settings, store, known))


@task(cache_policy=NO_CACHE)
def check_window(settings: Settings, scheduled: bool, run_id: str) -> MonitorOutcome:
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        return monitor_window(settings, store, run_id=run_id, scheduled=scheduled)


def _run_name() -> str:
    return f"monitor {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(name="monitor", flow_run_name=_run_name)
def monitor_flow(
    trigger: Literal["subflow", "deployment", "none"] = "subflow",
    scheduled: bool = False,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One monitoring pass; returns the decision and, if a retrain ran here, its summary."""
    settings = flow_settings(config_file, overrides)
    logger = get_run_logger()
    run_id = start_run(
        settings, "monitor", tags={"loopline.flow": "monitor", "prefect.flow_run_id": current_flow_run_id()}
    )
    try:
        review_served_feedback(settings)
        outcome = check_window(settings, scheduled, run_id)
    except BaseException:
        end_run(run_id, failed=True)
        raise
    end_run(run_id)
    summary: dict[str, Any] = {**asdict(outcome), "run_id": run_id, "retrain_result": None}
    summary["report_paths"] = [str(path) for path in outcome.report_paths]
    _publish_decision(summary)
    if not outcome.retrain or trigger == "none":
        return summary
    logger.info("Policy says retrain: %s", outcome.reason)
    if trigger == "subflow":
        summary["retrain_result"] = retrain_flow(
            reason=f"monitor: {outcome.reason}", config_file=config_file, overrides=overrides
        )
        return summary
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call: returns the run
        RETRAIN_DEPLOYMENT,
        parameters={
            "reason": f"monitor: {outcome.reason}",
            "config_file": config_file,
            "overrides": overrides,
        },
    )
    state = flow_run.state
    if state is None or not state.is_completed():
        raise RuntimeError(
            f"The retrain deployment run {flow_run.id} ended {state.name if state else 'unknown'}"
        )
    summary["retrain_result"] = {"flow_run_id": str(flow_run.id), "state": state.name}
    return summary


def _publish_decision(summary: dict[str, Any]) -> None:
    artifacts.publish_markdown(
        artifacts.DRIFT_KEY, artifacts.drift_markdown(summary), "Monitor decision and its drift signals"
    )
    decision = "retrain" if summary["retrain"] else "no retrain"
    artifacts.name_flow_run(
        f"monitor v{summary['champion_version']}: {summary['window_size']} {summary['window_source']} rows "
        f"→ {decision}"
    )
