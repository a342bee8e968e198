"""Load the Great Expectations suites in ``data_contracts/`` and read loopline's rule metadata.

A suite is plain GX 1.x JSON. Each expectation carries ``meta.loopline`` saying which stage it
runs in, what happens to failing rows (``quarantine``, ``truncate``), or to the batch (``abort``,
``fail``), and the human reason. Thresholds are ``{"$PARAMETER": name}`` values, filled from
:class:`~loopline.config.ContractConfig` at run time.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopline.errors import LooplineError

if TYPE_CHECKING:
    import great_expectations as gx

Action = Literal["abort", "quarantine", "truncate", "fail"]
STAGES: tuple[str, ...] = ("schema", "row", "duplicates", "labels", "batch")
ROW_STAGES: tuple[str, ...] = ("row", "duplicates", "labels")
_ACTIONS = {"abort", "quarantine", "truncate", "fail"}
_PARAMETER = "$PARAMETER"


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite, with what loopline does when it fails."""

    rule: str
    stage: str
    action: Action
    expectation_type: str
    gx_column: str | None  # the GX column; "a and b" for column-pair expectations
    column: str | None  # the user-facing column the rule is about (e.g. text for text_length)
    reason: str  # format template: {value}, the row's derived columns and the parameters
    hint: str = ""
    description: str = ""
    examples_from: str | None = None  # batch rules: boolean column of the batch frame with example rows
    counts_towards_quarantine_rate: bool = True

    @property
    def signature(self) -> str:
        """``expect_... on column``: the GX rule behind a message."""
        return f"{self.expectation_type} on {self.gx_column}" if self.gx_column else self.expectation_type


@dataclass(frozen=True)
class ContractSuite:
    """A suite file: its raw GX JSON and the loopline rules of its expectations, in order."""

    name: str
    path: Path
    raw: dict[str, Any]
    rules: tuple[Rule, ...]

    def parameter_names(self) -> set[str]:
        return _parameter_names(self.raw["expectations"])

    def stage_rules(self, stage: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.stage == stage]

    def to_gx(
        self, stage: str | None = None, parameters: dict[str, Any] | None = None
    ) -> gx.ExpectationSuite:
        """The GX suite (or the part of one stage); row-condition parameters filled from ``parameters``."""
        import great_expectations as gx

        expectations = [
            exp for exp in self.raw["expectations"] if stage is None or _loopline_meta(exp)["stage"] == stage
        ]
        if parameters is not None:
            expectations = [_fill_row_condition(exp, parameters) for exp in expectations]
        name = self.name if stage is None else f"{self.name}.{stage}"
        return gx.ExpectationSuite(
            name=name, expectations=copy.deepcopy(expectations), meta=self.raw.get("meta")
        )


def default_suites_dir() -> Path:
    """``data_contracts/`` of the source checkout, or the copy packaged inside ``loopline``."""
    packaged = Path(str(resources.files("loopline"))) / "data_contracts"
    checkout = Path(__file__).resolve().parents[3] / "data_contracts"
    for candidate in (packaged, checkout):
        if candidate.is_dir():
            return candidate
    raise LooplineError(
        "The data-contract suites (data_contracts/*.json) were not found.",
        where=f"{checkout} or {packaged}",
        hint="Run from a loopline checkout, or install a loopline build that packages data_contracts/.",
    )


def load_suite(name: str, suites_dir: Path | None = None) -> ContractSuite:
    """Read ``<suites_dir>/<name>.json`` (a GX 1.x suite) and its loopline rule metadata."""
    path = ((suites_dir or default_suites_dir()) / f"{name}.json").resolve()
    modified = path.stat().st_mtime_ns if path.is_file() else None
    return _load_suite_file(path, modified)


@lru_cache(maxsize=16)
def _load_suite_file(path: Path, modified: int | None) -> ContractSuite:
    """Parsed once per file version (``modified``: its mtime, so an edited suite is re-read)."""
    if modified is None:
        raise LooplineError(
            f"Data-contract suite '{path.stem}' not found.",
            where=str(path),
            hint="Pass suites_dir= pointing at the data_contracts folder.",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rules = tuple(_rule_from_expectation(exp) for exp in raw["expectations"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise LooplineError(
            f"Data-contract suite is not valid: {err}",
            where=str(path),
            hint="Each expectation needs type, kwargs and meta.loopline {rule, stage, action, reason}.",
        ) from err
    return ContractSuite(name=raw.get("name", path.stem), path=path, raw=raw, rules=rules)


def _loopline_meta(expectation: dict[str, Any]) -> dict[str, Any]:
    return expectation["meta"]["loopline"]


def _rule_from_expectation(expectation: dict[str, Any]) -> Rule:
    meta = _loopline_meta(expectation)
    if meta["stage"] not in STAGES or meta["action"] not in _ACTIONS:
        raise ValueError(
            f"rule {meta.get('rule')!r}: unknown stage {meta['stage']!r} or action {meta['action']!r}"
        )
    gx_column = expectation["kwargs"].get("column") or _column_pair(expectation["kwargs"])
    return Rule(
        rule=meta["rule"],
        stage=meta["stage"],
        action=meta["action"],
        expectation_type=expectation["type"],
        gx_column=gx_column,
        column=meta.get("column", gx_column),
        reason=meta["reason"],
        hint=meta.get("hint", ""),
        description=expectation.get("description", ""),
        examples_from=meta.get("examples_from"),
        counts_towards_quarantine_rate=bool(meta.get("counts_towards_quarantine_rate", True)),
    )


def _column_pair(kwargs: dict[str, Any]) -> str | None:
    """``a and b`` for the column-pair expectations (column_A, column_B), for messages."""
    pair = kwargs.get("column_A"), kwargs.get("column_B")
    return f"{pair[0]} and {pair[1]}" if all(pair) else None


def _parameter_names(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {_PARAMETER}:
            return {value[_PARAMETER]}
        return set().union(*(_parameter_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_parameter_names(v) for v in value)) if value else set()
    return set()


def _substitute(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_PARAMETER}:
            return parameters[value[_PARAMETER]]
        return {key: _substitute(val, parameters) for key, val in value.items()}
    if isinstance(value, list):
        return [_substitute(val, parameters) for val in value]
    return value


def _fill_row_condition(expectation: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """GX 1.x substitutes $PARAMETER in min/max values, but not inside row conditions: fill those in."""
    condition = expectation["kwargs"].get("row_condition")
    if condition is None:
        return expectation
    filled = copy.deepcopy(expectation)
    filled["kwargs"]["row_condition"] = _substitute(condition, parameters)
    return filled
