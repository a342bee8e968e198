"""loopline's decision of one monitor window as rows a person reads: each signal, its value, its threshold.

The Evidently pages (``report.py``) show Evidently's own verdicts; what decides is loopline's checks
(``drift.py``) and the trigger policy (``policy.py``). ``build_verdict`` lays those out — the decision,
its reason, then one row per signal and per policy check — so the report shows what decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loopline.config import MonitorConfig
from loopline.monitoring.drift import CategoricalDrift, DriftReport, DriftSettings
from loopline.monitoring.policy import TriggerDecision

Role = Literal["decides", "advisory", "policy"]


@dataclass(frozen=True)
class Signal:
    """One row: what was measured, against which threshold, and what it said."""

    name: str
    value: str
    threshold: str
    status: str  # ALARM / ok / advisory flag / not judged / no data / blocks retrain
    role: Role

    def as_row(self) -> list[str]:
        return [self.name, self.value, self.threshold, self.status, self.role]


@dataclass(frozen=True)
class Verdict:
    """The trigger's decision with the signals and checks it was made from."""

    retrain: bool
    reason: str
    signals: tuple[Signal, ...]

    @property
    def headline(self) -> str:
        return f"loopline decision: {'RETRAIN' if self.retrain else 'no retrain'}"


SIGNAL_COLUMNS = ("Signal", "Value", "Threshold", "Status", "Role")


def build_verdict(
    report: DriftReport | None,
    decision: TriggerDecision,
    cfg: MonitorConfig,
    settings: DriftSettings | None = None,
) -> Verdict:
    """The decision and one row per signal (``settings``: what ``check_drift`` ran with)."""
    settings = settings or DriftSettings()
    rows = _drift_rows(report, settings, cfg) if report is not None else []
    return Verdict(decision.retrain, decision.reason, (*rows, *_policy_rows(decision)))


def _status(alarm: bool, report: DriftReport, flag: str = "ALARM") -> str:
    if report.too_small:
        return "not judged"
    return flag if alarm else "ok"


def _drift_rows(report: DriftReport, settings: DriftSettings, cfg: MonitorConfig) -> list[Signal]:
    n = report.novelty
    rows = [
        Signal(
            "Window size",
            f"{report.window_size} rows (reference {report.reference_size})",
            f"≥ {report.min_window} rows to judge",
            "too small: no alarms" if report.too_small else "ok",
            "policy",
        ),
        Signal(
            "Embedding novelty (share of novel texts)",
            f"{n.novel_share:.1%} ({n.novel_count} of {n.window_size})",
            f"alarm above {n.bound:.1%} (same-distribution share {n.expected_share:.1%})",
            _status(report.novelty_alarm, report),
            "decides",
        ),
        _categorical("Label drift (total variation)", report.label, report.label_alarm, report),
        _categorical(
            "Predicted-label drift (total variation)", report.prediction, report.prediction_alarm, report
        ),
    ]
    c = report.confidence
    rows.append(
        Signal(
            "Confidence drift",
            "no predictions"
            if c is None
            else f"mean {c.reference_mean:.3f} → {c.current_mean:.3f} (drop {c.mean_drop:.3f}), "
            f"KS p = {c.ks_pvalue:.2g}",
            f"alarm when the drop ≥ {settings.confidence_min_drop:g} and KS p < {settings.alpha:g}",
            "no data" if c is None else _status(report.confidence_alarm, report),
            "decides",
        )
    )
    d = report.descriptors
    advisory = _status(report.descriptor_alarm, report, flag="advisory flag")
    rows += [
        Signal(
            "Text length (characters)",
            f"mean {d.current_mean_length:.0f} (reference {d.reference_mean_length:.0f})",
            f"flag outside {d.length_low:.0f}–{d.length_high:.0f}",
            advisory if d.length_alarm or report.too_small else "ok",
            "advisory",
        ),
        Signal(
            "Out-of-vocabulary rate",
            f"{d.current_oov_rate:.1%} (reference {d.reference_oov_rate:.1%})",
            f"flag above {d.oov_bound:.1%}",
            advisory if d.oov_alarm or report.too_small else "ok",
            "advisory",
        ),
        _decay(report, settings, cfg),
    ]
    return rows


def _categorical(name: str, part: CategoricalDrift | None, alarm: bool, report: DriftReport) -> Signal:
    if part is None:
        return Signal(name, "no values in the window", "—", "no data", "decides")
    new = f"; new: {', '.join(part.new_categories[:5])}" if part.new_categories else ""
    return Signal(
        name,
        f"{part.distance:.3f} on {part.current_rows} rows{new}",
        f"alarm above {part.threshold:.3f}",
        _status(alarm, report),
        "decides",
    )


def _decay(report: DriftReport, settings: DriftSettings, cfg: MonitorConfig) -> Signal:
    k = report.decay
    threshold = (
        f"alarm when accuracy drops ≥ {cfg.decay_threshold:.1%} with p < {settings.decay_alpha:g}, "
        f"on ≥ {settings.decay_min_rows} labelled rows"
    )
    if k is None or k.accuracy is None:
        rows = 0 if k is None else k.labelled_rows
        return Signal("Performance decay", f"{rows} labelled rows to score", threshold, "no data", "decides")
    return Signal(
        "Performance decay",
        f"accuracy {k.accuracy:.1%} on {k.labelled_rows} rows (champion's test {k.reference_accuracy:.1%})",
        threshold,
        _status(report.decay_alarm, report, flag="DECAY"),
        "decides",
    )


def _policy_rows(decision: TriggerDecision) -> list[Signal]:
    checks = decision.checks
    hours = checks.get("hours_since_last_retrain")
    scheduled = bool(checks.get("scheduled"))
    needed = 1 if scheduled else checks["min_labelled_feedback"]  # a scheduled run needs any new label
    rows = [
        Signal(
            "Labelled feedback",
            f"{checks['labelled_feedback']} accepted rows",
            f"≥ {needed}" + (" (scheduled run)" if scheduled else ""),
            "ok" if checks["labelled_feedback"] >= needed else "blocks retrain",
            "policy",
        ),
        Signal(
            "Cooldown",
            "no earlier retrain" if hours is None else f"{hours:.1f} h since the last retrain",
            f"≥ {checks['cooldown_hours']:g} h",
            "ok" if checks["cooldown_passed"] else "blocks retrain",
            "policy",
        ),
    ]
    if scheduled:
        rows.append(Signal("Scheduled run", "yes", "no drift needed", "ok", "policy"))
    return rows
