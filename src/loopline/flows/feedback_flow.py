"""``feedback_flow``: import a feedback file into the store and hold it to the feedback contract."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
from loopline.flows import artifacts
from loopline.flows.common import flow_settings, retry_unless_user_error
from loopline.pipeline.champion import champion_labels
from loopline.pipeline.feedback import FeedbackIntake, intake_feedback


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def import_batch(
    settings: Settings, path: str, text_column: str | None, label_column: str | None
) -> FeedbackIntake:
    known = champion_labels(settings)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        return intake_feedback(
            settings, store, path, known, text_column=text_column, label_column=label_column
        )


def _run_name() -> str:
    return f"feedback {Path(str(flow_run.parameters.get('path', ''))).name}"


@flow(name="feedback-import", flow_run_name=_run_name)
def feedback_flow(
    path: str,
    text_column: str | None = None,
    label_column: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import one file (idempotent, atomic) and review it; a rejected batch never feeds training."""
    settings = flow_settings(config_file, overrides)
    intake = import_batch(settings, path, text_column, label_column)
    get_run_logger().info(
        "Batch %s: %s (%d accepted, %d quarantined)",
        intake.batch_id,
        intake.batch_status,
        intake.accepted,
        intake.quarantined,
    )
    _publish_contract(settings, intake, path)
    return asdict(intake)


def _publish_contract(settings: Settings, intake: FeedbackIntake, path: str) -> None:
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        batch = store.get_batch(intake.batch_id)
    counts = artifacts.ContractCounts.from_feedback(
        asdict(intake), batch.contract_summary if batch else None, path
    )
    artifacts.publish_markdown(
        artifacts.FEEDBACK_CONTRACT_KEY,
        artifacts.contract_markdown(f"Feedback batch {intake.batch_id}", counts),
        "Feedback contract: rows in, accepted, quarantined by reason",
    )
    artifacts.name_flow_run(f"feedback batch {intake.batch_id}")
