"""loopline's promotion gate: may a candidate replace the champion?

First model (no champion): absolute floors on the "test" set. Later models, on the same frozen sets:
- macro-F1 no worse than the champion's by more than ``tolerance`` on every shared set;
- forgetting, on "regression" (the frozen test set plus past rounds' feedback holdouts) if both have
  it, else "test": no past class loses more than ``max_class_recall_drop`` recall, counting only drops
  significant at ``forgetting_alpha`` (one-sided Fisher exact test on the class's rows), so one miss
  among a handful of rows does not block a retrain;
- every new label reaches ``min_new_label_recall`` on each set that has at least
  ``min_new_label_examples`` examples of it; one no set holds that often is reported, not judged.
Always: the behaviour pass rate reaches ``min_behaviour_pass_rate``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import fisher_exact

from loopline.config import GateConfig
from loopline.errors import DataError, GateFailed
from loopline.evaluation.evaluate import EvalReport
from loopline.evaluation.metrics import json_float

logger = logging.getLogger(__name__)

EPSILON = 1e-9  # a value exactly on its threshold passes despite float rounding
PRIMARY_SET = "test"
FORGETTING_SETS = ("regression", "test")


@dataclass(frozen=True)
class GateCheck:
    """One rule of the gate: ``passed`` is ``value`` compared with ``threshold``; ``detail`` explains."""

    name: str
    passed: bool
    value: float | None
    threshold: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "value": json_float(self.value),
            "threshold": json_float(self.threshold),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateReport:
    """The verdict and its evidence; ``candidate``/``champion`` summarise the metrics per set."""

    passed: bool
    checks: list[GateCheck]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None

    @property
    def failed_checks(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": bool(self.passed),
            "checks": [check.to_dict() for check in self.checks],
            "candidate": self.candidate,
            "champion": self.champion,
        }

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"Gate {verdict} ({len(self.checks) - len(self.failed_checks)}/{len(self.checks)} checks)"]
        lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise ``GateFailed`` (with this report attached) naming each failed check and its numbers."""
        failed = self.failed_checks
        if not failed:
            return
        listing = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise GateFailed(
            f"The candidate failed {len(failed)} of {len(self.checks)} gate checks: {listing}.",
            where=f"evaluation sets {sorted(self.candidate)}",
            hint="Do not promote this model; inspect the gate report, improve the data or training "
            "(more epochs, replay of past classes, more examples of new labels) and retrain.",
            report=self,
        )


def _ge(value: float, threshold: float) -> bool:
    return value + EPSILON >= threshold


def _floor_check(name: str, value: float, threshold: float, what: str) -> GateCheck:
    ok = _ge(value, threshold)
    relation = ">=" if ok else "<"
    return GateCheck(name, ok, value, threshold, f"{what} {value:.4f} {relation} floor {threshold:.4f}")


def _first_model_checks(candidate: Mapping[str, EvalReport], cfg: GateConfig) -> list[GateCheck]:
    test = candidate[PRIMARY_SET].metrics
    return [
        _floor_check(f"{PRIMARY_SET}.accuracy", test.accuracy, cfg.min_accuracy, "accuracy"),
        _floor_check(
            f"{PRIMARY_SET}.{test.primary_name}", test.primary, cfg.min_macro_f1, _words(test.primary_name)
        ),
    ]


def _words(primary_name: str) -> str:
    return {"macro_f1": "macro-F1", "entity_f1": "entity F1"}.get(primary_name, primary_name)


def _macro_f1_checks(
    candidate: Mapping[str, EvalReport], champion: Mapping[str, EvalReport], cfg: GateConfig
) -> list[GateCheck]:
    shared = [name for name in candidate if name in champion]
    if not shared:
        return [
            GateCheck(
                "shared_sets",
                False,
                None,
                1.0,
                f"no evaluation set in common (candidate {sorted(candidate)}, champion {sorted(champion)}); "
                "evaluate both models on the same frozen sets",
            )
        ]
    checks = []
    for name in shared:
        metric = candidate[name].metrics.primary_name
        new, old = candidate[name].metrics.primary, champion[name].metrics.primary
        threshold = old - cfg.tolerance
        ok = _ge(new, threshold)
        detail = (
            f"{_words(metric)} {new:.4f} vs champion {old:.4f} (change {new - old:+.4f}, "
            f"allowed down to {threshold:.4f} with tolerance {cfg.tolerance:.4f})"
        )
        checks.append(GateCheck(f"{name}.{metric}_vs_champion", ok, new, threshold, detail))
    return checks


@dataclass(frozen=True, order=True)
class _RecallDrop:
    """One past class on the forgetting set: recall before → after over ``rows`` rows, and how likely
    a drop at least this large is under "no change" (one-sided Fisher exact test on the counts)."""

    drop: float
    label: str
    old: float
    new: float
    rows: int
    p_value: float

    @classmethod
    def measure(cls, label: str, old: float, new: float, rows: int) -> _RecallDrop:
        old_hits, new_hits = round(old * rows), round(new * rows)
        table = [[old_hits, rows - old_hits], [new_hits, rows - new_hits]]
        p_value = float(fisher_exact(table, alternative="greater").pvalue)
        return cls(old - new, label, old, new, rows, p_value)

    def describe(self) -> str:
        return (
            f"class '{self.label}' recall {self.old:.4f} -> {self.new:.4f} "
            f"(drop {self.drop:.4f}, {self.rows} rows, p={self.p_value:.3g})"
        )


def _forgetting_check(
    candidate: Mapping[str, EvalReport], champion: Mapping[str, EvalReport], cfg: GateConfig, new: set[str]
) -> GateCheck | None:
    name = next((n for n in FORGETTING_SETS if n in candidate and n in champion), None)
    if name is None:
        return None
    old_metrics, new_metrics = champion[name].metrics, candidate[name].metrics
    drops: list[_RecallDrop] = []
    for label in old_metrics.per_class:  # labels, or entity types
        old_recall = old_metrics.recall(label)
        if label in new or old_recall is None:
            continue
        new_recall = new_metrics.recall(label) or 0.0
        drops.append(_RecallDrop.measure(label, old_recall, new_recall, old_metrics.support(label)))
    limit, alpha = cfg.max_class_recall_drop, cfg.forgetting_alpha
    if not drops:
        return GateCheck(f"{name}.forgetting", True, 0.0, limit, "no past class in this set")
    drops.sort(reverse=True)
    over = [d for d in drops if d.drop > limit + EPSILON]
    failing = [d for d in over if d.p_value <= alpha + EPSILON]
    words = "; ".join(d.describe() for d in (failing or over or drops)[:5])
    if failing:
        detail = (
            f"{len(failing)} of {len(drops)} past classes lost more than {limit:.4f} recall "
            f"(significant at p<={alpha:g}): {words}"
        )
    elif over:
        detail = (
            f"{len(over)} of {len(drops)} past classes dropped more than {limit:.4f} recall, none "
            f"significantly (p>{alpha:g}, too few rows to tell from noise): {words}"
        )
    else:
        detail = f"all {len(drops)} past classes within {limit:.4f} recall drop; largest: {words}"
    value = failing[0].drop if failing else drops[0].drop
    return GateCheck(f"{name}.forgetting", not failing, value, limit, detail)


def _new_label_checks(
    candidate: Mapping[str, EvalReport], cfg: GateConfig, new: Sequence[str]
) -> list[GateCheck]:
    threshold, minimum = cfg.min_new_label_recall, cfg.min_new_label_examples
    checks = []
    for label in new:
        counts = {n: r.metrics.support(label) for n, r in candidate.items()}
        recalls = {n: r.metrics.recall(label) for n, r in candidate.items()}
        per_set = ", ".join(
            f"{n} {'-' if recalls[n] is None else f'{recalls[n]:.4f}'} ({counts[n]} examples)"
            for n in candidate
        )
        judged = {n: r for n, r in recalls.items() if r is not None and counts[n] >= minimum}
        if not judged:
            # Too few examples to tell a miss from noise: say so rather than block every retrain on it.
            detail = (
                f"new label '{label}' not judged: no evaluation set has {minimum} examples of it "
                f"(min_new_label_examples) [{per_set}]; add labelled examples to measure it"
            )
            logger.warning("Gate: %s", detail)
            checks.append(GateCheck(f"new_label.{label}", True, None, threshold, detail))
            continue
        worst = min(judged.values())
        ok = _ge(worst, threshold)
        detail = (
            f"new label '{label}' recall {per_set}; needs >= {threshold:.4f} on each set with "
            f">= {minimum} examples"
        )
        checks.append(GateCheck(f"new_label.{label}", ok, worst, threshold, detail))
    return checks


def _behaviour_checks(candidate: Mapping[str, EvalReport], cfg: GateConfig) -> list[GateCheck]:
    threshold = cfg.min_behaviour_pass_rate
    checks = []
    for name, report in candidate.items():
        if report.behaviour is None:
            continue
        rate = report.behaviour.overall_pass_rate
        worst = min(report.behaviour.checks, key=lambda c: c.pass_rate, default=None)
        rates = ", ".join(f"{c.name} {c.pass_rate:.3f} (n={c.n})" for c in report.behaviour.checks)
        ok = _ge(rate, threshold)
        detail = f"behaviour pass rate {rate:.4f} {'>=' if ok else '<'} {threshold:.4f} [{rates}]"
        if not ok and worst is not None and worst.failures:
            detail += f"; e.g. {worst.name} failure: {worst.failures[0]}"
        checks.append(GateCheck(f"{name}.behaviour", ok, rate, threshold, detail))
    if not checks:
        detail = "no behaviour checks were run; evaluate at least one set with behaviour=True"
        checks.append(GateCheck("behaviour", False, None, threshold, detail))
    return checks


def _summary(reports: Mapping[str, EvalReport]) -> dict[str, Any]:
    return {
        name: {
            "num_rows": r.num_rows,
            "accuracy": json_float(r.metrics.accuracy),
            "macro_f1": json_float(r.metrics.macro_f1),
            r.metrics.primary_name: json_float(r.metrics.primary),
            "ece": json_float(r.metrics.ece),
            "behaviour_pass_rate": json_float(r.behaviour.overall_pass_rate) if r.behaviour else None,
            "recall": {
                label: json_float(stats["recall"])
                for label, stats in r.metrics.per_class.items()
                if stats["support"] > 0
            },
        }
        for name, r in reports.items()
    }


def evaluate_gate(
    candidate: Mapping[str, EvalReport],
    champion: Mapping[str, EvalReport] | None,
    cfg: GateConfig,
    new_labels: Sequence[str] = (),
    *,
    behaviour_required: bool = True,
) -> GateReport:
    """Judge ``candidate`` (eval-set name → report) against ``champion`` (None for a first model).

    ``new_labels`` are the classes the champion lacks (labels, or entity types for token models);
    ``behaviour_required=False`` for tasks whose models the behaviour checks do not apply to."""
    if PRIMARY_SET not in candidate:
        raise DataError(
            f"The gate needs the candidate's '{PRIMARY_SET}' evaluation; got sets {sorted(candidate)}.",
            hint=f"Evaluate the candidate on the frozen '{PRIMARY_SET}' split.",
        )
    new = [str(label) for label in new_labels]
    if champion is None:
        checks = _first_model_checks(candidate, cfg)
    else:
        checks = _macro_f1_checks(candidate, champion, cfg)
        forgetting = _forgetting_check(candidate, champion, cfg, set(new))
        checks += [forgetting] if forgetting is not None else []
    checks += _new_label_checks(candidate, cfg, new)
    checks += _behaviour_checks(candidate, cfg) if behaviour_required else []
    passed = all(check.passed for check in checks)
    report = GateReport(
        passed=passed,
        checks=checks,
        candidate=_summary(candidate),
        champion=_summary(champion) if champion is not None else None,
    )
    logger.info("%s", report.summary())
    return report
