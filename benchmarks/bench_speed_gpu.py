"""Training speed on a GPU: loopline's loop vs the 6·N·tokens FLOP ceiling and vs HF Trainer defaults.

For each model config (the packaged all-MiniLM-L6-v2, and a bert-base-sized BERT built from
``BertConfig()`` defaults with random weights and MiniLM's tokenizer; nothing is downloaded):

- loopline: ``train_model`` for one epoch over the chosen BANKING77 rows → real (non-pad) tokens/s
  of the training phase; MFU = 6 · N_params · tokens/s / peak (N counted with and without the
  embedding lookup tables, which do no matrix FLOPs);
- HF Trainer with its defaults on the same rows (bf16 on CUDA, batch 32, DataCollatorWithPadding,
  no length grouping) → tokens/s between ``on_train_begin`` and ``on_train_end``; ratio.

Both get an untimed warm-up run first (CUDA context, cuBLAS handles, kernel selection).

    python benchmarks/bench_speed_gpu.py --data ../shared/data/banking77                  # on a GPU
    python benchmarks/bench_speed_gpu.py --data ../shared/data/banking77 --steps 200 --peak-tflops 989
    python benchmarks/bench_speed_gpu.py --smoke --device cpu    # tiny model, 64 rows; writes nothing

Targets (issue): MiniLM ≥ 10% of the ceiling, bert-base ≥ 25%, both ≥ 1.5× HF Trainer.
Appends a section to benchmarks/RESULTS.md unless --no-write (or --smoke without --results).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from common import (
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

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s; the first name fragment found in the
#: device name wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
TARGET_MFU = {"minilm": 0.10, "bert-base": 0.25}
TARGET_RATIO = 1.5
EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


@dataclass(frozen=True)
class ParamCount:
    total: int
    non_embedding: int  # without the lookup tables (word, position, token type)


@dataclass(frozen=True)
class LoopTiming:
    """One timed training pass: real and padded tokens, steps, seconds, peak GPU memory."""

    real_tokens: int
    padded_tokens: int
    steps: int
    seconds: float
    peak_memory_gib: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


@dataclass(frozen=True)
class ModelResult:
    name: str
    params: ParamCount
    loopline: LoopTiming
    trainer: LoopTiming | None
    peak_tflops: float | None

    def mfu(self, n_params: int) -> float | None:
        if not self.peak_tflops:
            return None
        return 6 * n_params * self.loopline.tokens_per_s / (self.peak_tflops * 1e12)

    @property
    def ratio(self) -> float | None:
        return self.loopline.tokens_per_s / self.trainer.tokens_per_s if self.trainer else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="Folder with train.csv (text,category) and test.csv.")
    parser.add_argument(
        "--models", nargs="+", choices=("minilm", "bert-base"), default=["minilm", "bert-base"]
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="Device bf16 dense peak (default: from the device name, e.g. H100 989).",
    )
    parser.add_argument(
        "--steps", type=int, help="Train this many batches (default: one epoch of train.csv)."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=10, help="Untimed warm-up batches per loop.")
    parser.add_argument(
        "--val-rows", type=int, default=256, help="Validation rows for train_model (untimed)."
    )
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (CPU runs).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-trainer", action="store_true", help="Skip the HF Trainer comparison.")
    parser.add_argument("--smoke", action="store_true", help="Tiny model, 64 rows: checks the harness.")
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; do not append to results.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.warmup_steps, args.val_rows = ["tiny"], 2, 16
        args.steps = min(args.steps or 2, 2)
        args.batch_size = min(args.batch_size, 32)
        args.threads = args.threads or 1  # two OpenMP threads on a busy 2-core machine crawl
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            "--device cuda: no CUDA GPU is visible; use --device cpu (with --smoke to check the harness)."
        )
    if not args.no_trainer and importlib.util.find_spec("accelerate") is None:
        parser.error("HF Trainer needs accelerate: pip install 'accelerate>=0.26' (or pass --no-trainer).")
    if args.data is None and not args.smoke:
        parser.error("--data is required (a folder with train.csv and test.csv), except with --smoke.")
    return args


# ---------------------------------------------------------------- data and models


@dataclass(frozen=True)
class BenchData:
    train: pd.DataFrame  # the timed rows
    warmup: pd.DataFrame  # untimed warm-up rows
    val: pd.DataFrame
    labels: list[str]


def load_data(args: argparse.Namespace) -> BenchData:
    """Timed rows (``steps × batch`` sampled, or all of train.csv), warm-up rows, validation rows."""
    if args.data is None:
        full, test = _synthetic_rows(256, args.seed), _synthetic_rows(64, args.seed + 1)
    else:
        full, test = load_labelled_csv(args.data / "train.csv"), load_labelled_csv(args.data / "test.csv")
    labels = sorted(full["label"].unique())
    rows = len(full) if args.steps is None else args.steps * args.batch_size
    if rows > len(full):
        raise SystemExit(f"--steps {args.steps} needs {rows} rows; train.csv has {len(full)}.")
    shuffled = full.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    train = shuffled.iloc[:rows]
    warmup = shuffled.iloc[-args.warmup_steps * args.batch_size :]
    val = test[test["label"].isin(labels)]
    val = val.sample(n=min(args.val_rows, len(val)), random_state=args.seed).reset_index(drop=True)
    return BenchData(train.reset_index(drop=True), warmup.reset_index(drop=True), val, labels)


def _synthetic_rows(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["card", "transfer", "refund", "account", "balance", "pin", "atm", "fee", "cash", "please", "my"]
    labels = ["card", "transfer", "refund", "account"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(3, 30)))) for _ in range(n_rows)]
    return pd.DataFrame({"text": texts, "label": [labels[i % len(labels)] for i in range(n_rows)]})


def model_dir(name: str, workdir: Path) -> str:
    """A local base-model folder: the packaged MiniLM, a random bert-base, or (smoke) a tiny BERT."""
    if name == "minilm":
        return packaged_model_path()
    if name == "tiny":
        return tiny_model(workdir / "tiny-bert")
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = workdir / "bert-base-random"
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def count_params(model: torch.nn.Module) -> ParamCount:
    total = sum(p.numel() for p in model.parameters())
    tables = sum(p.numel() for n, p in model.named_parameters() if any(t in n for t in EMBEDDING_TABLES))
    return ParamCount(total=total, non_embedding=total - tables)


def peak_tflops(args: argparse.Namespace) -> float | None:
    """``--peak-tflops`` if given, else the bf16 dense peak looked up from the CUDA device name."""
    if args.peak_tflops:
        return float(args.peak_tflops)
    if args.device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((peak for fragment, peak in PEAK_BF16_TFLOPS if fragment in name), None)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "CPU"


# ---------------------------------------------------------------- loopline


def training_config(args: argparse.Namespace) -> Any:
    from loopline.config import TrainingConfig

    return TrainingConfig.model_validate(
        {
            "epochs": 1,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "early_stopping_patience": 0,
            "seed": args.seed,
            "device": args.device,
            "num_threads": args.threads,
        }
    )


def run_loopline(data: BenchData, base: str, args: argparse.Namespace, workdir: Path) -> LoopTiming:
    """Warm-up call, then one timed epoch of ``train_model`` (its own training-phase timing)."""
    from loopline.training.trainer import train_model

    cfg = training_config(args)
    train_model(data.warmup, data.val.head(16), cfg, base, workdir / "loopline-warmup", labels=data.labels)
    _reset_peak_memory(args.device)
    result = train_model(data.train, data.val, cfg, base, workdir / "loopline", labels=data.labels)
    epoch = result.history[0]
    padded, steps = loopline_padded_tokens(data.train, base, args)
    real = round(epoch.tokens_per_s * epoch.seconds)
    return LoopTiming(real, padded, steps, epoch.seconds, _peak_memory(args.device))


def loopline_padded_tokens(train: pd.DataFrame, base: str, args: argparse.Namespace) -> tuple[int, int]:
    """Tokens in loopline's epoch-1 batches after padding (same sampler, seed, pad multiple) and steps."""
    from transformers import AutoTokenizer

    from loopline.training.batching import LengthGroupedSampler, encode_texts

    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = encode_texts(tokenizer, train["text"].tolist(), args.max_length)
    lengths = np.array([len(x) for x in ids])
    sampler = LengthGroupedSampler(lengths, args.batch_size, seed=args.seed)
    sampler.set_epoch(1)
    multiple = 8 if args.device == "cuda" else 1
    batches = sampler.batches()
    padded = sum(len(b) * (-(-int(lengths[b].max()) // multiple) * multiple) for b in batches)
    return int(padded), len(batches)


# ---------------------------------------------------------------- HF Trainer


class _CountingCollator:
    """``DataCollatorWithPadding`` that also counts real and padded tokens (no change to the batch)."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorWithPadding

        self.inner = DataCollatorWithPadding(tokenizer)
        self.real = self.padded = self.batches = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        self.batches += 1
        return batch


def _timer_callback(device: str) -> Any:
    from transformers import TrainerCallback

    class TrainTimer(TrainerCallback):
        """Wall time from ``on_train_begin`` to ``on_train_end``, GPU work included."""

        begin = end = 0.0

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            _sync(device)
            self.begin = time.perf_counter()

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            _sync(device)
            self.end = time.perf_counter()

    return TrainTimer()


def hf_dataset(frame: pd.DataFrame, tokenizer: Any, labels: list[str], max_length: int) -> Any:
    from datasets import Dataset

    label2id = {label: i for i, label in enumerate(labels)}
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_length)
    return Dataset.from_dict({**encoded, "labels": [label2id[x] for x in frame["label"]]})


def hf_trainer(
    frame: pd.DataFrame,
    base: str,
    labels: list[str],
    args: argparse.Namespace,
    out: Path,
    max_steps: int = -1,
) -> tuple[Any, _CountingCollator, Any]:
    """A Trainer with defaults (bf16 on CUDA, batch size, no length grouping, no reporting/saving)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
    training_args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        max_steps=max_steps,
        bf16=args.device == "cuda",
        use_cpu=args.device == "cpu",
        report_to=[],
        save_strategy="no",  # a checkpoint write is not training speed
        disable_tqdm=True,
        seed=args.seed,
    )
    collator = _CountingCollator(tokenizer)
    timer = _timer_callback(args.device)
    dataset = hf_dataset(frame, tokenizer, labels, args.max_length)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=dataset, data_collator=collator, callbacks=[timer]
    )
    return trainer, collator, timer


def run_trainer(data: BenchData, base: str, args: argparse.Namespace, workdir: Path) -> LoopTiming:
    """Warm-up steps with one Trainer, then one timed epoch with a fresh one."""
    warm, _, _ = hf_trainer(data.warmup, base, data.labels, args, workdir / "hf-warmup", args.warmup_steps)
    warm.train()
    del warm
    gc.collect()
    trainer, collator, timer = hf_trainer(data.train, base, data.labels, args, workdir / "hf")
    _reset_peak_memory(args.device)
    trainer.train()
    seconds = timer.end - timer.begin
    return LoopTiming(collator.real, collator.padded, collator.batches, seconds, _peak_memory(args.device))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


# ---------------------------------------------------------------- run and report


def bench_model(name: str, data: BenchData, args: argparse.Namespace, workdir: Path) -> ModelResult:
    from transformers import AutoModelForSequenceClassification

    base = model_dir(name, workdir)
    params = count_params(
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(data.labels))
    )
    loopline = run_loopline(data, base, args, workdir / name)
    print(f"{name}: loopline {loopline.tokens_per_s:,.0f} real tokens/s", flush=True)
    trainer = None if args.no_trainer else run_trainer(data, base, args, workdir / name)
    if trainer is not None:
        print(f"{name}: HF Trainer {trainer.tokens_per_s:,.0f} real tokens/s", flush=True)
        if abs(trainer.real_tokens - loopline.real_tokens) > 0.001 * loopline.real_tokens:
            print(
                f"WARNING {name}: real tokens differ: "
                f"loopline {loopline.real_tokens}, Trainer {trainer.real_tokens}"
            )
    return ModelResult(name, params, loopline, trainer, peak_tflops(args))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "n/a"
    return "met" if value >= target else "**not met**"


def results_table(results: list[ModelResult]) -> list[str]:
    headers = [
        "model",
        "params (M) total / non-emb",
        "steps",
        "loopline real tokens/s",
        "MFU (6·N_total)",
        "MFU (6·N_non-emb)",
        "HF Trainer real tokens/s",
        "loopline / Trainer",
        "padding share loopline / Trainer",
        "peak GiB loopline / Trainer",
        "MFU target",
        "ratio target (≥1.5×)",
    ]
    rows = []
    for r in results:
        trainer = r.trainer
        memory = [t.peak_memory_gib if t else None for t in (r.loopline, trainer)]
        rows.append(
            [
                r.name,
                f"{r.params.total / 1e6:.1f} / {r.params.non_embedding / 1e6:.1f}",
                str(r.loopline.steps),
                f"{r.loopline.tokens_per_s:,.0f}",
                _pct(r.mfu(r.params.total)),
                _pct(r.mfu(r.params.non_embedding)),
                "n/a" if trainer is None else f"{trainer.tokens_per_s:,.0f}",
                "n/a" if r.ratio is None else f"{r.ratio:.2f}×",
                f"{r.loopline.padding_share:.0%} / "
                + ("n/a" if trainer is None else f"{trainer.padding_share:.0%}"),
                " / ".join("n/a" if m is None else f"{m:.1f}" for m in memory),
                f"≥{TARGET_MFU[r.name]:.0%}: {_verdict(r.mfu(r.params.total), TARGET_MFU[r.name])}"
                if r.name in TARGET_MFU
                else "n/a",
                _verdict(r.ratio, TARGET_RATIO if r.name in TARGET_MFU else None),
            ]
        )
    return markdown_table(headers, rows)


def format_section(args: argparse.Namespace, results: list[ModelResult], load: str) -> list[str]:
    peak = peak_tflops(args)
    rows = "one epoch of train.csv" if args.steps is None else f"{args.steps} batches"
    return [
        f"## bench_speed_gpu — {utc_now()}",
        "",
        f"- machine: {machine_line()}",
        f"- device: {device_name(args.device)}; bf16 dense peak used for MFU: "
        + (f"{peak:g} TFLOP/s" if peak else "n/a (no GPU peak; pass --peak-tflops)"),
        f"- load average (1/5/15 min) before → after: {load}",
        f"- commit: {git_commit()}",
        f"- data: {args.data or 'synthetic'}; {rows}, batch {args.batch_size}, max length {args.max_length}, "
        f"seed {args.seed}; {args.warmup_steps} untimed warm-up batches per loop; "
        "tokens/s counts real (non-pad) tokens over the training phase only",
        "- loopline: `train_model` (bf16 autocast on CUDA, fused AdamW, length-grouped batches padded to a "
        "multiple of 8, pinned memory); HF Trainer: defaults + bf16 on CUDA, DataCollatorWithPadding, "
        "save_strategy=no, report_to=[]; no torch.compile in either",
        f"- command: {command_line('bench_speed_gpu.py')}",
        "",
        *results_table(results),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(args)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-speed-gpu-") as tmp:
        results = [bench_model(name, data, args, Path(tmp)) for name in args.models]
    section = format_section(args, results, f"{load_before} → {load_average()}")
    publish_section(section, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
