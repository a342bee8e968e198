"""Fine-tune a candidate and log its training to MLflow as it goes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd

from loopline.config import Settings
from loopline.pipeline.torchrun import TrainPlan, run_torchrun
from loopline.tasks import get_task
from loopline.tracking import log_file, log_flat_params, mlflow_client
from loopline.training.trainer import EpochMetrics, TrainResult, train_model

logger = logging.getLogger(__name__)


def fit_candidate(
    settings: Settings,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    output_dir: Path,
    *,
    run_id: str | None = None,
    labels: list[str] | None = None,
    init_model_dir: str | None = None,
) -> TrainResult:
    """Train (cold from the base model, or warm from ``init_model_dir``), logging each epoch to ``run_id``;
    on ``training.processes`` > 1 processes through torchrun."""
    task = get_task(settings.task)
    if run_id:
        log_flat_params(run_id, settings.training.model_dump(), "training.")
        log_flat_params(
            run_id,
            {
                "base_model": settings.resolved_base_model,
                "init_model": init_model_dir or "",
                "train_rows": len(train_df),
                "task": task.name,
            },
        )
    if settings.training.processes > 1:
        result = run_torchrun(
            TrainPlan(
                train_df,
                val_df,
                settings.training,
                settings.resolved_base_model,
                output_dir,
                task.name,
                labels=labels,
                init_model_dir=init_model_dir,
                run_id=run_id,
                tracking_uri=mlflow.get_tracking_uri() if run_id else None,
            )
        )
    else:
        result = train_model(
            train_df,
            val_df,
            settings.training,
            settings.resolved_base_model,
            output_dir,
            labels=labels,
            init_model_dir=init_model_dir,
            on_epoch_end=epoch_logger(run_id, task.primary_name) if run_id else None,
            task=task,
        )
    if run_id:
        client = mlflow_client()
        client.log_metric(run_id, "train.samples_per_s", result.samples_per_s)
        client.log_metric(run_id, "train.tokens_per_s", result.tokens_per_s)
        client.log_metric(run_id, f"train.best_val_{result.score_name}", result.best_val_score)
        if result.truncated_words:
            client.log_metric(run_id, "train.truncated_words", result.truncated_words)
        client.set_tag(run_id, "loopline.device", result.device)
        client.set_tag(run_id, "loopline.train_processes", str(result.world_size))
        log_file(run_id, output_dir / "results.json", "training")
    return result


def epoch_logger(run_id: str, score_name: str) -> Callable[[EpochMetrics], None]:
    """Log each epoch's metrics to ``run_id`` (also from rank 0 of a torchrun job)."""
    client = mlflow_client()
    # MLflow names: the score under the task's own name (epoch.val_macro_f1, epoch.val_entity_f1).
    names = {
        "train_loss": "train_loss",
        "val_accuracy": "val_accuracy",
        "val_score": f"val_{score_name}",
        "samples_per_s": "samples_per_s",
        "tokens_per_s": "tokens_per_s",
        "seconds": "seconds",
    }

    def log_epoch(metrics: EpochMetrics) -> None:
        for field, name in names.items():
            client.log_metric(run_id, f"epoch.{name}", float(getattr(metrics, field)), step=metrics.epoch)

    return log_epoch
