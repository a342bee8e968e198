"""A monitor decision's drift signals as rows a person reads: what was measured, against what, alarm or not.

Read from the JSON-safe drift dict a decision records (``DriftReport.to_dict``), so the Prefect artifact
of a monitor run and ``loopline status`` (which reads the decision back from the feedback store) show the
same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Signal:
    """One drift or decay signal: ``measured`` against ``limit`` (both already formatted)."""

    name: str
    measured: str
    limit: str
    alarm: bool

    def describe(self) -> str:
        relation = "above" if self.alarm else "within"
        return f"{self.name} {self.measured} ({relation} {self.limit})"


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _novelty(part: Mapping[str, Any]) -> Signal:
    measured = f"{_share(part.get('novel_share'))} novel ({part.get('novel_count', '-')} texts)"
    return Signal("novelty", measured, f"bound {_share(part.get('bound'))}", bool(part.get("alarm")))


def _categorical(name: str) -> Callable[[Mapping[str, Any]], Signal]:
    def read(part: Mapping[str, Any]) -> Signal:
        new = list(part.get("new_categories") or [])
        measured = f"TV distance {_number(part.get('distance'))}" + (
            f", new: {', '.join(new)}" if new else ""
        )
        return Signal(name, measured, f"threshold {_number(part.get('threshold'))}", bool(part.get("alarm")))

    return read


def _confidence(part: Mapping[str, Any]) -> Signal:
    measured = (
        f"mean {_number(part.get('reference_mean'))} → {_number(part.get('current_mean'))} "
        f"(KS p={_number(part.get('ks_pvalue'), 4)})"
    )
    return Signal("confidence drift", measured, "a significant drop", bool(part.get("alarm")))


def _decay(part: Mapping[str, Any]) -> Signal:
    measured = (
        f"accuracy {_number(part.get('accuracy'))} vs {_number(part.get('reference_accuracy'))} "
        f"on {part.get('labelled_rows', 0)} labelled rows"
    )
    return Signal(
        "decay", measured, f"a significant drop (≥ {part.get('min_rows')} rows)", bool(part.get("alarm"))
    )


def _descriptors(part: Mapping[str, Any]) -> list[Signal]:
    low, high = _number(part.get("length_low"), 1), _number(part.get("length_high"), 1)
    return [
        Signal(
            "text length",
            f"mean {_number(part.get('current_mean_length'), 1)} chars",
            f"range {low}–{high}",
            bool(part.get("length_alarm")),
        ),
        Signal(
            "out-of-vocabulary words",
            _share(part.get("current_oov_rate")),
            f"bound {_share(part.get('oov_bound'))}",
            bool(part.get("oov_alarm")),
        ),
    ]


_READERS: dict[str, Callable[[Mapping[str, Any]], Signal]] = {
    "novelty": _novelty,
    "label": _categorical("label drift"),
    "prediction": _categorical("prediction drift"),
    "confidence": _confidence,
    "decay": _decay,
}


def drift_signals(drift: Mapping[str, Any]) -> list[Signal]:
    """Every signal the drift dict holds, in a fixed order; none for a window too small to judge."""
    if drift.get("too_small") or not drift.get("window_size"):
        return []
    signals = [read(drift[name]) for name, read in _READERS.items() if drift.get(name)]
    if drift.get("descriptors"):
        signals[1:1] = _descriptors(drift["descriptors"])  # after novelty, the other text signals
    return signals


def main_signal(drift: Mapping[str, Any]) -> str:
    """The signal a person looks at first: the first alarm, else novelty (the primary drift signal)."""
    if drift.get("too_small") or not drift.get("window_size"):
        return f"window of {drift.get('window_size', 0)} rows too small to judge"
    signals = drift_signals(drift)
    alarmed = [signal for signal in signals if signal.alarm]
    chosen = alarmed[0] if alarmed else signals[0] if signals else None
    return chosen.describe() if chosen else "no signal measured"
