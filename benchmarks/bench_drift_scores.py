"""Prediction and confidence drift on same-distribution windows: which reference keeps them quiet?

A fine-tuned model (e.g. one of bench_quality's, trained on 90% of train.csv) predicts three sets:
a sample of its own training texts, its held-out validation texts (the rest of train.csv, the split
bench_quality cut with the same seed) and test.csv. Windows of ``--window-size`` test.csv texts are
the same distribution the model was built for, so every alarm on them is a false alarm. Each
window's predicted labels and confidences go through loopline's ``categorical_drift`` and
``confidence_drift`` (``check_drift``'s defaults) against each reference in turn:

* training texts: what loopline used before (the model is over-confident on them);
* held-out texts: what ``pipeline.reference`` uses now (``ReferenceScores``).

    python benchmarks/bench_quality.py --data ../shared/data/banking77 --seeds 13 --threads 1   # first
    python benchmarks/bench_drift_scores.py --data ../shared/data/banking77 --seed 13
    python benchmarks/bench_drift_scores.py --smoke    # tiny random BERT, demo data, seconds

Appends a section to benchmarks/RESULTS.md (not with --smoke unless --results is given).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench_quality import split_validation
from common import (
    REPO_ROOT,
    command_line,
    git_commit,
    load_labelled_csv,
    machine_line,
    markdown_table,
    prepare_environment,
    publish_section,
    tiny_model,
    utc_now,
)
from loopline.inference import load_classifier
from loopline.monitoring.drift import DriftSettings, categorical_drift, confidence_drift


@dataclass(frozen=True)
class Scored:
    """One set of texts as the model sees it."""

    name: str
    predicted: list[str]
    confidences: np.ndarray


@dataclass(frozen=True)
class FalseAlarms:
    reference: Scored
    confidence: int
    prediction: int
    windows: int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="Folder with train.csv and test.csv (text,category).")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="A fine-tuned model folder (default: bench_quality's model of --seed, under .loopline/bench).",
    )
    parser.add_argument("--seed", type=int, default=13, help="The model's validation split seed.")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="As bench_quality cut it.")
    parser.add_argument("--reference", type=int, default=3000, help="Training texts in that reference.")
    parser.add_argument("--windows", type=int, default=50)
    parser.add_argument("--window-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--smoke", action="store_true", help="Tiny random BERT on demo data, seconds.")
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    args = parser.parse_args(argv)
    if args.smoke:
        args.reference, args.windows, args.window_size = 200, 5, 100
        return args
    if args.data is None:
        parser.error("--data is required (a folder with train.csv and test.csv), except with --smoke")
    args.model_dir = (
        args.model_dir or REPO_ROOT / ".loopline" / "bench" / "quality" / f"seed-{args.seed}" / "model"
    )
    if not (args.model_dir / "config.json").is_file():
        parser.error(
            f"no fine-tuned model at {args.model_dir}: run bench_quality.py --seeds {args.seed} first, "
            "or pass --model-dir"
        )
    return args


def load_sets(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The model's training rows, its held-out validation rows and test.csv."""
    if args.smoke:
        from loopline.data.demo import generate_demo_dataset

        frame = generate_demo_dataset(n_rows=900, seed=0)[["text", "label"]]
        train, test = frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)
    else:
        train, test = load_labelled_csv(args.data / "train.csv"), load_labelled_csv(args.data / "test.csv")
    fit, val = split_validation(train, args.val_fraction, args.seed)
    return fit.sample(n=min(args.reference, len(fit)), random_state=args.seed), val, test


def score(classifier: object, name: str, texts: list[str]) -> Scored:
    predicted, confidences = classifier.predict(texts)  # type: ignore[attr-defined]
    return Scored(name, [str(p) for p in predicted], np.asarray(confidences, dtype=np.float64))


def count_false_alarms(reference: Scored, test: Scored, args: argparse.Namespace) -> FalseAlarms:
    """Windows of test texts judged against ``reference`` with check_drift's default settings."""
    settings, rng = DriftSettings(), np.random.default_rng(args.seed)
    confidence = prediction = 0
    for window in range(args.windows):
        rows = rng.choice(len(test.predicted), size=min(args.window_size, len(test.predicted)), replace=False)
        current = [test.predicted[i] for i in rows]
        confidence += confidence_drift(
            reference.confidences,
            test.confidences[rows],
            alpha=settings.alpha,
            min_drop=settings.confidence_min_drop,
        ).alarm
        prediction += categorical_drift(
            "predicted_label",
            reference.predicted,
            current,
            alpha=settings.alpha,
            resamples=settings.label_resamples,
            seed=window,
        ).alarm
    return FalseAlarms(reference, confidence, prediction, args.windows)


def report_lines(
    args: argparse.Namespace, sets: Sequence[Scored], results: Sequence[FalseAlarms]
) -> list[str]:
    model = "tiny random BERT (SMOKE: numbers are meaningless)" if args.smoke else str(args.model_dir)
    means = ", ".join(f"{s.name} {s.confidences.mean():.3f} ({len(s.predicted)} texts)" for s in sets)
    rows = [
        [
            r.reference.name,
            len(r.reference.predicted),
            f"{r.reference.confidences.mean():.3f}",
            f"{r.confidence}/{r.windows} ({r.confidence / r.windows:.0%})",
            f"{r.prediction}/{r.windows} ({r.prediction / r.windows:.0%})",
        ]
        for r in results
    ]
    headers = ["reference", "texts", "mean confidence", "confidence drift alarms", "prediction drift alarms"]
    return [
        f"## bench_drift_scores — {utc_now()}" + (" (SMOKE)" if args.smoke else ""),
        "",
        f"- machine: {machine_line()}",
        f"- commit: {git_commit()}",
        f"- command: {command_line('bench_drift_scores.py')}",
        f"- model: {model}; validation split seed {args.seed} ({args.val_fraction:.0%} of train.csv)",
        f"- {args.windows} windows of {args.window_size} test.csv texts (same distribution: every alarm is "
        f"false); check_drift's defaults (alpha {DriftSettings().alpha}, confidence drop ≥ "
        f"{DriftSettings().confidence_min_drop})",
        f"- mean confidence: {means}",
        "",
        *markdown_table(headers, rows),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    import torch

    torch.set_num_threads(args.threads)
    training, held_out, test = load_sets(args)
    with tempfile.TemporaryDirectory(prefix="bench-drift-scores-") as tmp:
        model_dir = tiny_model(Path(tmp) / "tiny-bert") if args.smoke else str(args.model_dir)
        classifier = load_classifier(model_dir, max_length=64)  # smoke: a random 2-label head
        sets = [
            score(classifier, name, frame["text"].astype(str).tolist())
            for name, frame in (("training texts", training), ("held-out texts", held_out), ("test", test))
        ]
    results = [count_false_alarms(reference, sets[2], args) for reference in sets[:2]]
    lines = report_lines(args, sets, results)
    publish_section(lines, args.results, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
