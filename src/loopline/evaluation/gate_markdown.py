"""The gate's verdict as Markdown (a table of check / value / threshold / passed): for the run's
``gate_report.md`` beside the JSON, and for the model card. Reads the JSON form (``GateReport.to_dict``),
so a report read back from MLflow renders the same as a fresh one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def fmt_number(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return md_cell(value)


def gate_verdict(gate: Mapping[str, Any]) -> str:
    """``PASSED (4/4 checks)``."""
    checks = list(gate.get("checks") or [])
    passed = sum(bool(c.get("passed")) for c in checks)
    return f"{'PASSED' if gate.get('passed') else 'FAILED'} ({passed}/{len(checks)} checks)"


def gate_table(gate: Mapping[str, Any], *, details: bool = True) -> str:
    """One row per check: its value against its threshold, whether it passed (and why, with ``details``)."""
    head = "| check | value | threshold | passed |" + (" detail |" if details else "")
    rule = "|---|---:|---:|:---:|" + ("---|" if details else "")
    rows = [head, rule]
    for check in gate.get("checks") or []:
        cells = [
            f"`{md_cell(check.get('name', '?'))}`",
            fmt_number(check.get("value")),
            fmt_number(check.get("threshold")),
            "yes" if check.get("passed") else "**no**",
        ]
        if details:
            cells.append(md_cell(check.get("detail", "")))
        rows.append("| " + " | ".join(cells) + " |")
    if len(rows) == 2:
        rows.append(
            "| (no checks: this version was not judged by the gate) | - | - | - |" + (" |" if details else "")
        )
    return "\n".join(rows)


def gate_markdown(gate: Mapping[str, Any]) -> str:
    """The whole report as a Markdown page (``gate/gate_report.md`` on the run)."""
    return f"# Gate {gate_verdict(gate)}\n\n{gate_table(gate)}\n"
