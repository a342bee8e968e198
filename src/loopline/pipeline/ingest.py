"""Data in: load a user's file, hold it to the training-data contract, snapshot what was accepted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from loopline.config import Settings
from loopline.contracts import ContractResult
from loopline.data.snapshots import DatasetVersion, save_snapshot
from loopline.errors import ContractViolation
from loopline.metric_names import CONTRACT, QUARANTINED_ROWS, TRUNCATED_ROWS, contract_metric
from loopline.tasks import get_task
from loopline.tracking import active_run, log_file, log_json, mlflow_client

logger = logging.getLogger(__name__)

DATA_DOCS = "data_docs"  # run folder and artifact folder of the contract's GX Data Docs


@dataclass(frozen=True)
class IngestOutcome:
    snapshot: DatasetVersion
    contract: dict[str, Any]
    quarantined_rows: int
    quarantine_path: Path | None


def ingest_training_data(
    settings: Settings,
    data_path: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    run_id: str | None = None,
) -> IngestOutcome:
    """Load → validate → snapshot. A failed contract is logged to the run, then re-raised."""
    task = get_task(settings.task)
    frame = task.read_labelled(
        Path(data_path),
        text_column or settings.text_column,
        label_column or settings.label_column,
        settings.encoding,
        settings.label_map,
    )
    logger.info(
        "Loaded %d rows with %d classes from %s",
        len(frame),
        len(task.classes(frame["label"].dropna())),
        data_path,
    )
    # GX Data Docs of the contract run, for the MLflow run's artifacts (only when there is a run).
    docs_dir = settings.runs_dir / run_id / DATA_DOCS if run_id else None
    try:
        result = task.validate_training(
            frame, settings.contract, str(data_path), settings.quarantine_dir, docs_dir=docs_dir
        )
    except ContractViolation as err:
        if run_id and isinstance(err.result, ContractResult):
            log_contract_result(run_id, err.result)
        raise
    snapshot = save_snapshot(
        result.accepted[["text", "label"]],
        settings.data_dir,
        source=str(data_path),
        label_units=task.label_units,
    )
    logger.info(
        "Snapshot %s: %d rows, %d quarantined", snapshot.version, snapshot.num_rows, len(result.quarantined)
    )
    if run_id:
        log_contract_result(run_id, result)
        log_dataset_input(run_id, snapshot, result.accepted[["text", "label"]], context="training")
    return IngestOutcome(
        snapshot=snapshot,
        contract=result.to_dict(),
        quarantined_rows=len(result.quarantined),
        quarantine_path=result.quarantine_path,
    )


def log_contract_result(run_id: str, result: ContractResult, prefix: str = CONTRACT) -> None:
    """Contract verdict, summary and quarantine file on the run, so the UI shows why rows left."""
    client = mlflow_client()
    client.set_tag(run_id, f"loopline.{prefix}", "passed" if result.success else "failed")
    client.log_metric(run_id, contract_metric(QUARANTINED_ROWS, prefix), len(result.quarantined))
    client.log_metric(run_id, contract_metric(TRUNCATED_ROWS, prefix), result.truncated_rows)
    log_json(run_id, result.to_dict(), f"{prefix}/result.json")
    for path in (result.quarantine_path, result.report_path):
        if path is not None and Path(path).exists():
            log_file(run_id, Path(path), prefix)
    if result.docs_path is not None:
        log_data_docs(run_id, Path(result.docs_path).parent)


def log_data_docs(run_id: str, docs_dir: Path) -> None:
    """The GX Data Docs site (``data_docs/index.html`` and its pages) on the run; never fatal."""
    try:
        for animation in docs_dir.glob("static/images/*.gif"):  # GX's tutorial animations: 3.3 of 4.2 MB
            animation.unlink()
        mlflow_client().log_artifacts(run_id, str(docs_dir), DATA_DOCS)
    except Exception as err:  # pages for people must not fail a training
        logger.warning("GX Data Docs in %s could not be logged to run %s: %s", docs_dir, run_id, err)


def log_dataset_input(run_id: str, snapshot: DatasetVersion, frame: pd.DataFrame, context: str) -> None:
    """Record the snapshot as the run's dataset input (name, digest, source, schema)."""
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame, source=str(snapshot.path), name=snapshot.version, targets="label"
    )
    with active_run(run_id):
        mlflow.log_input(dataset, context=context, tags={"content_hash": snapshot.content_hash})
    mlflow_client().log_dict(run_id, snapshot.to_dict(), f"data/{snapshot.version}.json")
