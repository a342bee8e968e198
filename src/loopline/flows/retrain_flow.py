"""``retrain_flow``: continual fine-tune of the champion on accepted feedback + replay, gated, registered.

One retrain at a time (a lock in the feedback store, plus a concurrency limit on the deployment);
a second trigger while one runs is recorded and skipped. Rerunning after a crash completes the work
without training or registering twice (the retrain key of champion + feedback rows).
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from loopline.config import Settings
from loopline.errors import GateFailed
from loopline.evaluation.gate import GateReport
from loopline.faults import crash_point
from loopline.feedback.store import FeedbackStore
from loopline.flows import artifacts
from loopline.flows.common import (
    current_flow_run_id,
    current_flow_run_name,
    flow_settings,
    retry_unless_user_error,
)
from loopline.pipeline.assess import assess_candidate
from loopline.pipeline.champion import Champion, require_champion
from loopline.pipeline.fit import fit_candidate
from loopline.pipeline.publish import (
    PublishOutcome,
    find_registered_version,
    promote_published,
    publish_candidate,
)
from loopline.pipeline.retrain import (
    RETRAIN_KEY_TAG,
    RetrainPlan,
    finish_retrain,
    plan_retrain,
    record_gate_failed,
    record_retrain_registered,
    record_retrain_skipped,
    retrain_lineage,
    retrain_lock,
    save_training_snapshot,
)
from loopline.processes import holder_name
from loopline.tracking import end_run, name_run, start_run
from loopline.training.trainer import TrainResult


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def plan_round(settings: Settings, champion: Champion, run_id: str) -> RetrainPlan:
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        return plan_retrain(settings, store, champion, settings.runs_dir / run_id / "data")


@task(cache_policy=NO_CACHE)
def train_warm(settings: Settings, plan: RetrainPlan, run_id: str) -> TrainResult:
    return fit_candidate(
        settings,
        plan.frame("train"),
        plan.frame("validation"),
        settings.runs_dir / run_id,
        run_id=run_id,
        labels=plan.labels,
        init_model_dir=str(plan.champion_dir),
    )


@task(cache_policy=NO_CACHE)
def gate_round(settings: Settings, plan: RetrainPlan, trained: TrainResult, run_id: str) -> GateReport:
    return assess_candidate(
        settings,
        trained.model_dir,
        plan.eval_frames(),
        settings.runs_dir / run_id / "evaluation",
        champion_dir=plan.champion_dir,
        new_labels=plan.new_classes,
        run_id=run_id,
    )


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def register_round(
    settings: Settings, plan: RetrainPlan, trained: TrainResult, gate: GateReport, run_id: str
) -> PublishOutcome:
    lineage = {
        **retrain_lineage(settings, plan, save_training_snapshot(settings, plan), current_flow_run_id()),
        "loopline.prefect_flow_run_name": current_flow_run_name(),
    }
    return publish_candidate(
        settings,
        run_id,
        trained.model_dir,
        gate,
        lineage,
        reason=_publish_reason(plan),
    )


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def finish_round(settings: Settings, plan: RetrainPlan, version: str) -> None:
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        finish_retrain(settings, store, plan, version)


def _run_name() -> str:
    reason = str(flow_run.parameters.get("reason", ""))
    return f"retrain ({reason[:40]}{'…' if len(reason) > 40 else ''})"


@flow(name="retrain", flow_run_name=_run_name)
def retrain_flow(
    reason: str = "manual", config_file: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One continual-learning round; returns a JSON-safe summary (status promoted, registered, reused or
    skipped: another round holds the lock, or no feedback waits)."""
    settings = flow_settings(config_file, overrides)
    holder = holder_name(current_flow_run_id() or str(uuid.uuid4()))
    with FeedbackStore(settings.resolved_feedback_db_url) as store, retrain_lock(store, holder) as held:
        if not held:
            return _skip(store, reason, "skipped: another retrain holds the lock")
        if store.count_accepted_unused() == 0:
            return _skip(store, reason, "skipped: no accepted, unused labelled feedback to retrain on")
        return _retrain_round(settings, store, reason)


def _skip(store: FeedbackStore, trigger: str, why: str) -> dict[str, Any]:
    record_retrain_skipped(store, trigger, why)
    get_run_logger().warning(why)
    artifacts.publish_markdown(
        artifacts.RETRAIN_KEY, f"# Retrain {why}\n\nTrigger: {trigger}", "Retrain skipped"
    )
    artifacts.name_flow_run("retrain skipped")
    return {"status": "skipped", "reason": why}


def _retrain_round(settings: Settings, store: FeedbackStore, reason: str) -> dict[str, Any]:
    logger = get_run_logger()
    champion = require_champion(settings)
    artifacts.name_flow_run(f"retrain ← v{champion.version}")
    run_id = start_run(
        settings,
        "retrain",
        tags={
            "loopline.flow": "retrain",
            "loopline.trigger": reason,
            "loopline.parent_version": champion.version,
            "prefect.flow_run_id": current_flow_run_id(),
        },
    )
    try:
        plan = plan_round(settings, champion, run_id)
        existing = find_registered_version(settings, RETRAIN_KEY_TAG, plan.retrain_key)
        if existing is not None:
            logger.info(
                "Feedback already trained into v%s (rerun after a crash); finishing the round", existing
            )
            published = promote_published(settings, existing, None, _publish_reason(plan))
            finish_round(settings, plan, existing)
            name_run(run_id, f"retrain: rerun, already v{existing}")
            end_run(run_id)
            _publish_version(settings, existing, published.aliases, champion.version)
            return {
                "status": "reused",
                "version": existing,
                "aliases": list(published.aliases),
                "run_id": run_id,
            }
        trained = train_warm(settings, plan, run_id)
        crash_point("retrain.trained")
        gate = gate_round(settings, plan, trained, run_id)
        artifacts.publish_markdown(
            artifacts.GATE_KEY,
            artifacts.gate_markdown(gate.to_dict()),
            f"Gate verdict and its checks (candidate warm-started from v{champion.version})",
        )
        published = register_round(settings, plan, trained, gate, run_id)
        finish_round(settings, plan, published.version)
    except GateFailed as err:
        record_gate_failed(store, reason, err, champion.version, run_id)
        end_run(run_id, failed=True)
        raise
    except BaseException:
        end_run(run_id, failed=True)
        raise
    end_run(run_id)
    record_retrain_registered(store, reason, plan, gate, published.version, published.aliases, run_id)
    _publish_version(settings, published.version, published.aliases, champion.version)
    return {
        "status": "promoted" if "production" in published.aliases else "registered",
        "version": published.version,
        "parent_version": champion.version,
        "run_id": run_id,
        "new_labels": plan.new_labels,
        "relabelled_words": plan.relabelled_words,
        "gate": gate.to_dict(),
    }


def _publish_version(settings: Settings, version: str, aliases: tuple[str, ...], parent: str) -> None:
    artifacts.publish_markdown(
        artifacts.PROMOTION_KEY,
        artifacts.promotion_markdown(settings.model_name, version, aliases, parent),
        "Registered version and its aliases",
    )
    artifacts.name_flow_run(f"retrain ← v{parent} → v{version}")


def _publish_reason(plan: RetrainPlan) -> str:
    return f"retrain_flow: continual round on {len(plan.feedback_ids)} feedback rows"
