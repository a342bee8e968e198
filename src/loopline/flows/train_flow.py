"""``train_flow``: data → contract → fine-tune → gate → MLflow registry, one MLflow run per flow run.

Run it with ``loopline train --data PATH``, ``python -m loopline.flows.train_flow PATH`` or, from a
checkout, ``python -m flows.train_flow PATH``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from loopline.config import Settings
from loopline.data.snapshots import DatasetVersion
from loopline.evaluation.gate import GateReport
from loopline.faults import crash_point
from loopline.flows import artifacts
from loopline.flows.common import (
    current_flow_run_id,
    current_flow_run_name,
    flow_settings,
    retry_unless_user_error,
)
from loopline.pipeline.assess import assess_candidate
from loopline.pipeline.champion import load_champion, require_task
from loopline.pipeline.datasets import load_splits
from loopline.pipeline.fit import fit_candidate
from loopline.pipeline.ingest import IngestOutcome, ingest_training_data
from loopline.pipeline.publish import (
    PublishOutcome,
    find_registered_version,
    promote_published,
    publish_candidate,
)
from loopline.tracking import end_run, git_commit, name_run, start_run
from loopline.training.trainer import TrainResult

TRAIN_KEY_TAG = "loopline.train_key"


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def ingest_data(
    settings: Settings, data_path: str, text_column: str | None, label_column: str | None, run_id: str
) -> IngestOutcome:
    return ingest_training_data(
        settings, data_path, text_column=text_column, label_column=label_column, run_id=run_id
    )


@task(cache_policy=NO_CACHE)
def train_candidate(settings: Settings, snapshot: DatasetVersion, run_id: str) -> TrainResult:
    splits = load_splits(settings, snapshot.version)
    get_run_logger().info(
        "Training on %d rows (validation %d, test %d) of %s",
        len(splits.train),
        len(splits.validation),
        len(splits.test),
        snapshot.version,
    )
    return fit_candidate(settings, splits.train, splits.validation, settings.runs_dir / run_id, run_id=run_id)


@task(cache_policy=NO_CACHE)
def gate_candidate(
    settings: Settings, snapshot: DatasetVersion, trained: TrainResult, champion_dir: str | None, run_id: str
) -> GateReport:
    splits = load_splits(settings, snapshot.version)
    return assess_candidate(
        settings,
        trained.model_dir,
        {"test": splits.test},
        settings.runs_dir / run_id / "evaluation",
        champion_dir=Path(champion_dir) if champion_dir else None,
        run_id=run_id,
    )


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
def register_candidate(
    settings: Settings, run_id: str, trained: TrainResult, gate: GateReport, lineage: dict[str, str]
) -> PublishOutcome:
    return publish_candidate(
        settings, run_id, trained.model_dir, gate, lineage, reason="train_flow: gate passed"
    )


def _run_name() -> str:
    return f"train {Path(str(flow_run.parameters.get('data_path', ''))).name}"


@flow(name="train", flow_run_name=_run_name)
def train_flow(
    data_path: str,
    text_column: str | None = None,
    label_column: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bootstrap or refresh the classifier from a labelled file; returns a JSON-safe summary."""
    settings = flow_settings(config_file, overrides)
    logger = get_run_logger()
    run_id = start_run(
        settings, "train", tags={"loopline.flow": "train", "prefect.flow_run_id": current_flow_run_id()}
    )
    try:
        ingested = ingest_data(settings, data_path, text_column, label_column, run_id)
        artifacts.publish_markdown(
            artifacts.CONTRACT_KEY,
            artifacts.contract_markdown(
                "Training-data contract", artifacts.ContractCounts.from_contract(ingested.contract)
            ),
            "Training-data contract: rows in, accepted, quarantined by reason",
        )
        key = train_key(settings, ingested.snapshot)
        existing = find_registered_version(settings, TRAIN_KEY_TAG, key)
        if existing is not None:
            name_run(run_id, f"train: rerun, already v{existing}")
            end_run(run_id)
            logger.info(
                "This data and these settings were trained into v%s before; not training again", existing
            )
            published = promote_published(
                settings, existing, None, "train_flow: rerun of a registered training"
            )
            _publish_promotion(published, reused=True)
            return _summary(run_id, published, ingested, None, {"passed": True, "checks": []}, reused=True)
        champion = load_champion(settings)
        require_task(settings, champion)  # before training: the gate could not compare the two
        trained = train_candidate(settings, ingested.snapshot, run_id)
        crash_point("train.trained")
        gate = gate_candidate(
            settings, ingested.snapshot, trained, str(champion.model_dir) if champion else None, run_id
        )
        artifacts.publish_markdown(
            artifacts.GATE_KEY, artifacts.gate_markdown(gate.to_dict()), "Gate verdict and its checks"
        )
        lineage = {
            **_lineage(settings, ingested, champion.version if champion else "", gate),
            TRAIN_KEY_TAG: key,
        }
        published = register_candidate(settings, run_id, trained, gate, lineage)
    except BaseException:
        end_run(run_id, failed=True)
        raise
    end_run(run_id)
    logger.info("Registered %s v%s %s", published.model_name, published.version, list(published.aliases))
    _publish_promotion(published, reused=False, parent_version=champion.version if champion else None)
    return _summary(run_id, published, ingested, trained.best_val_score, gate.to_dict(), reused=False)


def _publish_promotion(published: PublishOutcome, *, reused: bool, parent_version: str | None = None) -> None:
    """The version this run stands for, in the UI and in the run's name."""
    artifacts.publish_markdown(
        artifacts.PROMOTION_KEY,
        artifacts.promotion_markdown(
            published.model_name, published.version, published.aliases, parent_version
        ),
        "Registered version and its aliases" + (" (reused: trained before)" if reused else ""),
    )
    artifacts.name_flow_run(f"{_run_name()} → v{published.version}")


def _summary(
    run_id: str,
    published: PublishOutcome,
    ingested: IngestOutcome,
    best_val_score: float | None,
    gate: dict[str, Any],
    *,
    reused: bool,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "model_name": published.model_name,
        "version": published.version,
        "aliases": list(published.aliases),
        "dataset_version": ingested.snapshot.version,
        "quarantined_rows": ingested.quarantined_rows,
        "best_val_score": best_val_score,
        "gate": gate,
        "reused": reused,
    }


def train_key(settings: Settings, snapshot: DatasetVersion) -> str:
    """The same data, base model and training settings → the same key: a rerun after a crash past
    registration (or a cron job run twice) reuses the version instead of registering a duplicate."""
    payload = {
        "data": snapshot.content_hash,
        "base_model": settings.resolved_base_model,
        "training": settings.training.model_dump(),
        "split": settings.split.model_dump(),
        **({"task": settings.task} if settings.task != "sequence" else {}),  # sequence keys stay as they were
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _lineage(
    settings: Settings, ingested: IngestOutcome, parent_version: str, gate: GateReport
) -> dict[str, str]:
    return {
        "loopline.dataset_version": ingested.snapshot.version,
        "loopline.dataset_hash": ingested.snapshot.content_hash,
        "loopline.dataset_source": ingested.snapshot.source,
        "loopline.contract": "passed",
        "loopline.quarantined_rows": str(ingested.quarantined_rows),
        "loopline.base_model": settings.resolved_base_model,
        "loopline.task": settings.task,
        "loopline.parent_version": parent_version,
        "loopline.gate": "passed" if gate.passed else "failed",
        "loopline.git_commit": git_commit(),
        "loopline.prefect_flow_run_id": current_flow_run_id(),
        "loopline.prefect_flow_run_name": current_flow_run_name(),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m loopline.flows.train_flow PATH``: train on PATH and print the summary."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m loopline.flows.train_flow DATA_PATH")
    print(train_flow(args[0]))


if __name__ == "__main__":
    main()
