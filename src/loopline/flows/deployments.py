"""Serve the flows as Prefect deployments with schedules (needs a real Prefect server: the ephemeral one
does not schedule). ``loopline schedule`` calls ``serve_deployments``."""

from __future__ import annotations

from typing import Any

from prefect import serve

from loopline.flows.monitor_flow import monitor_flow
from loopline.flows.retrain_flow import retrain_flow


def build_deployments(
    monitor_cron: str, fallback_cron: str, config_file: str | None, overrides: dict[str, Any] | None
) -> list[Any]:
    """``monitor/hourly`` checks drift and starts ``retrain/retrain`` when the policy says so;
    ``monitor/weekly`` is the scheduled fallback (retrains on any accepted labelled feedback)."""
    common = {"config_file": config_file, "overrides": overrides}
    return [
        monitor_flow.to_deployment(
            name="hourly",
            cron=monitor_cron,
            parameters={**common, "trigger": "deployment", "scheduled": False},
            tags=["loopline"],
            description="Drift and decay checks on new feedback.",
        ),
        monitor_flow.to_deployment(
            name="weekly",
            cron=fallback_cron,
            parameters={**common, "trigger": "deployment", "scheduled": True},
            tags=["loopline"],
            description="Scheduled fallback retrain when labelled feedback waits.",
        ),
        retrain_flow.to_deployment(
            name="retrain",
            parameters={**common, "reason": "deployment"},
            concurrency_limit=1,
            tags=["loopline"],
            description="Continual retraining round (one at a time).",
        ),
    ]


def serve_deployments(
    monitor_cron: str = "0 * * * *",
    fallback_cron: str = "0 3 * * 1",
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    serve(*build_deployments(monitor_cron, fallback_cron, config_file, overrides))
