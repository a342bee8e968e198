"""Promotion by alias, with a history that always agrees with the registry, and rollback.

The history is kept as small MLflow runs in the experiment ``<model>-promotions`` (one run per move, its
fields as tags and params, the gate report as an artifact), so it shows in the MLflow UI and works the
same against a tracking server. Moving an alias and recording it cannot be one transaction in MLflow, so
every move is an *intent* first:

1. the history run is created with all its fields (one call, so never half-written), status RUNNING;
2. the alias is moved;
3. the run is set FINISHED.

A process killed between 1 and 3 leaves a RUNNING intent. Every read and every move reconciles it
against the registry: if the alias points at the intent's version the move happened and the intent is
completed; if its writer is dead (or it is older than ``INTENT_GRACE``) and the alias does not point
there, the move never happened and the intent is marked FAILED. History and aliases therefore agree
after any kill, and the next command repairs what a kill left.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlflow.entities import Param, ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from loopline.errors import RegistryError
from loopline.faults import crash_point
from loopline.processes import current_user, holder_is_dead, this_host
from loopline.registry.lookups import (
    GATE_TAG,
    check_alias,
    get_alias_version,
    get_version,
    registered_model,
)
from loopline.tracking import HOLDER_TAG, mlflow_client, run_source_tags

logger = logging.getLogger(__name__)

EVENT_TAG = "loopline.event"  # "promotion" / "rollback" on a history run
PROMOTIONS_SUFFIX = "-promotions"
MAX_TEXT_CHARS = 5000  # below MLflow's tag and param value limits
INTENT_GRACE = timedelta(minutes=10)  # a RUNNING intent older than this, alias elsewhere: abandoned
EVENT_KINDS = ("promotion", "rollback")
_FIELDS = (
    "model",
    "alias",
    "version",
    "previous_version",
    "actor",
    "reason",
    "at",
    "gate_passed",
    "forced",
    "canary",
)


@dataclass(frozen=True)
class PromotionEvent:
    """One move of an alias. ``kind`` is "promotion", "rollback" or "unchanged" (alias already there,
    nothing recorded); ``run_id`` is the history run that records it."""

    model: str
    alias: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: str
    gate_passed: bool | None
    kind: str = "promotion"
    run_id: str | None = None
    forced: bool = False
    canary: str = "not run"  # "passed", or why the version failed it (then only a forced move happens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading and reconciling the history ----------------------------------------------------------


def promotion_history(name: str, alias: str | None = None) -> list[PromotionEvent]:
    """Completed promotions and rollbacks of ``name`` (optionally of one alias), oldest first.

    Intents left by a killed process are reconciled first, so what this returns agrees with the registry.
    """
    if alias is not None:
        check_alias(alias)
    client = mlflow_client()
    model = registered_model(client, name)
    runs = _history_runs(client, name)
    completed = _reconcile(client, name, dict(model.aliases or {}), runs)
    finished = [r for r in runs if _status(r) == "FINISHED" or r.info.run_id in completed]
    events = [e for e in map(_event_from_run, finished) if e is not None]
    return sorted((e for e in events if alias is None or e.alias == alias), key=lambda e: e.at)


def _history_runs(client: MlflowClient, name: str) -> list[Any]:
    experiment = client.get_experiment_by_name(f"{name}{PROMOTIONS_SUFFIX}")
    if experiment is None:
        return []
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment.experiment_id],
            "",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _status(run: Any) -> str:
    return str(run.info.status)


def _reconcile(client: MlflowClient, name: str, aliases: dict[str, str], runs: list[Any]) -> set[str]:
    """Complete or abandon every RUNNING intent, judged by where its alias points now; returns the ids of
    the intents it completed."""
    completed: set[str] = set()
    intents = [r for r in runs if _status(r) == "RUNNING"]
    for run in sorted(intents, key=lambda r: r.info.start_time or 0):
        event = _event_from_run(run)
        current = aliases.get(event.alias) if event else None
        if event is not None and current is not None and str(current) == event.version:
            client.set_terminated(run.info.run_id, status="FINISHED")
            completed.add(run.info.run_id)
            logger.warning(
                "Completed the record of %s '%s'@%s -> v%s (its writer stopped after moving the alias)",
                event.kind,
                name,
                event.alias,
                event.version,
            )
        elif event is None or _abandoned(run):
            client.set_terminated(run.info.run_id, status="FAILED")
            logger.warning(
                "Dropped an unfinished %s record of '%s' (the alias never moved)",
                event.kind if event else "",
                name,
            )
    return completed


def _abandoned(run: Any) -> bool:
    holder = run.data.tags.get(HOLDER_TAG, "")
    started = datetime.fromtimestamp((run.info.start_time or 0) / 1000, tz=UTC)
    return holder_is_dead(holder) or datetime.now(UTC) - started > INTENT_GRACE


def _event_from_run(run: Any) -> PromotionEvent | None:
    """The event a history run records; None for a record missing a required field."""
    tags, params = run.data.tags, run.data.params

    def field(key: str) -> str | None:
        return tags.get(f"loopline.{key}") or params.get(key)

    values = {key: field(key) for key in _FIELDS}
    if not all(values[key] for key in ("model", "alias", "version", "at")):
        logger.debug("History run %s lacks required fields; ignored", run.info.run_id)
        return None
    gate = values["gate_passed"] or "unknown"
    previous = values["previous_version"]
    kind = tags.get(EVENT_TAG, "promotion")
    return PromotionEvent(
        model=str(values["model"]),
        alias=str(values["alias"]),
        version=str(values["version"]),
        previous_version=None if previous in (None, "", "none") else previous,
        actor=values["actor"] or "unknown",
        reason=values["reason"] or "",
        at=str(values["at"]),
        gate_passed=None if gate == "unknown" else gate == "true",
        kind=kind if kind in EVENT_KINDS else "promotion",
        run_id=run.info.run_id,
        forced=values["forced"] == "true",
        canary=values["canary"] or "not run",
    )


# --- moving an alias ----------------------------------------------------------------------------


def promote(
    name: str,
    version: str | int,
    alias: str = "production",
    *,
    actor: str | None = None,
    reason: str = "",
    gate_report: dict[str, Any] | None = None,
    force: bool = False,
    artifact_location: str | None = None,
    canary: Callable[[str], str | None] | None = None,
) -> PromotionEvent:
    """Move ``alias`` to ``version`` and record who, when, from, to, why and the gate report.

    Refuses (RegistryError) a version whose ``loopline.gate`` tag is "failed", or a ``gate_report`` that
    did not pass, or that ``canary(version)`` says would not serve (it returns why, or None), unless
    ``force`` (then the override is recorded). ``artifact_location`` is used only when the history
    experiment is created (None: beside the artifacts of the version's run's experiment).
    """
    check_alias(alias)
    mv = get_version(name, str(version))
    verdict = _run_canary(canary, mv)
    forced = _check_gate(mv, alias, gate_report, force) | _check_canary(mv, alias, verdict, force)
    return _move_alias(
        mv,
        alias,
        kind="promotion",
        actor=actor,
        reason=reason,
        gate_report=gate_report,
        forced=forced,
        artifact_location=artifact_location,
        canary=verdict,
    )


def rollback(
    name: str,
    alias: str = "production",
    *,
    to: str | int | None = None,
    force: bool = False,
    actor: str | None = None,
    reason: str = "rollback",
    artifact_location: str | None = None,
    canary: Callable[[str], str | None] | None = None,
) -> PromotionEvent:
    """Move ``alias`` back and record it as a rollback.

    Without ``to``: to the most recent earlier holder of the alias that is not the current version, was not
    itself rolled back from (its last departure from the alias was not a rollback) and did not fail the
    gate, so repeated rollbacks walk back through earlier good versions. With ``to``: to that version,
    gate-checked like a promotion. ``canary(version)`` (None: not run) says why the target would not
    serve; a failing target is refused unless ``force``.
    """
    check_alias(alias)
    history = promotion_history(name, alias)
    current = get_alias_version(name, alias)
    if to is not None:
        target = get_version(name, str(to))
        forced = _check_gate(target, alias, None, force)
    else:
        target = _rollback_target(name, alias, history, None if current is None else str(current.version))
        forced = False
    verdict = _run_canary(canary, target)
    forced |= _check_canary(target, alias, verdict, force)
    return _move_alias(
        target,
        alias,
        kind="rollback",
        actor=actor,
        reason=reason,
        forced=forced,
        artifact_location=artifact_location,
        canary=verdict,
    )


def set_alias(name: str, alias: str, version: str | int) -> ModelVersion:
    """Point ``alias`` at a version (no gate check, no history: use ``promote`` for that)."""
    check_alias(alias)
    mv = get_version(name, version)
    mlflow_client().set_registered_model_alias(name, alias, str(mv.version))
    return mv


def _rollback_target(
    name: str, alias: str, history: list[PromotionEvent], current: str | None
) -> ModelVersion:
    if not history:
        raise RegistryError(
            f"Cannot roll back '{name}'@{alias}: no promotion of this alias is recorded.",
            hint="Promote a version first (rollback needs a recorded previous version).",
        )
    departures: dict[str, PromotionEvent] = {}  # version -> the last event that moved the alias off it
    for event in history:
        if event.previous_version is not None:
            departures[event.previous_version] = event
    skipped = []
    for version, left_by in sorted(departures.items(), key=lambda item: item[1].at, reverse=True):
        if version == current:
            continue
        if left_by.kind == "rollback":
            skipped.append(f"v{version} (rolled back from)")
            continue
        try:
            candidate = get_version(name, version)
        except RegistryError:
            skipped.append(f"v{version} (deleted)")
            continue
        if (candidate.tags or {}).get(GATE_TAG) == "failed":
            skipped.append(f"v{version} (gate failed)")
            continue
        return candidate
    first = history[0]
    if not departures:
        raise RegistryError(
            f"Cannot roll back '{name}'@{alias}: version {first.version} was its first version "
            f"(promoted {first.at}), so there is no earlier one.",
            hint="Promote another version instead.",
        )
    raise RegistryError(
        f"Cannot roll back '{name}'@{alias}: no earlier version to go back to "
        f"(v{current} holds it; first promoted: v{first.version} at {first.at}"
        + (f"; skipped {', '.join(skipped)}" if skipped else "")
        + ").",
        hint="Promote a version explicitly, or pass --to VERSION.",
    )


def _check_gate(mv: ModelVersion, alias: str, gate_report: dict[str, Any] | None, force: bool) -> bool:
    """Refuse a gate-failed version unless forced; returns whether the move overrides a failed gate."""
    tag_failed = (mv.tags or {}).get(GATE_TAG) == "failed"
    report_failed = gate_report is not None and gate_report.get("passed") is False
    if not (tag_failed or report_failed):
        return False
    if not force:
        where = [f"tag {GATE_TAG}=failed on version {mv.version}"] if tag_failed else []
        where += ["the gate report passed in (passed=false)"] if report_failed else []
        raise RegistryError(
            f"Refusing to move '{mv.name}'@{alias} to version {mv.version}: the gate failed it.",
            where=" and ".join(where),
            hint="Choose a version that passed the gate, or pass --force with a --reason (recorded).",
        )
    logger.warning("Forcing '%s'@%s to version %s despite a failed gate", mv.name, alias, mv.version)
    return True


def _run_canary(canary: Callable[[str], str | None] | None, mv: ModelVersion) -> str:
    """ "not run", "passed", or why the version failed the canary."""
    if canary is None:
        return "not run"
    return canary(str(mv.version)) or "passed"


def _check_canary(mv: ModelVersion, alias: str, canary: str, force: bool) -> bool:
    """Refuse a version that failed the canary unless forced; returns whether the move overrides it."""
    if canary in ("not run", "passed"):
        return False
    if not force:
        raise RegistryError(
            f"Refusing to move '{mv.name}'@{alias} to version {mv.version}: it failed the canary ({canary}).",
            where=f"models:/{mv.name}/{mv.version}",
            hint="Fix or re-register the version, or pass --force with a --reason (recorded).",
        )
    logger.warning("Forcing '%s'@%s to version %s despite a failed canary", mv.name, alias, mv.version)
    return True


def _gate_verdict(mv: ModelVersion, gate_report: dict[str, Any] | None) -> bool | None:
    if gate_report is not None and "passed" in gate_report:
        return bool(gate_report["passed"])
    tag = (mv.tags or {}).get(GATE_TAG)
    return None if tag is None else tag == "passed"


def _move_alias(
    mv: ModelVersion,
    alias: str,
    *,
    kind: str,
    actor: str | None,
    reason: str,
    gate_report: dict[str, Any] | None = None,
    forced: bool = False,
    artifact_location: str | None = None,
    canary: str = "not run",
) -> PromotionEvent:
    client = mlflow_client()
    name, version = mv.name, str(mv.version)
    promotion_history(name)  # reconcile what a killed move left, so "previous" is the truth
    current = get_alias_version(name, alias)
    previous = None if current is None else str(current.version)
    event = PromotionEvent(
        model=name,
        alias=alias,
        version=version,
        previous_version=previous,
        actor=actor or current_user(),
        reason=(reason or "-")[:MAX_TEXT_CHARS],
        at=datetime.now(tz=UTC).isoformat(timespec="microseconds"),
        gate_passed=_gate_verdict(mv, gate_report),
        kind=kind,
        forced=forced,
        canary=canary[:MAX_TEXT_CHARS],
    )
    if previous == version:
        logger.info("Alias '%s' of '%s' already points to version %s; nothing to do", alias, name, version)
        return PromotionEvent(**{**event.to_dict(), "kind": "unchanged"})
    run_id = _record_intent(client, event, gate_report, artifact_location, mv.run_id)
    crash_point("promote.intent")
    client.set_registered_model_alias(name, alias, version)
    crash_point("promote.moved")
    client.set_model_version_tag(name, version, f"loopline.{alias}.{kind}_at", event.at)
    client.set_model_version_tag(name, version, f"loopline.{alias}.{kind}_by", event.actor)
    client.set_terminated(run_id, status="FINISHED")
    logger.info("%s: '%s'@%s %s -> %s by %s (%s)", kind, name, alias, previous, version, event.actor, reason)
    return PromotionEvent(**{**event.to_dict(), "run_id": run_id})


def _record_intent(
    client: MlflowClient,
    event: PromotionEvent,
    gate_report: dict[str, Any] | None,
    location: str | None,
    model_run_id: str | None,
) -> str:
    """The history run of a move about to happen: every field in the one create call, status RUNNING."""
    fields = {
        "model": event.model,
        "alias": event.alias,
        "version": event.version,
        "previous_version": event.previous_version or "none",
        "actor": event.actor,
        "reason": event.reason,
        "at": event.at,
        "gate_passed": "unknown" if event.gate_passed is None else str(event.gate_passed).lower(),
        "forced": str(event.forced).lower(),
        "canary": event.canary,
    }
    run = client.create_run(
        _promotions_experiment_id(client, event.model, location, model_run_id),
        run_name=f"{event.kind} {event.alias} -> v{event.version}",
        tags={
            **run_source_tags("loopline.registry.promotion"),
            EVENT_TAG: event.kind,
            HOLDER_TAG: f"{this_host()}:{os.getpid()}",
            **{f"loopline.{key}": value for key, value in fields.items()},
        },
    )
    run_id = str(run.info.run_id)
    # Params too, for the runs table of the UI; the tags above are what loopline reads.
    client.log_batch(run_id, params=[Param(k, v) for k, v in fields.items()], metrics=[], tags=[])
    if gate_report is not None:
        client.log_dict(run_id, gate_report, "gate_report.json")
    return run_id


def _promotions_experiment_id(
    client: MlflowClient, name: str, artifact_location: str | None, run_id: str | None
) -> str:
    experiment_name = f"{name}{PROMOTIONS_SUFFIX}"
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = artifact_location or _default_history_location(client, name, run_id)
        try:
            return str(client.create_experiment(experiment_name, artifact_location=location))
        except MlflowException:  # created by another process meanwhile
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _default_history_location(client: MlflowClient, name: str, run_id: str | None) -> str | None:
    """Keep history artifacts beside the model's: ``<artifact root of its experiment>/<name>-promotions``
    (an embedded setup then never writes into the working directory); None lets the server decide."""
    if not run_id:
        return None
    try:
        root = client.get_experiment(client.get_run(run_id).info.experiment_id).artifact_location
    except MlflowException:
        return None
    return f"{root.rstrip('/')}/{name}{PROMOTIONS_SUFFIX}" if root else None
