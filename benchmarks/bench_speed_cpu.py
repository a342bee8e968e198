"""Training speed on CPU: loopline's train loop against HF Trainer and a plain fine-tuning loop.

Three loops train from the same base model on the same rows, epochs, learning rate (1e-4, 6% linear
warmup) and batch size, in one process, alternating their order between repeats:
- **HF Trainer** as a user would pick it: ``DataCollatorWithPadding`` and ``group_by_length=True``;
- the **plain loop** MEASURED.md describes (37 samples/s for MiniLM on 2 cores): random batches
  tokenised and padded to their longest text, fp32, AdamW, loss from the model (``--no-reference``
  skips it: it is the slow one);
- loopline's ``train_model`` (length-grouped batches, pre-tokenised, ``--precision``).
Throughput is samples/s and real (non-pad) tokens/s of the training phase; each trained model is then
scored on the same test rows, so a speed-up is read at equal accuracy.

    python benchmarks/bench_speed_cpu.py --data ../shared/data/banking77 --rows 2000 --epochs 2
    python benchmarks/bench_speed_cpu.py --smoke          # tiny model, 64 rows, seconds; writes nothing

Appends a section to benchmarks/RESULTS.md unless --no-write (or --smoke without --results).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)

from common import (
    RESULTS_PATH,
    add_precision_arg,
    command_line,
    git_commit,
    load_average,
    machine_line,
    packaged_model_path,
    publish_section,
    sample_splits,
    score_accuracy,
    tiny_model,
    utc_now,
)
from loopline.config import TrainingConfig
from loopline.telemetry import disable_telemetry
from loopline.training.batching import LengthGroupedSampler, encode_texts
from loopline.training.optimiser import build_optimizer
from loopline.training.trainer import train_model


@dataclass(frozen=True)
class LoopTiming:
    name: str
    samples: int
    real_tokens: int
    padded_tokens: int
    seconds: float
    accuracy: float | None = None  # on the test rows, after training

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, help="Folder with train.csv (columns text,category) and test.csv."
    )
    parser.add_argument("--rows", type=int, default=2000, help="Training rows (a seeded random sample).")
    parser.add_argument("--val-rows", type=int, default=100, help="Validation rows for loopline's loop.")
    parser.add_argument(
        "--test-rows", type=int, default=1000, help="Test rows each trained model is scored on (0: none)."
    )
    parser.add_argument("--epochs", type=int, default=1, help="Training epochs of every loop.")
    add_precision_arg(parser)
    parser.add_argument(
        "--trainer-recipe",
        choices=["hf", "loopline"],
        default="hf",
        help="hf: Trainer's defaults (one learning rate, its AdamW, no label smoothing), as a user would "
        "pick it; loopline: loopline's optimiser and label smoothing, so accuracy can be compared.",
    )
    parser.add_argument("--no-reference", action="store_true", help="Skip the (slow) plain loop.")
    parser.add_argument(
        "--model", default="packaged", help="'packaged' (the packaged MiniLM) or a model folder."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads for both loops (default: torch's default, usually all cores).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="Run both loops this many times, alternating which goes first; medians.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny model from a config, 64 rows: checks the harness."
    )
    parser.add_argument("--results", type=Path, help=f"Markdown file to append to (default {RESULTS_PATH}).")
    parser.add_argument(
        "--no-write", action="store_true", help="Print only; do not append to the results file."
    )
    return parser.parse_args(argv)


# ---------------------------------------------------------------- data and models


def load_rows(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, validation and test rows (the last two disjoint, labels seen in training only)."""
    if args.data is None:
        if not args.smoke:
            raise SystemExit(
                "--data is required (a folder with train.csv and test.csv), except with --smoke."
            )
        frame = _synthetic_rows(args.rows + args.val_rows + args.test_rows, args.seed)
        split = args.rows + args.val_rows
        return frame.iloc[: args.rows], frame.iloc[args.rows : split], frame.iloc[split:]
    return sample_splits(args.data, args.rows, args.val_rows, args.test_rows, args.seed)


def _synthetic_rows(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["card", "transfer", "refund", "account", "balance", "pin", "atm", "fee", "cash", "please", "my"]
    labels = ["card", "transfer", "refund", "account"]
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 30))) for _ in range(n_rows)]
    return pd.DataFrame({"text": texts, "label": [labels[i % len(labels)] for i in range(n_rows)]})


def resolve_model(args: argparse.Namespace, workdir: Path) -> str:
    """Path of the base model: the packaged MiniLM, a given folder, or (smoke) a tiny random BERT."""
    packaged = packaged_model_path()
    if not args.smoke:
        return packaged if args.model == "packaged" else args.model
    return tiny_model(workdir / "tiny-bert", packaged)


# ---------------------------------------------------------------- the three loops


def run_reference(
    train: pd.DataFrame, test: pd.DataFrame, labels: list[str], model_path: str, args: argparse.Namespace
) -> LoopTiming:
    """The plain loop: random batches, tokenised per batch and padded to the longest, fp32 AdamW."""
    torch.manual_seed(args.seed)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = -(-len(train) // args.batch_size)
    steps = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    texts, targets = train["text"].tolist(), [label2id[label] for label in train["label"]]
    model.train()
    real = padded = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = rng.permutation(len(train))
        for batch in (order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)):
            encoded = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=args.max_length,
                return_tensors="pt",
            )
            real += int(encoded["attention_mask"].sum())
            padded += encoded["attention_mask"].numel()
            loss = model(**encoded, labels=torch.tensor([targets[i] for i in batch])).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - start
    accuracy = score_accuracy(model, tokenizer, test, labels, args.max_length)
    return LoopTiming("plain loop", len(train) * args.epochs, real, padded, seconds, accuracy)


def loopline_config(args: argparse.Namespace) -> TrainingConfig:
    """loopline's training settings here: its defaults (head learning rate, label smoothing, weight
    decay) with this benchmark's epochs, encoder learning rate, warmup, batch and length."""
    return TrainingConfig.model_validate(
        {
            "epochs": args.epochs,
            "learning_rate": 1e-4,
            "warmup_ratio": 0.06,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "early_stopping_patience": 0,
            "seed": args.seed,
            "num_threads": args.threads,
            "precision": args.precision,
        }
    )


def run_loopline(
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str],
    model_path: str,
    args: argparse.Namespace,
    out: Path,
) -> tuple[LoopTiming, float]:
    """loopline's ``train_model``: its training-phase timing (all epochs) and the whole call's wall time."""
    cfg = loopline_config(args)
    start = time.perf_counter()
    result = train_model(train, val, cfg, model_path, out, labels=labels)
    wall = time.perf_counter() - start
    seconds = sum(epoch.seconds for epoch in result.history)
    real = round(sum(epoch.tokens_per_s * epoch.seconds for epoch in result.history))
    padded = _loopline_padded_tokens(train, model_path, cfg)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    accuracy = score_accuracy(model, tokenizer, test, labels, args.max_length)
    timing = LoopTiming("loopline train_model", len(train) * args.epochs, real, padded, seconds, accuracy)
    return timing, wall


def _loopline_padded_tokens(train: pd.DataFrame, model_path: str, cfg: TrainingConfig) -> int:
    """Tokens loopline's batches hold after padding over all epochs (same sampler, same seed)."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = np.array([len(ids) for ids in encode_texts(tokenizer, train["text"].tolist(), cfg.max_length)])
    sampler = LengthGroupedSampler(lengths, cfg.batch_size, seed=cfg.seed)
    padded = 0
    for epoch in range(1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        padded += int(sum(len(batch) * lengths[batch].max() for batch in sampler.batches()))
    return padded


class _CountingCollator:
    """``DataCollatorWithPadding`` that also counts real and padded tokens (the batch is unchanged)."""

    def __init__(self, tokenizer: Any) -> None:
        self.inner = DataCollatorWithPadding(tokenizer)
        self.real = self.padded = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        return batch


class _TrainTimer(TrainerCallback):
    """Wall time from ``on_train_begin`` to ``on_train_end``: the training phase only."""

    begin = end = 0.0

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self.begin = time.perf_counter()

    def on_train_end(self, *args: Any, **kwargs: Any) -> None:
        self.end = time.perf_counter()


def run_trainer(
    train: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str],
    model_path: str,
    args: argparse.Namespace,
    out: Path,
) -> LoopTiming:
    """HF Trainer with dynamic padding and ``group_by_length``, the same hyper-parameters otherwise.

    ``--trainer-recipe loopline`` hands it loopline's optimiser (parameter groups: the head at its own
    rate, no decay on biases and LayerNorm; fused AdamW) and label smoothing, so both loops optimise
    the same objective the same way and only the engines differ: accuracy should then agree."""
    from datasets import Dataset

    recipe = loopline_config(args) if args.trainer_recipe == "loopline" else None
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(labels))
    encoded = tokenizer(train["text"].tolist(), truncation=True, max_length=args.max_length)
    dataset = Dataset.from_dict({**encoded, "labels": [label2id[x] for x in train["label"]]})
    training_args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=1e-4,
        warmup_ratio=0.06,
        group_by_length=True,
        bf16=args.precision == "bf16",
        use_cpu=True,
        report_to=[],
        save_strategy="no",  # a checkpoint write is not training speed
        logging_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
        label_smoothing_factor=recipe.label_smoothing if recipe else 0.0,
    )
    collator, timer = _CountingCollator(tokenizer), _TrainTimer()
    optimizer = build_optimizer(model, recipe, torch.device("cpu")) if recipe else None
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[timer],
        optimizers=(optimizer, None),  # None: Trainer's own; its linear warmup schedule either way
    )
    trainer.train()
    accuracy = score_accuracy(trainer.model, tokenizer, test, labels, args.max_length)
    samples = len(train) * args.epochs
    return LoopTiming(
        "HF Trainer", samples, collator.real, collator.padded, timer.end - timer.begin, accuracy
    )


def warm_up(model_path: str, num_labels: int) -> None:
    """A few untimed steps first, so one-off start-up costs (thread pools, kernels) hit no loop."""
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=num_labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for length in (12, 24, 12):
        ids = torch.randint(1000, 2000, (8, length))
        model(input_ids=ids, labels=torch.zeros(8, dtype=torch.long)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


# ---------------------------------------------------------------- report


def median_timing(timings: list[LoopTiming]) -> LoopTiming:
    """The run with the median samples/s (the lower middle one for an even count)."""
    return sorted(timings, key=lambda t: t.samples_per_s)[(len(timings) - 1) // 2]


def format_table(runs: dict[str, list[LoopTiming]]) -> str:
    """One row per loop (medians), then loopline's ratio against each other loop."""
    medians = {name: median_timing(timings) for name, timings in runs.items()}
    rows = [
        "| loop | samples/s | real tokens/s | padding share | train seconds | test accuracy "
        "| samples/s of each run |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, timing in medians.items():
        each = ", ".join(f"{t.samples_per_s:.1f}" for t in runs[name])
        rows.append(
            f"| {timing.name} | {timing.samples_per_s:.1f} | {timing.tokens_per_s:.0f} | "
            f"{timing.padding_share:.0%} | {timing.seconds:.1f} | {_accuracy(timing)} | {each} |"
        )
    ours = medians["loopline"]
    for name, other in medians.items():
        if name == "loopline":
            continue
        gap = (
            ""
            if ours.accuracy is None or other.accuracy is None
            else f"{100 * (ours.accuracy - other.accuracy):+.1f} points"
        )
        rows.append(
            f"| **ratio loopline / {other.name}** | **{ours.samples_per_s / other.samples_per_s:.2f}×** | "
            f"**{ours.tokens_per_s / other.tokens_per_s:.2f}×** | | | {gap} | |"
        )
    return "\n".join(rows)


def _accuracy(timing: LoopTiming) -> str:
    return "n/a" if timing.accuracy is None else f"{timing.accuracy:.2%}"


def _model_name(args: argparse.Namespace, model_path: str) -> str:
    if args.smoke:
        return "tiny random BERT (smoke)"
    return "packaged all-MiniLM-L6-v2" if args.model == "packaged" else model_path


def format_section(
    args: argparse.Namespace, model_path: str, table: str, walls: list[float], load: str
) -> str:
    return "\n".join(
        [
            f"## bench_speed_cpu — {utc_now()}",
            "",
            f"- machine: {machine_line()}; torch threads in every loop: {torch.get_num_threads()}",
            f"- load average (1/5/15 min) before → after: {load} (a shared machine makes figures noisy)",
            f"- commit: {git_commit()}",
            f"- model: {_model_name(args, model_path)}; data: {args.data or 'synthetic'}; "
            f"{args.rows} training rows, {args.epochs} epoch(s), batch {args.batch_size}, "
            f"max length {args.max_length}, lr 1e-4, {args.precision}, seed {args.seed}, "
            f"Trainer recipe `{args.trainer_recipe}`, "
            f"{args.repeats} run(s) of each loop, medians shown; test accuracy on {args.test_rows} rows",
            f"- loopline's whole `train_model` call (tokenising, {args.val_rows}-row validation, saving): "
            + ", ".join(f"{wall:.1f} s" for wall in walls),
            f"- command: {command_line('bench_speed_cpu.py')}",
            "",
            table,
            "",
        ]
    )


def run_all(
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str],
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[str, dict[str, list[LoopTiming]], list[float]]:
    """Every loop ``args.repeats`` times, the order rotated each repeat so drifting load hits all."""
    model_path = resolve_model(args, workdir)
    warm_up(model_path, len(labels))
    names = ["trainer", "loopline"] + ([] if args.no_reference else ["reference"])
    runs: dict[str, list[LoopTiming]] = {name: [] for name in names}
    walls: list[float] = []
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            out = workdir / f"{name}-{repeat}"
            if name == "reference":
                timing = run_reference(train, test, labels, model_path, args)
            elif name == "trainer":
                timing = run_trainer(train, test, labels, model_path, args, out)
            else:
                timing, wall = run_loopline(train, val, test, labels, model_path, args, out)
                walls.append(wall)
            runs[name].append(timing)
            print(
                f"{timing.name}: {timing.samples_per_s:.1f} samples/s, accuracy {_accuracy(timing)}",
                flush=True,
            )
    return model_path, runs, walls


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rows, args.val_rows, args.test_rows = (
            min(args.rows, 64),
            min(args.val_rows, 16),
            min(args.test_rows, 32),
        )
    disable_telemetry()
    transformers.logging.set_verbosity_error()  # the reference loop's "newly initialized" head warning
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    train, val, test = load_rows(args)
    labels = sorted(train["label"].unique())
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        model_path, runs, walls = run_all(train, val, test, labels, args, Path(tmp))
    table = format_table(runs)
    section = format_section(args, model_path, table, walls, f"{load_before} → {load_average()}")
    publish_section(section.splitlines(), args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
