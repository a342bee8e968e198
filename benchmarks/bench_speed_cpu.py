"""Training speed on CPU: loopline's train loop against a plain fine-tuning loop, same rows, same process.

The reference is the loop MEASURED.md describes (37 samples/s for MiniLM on 2 cores): random
batches tokenised and padded to their longest text, fp32, AdamW lr 1e-4 with 6% linear warmup,
loss from the model. Both loops train one epoch from the same base model on the same rows;
throughput is samples/s and real (non-pad) tokens/s of the training phase.

    python benchmarks/bench_speed_cpu.py --data ../shared/data/banking77 --rows 1000 --model packaged
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

import numpy as np
import pandas as pd
import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from common import (
    RESULTS_PATH,
    command_line,
    git_commit,
    load_average,
    load_labelled_csv,
    machine_line,
    packaged_model_path,
    publish_section,
    tiny_model,
    utc_now,
)
from loopline.config import TrainingConfig
from loopline.telemetry import disable_telemetry
from loopline.training.batching import LengthGroupedSampler, encode_texts
from loopline.training.trainer import train_model


@dataclass(frozen=True)
class LoopTiming:
    name: str
    samples: int
    real_tokens: int
    padded_tokens: int
    seconds: float

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


def load_rows(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train rows and validation rows (labels seen in training only)."""
    if args.data is None:
        if not args.smoke:
            raise SystemExit(
                "--data is required (a folder with train.csv and test.csv), except with --smoke."
            )
        frame = _synthetic_rows(args.rows + args.val_rows, args.seed)
        return frame.iloc[: args.rows], frame.iloc[args.rows :]
    train = load_labelled_csv(args.data / "train.csv").sample(n=args.rows, random_state=args.seed)
    val = load_labelled_csv(args.data / "test.csv")
    val = val[val["label"].isin(set(train["label"]))].sample(n=args.val_rows, random_state=args.seed)
    return train.reset_index(drop=True), val.reset_index(drop=True)


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


# ---------------------------------------------------------------- the two loops


def run_reference(
    train: pd.DataFrame, labels: list[str], model_path: str, args: argparse.Namespace
) -> LoopTiming:
    """The plain loop: random batches, tokenised per batch and padded to the longest, fp32 AdamW."""
    torch.manual_seed(args.seed)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = np.random.default_rng(args.seed).permutation(len(train))
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * len(batches)), len(batches))
    texts, targets = train["text"].tolist(), [label2id[label] for label in train["label"]]
    model.train()
    real = padded = 0
    start = time.perf_counter()
    for batch in batches:
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
    return LoopTiming("reference loop", len(train), real, padded, time.perf_counter() - start)


def run_loopline(
    train: pd.DataFrame,
    val: pd.DataFrame,
    labels: list[str],
    model_path: str,
    args: argparse.Namespace,
    out: Path,
) -> tuple[LoopTiming, float]:
    """loopline's ``train_model``, one epoch: its training-phase timing and the whole call's wall time."""
    cfg = TrainingConfig.model_validate(
        {
            "epochs": 1,
            "learning_rate": 1e-4,
            "warmup_ratio": 0.06,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "early_stopping_patience": 0,
            "seed": args.seed,
            "num_threads": args.threads,
        }
    )
    start = time.perf_counter()
    result = train_model(train, val, cfg, model_path, out, labels=labels)
    wall = time.perf_counter() - start
    epoch = result.history[0]
    padded = _loopline_padded_tokens(train, model_path, cfg)
    real = round(epoch.tokens_per_s * epoch.seconds)
    return LoopTiming("loopline train_model", len(train), real, padded, epoch.seconds), wall


def _loopline_padded_tokens(train: pd.DataFrame, model_path: str, cfg: TrainingConfig) -> int:
    """Tokens loopline's epoch-1 batches hold after padding (same sampler, same seed)."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = np.array([len(ids) for ids in encode_texts(tokenizer, train["text"].tolist(), cfg.max_length)])
    sampler = LengthGroupedSampler(lengths, cfg.batch_size, seed=cfg.seed)
    sampler.set_epoch(1)
    return int(sum(len(batch) * lengths[batch].max() for batch in sampler.batches()))


def warm_up(model_path: str, num_labels: int) -> None:
    """A few untimed steps first, so one-off start-up costs (thread pools, kernels) hit neither loop."""
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


def format_table(reference: list[LoopTiming], loopline: list[LoopTiming]) -> str:
    ref, ours = median_timing(reference), median_timing(loopline)
    rows = [
        "| loop | samples/s | real tokens/s | padding share | train seconds | samples/s of each run |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for timing, runs in ((ref, reference), (ours, loopline)):
        each = ", ".join(f"{t.samples_per_s:.1f}" for t in runs)
        rows.append(
            f"| {timing.name} | {timing.samples_per_s:.1f} | {timing.tokens_per_s:.0f} | "
            f"{timing.padding_share:.0%} | {timing.seconds:.1f} | {each} |"
        )
    rows.append(
        f"| **ratio loopline / reference** | **{ours.samples_per_s / ref.samples_per_s:.2f}×** | "
        f"**{ours.tokens_per_s / ref.tokens_per_s:.2f}×** | | | |"
    )
    return "\n".join(rows)


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
            f"- machine: {machine_line()}; torch threads in both loops: {torch.get_num_threads()}",
            f"- load average (1/5/15 min) before → after: {load} (a shared machine makes figures noisy)",
            f"- commit: {git_commit()}",
            f"- model: {_model_name(args, model_path)}; data: {args.data or 'synthetic'}; "
            f"{args.rows} training rows, one epoch, batch {args.batch_size}, "
            f"max length {args.max_length}, seed {args.seed}, "
            f"{args.repeats} run(s) of each loop, medians shown",
            f"- loopline's whole `train_model` call (tokenising, {args.val_rows}-row validation, saving): "
            + ", ".join(f"{wall:.1f} s" for wall in walls),
            f"- command: {command_line('bench_speed_cpu.py')}",
            "",
            table,
            "",
        ]
    )


def run_both(
    train: pd.DataFrame, val: pd.DataFrame, labels: list[str], args: argparse.Namespace, workdir: Path
) -> tuple[str, list[LoopTiming], list[LoopTiming], list[float]]:
    """Both loops ``args.repeats`` times, alternating which goes first so drifting load hits both."""
    model_path = resolve_model(args, workdir)
    warm_up(model_path, len(labels))
    reference: list[LoopTiming] = []
    loopline: list[LoopTiming] = []
    walls: list[float] = []
    for repeat in range(args.repeats):
        for which in ("reference", "loopline") if repeat % 2 == 0 else ("loopline", "reference"):
            if which == "reference":
                reference.append(run_reference(train, labels, model_path, args))
            else:
                timing, wall = run_loopline(train, val, labels, model_path, args, workdir / f"run-{repeat}")
                loopline.append(timing)
                walls.append(wall)
            latest = reference[-1] if which == "reference" else loopline[-1]
            print(f"{which}: {latest.samples_per_s:.1f} samples/s", flush=True)
    return model_path, reference, loopline, walls


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rows, args.val_rows = min(args.rows, 64), min(args.val_rows, 16)
    disable_telemetry()
    transformers.logging.set_verbosity_error()  # the reference loop's "newly initialized" head warning
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    train, val = load_rows(args)
    labels = sorted(train["label"].unique())
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        model_path, reference, loopline, walls = run_both(train, val, labels, args, Path(tmp))
    table = format_table(reference, loopline)
    section = format_section(args, model_path, table, walls, f"{load_before} → {load_average()}")
    publish_section(section.splitlines(), args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
