"""Log, register and promote a candidate that passed the gate; a failed gate registers nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from loopline.config import Settings
from loopline.errors import GateFailed, RegistryError
from loopline.evaluation.gate import GateReport
from loopline.faults import crash_point
from loopline.pipeline.canary import canary_failure
from loopline.processes import current_user
from loopline.registry.integrity import MANIFEST_TAG, manifest_tag
from loopline.registry.lookups import find_version_by_tag, version_aliases
from loopline.registry.model_card import save_model_card
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import promote, promotion_history
from loopline.tracking import active_run, mlflow_client

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
    never be promoted by accident; its evaluation evidence stays on the run. The version carries the
    sha256 manifest of its files, checked whenever it is downloaded.
    """
    if not gate.passed:
        gate.raise_if_failed()
        raise GateFailed("The gate failed.", report=gate)  # raise_if_failed always raises; keeps mypy honest
    with active_run(run_id):
        model_uri = log_model(model_dir, max_length=settings.training.max_length)
    crash_point("publish.logged")
    tags = {
        **lineage,
        "loopline.gate": "passed",
        "loopline.run_id": run_id,
        MANIFEST_TAG: manifest_tag(model_dir),
    }
    version = str(register_model(model_uri, settings.model_name, tags).version)
    crash_point("publish.registered")
    mlflow_client().set_tag(run_id, "loopline.registered_version", version)
    return promote_published(settings, version, gate.to_dict(), reason)


def promote_published(
    settings: Settings, version: str, gate_report: dict[str, Any] | None, reason: str
) -> PublishOutcome:
    """Give a freshly registered version its aliases: ``candidate``, then ``production`` with auto-promote.

    Also completes a round whose process died after registering: an alias this version held before
    (recorded in the history) is not given again, so a rerun never undoes a later rollback. The model
    card is written first (once: a rerun finds it set), so a version is documented before it serves.
    """
    name = settings.model_name
    try:
        save_model_card(name, version)
    except (MlflowException, OSError) as err:  # documentation must not stop a gated model's promotion
        logger.error("The model card of %s v%s could not be written: %s", name, version, err)
    held_before = {event.alias for event in promotion_history(name) if event.version == version}
    wanted = ["candidate", *(["production"] if settings.gate.auto_promote else [])]
    for alias in wanted:
        if alias in held_before:
            continue
        try:
            promote(
                name,
                version,
                alias=alias,
                actor=current_user(),
                reason=reason if alias == "candidate" else f"auto-promote: {reason}",
                gate_report=gate_report,
                artifact_location=settings.resolved_artifact_location,
                canary=(lambda v: canary_failure(settings, v)) if alias == "production" else None,
            )
        except RegistryError as err:  # the canary said no: registered and candidate, not production
            logger.error("v%s stays a candidate: %s", version, err)
            break
        crash_point(f"publish.{alias}")
    aliases = tuple(sorted(alias for alias, v in version_aliases(name).items() if v == version))
    logger.info("Published %s version %s with aliases %s", name, version, list(aliases))
    return PublishOutcome(name, version, aliases, f"models:/{name}/{version}")


def find_registered_version(settings: Settings, tag: str, key: str) -> str | None:
    """The version already registered under ``key`` in version tag ``tag`` (a training or retrain key), or
    None: a rerun after a crash past registration finds it instead of training and registering again."""
    return find_version_by_tag(settings.model_name, tag, key)
