"""The fit step on several processes: ``torchrun`` launches loopline's trainer, one rank per process.

The contract is the trainer's own: a plan file in (the frames as Parquet, the settings, the labels, the
model to start from, the MLflow run to log to), ``results.json`` and ``model/`` out in the run's folder,
written by rank 0. Rank 0 also logs each epoch to the run, so MLflow sees one run per job however many
processes train (MLflow has no notion of a distributed run, mlflow#11782). A rank that fails writes its
error beside the plan; the launcher raises it as the step's error.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m loopline.pipeline.torchrun --plan PLAN

One node: ``training.nproc_per_node`` (one per GPU, or a few on CPU; gloo on CPU, NCCL on GPU). Several
nodes: ``training.nnodes`` and ``training.rdzv_endpoint``; the run's folder must be on storage every node
sees, and each other node starts the command the launcher logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loopline.config import TrainingConfig
from loopline.errors import LooplineError, TrainingError
from loopline.processes import end_with_parent
from loopline.training.trainer import EpochMetrics, TrainResult

logger = logging.getLogger(__name__)

PLAN_DIR = "torchrun"  # inside the run's output folder


@dataclass(frozen=True)
class TrainPlan:
    """Everything a rank needs to run ``train_model``."""

    train_df: pd.DataFrame
    val_df: pd.DataFrame
    cfg: TrainingConfig
    base_model: str
    output_dir: Path
    task: str
    labels: list[str] | None = None
    init_model_dir: str | None = None
    run_id: str | None = None
    tracking_uri: str | None = None


def write_plan(plan: TrainPlan) -> Path:
    folder = plan.output_dir / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("rank-*.error.json"):
        stale.unlink()
    plan.train_df.reset_index(drop=True).to_parquet(folder / "train.parquet")
    plan.val_df.reset_index(drop=True).to_parquet(folder / "val.parquet")
    payload = {
        "cfg": plan.cfg.model_dump(),
        "base_model": plan.base_model,
        "output_dir": str(plan.output_dir.resolve()),
        "task": plan.task,
        "labels": plan.labels,
        "init_model_dir": plan.init_model_dir,
        "run_id": plan.run_id,
        "tracking_uri": plan.tracking_uri,
    }
    path = folder / "plan.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def read_plan(path: Path) -> TrainPlan:
    saved = json.loads(path.read_text())
    return TrainPlan(
        train_df=pd.read_parquet(path.parent / "train.parquet"),
        val_df=pd.read_parquet(path.parent / "val.parquet"),
        cfg=TrainingConfig(**saved["cfg"]),
        base_model=saved["base_model"],
        output_dir=Path(saved["output_dir"]),
        task=saved["task"],
        labels=saved["labels"],
        init_model_dir=saved["init_model_dir"],
        run_id=saved["run_id"],
        tracking_uri=saved["tracking_uri"],
    )


def torchrun_command(cfg: TrainingConfig, plan_path: Path, job_id: str) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={cfg.nproc_per_node}"]
    if cfg.nnodes == 1:
        launch.append("--standalone")
    else:
        launch += [
            f"--nnodes={cfg.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={cfg.rdzv_endpoint}",
            f"--rdzv-id={job_id}",
        ]
    return [*launch, "-m", __name__, "--plan", str(plan_path)]


def run_torchrun(plan: TrainPlan) -> TrainResult:
    """Launch the ranks, wait, and return rank 0's result; a failed rank's error is raised here."""
    plan_path = write_plan(plan)
    command = torchrun_command(plan.cfg, plan_path, plan.run_id or plan.output_dir.name)
    logger.info("Training on %d process(es) per node: %s", plan.cfg.nproc_per_node, " ".join(command))
    if plan.cfg.nnodes > 1:
        logger.info("Start the same command on each of the other %d node(s).", plan.cfg.nnodes - 1)
    # torchrun stops its ranks on SIGTERM; end_with_parent sends it one if this process is killed.
    exit_code = subprocess.run(command, check=False, preexec_fn=end_with_parent).returncode
    if exit_code != 0:
        raise _rank_failure(plan_path.parent, exit_code)
    results = plan.output_dir / "results.json"
    if not results.is_file():
        raise TrainingError(
            "torchrun finished, but rank 0 wrote no results.json.", where=str(plan.output_dir)
        )
    result = TrainResult.from_dict(json.loads(results.read_text()))
    for name in ("train.parquet", "val.parquet"):
        (plan_path.parent / name).unlink(missing_ok=True)
    return result


def _rank_failure(folder: Path, exit_code: int) -> TrainingError:
    reports = sorted(folder.glob("rank-*.error.json"), key=lambda path: path.stat().st_mtime)
    if not reports:
        return TrainingError(
            f"Distributed training failed: torchrun exited with {exit_code} and no rank reported an error.",
            where=str(folder),
            hint="A rank was probably killed (out of memory?); its log is above.",
        )
    first = json.loads(reports[0].read_text())  # the first to fail; the others were stopped after it
    return TrainingError(
        f"Distributed training failed on rank {first['rank']}: {first['message']}",
        where=first.get("where") or str(reports[0]),
        hint=first.get("hint") or "The rank's traceback is in its error file and in the log above.",
    )


# ---------------------------------------------------------------- one rank (started by torchrun)


def main(argv: Sequence[str] | None = None) -> int:
    import torch.distributed as dist

    from loopline.forward import resolve_device
    from loopline.logs import configure_cli_logging
    from loopline.tasks import get_task
    from loopline.training.distributed import init_process_group
    from loopline.training.trainer import train_model

    parser = argparse.ArgumentParser(
        prog="python -m loopline.pipeline.torchrun",
        description="One rank of a loopline training job; started by torchrun, one per process.",
    )
    parser.add_argument("--plan", type=Path, required=True, help="plan.json written by the fit step")
    plan_path = parser.parse_args(argv).plan
    rank = int(os.environ.get("RANK", "0"))
    configure_cli_logging()
    if rank:
        logging.getLogger("loopline").setLevel(logging.WARNING)  # rank 0 speaks for the job
    try:
        plan = read_plan(plan_path)
        init_process_group(resolve_device(plan.cfg.device).type)
        train_model(
            plan.train_df,
            plan.val_df,
            plan.cfg,
            plan.base_model,
            plan.output_dir,
            labels=plan.labels,
            init_model_dir=plan.init_model_dir,
            on_epoch_end=_epoch_logger(plan) if rank == 0 else None,
            task=get_task(plan.task),
        )
    except BaseException as err:
        _report(plan_path.parent, rank, err)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _epoch_logger(plan: TrainPlan) -> Callable[[EpochMetrics], None] | None:
    if not (plan.run_id and plan.tracking_uri):
        return None
    import mlflow

    from loopline.pipeline.fit import epoch_logger
    from loopline.tasks import get_task

    mlflow.set_tracking_uri(plan.tracking_uri)
    return epoch_logger(plan.run_id, get_task(plan.task).primary_name)


def _report(folder: Path, rank: int, err: BaseException) -> None:
    report = {
        "rank": rank,
        "type": type(err).__name__,
        "message": err.what if isinstance(err, LooplineError) else f"{type(err).__name__}: {err}",
        "where": err.where if isinstance(err, LooplineError) else None,
        "hint": err.hint if isinstance(err, LooplineError) else None,
        "traceback": traceback.format_exc(),
    }
    (folder / f"rank-{rank}.error.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
