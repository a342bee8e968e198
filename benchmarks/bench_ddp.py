"""Training on two processes (torchrun, DDP over gloo) against one, on the same cores, same rows.

Both runs use loopline's fit path with the same seed, data, epochs and global batch: one process with
every core as torch threads (``train_model``), and ``training.nproc_per_node = 2`` with the cores split
between the ranks (``run_torchrun``: a plan file in, ``results.json`` and ``model/`` out, rank 0 logs).
Reported: samples/s of the training phase (all ranks together), the whole step's wall time (torchrun's
start and the ranks' imports included) and test accuracy of each model, scored the same way.

    python benchmarks/bench_ddp.py --data ../shared/data/banking77 --rows 1000 --epochs 2
    python benchmarks/bench_ddp.py --smoke          # tiny model, 64 rows; writes nothing

Appends a section to benchmarks/RESULTS.md unless --no-write (or --smoke without --results).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common import (
    RESULTS_PATH,
    command_line,
    git_commit,
    load_average,
    machine_line,
    markdown_table,
    packaged_model_path,
    prepare_environment,
    publish_section,
    sample_splits,
    score_accuracy,
    tiny_model,
    utc_now,
)
from loopline.config import TrainingConfig
from loopline.pipeline.torchrun import TrainPlan, run_torchrun
from loopline.training.trainer import TrainResult, train_model


@dataclass(frozen=True)
class Run:
    processes: int
    threads_per_process: int
    result: TrainResult
    wall_seconds: float
    accuracy: float | None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="Folder with train.csv and test.csv (BANKING77 layout).")
    parser.add_argument("--rows", type=int, default=1000, help="Training rows (a seeded random sample).")
    parser.add_argument("--val-rows", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="Global batch (split across the ranks).")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="Cores both runs share out.")
    parser.add_argument("--smoke", action="store_true", help="Tiny model from a config, 64 rows.")
    parser.add_argument("--results", type=Path, help=f"Markdown file to append to (default {RESULTS_PATH}).")
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    return parser.parse_args(argv)


def load_rows(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if args.data is None:
        if not args.smoke:
            raise SystemExit(
                "--data is required (a folder with train.csv and test.csv), except with --smoke."
            )
        words = ["card", "transfer", "refund", "account", "balance", "pin", "atm", "fee"]
        n = args.rows + args.val_rows + args.test_rows
        frame = pd.DataFrame(
            {
                "text": [" ".join(words[(i + k) % len(words)] for k in range(3 + i % 7)) for i in range(n)],
                "label": [["card", "transfer", "refund"][i % 3] for i in range(n)],
            }
        )
        split = args.rows + args.val_rows
        return frame.iloc[: args.rows], frame.iloc[args.rows : split], frame.iloc[split:]
    return sample_splits(args.data, args.rows, args.val_rows, args.test_rows, args.seed)


def train_once(
    processes: int,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    labels: list[str],
    base: str,
    args: argparse.Namespace,
    out: Path,
) -> Run:
    train, val, test = frames
    threads = max(1, args.cores // processes)
    cfg = TrainingConfig.model_validate(
        {
            "epochs": args.epochs,
            "learning_rate": 1e-4,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "early_stopping_patience": 0,
            "seed": args.seed,
            "num_threads": threads,
            "nproc_per_node": processes,
        }
    )
    start = time.perf_counter()
    if processes == 1:
        result = train_model(train, val, cfg, base, out, labels=labels)
    else:
        result = run_torchrun(TrainPlan(train, val, cfg, base, out, task="sequence", labels=labels))
    wall = time.perf_counter() - start
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    accuracy = score_accuracy(model, tokenizer, test, result.labels, args.max_length)
    return Run(processes, threads, result, wall, accuracy)


def format_section(args: argparse.Namespace, runs: list[Run], load: str) -> list[str]:
    one = runs[0]
    rows = [
        [
            f"{run.processes} ({'torchrun, gloo' if run.processes > 1 else 'in process'})",
            run.threads_per_process,
            f"{run.result.samples_per_s:.1f}",
            f"{run.result.samples_per_s / one.result.samples_per_s:.2f}×",
            f"{run.wall_seconds:.1f}",
            f"{run.result.history[-1].train_loss:.4f}",
            "n/a" if run.accuracy is None else f"{run.accuracy:.2%}",
        ]
        for run in runs
    ]
    model = "tiny random BERT (smoke)" if args.smoke else "packaged all-MiniLM-L6-v2"
    return [
        f"## bench_ddp — {utc_now()}",
        "",
        f"- machine: {machine_line()}; {args.cores} cores shared out between the ranks",
        f"- load average (1/5/15 min) before → after: {load}",
        f"- commit: {git_commit()}",
        f"- model: {model}; data: {args.data or 'synthetic'}; {args.rows} training rows, {args.epochs} "
        f"epoch(s), global batch {args.batch_size}, lr 1e-4, seed {args.seed}; test accuracy on "
        f"{args.test_rows} rows",
        f"- command: {command_line('bench_ddp.py')}",
        "",
        *markdown_table(
            [
                "processes",
                "threads each",
                "samples/s",
                "vs 1 process",
                "step wall s",
                "last train loss",
                "test accuracy",
            ],
            rows,
        ),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rows, args.val_rows, args.test_rows = (
            min(args.rows, 64),
            min(args.val_rows, 16),
            min(args.test_rows, 32),
        )
        args.epochs = min(args.epochs, 1)
    prepare_environment()
    frames = load_rows(args)
    labels = sorted(frames[0]["label"].unique())
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        base = (
            tiny_model(Path(tmp) / "tiny-bert", packaged_model_path())
            if args.smoke
            else packaged_model_path()
        )
        runs = [train_once(n, frames, labels, base, args, Path(tmp) / f"nproc-{n}") for n in (1, 2)]
    section = format_section(args, runs, f"{load_before} → {load_average()}")
    publish_section(section, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
