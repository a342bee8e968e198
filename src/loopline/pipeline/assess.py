"""Evaluate a candidate (and the champion) on the same frozen sets, then apply the gate."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from loopline.config import Settings
from loopline.errors import LooplineError
from loopline.evaluation.evaluate import EvalReport, evaluate_model, save_eval_report
from loopline.evaluation.gate import GateReport, evaluate_gate
from loopline.evaluation.gate_markdown import gate_markdown
from loopline.evaluation.metrics import save_confusion_matrix_png
from loopline.inference import load_classifier
from loopline.tasks import task_of_model
from loopline.tracking import log_file, log_json, mlflow_client

logger = logging.getLogger(__name__)


def evaluate_on_sets(
    model_dir: Path | str,
    eval_sets: Mapping[str, pd.DataFrame],
    settings: Settings,
    mft: pd.DataFrame | None = None,
) -> dict[str, EvalReport]:
    """One EvalReport per non-empty evaluation set; behaviour checks run on the held-out test set."""
    classifier = load_classifier(model_dir, max_length=settings.training.max_length)
    reports: dict[str, EvalReport] = {}
    for name, frame in eval_sets.items():
        if frame.empty:
            continue
        is_test = name == "test"
        reports[name] = evaluate_model(
            classifier, frame, name, mft=mft if is_test else None, behaviour=is_test
        )
    return reports


def assess_candidate(
    settings: Settings,
    candidate_dir: Path,
    eval_sets: Mapping[str, pd.DataFrame],
    output_dir: Path,
    *,
    champion_dir: Path | None = None,
    new_labels: Sequence[str] = (),
    run_id: str | None = None,
) -> GateReport:
    """Candidate vs champion on the same sets; the gate report (and its evidence) goes to the run.

    ``new_labels`` are the classes the champion lacks: labels, or entity types for token models."""
    task = task_of_model(candidate_dir)
    champion_task = task_of_model(champion_dir).name if champion_dir is not None else task.name
    if champion_task != task.name:
        raise LooplineError(
            f"The champion is a {champion_task} classifier and the candidate a {task.name} one: they "
            "cannot be compared on the same sets.",
            where=settings.model_name,
            hint=f"train the {task.name} model under another model_name, or pass the champion's --task.",
        )
    mft = load_mft(settings.mft_path)
    candidate = evaluate_on_sets(candidate_dir, eval_sets, settings, mft)
    # The champion is re-evaluated on today's frozen sets: scores from its training day don't compare.
    champion = evaluate_on_sets(champion_dir, eval_sets, settings, mft) if champion_dir else None
    gate = evaluate_gate(
        candidate,
        champion,
        settings.gate,
        new_labels=new_labels,
        behaviour_required=task.has_behaviour_checks,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, report in candidate.items():
        save_eval_report(report, output_dir / f"eval_{name}.json")
    if run_id:
        log_evaluation(run_id, candidate, output_dir)
        log_json(run_id, gate.to_dict(), "gate/gate_report.json")
        mlflow_client().log_text(run_id, gate_markdown(gate.to_dict()), "gate/gate_report.md")  # for people
        mlflow_client().set_tag(run_id, "loopline.gate", "passed" if gate.passed else "failed")
    logger.info(
        "Gate %s: %s", "passed" if gate.passed else "FAILED", "; ".join(c.detail for c in gate.checks)
    )
    return gate


def log_evaluation(run_id: str, reports: Mapping[str, EvalReport], output_dir: Path) -> None:
    client = mlflow_client()
    for name, report in reports.items():
        metrics = report.metrics
        client.log_metric(run_id, f"{name}.accuracy", metrics.accuracy)
        client.log_metric(run_id, f"{name}.macro_f1", metrics.macro_f1)
        if metrics.primary_name != "macro_f1":
            client.log_metric(run_id, f"{name}.{metrics.primary_name}", metrics.primary)
        client.log_metric(run_id, f"{name}.ece", metrics.ece)
        client.log_metric(run_id, f"{name}.latency_ms_per_text", report.latency_ms_per_text)
        log_file(run_id, output_dir / f"eval_{name}.json", "evaluation")
        png = save_confusion_matrix_png(metrics, output_dir / f"confusion_{name}.png")
        log_file(run_id, png, "evaluation")


def load_mft(path: Path | None) -> pd.DataFrame | None:
    """The minimum-functionality examples (text,label CSV), if configured."""
    if path is None:
        return None
    from loopline.data.loading import load_labelled_text

    return load_labelled_text(path, "text", "label")
