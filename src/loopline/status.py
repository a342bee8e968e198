"""``loopline status``: where the loop stands, read from the stores — the champion, the last monitor
decision, the feedback that waits, what people should label, and the next scheduled run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loopline.config import Settings
from loopline.metric_names import TEST_MACRO_F1
from loopline.monitoring.signals import main_signal

# The champion's headline: the gate's primary score on the frozen test split.
HEADLINE_METRICS = (("test.entity_f1", "test entity F1"), (TEST_MACRO_F1, "test macro-F1"))


@dataclass(frozen=True)
class ChampionStatus:
    version: str
    metric: str | None  # the headline's name, e.g. "test macro-F1"
    value: float | None
    dataset_version: str | None
    created: str


@dataclass(frozen=True)
class MonitorStatus:
    when: str
    retrain: bool
    reason: str
    main_signal: str
    model_version: str | None


@dataclass(frozen=True)
class LoopStatus:
    model_name: str
    champion: ChampionStatus | None
    last_monitor: MonitorStatus | None
    feedback_waiting: int  # accepted labelled rows no version was trained on yet
    feedback_unreviewed: int  # rows waiting for the feedback contract (the next monitor run reviews them)
    flagged_for_labelling: int  # abstained / low-margin served predictions nobody labelled yet
    flagged_capped: bool  # the count stopped at FLAGGED_CAP

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FLAGGED_CAP = 10_000


def home_is_empty(settings: Settings) -> bool:
    """An embedded home nothing has been written to yet (no MLflow database): there is nothing to show,
    and reading would create the stores."""
    return settings.tracking_uri is None and not (settings.home / "mlflow.db").is_file()


def read_champion(settings: Settings) -> ChampionStatus | None:
    """The production version and its headline metric; None before the first registration."""
    from loopline.registry.lookups import list_versions, model_exists

    if not model_exists(settings.model_name):
        return None
    for summary in list_versions(settings.model_name):
        if "production" not in summary.aliases:
            continue
        metric, value = next(
            ((label, summary.metrics[key]) for key, label in HEADLINE_METRICS if key in summary.metrics),
            (None, None),
        )
        return ChampionStatus(summary.version, metric, value, summary.data_version, summary.created)
    return None


def read_loop_status(settings: Settings) -> LoopStatus:
    """Everything but the schedule (that one asks Prefect: ``loopline.flows.next_run``)."""
    from loopline.feedback.store import FeedbackStore

    champion = read_champion(settings)
    feedback_db = settings.home / "feedback.db"
    if settings.feedback_db_url is None and not feedback_db.is_file():
        return LoopStatus(settings.model_name, champion, None, 0, 0, 0, False)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        last = store.last_decision("monitor")
        waiting = len(store.accepted_unused_feedback())
        unreviewed = len(store.pending_feedback())
        flagged = len(store.flagged_unlabelled(FLAGGED_CAP))
    monitor = None
    if last is not None:
        monitor = MonitorStatus(
            when=last.created_at.isoformat(),
            retrain=last.retrain,
            reason=last.reason,
            main_signal=main_signal(last.details.get("drift") or {}),
            model_version=last.model_version,
        )
    return LoopStatus(
        settings.model_name, champion, monitor, waiting, unreviewed, flagged, flagged >= FLAGGED_CAP
    )
