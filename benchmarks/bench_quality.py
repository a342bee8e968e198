"""Accuracy on BANKING77: loopline's trainer with the packaged MiniLM, train.csv → test.csv, over seeds.

Per seed: 10% of train.csv (stratified by intent, seeded) is held out as validation for early
stopping; ``loopline.training.trainer.train_model`` fine-tunes the packaged all-MiniLM-L6-v2 on the
rest; the best epoch (validation macro-F1) is loaded with ``loopline.inference.load_classifier``
and scored on all of test.csv (sklearn accuracy and macro-F1). Mean ± sample std over seeds, and
the difference to the reference loop of MEASURED.md (plain loop, 4 epochs, lr 1e-4: 90.7%).

    python benchmarks/bench_quality.py --data ../shared/data/banking77 --seeds 13 14 15 --threads 1 --jobs 2
    python benchmarks/bench_quality.py --smoke    # tiny random BERT, 200 synthetic rows, seconds

Training settings default to loopline's ``TrainingConfig`` defaults (flags override them), so a
plain run measures what loopline ships. Appends a section to benchmarks/RESULTS.md (not with
--smoke unless --results is given). Training folders live under --workdir (default
.loopline/bench/quality); an interrupted seed resumes from its last epoch checkpoint when rerun
with the same settings (torch threads may differ).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from common import (
    REPO_ROOT,
    command_line,
    git_commit,
    load_average,
    load_labelled_csv,
    machine_line,
    markdown_table,
    packaged_model_path,
    prepare_environment,
    publish_section,
    tiny_model,
    utc_now,
)
from loopline.config import TrainingConfig
from loopline.inference import load_classifier
from loopline.training.trainer import TrainResult, train_model

logger = logging.getLogger("bench_quality")

REFERENCE_ACCURACY = 0.907  # MEASURED.md: plain MiniLM loop, 4 epochs, lr 1e-4, batch 32, max length 64
TARGET_ACCURACY = 0.915
SMOKE_INTENTS = 8
SMOKE_ROWS = 200


@dataclass(frozen=True)
class SeedResult:
    """One seed: what training chose and what the best epoch scores on test.csv."""

    seed: int
    test_accuracy: float
    test_macro_f1: float
    best_epoch: int
    epochs_run: int
    best_val_accuracy: float
    val_accuracy_by_epoch: list[float]
    samples_per_s_by_epoch: list[float]
    samples_per_s: float
    train_minutes: float
    test_rows: int


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (0 for a single seed) of a figure over seeds."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    def percent(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"


# ---------------------------------------------------------------- arguments and data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="Folder with train.csv and test.csv (text,category).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13], help="One full training per seed.")
    # Training flags default to loopline's TrainingConfig defaults, so a plain run measures those.
    parser.add_argument("--epochs", type=int, help="Maximum epochs (early stopping may end sooner).")
    parser.add_argument("--lr", type=float, help="Peak learning rate of the encoder.")
    parser.add_argument("--head-lr", type=float, help="Learning rate of the classifier head.")
    parser.add_argument("--warmup", type=float, help="Share of steps with linear warmup.")
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--patience", type=int, help="Early-stopping patience (0 disables).")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="Share of train.csv for validation.")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default).")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="Seeds trained at once, each in its own process (2 cores: --jobs 2 --threads 1).",
    )
    parser.add_argument(
        "--workdir", type=Path, help="Training folders (default .loopline/bench/quality; smoke: a temp dir)."
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny random BERT, 200 rows, 1 epoch.")
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; append nothing.")
    args = parser.parse_args(argv)
    if args.data is None and not args.smoke:
        parser.error("--data is required (a folder with train.csv and test.csv), except with --smoke")
    if args.smoke:
        # One seed, or one per job so that --jobs is exercised too.
        args.epochs, args.seeds = 1, args.seeds[: max(1, args.jobs)]
        args.threads = args.threads or 1  # seconds, not minutes, on a busy shared machine
    return args


def training_config(args: argparse.Namespace, seed: int) -> TrainingConfig:
    """loopline's TrainingConfig defaults, overridden by the flags given."""
    flags = {
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "head_learning_rate": args.head_lr,
        "warmup_ratio": args.warmup,
        "label_smoothing": args.label_smoothing,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "early_stopping_patience": args.patience,
        "num_threads": args.threads,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    return TrainingConfig(**{**given, "seed": seed})


def load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """train.csv and test.csv; for --smoke, a small slice (or synthetic demo data without --data)."""
    if args.data is not None:
        train = load_labelled_csv(args.data / "train.csv")
        test = load_labelled_csv(args.data / "test.csv")
    else:
        from loopline.data.demo import generate_demo_dataset

        frame = generate_demo_dataset(n_rows=600, seed=0)[["text", "label"]]
        train, test = frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)
    if args.smoke:
        keep = sorted(train["label"].unique())[:SMOKE_INTENTS]
        train = train[train["label"].isin(keep)].groupby("label").head(SMOKE_ROWS // len(keep))
        test = test[test["label"].isin(keep)].groupby("label").head(10)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def split_validation(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded cut of ``fraction`` of the rows for early stopping."""
    fit, val = train_test_split(train, test_size=fraction, stratify=train["label"], random_state=seed)
    return fit.reset_index(drop=True), val.reset_index(drop=True)


# ---------------------------------------------------------------- one seed


def evaluate_test(model_dir: Path, test: pd.DataFrame, max_length: int) -> tuple[float, float]:
    """Accuracy and macro-F1 of a saved model on ``test``."""
    classifier = load_classifier(model_dir, device="auto", max_length=max_length)
    predicted, _ = classifier.predict(test["text"].tolist())
    truth = test["label"].tolist()
    return float(accuracy_score(truth, predicted)), float(f1_score(truth, predicted, average="macro"))


def run_seed(
    train: pd.DataFrame,
    test: pd.DataFrame,
    base_model: str,
    args: argparse.Namespace,
    workdir: Path,
    seed: int,
) -> SeedResult:
    fit, val = split_validation(train, args.val_fraction, seed)
    labels = sorted(train["label"].unique())
    cfg = training_config(args, seed)
    logger.info(
        "Seed %d: %d training rows, %d validation rows, %d labels", seed, len(fit), len(val), len(labels)
    )
    result: TrainResult = train_model(fit, val, cfg, base_model, workdir / f"seed-{seed}", labels=labels)
    accuracy, macro_f1 = evaluate_test(result.model_dir, test, cfg.max_length)
    best = result.history[result.best_epoch - 1]
    logger.info(
        "Seed %d: test accuracy %.4f, macro-F1 %.4f (best epoch %d)", seed, accuracy, macro_f1, best.epoch
    )
    return SeedResult(
        seed=seed,
        test_accuracy=accuracy,
        test_macro_f1=macro_f1,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        best_val_accuracy=best.val_accuracy,
        val_accuracy_by_epoch=[m.val_accuracy for m in result.history],
        samples_per_s_by_epoch=[m.samples_per_s for m in result.history],
        samples_per_s=result.samples_per_s,
        train_minutes=sum(m.seconds for m in result.history) / 60,  # every epoch, also before a resume
        test_rows=len(test),
    )


def run_seeds(
    train: pd.DataFrame, test: pd.DataFrame, base_model: str, args: argparse.Namespace, workdir: Path
) -> list[SeedResult]:
    """Every seed, ``--jobs`` at a time in spawned processes (one process: in this one), in seed order."""
    if args.jobs <= 1 or len(args.seeds) == 1:
        return [run_seed(train, test, base_model, args, workdir, seed) for seed in args.seeds]
    # spawn, not fork: torch's thread pools do not survive a fork, and each seed sets its own threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=prepare_environment) as pool:
        futures = [pool.submit(run_seed, train, test, base_model, args, workdir, seed) for seed in args.seeds]
        return [future.result() for future in futures]


# ---------------------------------------------------------------- report


def results_table(results: Sequence[SeedResult]) -> list[str]:
    """Per-seed rows, the mean ± std row, and the comparison with the reference loop and the target."""
    headers = [
        "run",
        "test accuracy %",
        "test macro-F1 %",
        "best epoch / run",
        "val accuracy by epoch %",
        "train samples/s by epoch",
        "train min",
    ]
    rows: list[list[object]] = [
        [
            f"seed {r.seed}",
            f"{100 * r.test_accuracy:.2f}",
            f"{100 * r.test_macro_f1:.2f}",
            f"{r.best_epoch} / {r.epochs_run}",
            " ".join(f"{100 * v:.1f}" for v in r.val_accuracy_by_epoch),
            " ".join(f"{v:.0f}" for v in r.samples_per_s_by_epoch),
            f"{r.train_minutes:.1f}",
        ]
        for r in results
    ]
    accuracy = Summary.of([r.test_accuracy for r in results])
    macro_f1 = Summary.of([r.test_macro_f1 for r in results])
    rows.append(
        [f"**mean ± std ({len(results)} seed(s))**", accuracy.percent(), macro_f1.percent(), "", "", "", ""]
    )
    diff, to_target = accuracy.mean - REFERENCE_ACCURACY, accuracy.mean - TARGET_ACCURACY
    rows.append(
        [
            "difference to reference loop (90.70)",
            f"{100 * diff:+.2f} points (×{accuracy.mean / REFERENCE_ACCURACY:.3f})",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    verdict = "met" if to_target >= 0 else "NOT met"
    rows.append(
        [
            f"target ≥ {100 * TARGET_ACCURACY:.1f}",
            f"{verdict} ({100 * to_target:+.2f} points)",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    return markdown_table(headers, rows)


def report_lines(
    args: argparse.Namespace, results: Sequence[SeedResult], train_rows: int, load: str, commit: str
) -> list[str]:
    cfg = training_config(args, results[0].seed)
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    model = "tiny random BERT (SMOKE: numbers are meaningless)" if args.smoke else "packaged all-MiniLM-L6-v2"
    data = args.data if args.data is not None else "synthetic demo data (loopline.data.demo)"
    lines = [
        f"## bench_quality — {utc_now()}" + (" (SMOKE)" if args.smoke else ""),
        "",
        f"- machine: {machine_line()}; load average before → after: {load}",
        f"- commit at start: {commit}",
        f"- command: {command_line('bench_quality.py')}",
        f"- model: {model}; data: {data}; "
        f"{train_rows} train rows ({100 * args.val_fraction:.0f}% stratified held out for early stopping), "
        f"{results[0].test_rows} test rows",
        f"- settings: loopline train_model, epochs ≤ {cfg.epochs} (patience {cfg.early_stopping_patience}), "
        f"lr {cfg.learning_rate:g}, head lr {head_lr:g}, warmup {cfg.warmup_ratio:g}, linear decay, "
        f"label smoothing {cfg.label_smoothing:g}, weight decay {cfg.weight_decay:g}, "
        f"batch {cfg.batch_size}, max length {cfg.max_length}, "
        f"torch threads {cfg.num_threads or 'default'}, "
        f"seeds {' '.join(str(r.seed) for r in results)}; the best epoch (validation macro-F1) is scored",
        "",
        *results_table(results),
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    train, test = load_data(args)
    load_before, commit = load_average(), git_commit()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        base_model = tiny_model(Path(tmp) / "tiny-bert") if args.smoke else packaged_model_path()
        workdir = Path(tmp) if args.smoke else (args.workdir or REPO_ROOT / ".loopline" / "bench" / "quality")
        results = run_seeds(train, test, base_model, args, workdir)
    lines = report_lines(args, results, len(train), f"{load_before} → {load_average()}", commit)
    publish_section(lines, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
