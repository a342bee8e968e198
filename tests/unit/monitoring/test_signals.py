"""A decision's drift signals read back from its recorded dict: the first alarm is the main signal."""

from __future__ import annotations

from tests.unit.orchestration.test_artifacts import DRIFT

from loopline.monitoring.signals import drift_signals, main_signal


def test_signals_come_in_a_fixed_order_with_text_signals_after_novelty() -> None:
    names = [signal.name for signal in drift_signals(DRIFT)]
    assert names == ["novelty", "text length", "out-of-vocabulary words", "label drift", "confidence drift"]


def test_main_signal_is_the_first_alarm_else_novelty() -> None:
    assert main_signal(DRIFT) == "novelty 42.0% novel (50 texts) (above bound 12.0%)"
    quiet = {**DRIFT, "novelty": {**DRIFT["novelty"], "alarm": False}}
    assert main_signal(quiet).startswith("label drift TV distance 0.310")
    calm = {**quiet, "label": {**DRIFT["label"], "alarm": False}}
    assert main_signal(calm) == "novelty 42.0% novel (50 texts) (within bound 12.0%)"


def test_a_window_too_small_or_empty_says_so() -> None:
    assert main_signal({"window_size": 0, "too_small": True}) == "window of 0 rows too small to judge"
    assert drift_signals({"window_size": 4, "too_small": True}) == []
