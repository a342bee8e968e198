"""Model cards: one Markdown page per registered version, written when it is published, from what the
registry and its training run already hold (lineage tags, params, metrics, the gate report and the
evaluation reports). The card is the version's description (the MLflow UI renders it) and the run's
``model_card.md``; the registered model gets a short description of its own, set once.

Everything is read back from MLflow rather than passed in, so a rerun that completes a publish killed
after registration (``promote_published``) writes the same card; the write is skipped once the version
has a description, so it is idempotent and never overwrites a user's edit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_USER

from loopline.evaluation.evaluate import EvalReport
from loopline.evaluation.gate_markdown import fmt_number, gate_table, gate_verdict, md_cell
from loopline.faults import crash_point
from loopline.registry.lookups import get_version
from loopline.tracking import mlflow_client, name_run

logger = logging.getLogger(__name__)

CARD_ARTIFACT = "model_card.md"
# MLflow's SQL stores keep a description in a VARCHAR(5000) (PostgreSQL enforces it): a longer card is
# shortened for the description, the run's artifact keeps it whole.
DESCRIPTION_LIMIT = 5000
SMALL_SET_ROWS = 100  # an evaluation set smaller than this measures a score only roughly
FEW_EXAMPLES = 20  # a class with fewer test examples than this has a recall that is mostly noise
WEAK_F1 = 0.5
HIGH_ECE = 0.1
EVAL_ORDER = ("test", "regression", "feedback")


@dataclass(frozen=True)
class CardFacts:
    """What a card says, gathered from the registry (``load_card_facts``) or built by hand in tests."""

    model_name: str
    version: str
    task: str  # "sequence" or "token"
    labels: list[str]  # the model's head: labels, or BIO tags
    registered_at: str  # ISO 8601, UTC
    lineage: dict[str, str]  # the version's tags
    run_id: str | None = None
    run_tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    evaluations: dict[str, EvalReport] = field(default_factory=dict)  # by evaluation set
    gate: dict[str, Any] | None = None  # GateReport.to_dict()

    @property
    def flow(self) -> str:
        return self.run_tags.get("loopline.flow", "train")

    @property
    def parent(self) -> str:
        return self.lineage.get("loopline.parent_version", "")

    @property
    def feedback_rows(self) -> int:
        return _int(self.lineage.get("loopline.feedback_rows"))

    @property
    def train_rows(self) -> int:
        return _int(self.params.get("train_rows"))

    @property
    def entity_types(self) -> list[str]:
        """Token task: the types the BIO tags name (``B-PER``, ``I-PER`` → ``PER``), in tag order."""
        types = [tag.split("-", 1)[1] for tag in self.labels if "-" in tag]
        return list(dict.fromkeys(types))


def _int(value: str | None) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


# --- reading what the registry knows ------------------------------------------------------------------


def load_card_facts(name: str, version: str) -> CardFacts:
    """The facts of version ``version`` of ``name``: its tags, its training run and that run's reports."""
    client = mlflow_client()
    mv = client.get_model_version(name, version)
    lineage = dict(mv.tags or {})
    run_id = lineage.get("loopline.run_id") or mv.run_id or None
    run_tags: dict[str, str] = {}
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if run_id:
        try:
            run = client.get_run(run_id)
            run_tags, params, metrics = dict(run.data.tags), dict(run.data.params), dict(run.data.metrics)
        except MlflowException:
            logger.warning("The training run %s of %s v%s is gone; its card says less", run_id, name, version)
            run_id = None
    return CardFacts(
        model_name=name,
        version=str(version),
        task=lineage.get("loopline.task") or params.get("task") or "sequence",
        labels=_model_labels(name, str(version)),
        registered_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC).isoformat(
            timespec="seconds"
        ),
        lineage=lineage,
        run_id=run_id,
        run_tags=run_tags,
        params=params,
        metrics=metrics,
        evaluations=_evaluations(run_id) if run_id else {},
        gate=_run_json(run_id, "gate/gate_report.json") if run_id else None,
    )


def _model_labels(name: str, version: str) -> list[str]:
    try:
        metadata = mlflow.models.get_model_info(f"models:/{name}/{version}").metadata or {}
    except (MlflowException, OSError) as err:
        logger.warning("Could not read the labels of %s v%s: %s", name, version, err)
        return []
    return [str(label) for label in metadata.get("loopline_labels") or []]


def _run_json(run_id: str, path: str) -> dict[str, Any] | None:
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}"))
    except (MlflowException, OSError, ValueError):
        return None


def _evaluations(run_id: str) -> dict[str, EvalReport]:
    reports: dict[str, EvalReport] = {}
    try:
        listed = mlflow_client().list_artifacts(run_id, "evaluation")
    except (MlflowException, OSError):
        return reports
    for artifact in listed:
        file_name = artifact.path.rsplit("/", 1)[-1]
        if not (file_name.startswith("eval_") and file_name.endswith(".json")):
            continue
        data = _run_json(run_id, artifact.path)
        if data is not None:
            try:
                reports[file_name.removeprefix("eval_").removesuffix(".json")] = EvalReport.from_dict(data)
            except (KeyError, TypeError, ValueError):
                logger.warning(
                    "Evaluation report %s of run %s is unreadable; left off the card", file_name, run_id
                )
    return dict(sorted(reports.items(), key=lambda kv: _set_rank(kv[0])))


def _set_rank(name: str) -> tuple[int, str]:
    return (EVAL_ORDER.index(name) if name in EVAL_ORDER else len(EVAL_ORDER), name)


# --- rendering ------------------------------------------------------------------------------------------


def card_title(model_name: str, version: str) -> str:
    return f"# Model card: {model_name} v{version}"


def render_model_card(facts: CardFacts, *, compact: bool = False) -> str:
    """The card as Markdown. ``compact`` leaves out the per-class tables and the gate's details (for a
    description that must stay under MLflow's limit); the artifact is always the full card."""
    sections = [
        _header(facts),
        _intended_use(facts),
        _label_set(facts),
        _training_data(facts),
        _metrics(facts, per_class=not compact),
        _gate(facts, details=not compact),
        _lineage(facts),
        _drift(facts),
        _known_limits(facts),
    ]
    return "\n\n".join(sections).rstrip() + "\n"


def card_for_description(facts: CardFacts, full: str | None = None) -> str:
    """The card as it fits in the version's description: whole if it fits, else compact, else cut at a
    line with a pointer to the artifact."""
    text = full if full is not None else render_model_card(facts)
    if len(text) <= DESCRIPTION_LIMIT:
        return text
    text = render_model_card(facts, compact=True)
    pointer = f"\n\n_Shortened: the whole card is the artifact `{CARD_ARTIFACT}` of run `{facts.run_id}`._\n"
    if len(text) + len(pointer) <= DESCRIPTION_LIMIT:
        return text.rstrip() + pointer
    cut = text[: DESCRIPTION_LIMIT - len(pointer)].rsplit("\n", 1)[0]
    return cut.rstrip() + pointer


def _header(facts: CardFacts) -> str:
    kind = (
        "Token classifier (BIO tags per word)"
        if facts.task == "token"
        else "Text classifier (one label per text)"
    )
    base = facts.lineage.get("loopline.base_model") or facts.params.get("base_model") or "unknown"
    how = (
        f"continual retrain of v{facts.parent}"
        if facts.flow == "retrain" and facts.parent
        else "trained from scratch"
    )
    verdict = gate_verdict(facts.gate) if facts.gate else facts.lineage.get("loopline.gate", "unknown")
    return (
        f"{card_title(facts.model_name, facts.version)}\n\n"
        f"{kind} fine-tuned from `{md_cell(base)}` by loopline ({how}); registered {facts.registered_at}. "
        f"Gate: {verdict}."
    )


def _intended_use(facts: CardFacts) -> str:
    source = facts.lineage.get("loopline.dataset_source") or "the training data below"
    if facts.task == "token":
        what = (
            "Tags each word of a sentence with BIO entity tags (token classification) for the entity types "
            "listed below; the served model answers entity spans with a confidence each."
        )
    else:
        what = (
            f"Assigns one of the {len(facts.labels) or 'listed'} labels below to a short text (sequence "
            "classification), with a confidence."
        )
    outside = (
        "entity types outside its set (it never finds them)"
        if facts.task == "token"
        else "labels outside its label set (it always answers one of them)"
    )
    return (
        "## Intended use\n\n"
        f"{what} Meant for texts like its training data ({md_cell(source)}): same language, domain and "
        "length. Load it with `mlflow.pyfunc.load_model("
        f"'models:/{facts.model_name}/{facts.version}')` (input: a DataFrame with a `text` column) or serve "
        "it with `loopline serve`. Route low-confidence answers to a person and send corrections back as "
        "feedback.\n\n"
        f"Not meant for: {outside}, other languages or domains than its training data, or decisions "
        "about people without human review."
    )


def _label_set(facts: CardFacts) -> str:
    if not facts.labels:
        return "## Label set\n\nUnknown: the model's labels could not be read from the registry."
    new = [label for label in facts.lineage.get("loopline.new_labels", "").split(",") if label]
    marked = ", ".join(f"`{md_cell(label)}`" + (" (new)" if label in new else "") for label in facts.labels)
    if facts.task == "token":
        types = ", ".join(f"`{md_cell(t)}`" for t in facts.entity_types) or "none"
        return (
            f"## Label set\n\nEntity types ({len(facts.entity_types)}): {types}.\n\n"
            f"Tags ({len(facts.labels)}): {marked}."
        )
    return f"## Label set\n\n{len(facts.labels)} labels: {marked}."


def _training_data(facts: CardFacts) -> str:
    tags = facts.lineage
    lines = ["## Training data", ""]
    dataset = tags.get("loopline.dataset_version")
    if dataset:
        digest = tags.get("loopline.dataset_hash")
        lines.append(
            f"- Dataset version: `{md_cell(dataset)}`" + (f" (content hash `{digest}`)" if digest else "")
        )
    if tags.get("loopline.dataset_source"):
        lines.append(f"- Source: {md_cell(tags['loopline.dataset_source'])}")
    if facts.train_rows:
        how = (
            "this round's feedback training rows plus a class-balanced replay of past data"
            if facts.flow == "retrain"
            else "the training split; validation and test held out"
        )
        lines.append(f"- Rows trained on: {facts.train_rows:,} ({how})")
    if tags.get("loopline.quarantined_rows"):
        lines.append(f"- Rows quarantined by the data contract: {tags['loopline.quarantined_rows']}")
    if tags.get("loopline.test_version"):
        lines.append(f"- Frozen test set from dataset version `{md_cell(tags['loopline.test_version'])}`")
    batches = _batch_rows(tags)
    if batches:
        lines += [
            f"- Feedback: {facts.feedback_rows:,} accepted rows from {len(batches)} batch(es)",
            "",
            "| feedback batch | rows |",
            "|---|---:|",
            *[f"| `{md_cell(batch)}` | {rows:,} |" for batch, rows in batches.items()],
        ]
    elif facts.flow == "retrain":
        lines.append(
            f"- Feedback: {facts.feedback_rows:,} rows (batches {tags.get('loopline.feedback_batches', '?')})"
        )
    else:
        lines.append("- Feedback: none (first training on a labelled file)")
    if len(lines) == 2:
        lines.append("Unknown: the version carries no dataset tags.")
    return "\n".join(lines)


def _batch_rows(tags: Mapping[str, str]) -> dict[str, int]:
    try:
        counts = json.loads(tags.get("loopline.feedback_batch_rows") or "{}")
    except json.JSONDecodeError:
        counts = {}
    if counts:
        return {str(k): int(v) for k, v in counts.items()}
    return {}


def _metrics(facts: CardFacts, *, per_class: bool) -> str:
    if not facts.evaluations:
        known = {k: v for k, v in sorted(facts.metrics.items()) if k.startswith(EVAL_ORDER)}
        listing = "\n".join(f"- `{k}`: {v:.4f}" for k, v in known.items()) or "No evaluation was recorded."
        return f"## Metrics\n\n{listing}"
    token = facts.task == "token"
    head = "| set | rows | accuracy | macro-F1 |" + (" entity F1 |" if token else "") + " ECE | ms/text |"
    rule = "|---|---:|---:|---:|" + ("---:|" if token else "") + "---:|---:|"
    rows = [head, rule]
    for name, report in facts.evaluations.items():
        m = report.metrics
        cells = [f"`{md_cell(name)}`", f"{report.num_rows:,}", fmt_number(m.accuracy), fmt_number(m.macro_f1)]
        cells += [fmt_number(m.primary)] if token else []
        cells += [fmt_number(m.ece), f"{report.latency_ms_per_text:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    parts = ["## Metrics", "Overall, per evaluation set (the gate's frozen sets):", "\n".join(rows)]
    if token:
        parts.append("Accuracy and macro-F1 are over tokens; entity F1 is entity-level micro F1 (seqeval).")
    if per_class:
        for name, report in facts.evaluations.items():
            parts.append(_per_class_table(name, report, token))
    return "\n\n".join(parts)


def _per_class_table(name: str, report: EvalReport, token: bool) -> str:
    what = "entity type" if token else "label"
    rows = [
        f"Per {what} on `{md_cell(name)}`:",
        "",
        f"| {what} | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, stats in report.metrics.per_class.items():
        scores = " | ".join(fmt_number(stats.get(key)) for key in ("precision", "recall", "f1"))
        rows.append(f"| `{md_cell(label)}` | {scores} | {int(stats.get('support', 0)):,} |")
    return "\n".join(rows)


def _gate(facts: CardFacts, *, details: bool) -> str:
    if facts.gate is None:
        verdict = facts.lineage.get("loopline.gate", "unknown")
        return f"## Gate\n\nVerdict: {verdict} (the gate report is not on the run)."
    return f"## Gate\n\nVerdict: **{gate_verdict(facts.gate)}**\n\n{gate_table(facts.gate, details=details)}"


def _lineage(facts: CardFacts) -> str:
    tags, run = facts.lineage, facts.run_tags
    parent = f"v{facts.parent}" if facts.parent else "none (first model of this name)"
    base = tags.get("loopline.base_model") or facts.params.get("base_model") or "unknown"
    flow_run = tags.get("loopline.prefect_flow_run_name") or ""
    flow_id = tags.get("loopline.prefect_flow_run_id") or run.get("prefect.flow_run_id") or ""
    flow = (
        f"`{md_cell(flow_run)}` (id `{flow_id}`)"
        if flow_run
        else (f"id `{flow_id}`" if flow_id else "none (not run in a Prefect flow)")
    )
    lines = [
        "## Lineage",
        "",
        f"- Parent version: {parent}",
        f"- Base model: `{md_cell(base)}`",
        f"- Flow: `{md_cell(facts.flow)}`"
        + (f", trigger: {md_cell(run['loopline.trigger'])}" if run.get("loopline.trigger") else ""),
        f"- Prefect flow run: {flow}",
        f"- Training run: `{facts.run_id or 'unknown'}`",
        f"- Git commit: `{md_cell(tags.get('loopline.git_commit') or 'unknown')}`",
        f"- Trained by: {md_cell(run.get(MLFLOW_USER) or 'unknown')}",
    ]
    key = tags.get("loopline.retrain_key") or tags.get("loopline.train_key")
    if key:
        lines.append(f"- Training key: `{md_cell(key)}` (a rerun with the same input reuses this version)")
    return "\n".join(lines)


def _drift(facts: CardFacts) -> str:
    state = facts.lineage.get("loopline.drift_at_training")
    if state:
        return f"## Drift state at training time\n\n{md_cell(state)}"
    if facts.flow == "retrain":
        return "## Drift state at training time\n\nUnknown: this round recorded no monitoring state."
    return (
        "## Drift state at training time\n\n"
        "Not applicable: trained on a labelled file, not in response to a monitoring check."
    )


def _known_limits(facts: CardFacts) -> str:
    limits = []
    test = facts.evaluations.get("test")
    if test is not None:
        if test.num_rows < SMALL_SET_ROWS:
            limits.append(f"The test set has only {test.num_rows} rows: its scores are rough estimates.")
        few = [label for label, s in test.metrics.per_class.items() if 0 < s.get("support", 0) < FEW_EXAMPLES]
        if few:
            limits.append(
                f"Fewer than {FEW_EXAMPLES} test examples of {_listing(few)}: their recall is mostly noise."
            )
        absent = [label for label, s in test.metrics.per_class.items() if s.get("support", 0) == 0]
        if absent:
            limits.append(
                f"No test example of {_listing(absent)}: measured only on feedback holdouts, if at all."
            )
        weak = [
            label
            for label, s in test.metrics.per_class.items()
            if s.get("support", 0) > 0 and s.get("f1", 0.0) < WEAK_F1
        ]
        if weak:
            limits.append(f"Weak on {_listing(weak)} (test F1 below {WEAK_F1}).")
        if test.metrics.ece > HIGH_ECE:
            limits.append(
                f"Confidences are poorly calibrated (ECE {test.metrics.ece:.3f} > {HIGH_ECE}): "
                "do not read them as probabilities."
            )
    new = [label for label in facts.lineage.get("loopline.new_labels", "").split(",") if label]
    if new:
        limits.append(f"New in this version, learnt from feedback only: {_listing(new)}.")
    max_length = facts.params.get("training.max_length")
    if max_length:
        cut = "words past it are tagged O" if facts.task == "token" else "the rest is not read"
        limits.append(f"Reads at most {max_length} tokens of a text; {cut}.")
    limits.append(
        "Knows only its label set and the data above; quality on texts unlike the training data is "
        "unmeasured until the monitor flags drift and feedback is labelled."
    )
    return "## Known limits\n\n" + "\n".join(f"- {md_cell(limit)}" for limit in limits)


def _listing(labels: list[str], most: int = 8) -> str:
    shown = ", ".join(f"`{label}`" for label in labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def training_run_name(facts: CardFacts) -> str:
    """``train v1 (2,400 rows)`` / ``retrain v3 ← v2 (412 feedback rows)``: the runs table explains itself."""
    if facts.flow == "retrain":
        return f"retrain v{facts.version} ← v{facts.parent or '?'} ({facts.feedback_rows:,} feedback rows)"
    return f"{facts.flow} v{facts.version} ({facts.train_rows:,} rows)"


def model_description(model_name: str, task: str) -> str:
    """The registered model's own description: what it is and how its versions move."""
    what = (
        "a token classifier (BIO entity tags per word)"
        if task == "token"
        else "a text classifier (one label per text)"
    )
    return (
        f"# {model_name}\n\n"
        f"{what.capitalize()}, kept fresh by loopline: trained with `loopline train`, retrained on reviewed "
        "feedback with `loopline retrain` (or when `loopline monitor` sees drift).\n\n"
        "Each version passed the promotion gate before it was registered, and its description is its model "
        "card (data, metrics, gate verdict, lineage, limits). A new version gets the alias `candidate`; "
        "with auto-promote, and when its canary passes, `production` moves to it. Move aliases by hand "
        "with `loopline promote VERSION` and `loopline rollback` (history: `loopline history`); load "
        f"`models:/{model_name}@production`."
    )


# --- writing ----------------------------------------------------------------------------------------------


def save_model_card(name: str, version: str) -> str | None:
    """Name the training run, give the registered model a description if it has none, log
    ``model_card.md`` on the run and make the card the version's description. Returns the description.

    Idempotent: a version that already has a description (this card, or a user's edit) keeps it, so a
    rerun after a crash anywhere here ends with the card set exactly once.
    """
    client = mlflow_client()
    facts = load_card_facts(name, version)
    if facts.run_id:
        name_run(facts.run_id, training_run_name(facts))
    model = client.get_registered_model(name)
    if not (model.description or "").strip():
        client.update_registered_model(name, description=model_description(name, facts.task))
    current = client.get_model_version(name, version).description or ""
    if current.strip():
        return current
    card = render_model_card(facts)
    if facts.run_id:
        client.log_text(facts.run_id, card, CARD_ARTIFACT)
    crash_point("publish.card_logged")
    description = card_for_description(facts, card)
    client.update_model_version(name, version, description=description)
    logger.info("Wrote the model card of %s v%s (%d characters)", name, version, len(card))
    return description


def read_model_card(name: str, version: str) -> str:
    """The card of a version (its description); RegistryError when the model or version does not exist."""
    return str(get_version(name, version).description or "")
