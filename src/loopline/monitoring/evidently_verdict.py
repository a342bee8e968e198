"""loopline's decision as an Evidently 0.7 custom metric, shown first on the report's page.

Evidently renders a metric's widgets in its own page (JavaScript from the saved HTML); a custom metric
whose result carries a text widget (Markdown: the decision and its reason) and a table (each signal,
value, threshold, status) puts what decided on the same page as Evidently's own verdicts, and its
config (the same numbers) into the snapshot's JSON. Imported lazily: importing Evidently takes seconds.
"""

from __future__ import annotations

import re
from typing import Any

from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
from evidently.legacy.renderers.html_widgets import table_data, text_widget

from loopline.monitoring.verdict import SIGNAL_COLUMNS, Verdict

TITLE = "loopline decision"
NOTE = (
    "loopline's checks decide (rows with role *decides*; *policy* rows can hold a retrain back; "
    "*advisory* rows are shown, never trigger). Evidently's panels below are for looking."
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-!|~])")


class LooplineDecision(SingleValueMetric):
    """The trigger's decision (value 1.0: retrain, 0.0: no retrain), its reason and signal rows."""

    retrain: bool
    headline: str
    reason: str
    signals: list[list[str]]


class LooplineDecisionCalculation(SingleValueCalculation[LooplineDecision]):
    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> SingleValue:
        metric = self.metric
        result = self.result(1.0 if metric.retrain else 0.0)
        text = f"## {metric.headline}\n\n{escape_markdown(metric.reason)}\n\n{NOTE}"
        result.widget = [
            text_widget(title=TITLE, text=text),
            table_data(title="loopline signals", column_names=list(SIGNAL_COLUMNS), data=metric.signals),
        ]
        return result

    def display_name(self) -> str:
        return TITLE


def escape_markdown(text: str) -> str:
    """Plain text for a Markdown widget: numbers like ``20% (bound 5%)`` or ``a_b`` stay literal."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def decision_metric(verdict: Verdict) -> LooplineDecision:
    return LooplineDecision(
        retrain=verdict.retrain,
        headline=verdict.headline,
        reason=verdict.reason,
        signals=[signal.as_row() for signal in verdict.signals],
    )
