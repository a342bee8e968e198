"""Log, register and promote a candidate that passed the gate; a failed gate registers nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from loopline.config import Settings
from loopline.errors import GateFailed
from loopline.evaluation.gate import GateReport
from loopline.registry.models import log_model, promote, register_model
from loopline.tracking import active_run, current_user

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishOutcome:
    model_name: str
    version: str
    aliases: tuple[str, ...]
    model_uri: str


def publish_candidate(
    settings: Settings,
    run_id: str,
    model_dir: Path,
    gate: GateReport,
    lineage: dict[str, str],
    *,
    reason: str,
) -> PublishOutcome:
    """Register the candidate (alias ``candidate``) and, with auto-promote, move ``production`` to it.

    Raises GateFailed before touching the registry when the gate said no, so a failed candidate can
    never be promoted by accident; its evaluation evidence stays on the run.
    """
    if not gate.passed:
        gate.raise_if_failed()
        raise GateFailed("The gate failed.", report=gate)  # raise_if_failed always raises; keeps mypy honest
    with active_run(run_id):
        model_uri = log_model(model_dir, max_length=settings.training.max_length)
    tags = {**lineage, "loopline.gate": "passed", "loopline.run_id": run_id}
    version = register_model(model_uri, settings.model_name, tags)
    actor = current_user()
    promote(
        settings.model_name,
        str(version.version),
        alias="candidate",
        actor=actor,
        reason=reason,
        gate_report=gate.to_dict(),
        artifact_location=settings.resolved_artifact_location,
    )
    aliases = ["candidate"]
    if settings.gate.auto_promote:
        promote(
            settings.model_name,
            str(version.version),
            alias="production",
            actor=actor,
            reason=f"auto-promote: {reason}",
            gate_report=gate.to_dict(),
            artifact_location=settings.resolved_artifact_location,
        )
        aliases.append("production")
    MlflowClient().set_tag(run_id, "loopline.registered_version", str(version.version))
    logger.info("Registered %s version %s with aliases %s", settings.model_name, version.version, aliases)
    return PublishOutcome(settings.model_name, str(version.version), tuple(aliases), model_uri)
