"""Continual retraining: warm start from the champion on accepted feedback + a class-balanced replay of
past data, growing the label set when feedback brings new labels; idempotent per feedback set."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from loopline.config import Settings, SplitConfig
from loopline.data.replay import ReplayBuffer, repeats_for_share
from loopline.data.snapshots import save_snapshot
from loopline.data.splits import create_splits
from loopline.errors import LooplineError
from loopline.faults import crash_point
from loopline.feedback.store import FeedbackStore
from loopline.model_files import read_labels
from loopline.pipeline.champion import Champion, require_task
from loopline.pipeline.datasets import load_splits
from loopline.pipeline.relabel import relabel_outside
from loopline.processes import holder_is_dead
from loopline.tasks import get_task
from loopline.tracking import git_commit

if TYPE_CHECKING:
    from loopline.evaluation.gate import GateReport

logger = logging.getLogger(__name__)

# Share of the new feedback held out to check that it was learned (and a little for early stopping).
FEEDBACK_SPLIT = SplitConfig(validation_fraction=0.1, test_fraction=0.2)
RETRAIN_LOCK = "retrain"  # the feedback store's lock: one retrain round at a time
RETRAIN_LOCK_STALE_AFTER = timedelta(hours=6)  # a holder this old is taken over even if it may live
RETRAIN_KEY_TAG = "loopline.retrain_key"  # version tag: the feedback rows a version was trained on
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value


@dataclass(frozen=True)
class RetrainPlan:
    """Everything a retrain round needs, by reference: frames are parquet files in ``data_dir``."""

    data_dir: Path
    champion_version: str
    champion_dir: Path
    labels: list[str]
    new_labels: list[str]  # head labels the champion lacks (B-/I- rows of new entity types, for tokens)
    feedback_ids: list[int]
    batch_ids: list[str]
    retrain_key: str
    test_version: str
    eval_sets: list[str] = field(default_factory=lambda: ["test", "feedback"])  # frames the gate scores
    new_classes: list[str] = field(default_factory=list)  # what the gate checks as new: labels or types
    relabelled_words: int = 0  # token task: O-tagged words of old types set from the champion
    feedback_repeats: int = 1  # times each feedback training row is in the train frame (replay.max_share)
    batch_rows: dict[str, int] = field(default_factory=dict)  # feedback rows trained on, per batch
    drift_state: str = ""  # the monitor's last verdict before this round, for the model card

    def frame(self, name: str) -> pd.DataFrame:
        """One of the plan's frames (train, validation, test, feedback, feedback_train, regression)."""
        return pd.read_parquet(self.data_dir / f"{name}.parquet")

    def eval_frames(self) -> dict[str, pd.DataFrame]:
        """The frames the gate scores the candidate on, by evaluation set name."""
        return {name: self.frame(name) for name in self.eval_sets}


def plan_retrain(settings: Settings, store: FeedbackStore, champion: Champion, run_dir: Path) -> RetrainPlan:
    """Assemble training, validation and evaluation frames from feedback, replay and the frozen test set."""
    feedback = store.accepted_unused_feedback()
    if feedback.empty:
        raise LooplineError(
            "There is no accepted, unused labelled feedback to retrain on.",
            where=settings.resolved_feedback_db_url,
            hint="import feedback with `loopline feedback import FILE` first.",
        )
    require_task(settings, champion)
    task = get_task(settings.task)
    old_labels = read_labels(champion.model_dir)
    labels = task.extend_labels(old_labels, feedback["label"].astype(str))
    new_labels = labels[len(old_labels) :]
    test_version = champion.test_version
    base = load_splits(settings, test_version)
    replay = _replay_buffer(settings, base.train)
    feedback_rows = feedback[["text", "label"]].astype(str)
    replayed = replay.sample()[["text", "label"]]
    relabelled = 0
    if task.name == "token" and settings.training.relabel_outside_above is not None:
        # New rows leave old types O, and replayed rows of earlier rounds leave later types O: both are
        # filled from the champion, which knows every type so far (one pass over both).
        both, relabelled = relabel_outside(
            pd.concat([feedback_rows, replayed], ignore_index=True),
            champion.model_dir,
            settings.training.relabel_outside_above,
            settings.training.max_length,
        )
        feedback_rows, replayed = both.iloc[: len(feedback_rows)], both.iloc[len(feedback_rows) :]
    parts = create_splits(feedback_rows, FEEDBACK_SPLIT, settings.training.seed, task.strata)
    repeats = repeats_for_share(len(parts.train), len(replayed), settings.replay.max_share)
    frames = {
        "train": pd.concat([*[parts.train] * repeats, replayed], ignore_index=True),
        "validation": pd.concat([base.validation, parts.validation], ignore_index=True),
        "test": base.test,
        "feedback": parts.test,
        "feedback_train": parts.train,
    }
    past_holdouts = load_past_holdouts(settings)
    if not past_holdouts.empty:  # else it would be the test set again
        frames["regression"] = pd.concat([base.test, past_holdouts], ignore_index=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame[["text", "label"]].to_parquet(run_dir / f"{name}.parquet")
    ids = sorted(int(i) for i in feedback["id"])
    logger.info(
        "Retrain plan: %d feedback rows (%d new labels %s), %d of them trained %d time(s), + %d replay rows",
        len(feedback),
        len(new_labels),
        new_labels,
        len(parts.train),
        repeats,
        len(replayed),
    )
    return RetrainPlan(
        data_dir=run_dir,
        champion_version=champion.version,
        champion_dir=champion.model_dir,
        labels=labels,
        new_labels=new_labels,
        new_classes=sorted(task.classes(new_labels)),
        relabelled_words=relabelled,
        feedback_repeats=repeats,
        feedback_ids=ids,
        batch_ids=sorted(set(feedback["batch_id"].astype(str))),
        batch_rows={
            str(k): int(v) for k, v in sorted(feedback["batch_id"].astype(str).value_counts().items())
        },
        drift_state=drift_state(store),
        retrain_key=retrain_key(ids),
        test_version=test_version,
        eval_sets=[name for name in ("test", "regression", "feedback") if name in frames],
    )


def drift_state(store: FeedbackStore) -> str:
    """What the monitor last said, when, on which champion: the drift state a retrained model learnt in."""
    last = store.last_decision("monitor")
    if last is None:
        return "no monitoring check was recorded before this round"
    checks = last.details.get("checks") or {}
    drift = last.details.get("drift") or {}
    alarms = [key.removesuffix("_alarm") for key, on in drift.items() if key.endswith("_alarm") and on]
    flags = [name for name in ("drift", "decay") if checks.get(f"{name}_detected")]
    verdict = (" and ".join(flags) + " detected") if flags else "no drift or decay detected"
    signals = f" (signals: {', '.join(alarms)})" if alarms else ""
    return (
        f"{verdict}{signals} by the monitor check of {last.created_at.isoformat(timespec='seconds')} on "
        f"v{last.model_version or '?'} ({last.details.get('window_size', '?')} rows): {last.reason}"
    )[:MAX_TAG_CHARS]


def retrain_key(feedback_ids: list[int]) -> str:
    """The same feedback rows → the same key, so a rerun (even after the crashed round already moved
    the production alias) never trains or registers them twice."""
    payload = json.dumps({"feedback": sorted(feedback_ids)})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextmanager
def retrain_lock(store: FeedbackStore, holder: str) -> Iterator[bool]:
    """Hold the retrain lock for ``holder`` while the block runs; yields False (holding nothing) when a
    live round holds it. A holder whose process died, or one older than ``RETRAIN_LOCK_STALE_AFTER``, is
    taken over."""
    if not store.acquire_lock(
        RETRAIN_LOCK, holder, stale_after=RETRAIN_LOCK_STALE_AFTER, holder_is_dead=holder_is_dead
    ):
        yield False
        return
    try:
        yield True
    finally:
        store.release_lock(RETRAIN_LOCK, holder)


def retrain_lineage(
    settings: Settings, plan: RetrainPlan, dataset_version: str, flow_run_id: str
) -> dict[str, str]:
    """The version tags that say where a retrained candidate came from: its training snapshot, the frozen
    test set, the parent champion, the feedback it learned and the retrain key a rerun finds it by."""
    return {
        "loopline.dataset_version": dataset_version,
        "loopline.test_version": plan.test_version,
        "loopline.parent_version": plan.champion_version,
        "loopline.feedback_batches": ",".join(plan.batch_ids),
        "loopline.feedback_rows": str(len(plan.feedback_ids)),
        "loopline.feedback_batch_rows": json.dumps(plan.batch_rows, sort_keys=True)[:MAX_TAG_CHARS],
        "loopline.drift_at_training": plan.drift_state or "unknown",
        "loopline.new_labels": ",".join(plan.new_labels),
        "loopline.task": settings.task,
        **({"loopline.relabelled_words": str(plan.relabelled_words)} if settings.task == "token" else {}),
        RETRAIN_KEY_TAG: plan.retrain_key,
        "loopline.base_model": settings.resolved_base_model,
        "loopline.contract": "passed",
        "loopline.git_commit": git_commit(),
        "loopline.prefect_flow_run_id": flow_run_id,
    }


def record_retrain_skipped(store: FeedbackStore, trigger: str, why: str) -> int:
    """Record a round that did not train (another holds the lock, no feedback waits); returns its id."""
    return store.record_decision("retrain", False, why, {"status": "skipped", "trigger": trigger})


def record_gate_failed(
    store: FeedbackStore, trigger: str, error: Exception, champion_version: str, run_id: str
) -> int:
    """Record a round that trained but whose candidate failed the gate: it counts as a completed retrain
    (the cooldown starts), and nothing was registered."""
    return store.record_decision(
        "retrain",
        True,
        f"gate failed: {error}",
        {"status": "completed", "gate": "failed", "trigger": trigger},
        model_version=champion_version,
        run_id=run_id,
    )


def record_retrain_registered(
    store: FeedbackStore,
    trigger: str,
    plan: RetrainPlan,
    gate: GateReport,
    version: str,
    aliases: tuple[str, ...],
    run_id: str,
) -> int:
    """Record a completed round that registered ``version`` (with its aliases) and the gate's evidence."""
    return store.record_decision(
        "retrain",
        True,
        f"registered v{version} ({', '.join(aliases)})",
        {
            "status": "completed",
            "gate": "passed",
            "trigger": trigger,
            "new_labels": plan.new_labels,
            "gate_report": gate.to_dict(),
        },
        model_version=version,
        run_id=run_id,
    )


def finish_retrain(settings: Settings, store: FeedbackStore, plan: RetrainPlan, version: str) -> None:
    """Fold the round's training rows into the replay buffer and its held-out rows (never trained on)
    into the regression set that later rounds check forgetting on, then mark the feedback used by
    ``version``. Marking comes last, so a round killed before it is finished by the next run; the
    buffers skip an update they already hold (keyed by the retrain key)."""
    seed = settings.training.seed
    strata = get_task(settings.task).strata
    if settings.replay.per_class > 0:
        buffer = ReplayBuffer.load(replay_path(settings))
        buffer.update(
            plan.frame("feedback_train"), settings.replay.per_class, seed, key=plan.retrain_key, strata=strata
        )
        buffer.save()
    if settings.gate.regression_per_class > 0:
        holdouts = ReplayBuffer.load(regression_path(settings))
        holdouts.update(
            plan.frame("feedback"),
            settings.gate.regression_per_class,
            seed,
            key=plan.retrain_key,
            strata=strata,
        )
        holdouts.save()
    crash_point("retrain.buffers")
    store.mark_used(plan.feedback_ids, version)


def replay_path(settings: Settings) -> Path:
    return settings.data_dir / "replay.parquet"


def regression_path(settings: Settings) -> Path:
    """Past rounds' feedback holdouts, class-balanced (a ReplayBuffer file of rows never trained on)."""
    return settings.data_dir / "regression.parquet"


def load_past_holdouts(settings: Settings) -> pd.DataFrame:
    """Past rounds' feedback holdouts (text, label): rows no model was trained on; empty before any round."""
    return ReplayBuffer.load(regression_path(settings)).sample()


def save_training_snapshot(settings: Settings, plan: RetrainPlan) -> str:
    """The exact rows the candidate trains on, as a dataset version (the next reference for drift)."""
    source = f"retrain from v{plan.champion_version}: feedback {','.join(plan.batch_ids)} + replay"
    units = get_task(settings.task).label_units
    return save_snapshot(plan.frame("train"), settings.data_dir, source=source, label_units=units).version


def _replay_buffer(settings: Settings, base_train: pd.DataFrame) -> ReplayBuffer:
    """The persisted buffer; seeded from the champion's base training split the first time."""
    path = replay_path(settings)
    if settings.replay.per_class == 0:
        return ReplayBuffer(path)
    buffer = ReplayBuffer.load(path)
    if len(buffer) == 0:
        strata = get_task(settings.task).strata
        buffer.update(base_train, settings.replay.per_class, settings.training.seed, strata=strata).save()
    return buffer
