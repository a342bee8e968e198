"""Run one stage of a suite on a pandas frame with Great Expectations 1.x, quietly.

One ephemeral GX context per process (importing GX takes seconds, the context itself is cheap);
nothing is written to disk unless Data Docs are asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopline.contracts.suites import ContractSuite, Rule
from loopline.errors import LooplineError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

logger = logging.getLogger(__name__)

ROW_ID = "_row_id"  # positional id of a row in the input frame; the index GX reports failing rows by


@dataclass(frozen=True)
class RuleRun:
    """What one expectation said about one frame."""

    rule: Rule
    success: bool
    failing: dict[int, Any]  # row id -> the failing value (row-level rules)
    observed: Any = None  # observed value (aggregate rules)
    element_count: int = 0


@dataclass(frozen=True)
class StageRun:
    """All rule runs of one stage, plus GX's own result (for reports and Data Docs)."""

    stage: str
    runs: list[RuleRun]
    gx_result: ExpectationSuiteValidationResult | None


@lru_cache(maxsize=1)
def _gx_objects() -> tuple[AbstractDataContext, BatchDefinition]:
    """The shared ephemeral context and a whole-dataframe batch definition, built on first use."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # keep GX's INFO chatter out of our logs unless asked for
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("loopline").add_dataframe_asset("frame")
    return context, asset.add_batch_definition_whole_dataframe("whole_frame")


def gx_context() -> AbstractDataContext:
    return _gx_objects()[0]


def run_stage(suite: ContractSuite, stage: str, frame: pd.DataFrame, parameters: dict[str, Any]) -> StageRun:
    """Validate ``frame`` against the expectations of ``stage``; failing rows are reported by ROW_ID."""
    rules = suite.stage_rules(stage)
    if not rules:
        return StageRun(stage, [], None)
    if frame.empty and stage != "schema":
        return StageRun(stage, [RuleRun(rule, True, {}) for rule in rules], None)
    batch = _gx_objects()[1].get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite.to_gx(stage, parameters),
        expectation_parameters=parameters,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    )
    by_rule = {rule.rule: rule for rule in rules}
    runs = [_rule_run(by_rule, res, suite) for res in result.results]
    order = {rule.rule: i for i, rule in enumerate(rules)}
    return StageRun(stage, sorted(runs, key=lambda run: order[run.rule.rule]), result)


def _rule_run(by_rule: dict[str, Rule], res: Any, suite: ContractSuite) -> RuleRun:
    rule = by_rule[res.expectation_config.meta["loopline"]["rule"]]
    error = _raised_exception(res.exception_info)
    if error:
        raise LooplineError(
            f"Great Expectations could not evaluate rule '{rule.rule}' ({rule.signature}): {error}",
            where=str(suite.path),
            hint="This is a problem of the suite or of loopline, not of your data; please report it.",
        )
    failing = {
        int(item[ROW_ID]): item.get(rule.gx_column)
        for item in res.result.get("unexpected_index_list") or []
        if isinstance(item, dict)
    }
    return RuleRun(
        rule=rule,
        success=bool(res.success),
        failing=failing,
        observed=res.result.get("observed_value"),
        element_count=int(res.result.get("element_count") or 0),
    )


def _raised_exception(info: Any) -> str | None:
    """GX reports errors either flat ({raised_exception, exception_message}) or per metric."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        message = _raised_exception(value)
        if message:
            return message
    return None


def save_data_docs(stage_runs: list[StageRun], docs_dir: Path, run_name: str, batch_name: str) -> Path:
    """Render GX Data Docs (HTML) of the stage results into ``docs_dir``; returns its index.html."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx_context()
    site = _docs_site(context, docs_dir.resolve())
    run_id = RunIdentifier(run_name=run_name)
    keys = []
    for stage_run in stage_runs:
        if stage_run.gx_result is None:
            continue
        suite_id = ExpectationSuiteIdentifier(name=stage_run.gx_result.suite_name)
        key = ValidationResultIdentifier(suite_id, run_id, batch_name)
        context.validation_results_store.set(key, stage_run.gx_result)
        keys.append(key)
    try:
        context.build_data_docs(site_names=[site], resource_identifiers=keys)
    finally:
        # The context lives as long as the process (a worker): keep no full results of past runs in memory.
        for key in keys:
            context.validation_results_store.remove_key(key)
    return docs_dir / "index.html"


def _docs_site(context: AbstractDataContext, docs_dir: Path) -> str:
    sites = context.variables.data_docs_sites or {}
    for name, config in sites.items():
        if Path(config.get("store_backend", {}).get("base_directory", "")) == docs_dir:
            return name
    name = f"loopline_{len(sites)}"
    context.add_data_docs_site(
        name,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return name
