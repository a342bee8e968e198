"""Fine-tune a candidate and log its training to MLflow as it goes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from loopline.config import Settings
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
    """Train (cold from the base model, or warm from ``init_model_dir``), logging each epoch to ``run_id``."""
    if run_id:
        log_flat_params(run_id, settings.training.model_dump(), "training.")
        log_flat_params(
            run_id,
            {
                "base_model": settings.resolved_base_model,
                "init_model": init_model_dir or "",
                "train_rows": len(train_df),
            },
        )
    result = train_model(
        train_df,
        val_df,
        settings.training,
        settings.resolved_base_model,
        output_dir,
        labels=labels,
        init_model_dir=init_model_dir,
        on_epoch_end=_epoch_logger(run_id) if run_id else None,
    )
    if run_id:
        client = mlflow_client()
        client.log_metric(run_id, "train.samples_per_s", result.samples_per_s)
        client.log_metric(run_id, "train.tokens_per_s", result.tokens_per_s)
        client.log_metric(run_id, "train.best_val_macro_f1", result.best_val_macro_f1)
        client.set_tag(run_id, "loopline.device", result.device)
        log_file(run_id, output_dir / "results.json", "training")
    return result


def _epoch_logger(run_id: str) -> Callable[[EpochMetrics], None]:
    client = mlflow_client()

    def log_epoch(metrics: EpochMetrics) -> None:
        for name in (
            "train_loss",
            "val_accuracy",
            "val_macro_f1",
            "samples_per_s",
            "tokens_per_s",
            "seconds",
        ):
            client.log_metric(run_id, f"epoch.{name}", float(getattr(metrics, name)), step=metrics.epoch)

    return log_epoch
