"""What each flow run shows in the Prefect UI: Markdown artifacts (contract, drift decision, gate,
promotion) under stable keys, and a run name that says which version or batch the run was about.

The renderers are pure functions of the JSON-safe summaries the flows already return, so they are tested
without Prefect. Publishing is a view of work already recorded (MLflow, the feedback store): a failure
to publish is logged and never fails the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from loopline.monitoring.signals import drift_signals

logger = logging.getLogger(__name__)

# Stable keys (lowercase letters, digits and dashes, as Prefect requires): each run adds a version of
# its key, so the Artifacts page shows the latest and the history of each.
CONTRACT_KEY = "loopline-contract"
FEEDBACK_CONTRACT_KEY = "loopline-feedback-contract"
DRIFT_KEY = "loopline-drift-decision"
GATE_KEY = "loopline-gate"
PROMOTION_KEY = "loopline-promotion"
RETRAIN_KEY = "loopline-retrain"
ROUNDS_KEY = "loopline-demo-rounds"


@dataclass(frozen=True)
class ContractCounts:
    """A contract's outcome in numbers: rows in, accepted, quarantined (by rule), and its verdict."""

    source: str
    rows: int
    accepted: int
    quarantined: int
    verdict: str  # passed | accepted | rejected | failed
    by_rule: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0  # feedback rows the store held already (not added again)
    note: str = ""

    @classmethod
    def from_contract(cls, contract: Mapping[str, Any]) -> ContractCounts:
        """From ``ContractResult.to_dict()`` (the training-data contract of ``train_flow``)."""
        return cls(
            source=str(contract.get("source", "")),
            rows=int(contract.get("num_rows", 0)),
            accepted=int(contract.get("num_accepted", 0)),
            quarantined=int(contract.get("num_quarantined", 0)),
            verdict="passed" if contract.get("success") else "failed",
            by_rule=dict(contract.get("quarantined_by_rule") or {}),
        )

    @classmethod
    def from_feedback(
        cls, intake: Mapping[str, Any], batch_summary: Mapping[str, Any] | None, source: str
    ) -> ContractCounts:
        """From ``FeedbackIntake`` (as a dict) and the batch's stored contract summary."""
        summary = batch_summary or {}
        accepted, quarantined = int(intake.get("accepted", 0)), int(intake.get("quarantined", 0))
        status = str(intake.get("batch_status", ""))
        return cls(
            source=source,
            rows=int(summary.get("rows", accepted + quarantined)),
            accepted=accepted,
            quarantined=quarantined,
            verdict=status,
            by_rule=dict(summary.get("quarantined_by_rule") or {}),
            duplicates=int(intake.get("duplicate_rows", 0)),
            note=str(intake.get("reason", "")) if status == "rejected" else "",
        )


def _cell(value: object) -> str:
    """A Markdown table cell: user text (labels, rule names) cannot break the table."""
    text = "-" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def contract_markdown(title: str, counts: ContractCounts) -> str:
    """Rows in / accepted / quarantined, and how many rows each quarantine rule took."""
    lines = [
        f"# {title}: {counts.verdict}",
        "",
        f"Source: `{counts.source}`",
        "",
        *_table(
            ("rows in", "accepted", "quarantined", "already stored"),
            [(counts.rows, counts.accepted, counts.quarantined, counts.duplicates)],
        ),
    ]
    if counts.by_rule:
        by_rule = sorted(counts.by_rule.items(), key=lambda item: (-item[1], item[0]))
        lines += ["", "## Quarantined by reason", "", *_table(("rule", "rows"), by_rule)]
    if counts.note:
        lines += ["", f"**Why:** {counts.note}"]
    return "\n".join(lines)


def drift_markdown(monitor: Mapping[str, Any]) -> str:
    """The monitor's decision, its reason, and every signal with its limit (from ``monitor_flow``'s
    summary: ``MonitorOutcome`` as a dict)."""
    decision = "retrain" if monitor.get("retrain") else "no retrain"
    drift = monitor.get("drift") or {}
    lines = [
        f"# Monitor decision: {decision}",
        "",
        str(monitor.get("reason", "")),
        "",
        f"Champion v{monitor.get('champion_version', '-')}, window {monitor.get('window_size', 0)} "
        f"{monitor.get('window_source', 'feedback')} rows, {monitor.get('labelled_feedback', 0)} labelled "
        "feedback rows waiting.",
    ]
    signals = drift_signals(drift)
    if signals:
        rows = [(s.name, s.measured, s.limit, "ALARM" if s.alarm else "ok") for s in signals]
        lines += ["", "## Signals", "", *_table(("signal", "measured", "limit", "verdict"), rows)]
    flags = {"drift detected": drift.get("drift_detected"), "decay detected": drift.get("decay_detected")}
    lines += ["", ", ".join(f"{name}: {'yes' if value else 'no'}" for name, value in flags.items())]
    return "\n".join(lines)


def gate_markdown(gate: Mapping[str, Any], version: str | None = None) -> str:
    """The gate's verdict, each check with its value and threshold, and the headline metrics per set."""
    checks = list(gate.get("checks") or [])
    passed = sum(bool(check.get("passed")) for check in checks)
    verdict = "passed" if gate.get("passed") else "FAILED"
    about = f" for v{version}" if version else ""
    lines = [f"# Gate {verdict}{about} ({passed}/{len(checks)} checks)", ""]
    rows = [
        (
            check.get("name"),
            "ok" if check.get("passed") else "FAIL",
            _number(check.get("value")),
            _number(check.get("threshold")),
            check.get("detail"),
        )
        for check in checks
    ]
    lines += _table(("check", "verdict", "value", "threshold", "detail"), rows)
    candidate, champion = gate.get("candidate") or {}, gate.get("champion") or {}
    if candidate:
        metric_rows = [
            (
                name,
                scores.get("num_rows"),
                _number(scores.get("macro_f1")),
                _number((champion.get(name) or {}).get("macro_f1")),
                _number(scores.get("accuracy")),
            )
            for name, scores in candidate.items()
        ]
        header = ("set", "rows", "candidate macro-F1", "champion macro-F1", "candidate accuracy")
        lines += ["", "## Scores", "", *_table(header, metric_rows)]
    return "\n".join(lines)


def promotion_markdown(
    model_name: str, version: str, aliases: Sequence[str], parent_version: str | None = None
) -> str:
    """Which version the run registered, the aliases it holds now, and where it came from."""
    where = ", ".join(f"`{alias}`" for alias in aliases) or "no alias"
    lines = [f"# {model_name} v{version}: {where}", ""]
    if "production" in aliases:
        lines.append(f"v{version} is the production model (`models:/{model_name}@production`).")
    else:
        lines.append(f"v{version} is registered; production did not move.")
    if parent_version:
        lines += ["", f"Warm-started from v{parent_version}."]
    return "\n".join(lines)


def rounds_table(rounds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The demo's round-by-round table (as the CLI prints it), one dict per round."""
    table = []
    for item in rounds:
        intake, monitor = item.get("intake") or {}, item.get("monitor") or {}
        retrain = monitor.get("retrain_result") or {}
        gate = retrain.get("gate") or {}
        novelty = (monitor.get("drift") or {}).get("novelty") or {}
        table.append(
            {
                "round": item.get("round"),
                "batch": intake.get("batch_status"),
                "accepted": intake.get("accepted"),
                "quarantined": intake.get("quarantined"),
                "novel share": _number(novelty.get("novel_share"), 3),
                "decision": "retrain" if monitor.get("retrain") else "none",
                "gate": ("passed" if gate.get("passed") else "failed") if gate else "-",
                "version": f"v{retrain['version']}" if retrain.get("version") else "-",
            }
        )
    return table


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """Attach ``markdown`` to the current flow run under ``key`` (latest version shown per key)."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as err:  # a view of recorded work: never fail the loop on it
        logger.warning("Could not publish the Prefect artifact %s: %s", key, err)


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    try:
        create_table_artifact(table=rows, key=key, description=description)
    except Exception as err:
        logger.warning("Could not publish the Prefect artifact %s: %s", key, err)


def name_flow_run(name: str) -> None:
    """Rename the current flow run once what it is about is known (a version, a batch id)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(str(run_id)), name=name)
    except Exception as err:
        logger.warning("Could not rename flow run %s to %r: %s", run_id, name, err)
