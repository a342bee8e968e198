"""Evaluation of a classifier: metrics, behaviour checks, evaluation reports and the promotion gate."""

from loopline.evaluation.behaviour import BehaviourCheck, BehaviourReport, run_behaviour_checks
from loopline.evaluation.evaluate import EvalReport, evaluate_model, load_eval_report, save_eval_report
from loopline.evaluation.gate import GateCheck, GateReport, evaluate_gate
from loopline.evaluation.metrics import EvalMetrics, compute_metrics, save_confusion_matrix_png

__all__ = [
    "BehaviourCheck",
    "BehaviourReport",
    "EvalMetrics",
    "EvalReport",
    "GateCheck",
    "GateReport",
    "compute_metrics",
    "evaluate_gate",
    "evaluate_model",
    "load_eval_report",
    "run_behaviour_checks",
    "save_confusion_matrix_png",
    "save_eval_report",
]
