"""When to retrain: a signal (drift or decay) or a schedule, enough labelled feedback, cooldown.

Rules, in order:

1. A scheduled run retrains when there is any new labelled feedback (≥ 1 row) and the cooldown
   has passed; drift is not required.
2. Otherwise a retrain needs a signal — ``report.drift_detected`` or ``report.decay_detected`` —
   *and* at least ``cfg.min_labelled_feedback`` accepted labelled rows (drift without labels
   cannot be learned from) *and* ``cfg.cooldown_hours`` since the last retrain.

Every decision carries a reason a person can read, with the numbers, and the checks as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopline.config import MonitorConfig
from loopline.monitoring.drift import DriftReport


@dataclass(frozen=True)
class TriggerDecision:
    """The trigger's verdict, why, and the checks it was made from."""

    retrain: bool
    reason: str
    checks: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reason": self.reason, "checks": dict(self.checks)}


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC so naive and aware values can be compared."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cooldown(
    last_retrain_at: datetime | None, now: datetime, cfg: MonitorConfig
) -> tuple[bool, float | None]:
    if last_retrain_at is None:
        return True, None
    hours = (_aware(now) - _aware(last_retrain_at)).total_seconds() / 3600.0
    return hours >= cfg.cooldown_hours, hours


def _signal_text(report: DriftReport | None) -> str:
    if report is None:
        return "no drift report"
    if report.too_small:
        return f"window too small to judge ({report.window_size} < {report.min_window} rows)"
    found = [
        name for name, flag in (("drift", report.drift_detected), ("decay", report.decay_detected)) if flag
    ]
    head = " and ".join(found) + " detected" if found else "no drift or decay detected"
    return f"{head} ({report.summary()})"


def _checks(
    report: DriftReport | None,
    labelled_feedback: int,
    cooldown_ok: bool,
    hours: float | None,
    cfg: MonitorConfig,
    scheduled: bool,
) -> dict[str, Any]:
    return {
        "scheduled": scheduled,
        "drift_detected": bool(report and report.drift_detected),
        "decay_detected": bool(report and report.decay_detected),
        "window_size": report.window_size if report else None,
        "too_small": report.too_small if report else None,
        "labelled_feedback": labelled_feedback,
        "min_labelled_feedback": cfg.min_labelled_feedback,
        "enough_feedback": labelled_feedback >= cfg.min_labelled_feedback,
        "hours_since_last_retrain": None if hours is None else round(hours, 3),
        "cooldown_hours": cfg.cooldown_hours,
        "cooldown_passed": cooldown_ok,
    }


def _cooldown_text(hours: float | None, cfg: MonitorConfig) -> str:
    if hours is None:
        return "no earlier retrain"
    return f"last retrain {hours:.1f} h ago (cooldown {cfg.cooldown_hours:g} h)"


def decide_retrain(
    report: DriftReport | None,
    labelled_feedback: int,
    last_retrain_at: datetime | None,
    now: datetime,
    cfg: MonitorConfig,
    scheduled: bool = False,
) -> TriggerDecision:
    """Decide whether to retrain now; see the module docstring for the rules."""
    if labelled_feedback < 0:
        raise ValueError("labelled_feedback cannot be negative")
    cooldown_ok, hours = _cooldown(last_retrain_at, now, cfg)
    checks = _checks(report, labelled_feedback, cooldown_ok, hours, cfg, scheduled)
    feedback = f"{labelled_feedback} labelled feedback rows"
    wait = _cooldown_text(hours, cfg)
    if scheduled:
        retrain = labelled_feedback >= 1 and cooldown_ok
        why = "scheduled run" if retrain else "scheduled run skipped"
        if labelled_feedback < 1:
            why += ": no new labelled feedback to learn from"
        elif not cooldown_ok:
            why += f": still in cooldown, {wait}"
        reason = f"{why}; {feedback}, {wait}; {_signal_text(report)}."
        return TriggerDecision(retrain, reason[0].upper() + reason[1:], checks)
    signal = checks["drift_detected"] or checks["decay_detected"]
    retrain = signal and checks["enough_feedback"] and cooldown_ok
    if retrain:
        head = f"Retrain: {_signal_text(report)}; {feedback} ≥ {cfg.min_labelled_feedback}; {wait}."
    elif not signal:
        head = f"No retrain: {_signal_text(report)}."
    elif not checks["enough_feedback"]:
        head = (
            f"No retrain yet: {_signal_text(report)}, but only {feedback} "
            f"(< {cfg.min_labelled_feedback} needed); label more feedback."
        )
    else:
        head = f"No retrain yet: {_signal_text(report)}, but still in cooldown: {wait}."
    return TriggerDecision(bool(retrain), head, checks)
