"""Cost as work grows: loopline's data stages at 10k / 100k / 1M rows, time and memory per row.

Stages, each run in a fresh Python process per size (so its peak RSS is its own, not the harness's):

- ``contract``: ``validate_training_data`` (the Great Expectations training contract) on a frame read
  from Parquet;
- ``feedback import``: ``FeedbackStore.import_feedback_file`` of a CSV into a fresh SQLite store (read,
  row keys, duplicate lookup, batched inserts), then ``feedback review``: ``review_pending_feedback``
  (the feedback contract on the pending rows, then the verdict written back) — together what
  ``loopline feedback import`` (``intake_feedback``) does;
- ``snapshot``: ``save_snapshot`` (content hash, label counts, Parquet written atomically);
- ``monitor``: the drift check's own work around the model: the window read from the store (the
  reviewed feedback of the import stage), the labelled-feedback count, ``check_drift`` against a fixed
  reference of ``--reference`` rows, the retrain decision and its record. The embedding step and the
  champion's shadow predictions are per-row model inference, flat per row and far larger than the rest
  (measured separately, on ``--embed-sample`` texts with the packaged MiniLM): here they are replaced by
  synthetic unit vectors and predictions, so the table shows loopline's overhead, not the encoder's.

Rows are synthetic demo texts (``loopline.data.demo`` templates, each made unique by an order number,
as real feedback mostly is), 10 intents, 40 users, with 1% exact duplicates, 0.2% conflicting labels and
0.3% empty texts so that the quarantine paths run too.

Memory: peak RSS of the measuring process (``ru_maxrss``: imports, reading the input, the stage), and
its growth during the stage (peak minus the RSS just before the stage started). Per-row costs are CPU
time of the measuring process (wall time is shown too, but on a shared machine it measures the load as
much as the code); their ratios are against the smallest size: ~1.0 is linear, growing ratios are
superlinear.

    nice -n 10 python benchmarks/bench_cost.py                 # 10k, 100k, 1M rows
    python benchmarks/bench_cost.py --smoke                    # 200 / 400 rows, seconds; writes nothing

Appends a section to benchmarks/RESULTS.md unless --no-write (or --smoke without --results).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import (
    command_line,
    git_commit,
    load_average,
    machine_line,
    markdown_table,
    packaged_model_path,
    prepare_environment,
    publish_section,
    utc_now,
)

STAGES = ("contract", "feedback", "snapshot", "monitor")
DEFAULT_ROWS = (10_000, 100_000, 1_000_000)
SMOKE_ROWS = (200, 400)
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2's sentence embedding
DUPLICATE_SHARE, CONFLICT_SHARE, EMPTY_SHARE = 0.01, 0.002, 0.003


@dataclass(frozen=True)
class Timing:
    """One measured step of a stage in one process."""

    stage: str
    rows: int
    seconds: float
    cpu_seconds: float  # CPU time of the process during the step: what load on a shared machine spares
    peak_rss_mb: float  # ru_maxrss of the measuring process
    stage_rss_mb: float  # peak minus RSS before the step (what the step itself added)
    note: str = ""


# --------------------------------------------------------------------------- data


def generate_rows(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """``n_rows`` synthetic feedback rows (text, label, user) from the demo's templates, fast at 1M."""
    from loopline.data.demo import USERS, generate_demo_dataset

    pool = generate_demo_dataset(2400, seed)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pool), n_rows)
    texts = [f"{pool.at[p, 'text']} (order {i})" for i, p in enumerate(picks.tolist())]
    labels = pool["label"].to_numpy()[picks].astype(object)
    users = np.asarray(USERS, dtype=object)[rng.integers(0, len(USERS), n_rows)]
    frame = pd.DataFrame({"text": texts, "label": labels, "user": users})
    _add_flaws(frame, random.Random(seed), sorted(set(pool["label"])))
    return frame


def _add_flaws(frame: pd.DataFrame, rng: random.Random, intents: Sequence[str]) -> None:
    """Exact duplicates, conflicting labels and empty texts at fixed shares (rows chosen at random)."""
    n = len(frame)
    rows = rng.sample(range(1, n), k=int(n * (DUPLICATE_SHARE + CONFLICT_SHARE + EMPTY_SHARE)))
    cut_dup, cut_conflict = int(n * DUPLICATE_SHARE), int(n * (DUPLICATE_SHARE + CONFLICT_SHARE))
    for row in rows[:cut_dup]:
        frame.loc[row, ["text", "label"]] = frame.loc[rng.randrange(row), ["text", "label"]].to_numpy()
    for row in rows[cut_dup:cut_conflict]:
        source = rng.randrange(row)
        other = next(label for label in intents if label != frame.at[source, "label"])
        frame.loc[row, ["text", "label"]] = [frame.at[source, "text"], other]
    frame.loc[rows[cut_conflict:], "text"] = ""


def write_inputs(n_rows: int, folder: Path, seed: int) -> dict[str, Path]:
    """The size's input files: Parquet (contract, snapshot) and CSV (feedback import)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = generate_rows(n_rows, seed)
    paths = {"parquet": folder / "rows.parquet", "csv": folder / "feedback.csv"}
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_csv(paths["csv"], index=False)
    return paths


# --------------------------------------------------------------------------- worker (one process)


def _rss_mb() -> float:
    """Current RSS (Linux: /proc, as ru_maxrss below is Linux's KiB; no psutil dependency)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(stage: str, rows: int, step: Callable[[], str | None]) -> Timing:
    before = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    note = step() or ""
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _peak_rss_mb()
    return Timing(stage, rows, seconds, cpu_seconds, peak, max(0.0, peak - before), note)


def _known_labels() -> list[str]:
    from loopline.data.demo import DEMO_INTENTS

    return list(DEMO_INTENTS)


def _settings(home: Path) -> Any:
    from loopline.config import Settings

    return Settings(home=home)


@functools.cache
def warm_up_contracts() -> None:
    """Import Great Expectations and build its context on 100 rows, outside the timing (a one-off of
    seconds per process that would otherwise swamp the per-row cost of the small sizes); once a process."""
    from loopline.config import ContractConfig
    from loopline.contracts import validate_training_data

    with tempfile.TemporaryDirectory(prefix="bench-cost-warm-up-") as folder:
        validate_training_data(generate_rows(100, seed=2), ContractConfig(), "warm-up", Path(folder))


def work_contract(spec: dict[str, Any]) -> list[Timing]:
    from loopline.config import ContractConfig
    from loopline.contracts import validate_training_data

    frame = pd.read_parquet(spec["parquet"])
    quarantine = Path(spec["home"]) / "quarantine"
    warm_up_contracts()

    def step() -> str:
        result = validate_training_data(frame, ContractConfig(), str(spec["parquet"]), quarantine)
        return f"{len(result.accepted)} accepted, {len(result.quarantined)} quarantined"

    return [_measure("contract", len(frame), step)]


def work_feedback(spec: dict[str, Any]) -> list[Timing]:
    from loopline.feedback.store import FeedbackStore
    from loopline.pipeline.feedback import check_label_names, review_pending_feedback

    settings = _settings(Path(spec["home"]))
    known = _known_labels()
    rows = int(spec["rows"])
    warm_up_contracts()
    with FeedbackStore(f"sqlite:///{spec['db']}") as store:

        def load() -> str:
            imported = store.import_feedback_file(  # as intake_feedback calls it
                spec["csv"], check=lambda frame: check_label_names(frame, known, str(spec["csv"]))
            )
            return f"{imported.rows_added} added, {imported.duplicate_rows} already stored"

        def review() -> str:
            (intake,) = review_pending_feedback(settings, store, known)
            return f"{intake.accepted} accepted, {intake.quarantined} quarantined ({intake.batch_status})"

        return [_measure("feedback import", rows, load), _measure("feedback review", rows, review)]


def work_snapshot(spec: dict[str, Any]) -> list[Timing]:
    from loopline.data.snapshots import save_snapshot

    frame = pd.read_parquet(spec["parquet"])

    def step() -> str:
        return save_snapshot(frame, Path(spec["home"]) / "data", str(spec["parquet"])).version

    return [_measure("snapshot", len(frame), step)]


def work_monitor(spec: dict[str, Any]) -> list[Timing]:
    """The monitor's steps around the model, on the store the feedback stage left behind."""
    from datetime import UTC, datetime

    from loopline.feedback.store import FeedbackStore
    from loopline.monitoring.drift import NoveltyDetector, check_drift
    from loopline.monitoring.policy import decide_retrain
    from loopline.pipeline.monitor import _window

    settings = _settings(Path(spec["home"]))
    rng = np.random.default_rng(0)
    sample = generate_rows(int(spec["reference"]), seed=1)  # the champion's reference: other texts
    reference = _synthetic_inputs(rng, list(sample["text"]), list(sample["label"]))
    detector = NoveltyDetector().fit(reference.embeddings, seed=0)
    with FeedbackStore(f"sqlite:///{spec['db']}") as store:
        state: dict[str, Any] = {}

        def read() -> str:
            state["window"] = _window(store, None, "1")
            state["labelled"] = len(store.accepted_unused_feedback())
            return f"window {len(state['window'])}, labelled {state['labelled']}"

        def judge() -> str:
            window = state.pop("window")
            current = _synthetic_inputs(rng, [str(t) for t in window["text"]], list(window["label"]))
            report = check_drift(reference, current, settings.monitor, detector)
            decision = decide_retrain(report, state["labelled"], None, datetime.now(UTC), settings.monitor)
            store.record_decision("monitor", decision.retrain, decision.reason, {"drift": report.to_dict()})
            return f"novel share {report.novelty.novel_share:.3f}"

        rows = int(spec["rows"])
        return [_measure("monitor window read", rows, read), _measure("monitor drift check", rows, judge)]


def _synthetic_inputs(rng: np.random.Generator, texts: list[str], labels: list[Any]) -> Any:
    """Drift inputs with random unit vectors and predictions where the encoder and champion would be."""
    from loopline.monitoring.drift import DriftInputs

    vectors = rng.standard_normal((len(texts), EMBEDDING_DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    known = _known_labels()
    predicted = [known[i] for i in rng.integers(0, len(known), len(texts))]
    return DriftInputs(texts, vectors, labels, predicted, rng.uniform(0.3, 1.0, len(texts)))


WORKERS: dict[str, Callable[[dict[str, Any]], list[Timing]]] = {
    "contract": work_contract,
    "feedback": work_feedback,
    "snapshot": work_snapshot,
    "monitor": work_monitor,
}


def run_worker(stage: str, spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    timings = WORKERS[stage](spec)
    out_path.write_text(json.dumps([asdict(t) for t in timings]))
    return 0


# --------------------------------------------------------------------------- harness


def run_stage(stage: str, spec: dict[str, Any], folder: Path, in_process: bool) -> list[Timing]:
    """One stage in a fresh process (its stdout/stderr go to ``folder/<stage>.log``), or in this one."""
    if in_process:
        return WORKERS[stage](json.loads(json.dumps(spec, default=str)))
    spec_path, out_path = folder / f"{stage}.spec.json", folder / f"{stage}.out.json"
    spec_path.write_text(json.dumps(spec, default=str))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", stage]
    command += ["--spec", str(spec_path), "--out", str(out_path)]
    with (folder / f"{stage}.log").open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=_worker_env(), check=False)
    if done.returncode != 0:
        tail = (folder / f"{stage}.log").read_text()[-3000:]
        raise SystemExit(f"stage {stage} at {spec['rows']} rows failed (exit {done.returncode}):\n{tail}")
    return [Timing(**item) for item in json.loads(out_path.read_text())]


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    return env


def run_size(n_rows: int, args: argparse.Namespace, root: Path) -> list[Timing]:
    folder = root / f"rows-{n_rows}"
    shutil.rmtree(folder, ignore_errors=True)  # a store left by an earlier run would say "already imported"
    paths = write_inputs(n_rows, folder, args.seed)
    spec: dict[str, Any] = {
        "rows": n_rows,
        "home": folder / "home",
        "db": folder / "feedback.db",
        "reference": args.reference,
        **paths,
    }
    timings: list[Timing] = []
    for stage in args.stages:
        if stage == "monitor" and not (folder / "feedback.db").is_file():
            raise SystemExit("--stages monitor needs the feedback stage first (it reads its store)")
        started = time.perf_counter()
        timings += run_stage(stage, spec, folder, args.in_process)
        print(f"  {n_rows:>9,} rows  {stage:<9} {time.perf_counter() - started:7.1f} s (process)", flush=True)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return timings


def embedding_cost(args: argparse.Namespace) -> tuple[float, str] | None:
    """Seconds per text of the embedding step the monitor table leaves out, on a sample."""
    if args.embed_sample <= 0:
        return None
    import torch

    from loopline.monitoring.embeddings import embed_texts

    torch.set_num_threads(args.threads)
    model = packaged_model_path()
    texts = [str(t) for t in generate_rows(args.embed_sample + 8, args.seed + 1)["text"]]
    embed_texts(model, texts[:8])  # load the model outside the timing
    start = time.perf_counter()
    embed_texts(model, texts[8:])
    return (time.perf_counter() - start) / args.embed_sample, "packaged all-MiniLM-L6-v2"


# --------------------------------------------------------------------------- report


def cost_table(timings: Sequence[Timing]) -> list[str]:
    sizes = sorted({t.rows for t in timings})
    base = {t.stage: t.cpu_seconds / t.rows for t in timings if t.rows == sizes[0]}
    rows = []
    for t in timings:
        per_row = t.cpu_seconds / t.rows
        rows.append(
            [
                t.stage,
                f"{t.rows:,}",
                f"{t.seconds:.2f}",
                f"{t.cpu_seconds:.2f}",
                f"{t.rows / t.seconds:,.0f}" if t.seconds > 0 else "-",
                f"{per_row * 1e6:.1f}",
                f"{per_row / base[t.stage]:.2f}" if base.get(t.stage) else "-",
                f"{t.peak_rss_mb:,.0f}",
                f"{t.stage_rss_mb:,.0f}",
                t.note,
            ]
        )
    headers = ["stage", "rows", "wall s", "CPU s", "rows/s (wall)", "CPU µs/row"]
    headers += [f"CPU µs/row ÷ {sizes[0]:,}", "peak RSS MB", "stage RSS growth MB", "outcome"]
    return markdown_table(headers, rows, align="lrrrrrrrrl")


def format_section(
    args: argparse.Namespace, timings: Sequence[Timing], embedding: tuple[float, str] | None, load: str
) -> list[str]:
    lines = [
        f"## bench_cost — {utc_now()}",
        "",
        f"- machine: {machine_line()}",
        f"- load average (1/5/15 min) before → after: {load} (shared machine: expect noise)",
        f"- commit: {git_commit()}",
        f"- command: {command_line('bench_cost.py')}",
        f"- data: synthetic demo texts made unique by an order number, 10 intents, 40 users; "
        f"{DUPLICATE_SHARE:.1%} exact duplicates, {CONFLICT_SHARE:.1%} conflicting labels, "
        f"{EMPTY_SHARE:.1%} empty texts (seed {args.seed}); SQLite feedback store",
        (
            "- all stages in this one process (--in-process): peak RSS is the process's so far"
            if args.in_process
            else "- each stage in a fresh process per size (niced); peak RSS = ru_maxrss of that process "
            "(imports, input read, the step); growth = peak − RSS just before the step"
        ),
        "- Great Expectations imported and its context built on 100 rows before the contract and "
        "feedback timings (a one-off of seconds per process)",
        f"- monitor: window = all reviewed feedback of the import stage; reference {args.reference:,} rows; "
        f"embeddings and shadow predictions synthetic ({EMBEDDING_DIM}-d unit vectors): loopline's "
        "overhead around the model, not the model",
        "",
        *cost_table(timings),
        "",
    ]
    if embedding is not None:
        seconds, model = embedding
        sizes = ", ".join(
            f"{n:,} rows ≈ {seconds * n / 60:,.0f} min" for n in sorted({t.rows for t in timings})
        )
        lines += [
            f"- left out of the monitor rows: the embedding step, {seconds * 1e6:,.0f} µs/row with {model} "
            f"on {args.embed_sample} texts ({args.threads} torch thread(s)), flat per row by nature: {sizes}",
            "",
        ]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", help=f"Sizes (default {DEFAULT_ROWS}).")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--reference", type=int, default=2000, help="Monitor reference rows (fixed).")
    parser.add_argument(
        "--embed-sample", type=int, default=256, help="Texts to time the encoder on (0: skip)."
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the embedding sample.")
    parser.add_argument("--nice", type=int, default=10, help="Niceness of the measuring processes.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=f"Sizes {SMOKE_ROWS}, in process, no encoder.")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Run the stages in this process (default with --smoke): faster, but peak RSS is shared.",
    )
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; do not append to results.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (inputs, stores, logs).")
    parser.add_argument("--worker", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = sorted(args.rows or (SMOKE_ROWS if args.smoke else DEFAULT_ROWS))
    if args.smoke:
        args.in_process = True
        args.reference = min(args.reference, 200)
        args.embed_sample = 0  # no encoder in a smoke run: its per-row cost is bench_drift's
    if min(args.rows) < 100:
        parser.error("--rows: at least 100 rows per size (the contract needs 5 rows per label)")
    return args


def run_all(args: argparse.Namespace, root: Path) -> list[Timing]:
    timings: list[Timing] = []
    for n_rows in args.rows:
        timings += run_size(n_rows, args, root)
    return timings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        from loopline.telemetry import disable_telemetry

        disable_telemetry()
        return run_worker(args.worker, args.spec, args.out)
    prepare_environment()
    os.nice(args.nice)  # the worker processes inherit it
    load_before = load_average()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        timings = run_all(args, args.keep)
        embedding = embedding_cost(args)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
            timings = run_all(args, Path(tmp))
            embedding = embedding_cost(args)
    section = format_section(args, timings, embedding, f"{load_before} → {load_average()}")
    publish_section(section, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
