"""``feedback_flow``: import a feedback file into the store and hold it to the feedback contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
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


@flow(name="feedback-import")
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
    return asdict(intake)
