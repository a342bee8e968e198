"""Run a data contract: derived columns in code, rules from the GX suite, bad rows to quarantine.

Stages (``meta.loopline.stage`` of each expectation), each on the rows that survived the last:

* ``schema``: required columns exist, else :class:`ContractViolation` at once;
* ``row``: per-row text/label rules; over-long texts (sentences) are truncated and counted, others
  quarantined;
* ``duplicates``: conflicting duplicates (all rows) and exact duplicates (all but the first);
* ``labels``: label (entity type) support, unknown labels, label floods;
* ``batch``: rules on the whole batch; any failure raises :class:`ContractViolation` — after the
  quarantine CSV and the JSON report are written, so nothing is lost.
"""

from __future__ import annotations

import logging
import string
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import ContractConfig
from loopline.contracts import derive
from loopline.contracts.gx_runner import ROW_ID, RuleRun, StageRun, run_stage, save_data_docs
from loopline.contracts.quarantine import (
    content_hash,
    output_stem,
    save_quarantine,
    save_report,
    with_reasons,
)
from loopline.contracts.result import CheckOutcome, ContractResult
from loopline.contracts.suites import ROW_STAGES, ContractSuite, Rule, load_suite
from loopline.errors import ContractViolation, LooplineError

logger = logging.getLogger(__name__)

TRAINING_SUITE = "training_data"
FEEDBACK_SUITE = "feedback"
TOKEN_TRAINING_SUITE = "token_data"
TOKEN_FEEDBACK_SUITE = "token_feedback"
_EXAMPLES = 5

Deriver = Callable[[pd.DataFrame], pd.DataFrame]
LabelCounter = Callable[[pd.Series], dict[str, int]]


@dataclass(frozen=True)
class _Plan:
    """Which suite, with which parameters, how each stage derives its columns (``batch``: extra columns
    of the batch frame, optional), how over-long rows are cut, and what the labels to count are."""

    suite: str
    parameters: dict[str, Any]
    derivers: dict[str, Deriver]
    truncate: Deriver  # the rows that failed a truncate rule -> the same rows, text (and label) cut
    count_labels: LabelCounter = derive.label_counts


@dataclass
class _State:
    """What the row stages decided so far, by ROW_ID."""

    reasons: dict[int, list[str]] = field(default_factory=dict)
    rules: dict[int, list[Rule]] = field(default_factory=dict)
    counted: set[int] = field(default_factory=set)  # quarantined by a rule counting towards the rate
    truncated: set[int] = field(default_factory=set)
    checks: list[CheckOutcome] = field(default_factory=list)
    stage_runs: list[StageRun] = field(default_factory=list)
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)  # duplicate/conflict columns by ROW_ID


def training_parameters(cfg: ContractConfig) -> dict[str, Any]:
    """The $PARAMETER values of the training_data suite."""
    return cfg.model_dump()


def feedback_parameters(
    cfg: ContractConfig, min_new_label_support: int, max_flood_share: float, min_flood_batch_rows: int
) -> dict[str, Any]:
    """The $PARAMETER values of the feedback suite."""
    return {
        **cfg.model_dump(),
        "min_new_label_support": min_new_label_support,
        "max_flood_share": max_flood_share,
        "min_flood_batch_rows": min_flood_batch_rows,
    }


def validate_training_data(
    df: pd.DataFrame,
    cfg: ContractConfig,
    source: str,
    quarantine_dir: Path,
    *,
    report_path: Path | None = None,
    docs_dir: Path | None = None,
    suites_dir: Path | None = None,
) -> ContractResult:
    """Validate labelled training data against ``data_contracts/training_data.json``.

    Bad rows go to ``quarantine_dir/<name>-<hash8>.csv`` (original columns + ``reason``), the
    report to ``report_path`` (default: next to it, ``.report.json``), GX Data Docs to
    ``docs_dir`` if given. Raises :class:`ContractViolation` (with ``.result``) when a batch rule
    fails: fewer than min_labels labels, too many bad rows, duplicates or conflicts.
    """
    plan = _Plan(
        TRAINING_SUITE,
        training_parameters(cfg),
        {
            "row": derive.add_text_columns,
            "duplicates": derive.add_duplicate_columns,
            "labels": derive.add_label_support,
        },
        truncate=partial(derive.truncate_texts, max_chars=cfg.max_text_chars),
    )
    return _run_contract(df, plan, source, quarantine_dir, report_path, docs_dir, suites_dir)


def validate_feedback_batch(
    df: pd.DataFrame,
    known_labels: Collection[str],
    cfg: ContractConfig,
    source: str,
    quarantine_dir: Path,
    min_new_label_support: int = 5,
    max_flood_share: float = 0.5,
    *,
    min_flood_batch_rows: int = 20,
    report_path: Path | None = None,
    docs_dir: Path | None = None,
    suites_dir: Path | None = None,
) -> ContractResult:
    """Validate a batch of user feedback against ``data_contracts/feedback.json``.

    Text and duplicate rules as for training data; a label the model does not know
    (``known_labels``) needs ``min_new_label_support`` rows; in batches of at least
    ``min_flood_batch_rows`` rows, one user (column ``user``, else ``source``) giving one label to
    more than ``max_flood_share`` of the batch has those rows quarantined. Raises
    :class:`ContractViolation` when the quarantine, duplicate or conflict share is too high.
    """
    known = frozenset(known_labels)
    plan = _Plan(
        FEEDBACK_SUITE,
        feedback_parameters(cfg, min_new_label_support, max_flood_share, min_flood_batch_rows),
        {
            "row": derive.add_text_columns,
            "duplicates": derive.add_duplicate_columns,
            "labels": lambda frame: derive.add_feedback_label_columns(frame, known),
        },
        truncate=partial(derive.truncate_texts, max_chars=cfg.max_text_chars),
    )
    return _run_contract(df, plan, source, quarantine_dir, report_path, docs_dir, suites_dir)


def validate_token_data(
    df: pd.DataFrame,
    cfg: ContractConfig,
    source: str,
    quarantine_dir: Path,
    *,
    report_path: Path | None = None,
    docs_dir: Path | None = None,
    suites_dir: Path | None = None,
) -> ContractResult:
    """Validate token-classification (NER) training data against ``data_contracts/token_data.json``.

    Rows are sentences in the canonical frame: ``text`` = tokens, ``label`` = one BIO tag per token,
    both space-joined. Misaligned, malformed or invalid-BIO sentences are quarantined; sentences over
    ``cfg.max_sentence_tokens`` tokens are truncated, tags with them, and counted; sentences with an
    entity type of fewer than ``cfg.min_examples_per_label`` mentions are quarantined. Outputs as for
    :func:`validate_training_data`; raises :class:`ContractViolation` when no entity type remains or
    the quarantine, duplicate or conflict share is too high. ``accepted_label_counts`` of the report
    are entity mentions per type.
    """
    plan = _Plan(
        TOKEN_TRAINING_SUITE,
        training_parameters(cfg),
        {
            "row": derive.add_token_columns,
            "duplicates": derive.add_token_duplicate_columns,
            "labels": derive.add_entity_support,
            "batch": derive.add_entity_type_count,
        },
        truncate=partial(derive.truncate_sentences, max_tokens=cfg.max_sentence_tokens),
        count_labels=derive.entity_mention_counts,
    )
    return _run_contract(df, plan, source, quarantine_dir, report_path, docs_dir, suites_dir)


def validate_token_feedback(
    df: pd.DataFrame,
    known_labels: Collection[str],
    cfg: ContractConfig,
    source: str,
    quarantine_dir: Path,
    min_new_label_support: int = 5,
    max_flood_share: float = 0.5,
    *,
    min_flood_batch_rows: int = 20,
    report_path: Path | None = None,
    docs_dir: Path | None = None,
    suites_dir: Path | None = None,
) -> ContractResult:
    """Validate a batch of corrected sentences against ``data_contracts/token_feedback.json``.

    Sentence rules as in :func:`validate_token_data`. ``known_labels`` is the model's tag list
    (``["O", "B-PER", "I-PER", ...]``; bare types such as ``"PER"`` count too): a sentence with an entity
    type the model does not know is accepted only if ``min_new_label_support`` sentences of the batch
    have that type. In batches of at least ``min_flood_batch_rows`` sentences, one user (column
    ``user``, else ``source``) giving one entity type (or only O tags) to more than ``max_flood_share``
    of the batch has those sentences quarantined. Raises :class:`ContractViolation` when the
    quarantine, duplicate or conflict share is too high.
    """
    known = derive.entity_types_of(known_labels)
    plan = _Plan(
        TOKEN_FEEDBACK_SUITE,
        feedback_parameters(cfg, min_new_label_support, max_flood_share, min_flood_batch_rows),
        {
            "row": derive.add_token_columns,
            "duplicates": derive.add_token_duplicate_columns,
            "labels": lambda frame: derive.add_token_feedback_columns(frame, known),
        },
        truncate=partial(derive.truncate_sentences, max_tokens=cfg.max_sentence_tokens),
        count_labels=derive.entity_mention_counts,
    )
    return _run_contract(df, plan, source, quarantine_dir, report_path, docs_dir, suites_dir)


def _run_contract(
    df: pd.DataFrame,
    plan: _Plan,
    source: str,
    quarantine_dir: Path,
    report_path: Path | None,
    docs_dir: Path | None,
    suites_dir: Path | None,
) -> ContractResult:
    suite = load_suite(plan.suite, suites_dir)
    _check_parameters(suite, plan.parameters)
    _check_schema(df, suite, source, plan.parameters)
    logger.info("Validating %d row(s) of %s against suite '%s'", len(df), source, suite.name)
    work = derive.prepare_frame(df)
    state = _State()
    for stage in ROW_STAGES:
        alive = work.loc[~work.index.isin(state.reasons.keys())]
        frame = plan.derivers[stage](alive)
        _apply_row_stage(run_stage(suite, stage, frame, plan.parameters), frame, state, plan.parameters)
        if stage == "row":
            work = _truncate(work, state, plan.truncate)
        if stage == "duplicates":
            state.flags = frame[[ROW_ID, "is_duplicate", "has_conflicting_label"]]
    batch = derive.batch_frame(work, set(state.reasons), state.counted, state.flags)
    batch = plan.derivers.get("batch", _unchanged)(batch)
    labels = ", ".join(f"'{label}'" for label in plan.count_labels(batch["accepted_label"].dropna()))
    batch_run = run_stage(suite, "batch", batch, plan.parameters)
    _apply_batch_stage(batch_run, batch, work, state, plan.parameters, labels)
    result = _assemble(df, work, state, suite, plan, source, quarantine_dir, report_path, docs_dir)
    logger.info("%s", result.summary())
    if not result.success:
        raise _violation(result, state, work)
    return result


def _data_docs(stage_runs: list[StageRun], docs_dir: Path, stem: str, source: str) -> Path | None:
    """GX Data Docs of the run, for people: a failure to render them is logged, never fatal."""
    try:
        return save_data_docs(stage_runs, docs_dir, stem, Path(source).name)
    except Exception as err:
        logger.warning("GX Data Docs could not be built in %s: %s", docs_dir, err)
        return None


def _unchanged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _check_parameters(suite: ContractSuite, parameters: dict[str, Any]) -> None:
    missing = suite.parameter_names() - set(parameters)
    if missing:
        raise LooplineError(
            f"Suite '{suite.name}' uses parameters loopline does not provide: {', '.join(sorted(missing))}.",
            where=str(suite.path),
            hint="Use only the parameters listed in data_contracts/README.md.",
        )


def _check_schema(df: pd.DataFrame, suite: ContractSuite, source: str, parameters: dict[str, Any]) -> None:
    """Abort early (nothing to quarantine) when a required column is missing or there are no rows."""
    header = pd.DataFrame({column: [] for column in df.columns} | {ROW_ID: []})
    failed = [run for run in run_stage(suite, "schema", header, parameters).runs if not run.success]
    available = ", ".join(map(str, df.columns)) or "none"
    if failed:
        rule = failed[0].rule
        raise ContractViolation(
            f"Data contract '{suite.name}' cannot run: {rule.reason} (rule {rule.rule}: {rule.signature}).",
            where=f"{source}, columns: {available}",
            hint=rule.hint or "Rename the column or pass the right one.",
        )
    if df.empty:
        raise ContractViolation(
            f"Data contract '{suite.name}' cannot run: the data has no rows.",
            where=source,
            hint="Check that the file is the right one and was fully written.",
        )


def _apply_row_stage(stage: StageRun, frame: pd.DataFrame, state: _State, params: dict[str, Any]) -> None:
    state.stage_runs.append(stage)
    rows = frame.set_index(ROW_ID, drop=False)
    for run in stage.runs:
        ids = sorted(run.failing)
        context = rows.loc[ids].to_dict("index")
        reasons = [_row_reason(run.rule, run.failing[i], context[i], params) for i in ids]
        if run.rule.action == "quarantine":
            for row_id, reason in zip(ids, reasons, strict=True):
                state.reasons.setdefault(row_id, []).append(reason)
                state.rules.setdefault(row_id, []).append(run.rule)
                if run.rule.counts_towards_quarantine_rate:
                    state.counted.add(row_id)
        elif run.rule.action == "truncate":
            state.truncated.update(ids)
        source_rows = [_int(rows.at[i, "source_row"]) for i in ids]
        state.checks.append(_row_check(run, source_rows, reasons, len(frame)))


def _row_reason(rule: Rule, value: Any, row: dict[str, Any], params: dict[str, Any]) -> str:
    context = {**params, **{key: _plain(val) for key, val in row.items()}, "value": _plain(value)}
    return f"{_render(rule.reason, context)} ({rule.signature})"


def _row_check(run: RuleRun, source_rows: list[int], reasons: list[str], checked: int) -> CheckOutcome:
    rule = run.rule
    if run.success:
        detail = f"passed ({checked} row(s) checked)"
    elif rule.action == "truncate":
        detail = f"{len(source_rows)} row(s) truncated, e.g. row {source_rows[0]}: {reasons[0]}"
    else:
        detail = f"{len(source_rows)} row(s) quarantined, e.g. row {source_rows[0]}: {reasons[0]}"
    return CheckOutcome(rule.rule, rule.column, run.success, source_rows, detail, rule.signature, rule.action)


def _truncate(work: pd.DataFrame, state: _State, truncate: Deriver) -> pd.DataFrame:
    """Cut over-long rows that are still alive; quarantined rows keep their text and label."""
    state.truncated -= set(state.reasons)
    if not state.truncated:
        return work
    out = work.copy()
    ids = sorted(state.truncated)
    cut = truncate(out.loc[ids])
    for column in ("text", "label"):
        out.loc[ids, column] = cut[column].to_numpy()
    return out


def _apply_batch_stage(
    stage: StageRun,
    batch: pd.DataFrame,
    work: pd.DataFrame,
    state: _State,
    params: dict[str, Any],
    labels: str,
) -> None:
    """Record the batch rules' outcomes; ``labels``: the accepted labels, quoted, for messages."""
    state.stage_runs.append(stage)
    for run in stage.runs:
        rule = run.rule
        examples = batch.loc[batch[rule.examples_from].astype(bool)] if rule.examples_from else batch.iloc[:0]
        source_rows = [_int(row) for row in work.loc[examples.index, "source_row"]] if not run.success else []
        column = rule.column or _dominant_column(examples.index, state)
        described = _render(
            rule.reason, {**params, "value": _plain(run.observed), "labels": labels or "none"}
        )
        detail = f"passed: {described}" if run.success else described
        state.checks.append(
            CheckOutcome(rule.rule, column, run.success, source_rows, detail, rule.signature, rule.action)
        )


def _dominant_column(row_ids: pd.Index, state: _State) -> str | None:
    """The column of the rule that quarantined most of these rows (for 'too many bad rows')."""
    columns = Counter(state.rules[i][0].column for i in row_ids if state.rules.get(i))
    return columns.most_common(1)[0][0] if columns else None


def _assemble(
    df: pd.DataFrame,
    work: pd.DataFrame,
    state: _State,
    suite: ContractSuite,
    plan: _Plan,
    source: str,
    quarantine_dir: Path,
    report_path: Path | None,
    docs_dir: Path | None,
) -> ContractResult:
    """Split the input into accepted/quarantined, write the quarantine CSV, Data Docs and report."""
    quarantined_ids = sorted(state.reasons)
    accepted_ids = [i for i in range(len(df)) if i not in state.reasons]
    accepted = df.iloc[accepted_ids].copy()
    accepted["text"] = work.loc[accepted_ids, "text"].to_numpy()
    accepted["label"] = work.loc[accepted_ids, "label"].to_numpy()
    reasons = pd.Series(["; ".join(state.reasons[i]) for i in quarantined_ids], dtype=object)
    quarantined = with_reasons(df.iloc[quarantined_ids], reasons)
    stem = output_stem(source, content_hash(df))
    quarantine_path = quarantine_dir / f"{stem}.csv" if quarantined_ids else None
    report_path = report_path or quarantine_dir / f"{stem}.report.json"
    docs_path = _data_docs(state.stage_runs, docs_dir, stem, source) if docs_dir else None
    result = ContractResult(
        suite=suite.name,
        source=source,
        success=all(check.success for check in state.checks if check.action == "fail"),
        accepted=accepted,
        quarantined=quarantined,
        checks=state.checks,
        truncated_rows=len(state.truncated & set(accepted_ids)),
        quarantine_path=quarantine_path,
        report_path=report_path,
        parameters=plan.parameters,
        docs_path=docs_path,
        label_counts=plan.count_labels(accepted["label"]),
    )
    if quarantine_path is not None:
        save_quarantine(quarantined, quarantine_path)
    save_report(_report(result, state, suite), report_path)
    return result


def _report(result: ContractResult, state: _State, suite: ContractSuite) -> dict[str, Any]:
    stages = {
        run.stage: {"success": bool(run.gx_result.success), "statistics": run.gx_result.statistics}
        for run in state.stage_runs
        if run.gx_result is not None
    }
    return {**result.to_dict(), "suite_path": str(suite.path), "gx_stages": stages}


def _violation(result: ContractResult, state: _State, work: pd.DataFrame) -> ContractViolation:
    """A message naming the file, column, example rows and rule of each failed batch rule."""
    failed = [check for check in result.checks if check.action == "fail" and not check.success]
    rules = {rule.rule: rule for run in state.stage_runs for rule in (r.rule for r in run.runs)}
    by_source_row = dict(zip(work["source_row"].map(_int), work.index, strict=False))
    what = f"Data contract '{result.suite}' failed for {result.source}: " + " ".join(
        f"[{check.rule}] {check.detail} ({check.expectation})." for check in failed
    )
    where = "; ".join(
        f"{result.source}, column '{check.column}', "
        f"rows {_rows_text(check.failed_rows, by_source_row, work, state)}"
        for check in failed
    )
    hints = [_render(rules[check.rule].hint, result.parameters) for check in failed if rules[check.rule].hint]
    saved = f"Nothing was lost: the report is in {result.report_path}"
    if result.quarantine_path:
        count = len(result.quarantined)
        saved += f" and the {count} quarantined row(s), with reasons, in {result.quarantine_path}"
    return ContractViolation(what, where=where, hint=" ".join([*hints, saved + "."]), result=result)


def _rows_text(rows: list[int], by_source_row: dict[int, int], work: pd.DataFrame, state: _State) -> str:
    """``3, 7, 9 and 12 more — e.g. row 3: <reason>; row 7: <other reason>``."""
    if not rows:
        return "(none)"
    listed = ", ".join(map(str, rows[: 2 * _EXAMPLES]))
    more = f" and {len(rows) - 2 * _EXAMPLES} more" if len(rows) > 2 * _EXAMPLES else ""
    examples: dict[str, str] = {}  # one example row per distinct rule
    for row in rows:
        row_id = by_source_row.get(row)
        if row_id in state.reasons:
            key, text = state.rules[row_id][0].rule, state.reasons[row_id][0]
        elif row_id is not None:
            key, text = "label", f"label '{work.at[row_id, 'label']}'"
        else:
            continue
        examples.setdefault(key, f"row {row}: {text}")
        if len(examples) == 3:
            break
    return f"{listed}{more} — e.g. " + "; ".join(examples.values()) if examples else listed + more


class _LenientFormatter(string.Formatter):
    """str.format that leaves unknown fields as they are and never fails on a format spec."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return (
            kwargs.get(key, "{" + str(key) + "}")
            if isinstance(key, str)
            else super().get_value(key, args, kwargs)
        )

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (TypeError, ValueError):
            return str(value)


def _render(template: str, context: dict[str, Any]) -> str:
    try:
        return _LenientFormatter().format(template, **context)
    except (IndexError, KeyError, ValueError, AttributeError):
        return template


def _plain(value: Any) -> Any:
    """Python scalars for messages: 3 rather than np.float64(3.0) (lengths are float where text is null)."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
