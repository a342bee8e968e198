"""Class-incremental NER on CoNLL-2003: one entity type per step, PER → LOC → ORG → MISC.

The protocol of ExtendNER (Monaikul et al., 2021) and CFNER (Zheng et al., 2022): the (optionally
subsampled, seeded) eng.train sentences are cut into 4 disjoint parts; step k trains on part k with only
type k tagged, every other type's tags set to ``O``, so the types learned before appear as ``O`` in later
steps' data (the "O-label confusion"). After each step every method is scored on eng.testb with the gold
tags of the types seen so far (the others set to ``O``): entity-level micro and macro F1 (seqeval,
strict IOB2). Early stopping picks the best epoch on a seeded sample of eng.testa, masked the same way.

Methods, each a sequence of ``loopline.training.trainer.train_model(..., task=get_task("token"))`` calls.
Step 1 (type 1 alone, from the packaged MiniLM) is the same fit for all of them and is trained once;
later steps warm-start from the method's previous model with ``labels=None``, which grows the head by
the new type's B-/I- rows:

* **naive** — the step's data only.
* **loopline** — what loopline's retrain path does with token feedback: the step's rows with the
  O-label confusion repaired by ``loopline.pipeline.relabel.relabel_outside`` (the previous model's
  confident entities written into ``O`` words, threshold ``TrainingConfig.relabel_outside_above``),
  plus the class-balanced ``loopline.data.replay.ReplayBuffer`` of past steps' training rows
  (strata = the task's sentence entity-type sets, ``ReplayConfig.per_class`` rows each), updated with
  the step's (relabelled) rows after the step, as ``pipeline.retrain.finish_retrain`` does.
* **replay-only** — loopline without the relabelling: the same replay buffer of unrepaired rows.
* **joint** — the upper bound: a fresh fine-tune of the base model on all parts seen so far with all
  seen types' gold tags, after every step (``--joint every-step``) or only after the last.

Published after all 4 steps (BERT-base, full data, micro / macro F1): ExtendNER 76.4 / 73.0, CFNER
80.9 / 79.1. Goal (issue 10): loopline >= 81 micro F1 with the packaged MiniLM, naive visibly worse.

    python benchmarks/bench_ner_incremental.py --data ../shared/data/conll2003 --rows 4000 --epochs 2 \\
        --threads 1
    python benchmarks/bench_ner_incremental.py --smoke    # tiny random BERT, generated sentences, seconds

Appends a section to benchmarks/RESULTS.md (not with --smoke unless --results is given).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import (
    REPO_ROOT,
    add_precision_arg,
    command_line,
    git_commit,
    load_average,
    machine_line,
    markdown_table,
    pct,
    prepare_environment,
    publish_section,
    tiny_model,
    utc_now,
)
from loopline.config import ReplayConfig, Settings, TrainingConfig
from loopline.data.replay import ReplayBuffer
from loopline.data.tagged import read_conll, sentences_to_frame
from loopline.evaluation.evaluate import evaluate_model
from loopline.inference import TokenClassifier, load_classifier
from loopline.pipeline.relabel import fill_outside, relabel_outside
from loopline.tasks import get_task
from loopline.training.trainer import TrainResult, train_model

logger = logging.getLogger("bench_ner_incremental")

CONLL_TYPES = ("PER", "LOC", "ORG", "MISC")
SMOKE_TYPES = ("PER", "LOC", "ORG", "PRODUCT")  # the types loopline.data.demo_ner generates
METHODS = ("naive", "loopline", "replay-only", "joint")
SEQUENTIAL = ("naive", "loopline", "replay-only")
PUBLISHED = {  # after all 4 steps, micro / macro F1, BERT-base, full CoNLL-2003 training data
    "ExtendNER (Monaikul et al., 2021)": (0.764, 0.730),
    "CFNER (Zheng et al., 2022)": (0.809, 0.791),
}
GOAL_MICRO_F1 = 0.81
PROBE_THRESHOLDS = (0.5, 0.7, 0.8)  # what relabelling would have done at lower thresholds (diagnostic)
TASK = get_task("token")


# ---------------------------------------------------------------- arguments and data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "conll2003")
    parser.add_argument("--rows", type=int, help="Seeded sample of N eng.train sentences (default: all).")
    parser.add_argument("--val-rows", type=int, default=500, help="eng.testa sentences for early stopping.")
    parser.add_argument("--test-rows", type=int, help="eng.testb sentences scored (default: all 3,453).")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs of every fit (joint included).")
    parser.add_argument("--joint", choices=("every-step", "final"), default="every-step")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="Methods to run (default: all)."
    )
    parser.add_argument("--relabel-threshold", type=float, help="Default: loopline's relabel_outside_above.")
    parser.add_argument("--replay-per-class", type=int, help="Replay rows per stratum (default: loopline's).")
    parser.add_argument("--lr", type=float, help="Encoder learning rate (default: loopline's).")
    parser.add_argument("--head-lr", type=float, help="Head learning rate (default: loopline's).")
    parser.add_argument("--label-smoothing", type=float, help="Label smoothing (default: loopline's).")
    parser.add_argument("--batch-size", type=int, help="Training batch size (default: loopline's).")
    parser.add_argument("--max-length", type=int, default=128, help="Subwords per sentence.")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default).")
    add_precision_arg(parser)
    parser.add_argument("--seed", type=int, default=13, help="Sampling, split and training seed.")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".loopline" / "bench" / "ner_incremental")
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny random BERT, generated sentences, 1 epoch."
    )
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; append nothing.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.max_length = 1, 64
        args.val_rows, args.test_rows = min(args.val_rows, 40), min(args.test_rows or 80, 80)
        args.threads = args.threads or 1  # seconds, not minutes, on a busy shared machine
    return args


@dataclass(frozen=True)
class Stream:
    """Step types in order, the training parts (full gold tags), validation and test (full gold tags)."""

    types: tuple[str, ...]
    parts: list[pd.DataFrame]
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str
    train_pool: int  # sentences the parts were sampled from


def keep_types(labels: pd.Series, types: Sequence[str]) -> pd.Series:
    """Tag strings with every entity tag outside ``types`` set to ``O`` (BIO stays valid)."""
    kept = set(types)
    return labels.astype(str).map(
        lambda tags: " ".join(tag if tag[2:] in kept else "O" for tag in tags.split())
    )


def masked(frame: pd.DataFrame, types: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": frame["text"].to_numpy(), "label": keep_types(frame["label"], types)})


def _sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    frame = frame[["text", "label"]].reset_index(drop=True)
    if n is None or n >= len(frame):
        return frame
    return frame.iloc[np.sort(np.random.default_rng(seed).permutation(len(frame))[:n])].reset_index(drop=True)


def load_frames(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Train, validation and test frames with full gold tags (SYNTHETIC sentences with --smoke)."""
    if args.smoke:
        from loopline.data.demo_ner import ner_round, to_token_frame

        train = pd.concat(
            [
                to_token_frame(ner_round("base", 120, seed=1)),
                to_token_frame(ner_round("new_type", 120, seed=2, o_confusion_share=0.0)),
            ]
        )
        test = pd.concat(
            [to_token_frame(ner_round(kind, 60, seed=3)) for kind in ("heldout_base", "heldout_new_type")]
        )
        return train, test.iloc[::2], test.iloc[1::2], "generated sentences (loopline.data.demo_ner, smoke)"
    files = {name: args.data / name for name in ("eng.train", "eng.testa", "eng.testb")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found: pass --data FOLDER holding the CoNLL-2003 files.")
    train, val, test = (sentences_to_frame(read_conll(path)) for path in files.values())
    return train, val, test, str(args.data)


def build_stream(args: argparse.Namespace) -> Stream:
    """Sample, shuffle and cut the training sentences into one disjoint part per step type."""
    train, val, test, source = load_frames(args)
    types = SMOKE_TYPES if args.smoke else CONLL_TYPES
    pool = _sample(train, args.rows, args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(len(pool))
    parts = [pool.iloc[np.sort(chunk)].reset_index(drop=True) for chunk in np.array_split(order, len(types))]
    return Stream(
        types,
        parts,
        _sample(val, args.val_rows, args.seed),
        _sample(test, args.test_rows, args.seed),
        source,
        len(train),
    )


# ---------------------------------------------------------------- settings, fitting, scoring


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """loopline's defaults, with the flags given on the command line."""
    overrides = {
        "learning_rate": args.lr,
        "head_learning_rate": args.head_lr,
        "label_smoothing": args.label_smoothing,
        "batch_size": args.batch_size,
        "num_threads": args.threads,
        "precision": args.precision,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    return TrainingConfig(**given, epochs=args.epochs, seed=args.seed, max_length=args.max_length)


@dataclass(frozen=True)
class StepScore:
    """Entity-level scores on the test sentences, gold masked to the seen types."""

    micro_f1: float
    macro_f1: float
    per_type: dict[str, float]


@dataclass(frozen=True)
class Relabelling:
    """What ``relabel_outside`` did to one step's rows, checked against the hidden gold tags."""

    hidden_words: int  # words of earlier types that the step's data tags O
    changed_words: int  # words relabel_outside set from O to an entity tag
    right_words: int  # changed words whose new tag is the hidden gold tag
    seconds: float
    probes: dict[float, tuple[int, int]]  # other thresholds → (changed, right); not trained on
    replay_words: int = 0  # words of the replay sample relabel_outside set (no hidden gold to check)


@dataclass
class Track:
    """One method's models and scores, keyed by step (0 = step 1); steps it was not run at are missing."""

    name: str
    model_dir: Path | None = None
    scores: dict[int, StepScore] = field(default_factory=dict)
    train_rows: dict[int, int] = field(default_factory=dict)
    replay_rows: dict[int, int] = field(default_factory=dict)
    relabelling: dict[int, Relabelling] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0

    def add_fit(self, step: int, result: TrainResult, seconds: float, replay_rows: int = 0) -> None:
        self.model_dir = result.model_dir
        self.train_rows[step] = result.num_train_rows
        self.replay_rows[step] = replay_rows
        self.samples += result.num_train_rows * result.epochs_run
        self.seconds += seconds


def fit(
    cfg: TrainingConfig, base: str, train: pd.DataFrame, val: pd.DataFrame, out: Path, init: Path | None
) -> tuple[TrainResult, float]:
    """One ``train_model`` call: from ``base``, or warm from ``init`` with the head grown (labels=None)."""
    started = time.perf_counter()
    result = train_model(
        train.reset_index(drop=True),
        val,
        cfg,
        base,
        out,
        init_model_dir=None if init is None else str(init),
        task=TASK,
    )
    return result, time.perf_counter() - started


def score(model_dir: Path, test: pd.DataFrame, max_length: int) -> StepScore:
    tagger = load_classifier(model_dir, device="cpu", max_length=max_length)
    metrics = evaluate_model(tagger, test, "test", behaviour=False).metrics
    per_type = {kind: float(stats["f1"]) for kind, stats in metrics.per_class.items()}
    return StepScore(metrics.primary, metrics.macro_f1, per_type)


def relabel(
    rows: pd.DataFrame, gold: pd.DataFrame, model_dir: Path, threshold: float, max_length: int
) -> tuple[pd.DataFrame, Relabelling]:
    """``relabel_outside`` on a step's rows, and how its changes compare with the hidden gold tags."""
    started = time.perf_counter()
    repaired, changed = relabel_outside(rows, model_dir, threshold, max_length)
    seconds = time.perf_counter() - started
    hidden = sum(
        b == "O" and t != "O"
        for before, truth in zip(rows["label"], gold["label"], strict=True)
        for b, t in zip(before.split(), truth.split(), strict=True)
    )
    right = _right_words(rows["label"], repaired["label"], gold["label"])
    probes = probe_thresholds(rows, gold, model_dir, max_length)
    return repaired, Relabelling(hidden, changed, right, seconds, probes)


def _right_words(before: pd.Series, after: pd.Series, gold: pd.Series) -> int:
    """Words whose tag was changed to the gold tag."""
    return sum(
        a != b and a == t
        for old, new, truth in zip(before, after, gold, strict=True)
        for b, a, t in zip(old.split(), new.split(), truth.split(), strict=True)
    )


def probe_thresholds(
    rows: pd.DataFrame, gold: pd.DataFrame, model_dir: Path, max_length: int
) -> dict[float, tuple[int, int]]:
    """Words ``fill_outside`` (relabel_outside's rule) would change (and of them right) elsewhere."""
    tagger = load_classifier(model_dir, device="cpu", max_length=max_length)
    assert isinstance(tagger, TokenClassifier)
    probabilities = tagger.word_probabilities([str(text).split() for text in rows["text"]])
    probes = {}
    for threshold in PROBE_THRESHOLDS:
        filled = [
            fill_outside(str(tags).split(), probs, tagger.labels, threshold)
            for tags, probs in zip(rows["label"], probabilities, strict=True)
        ]
        after = pd.Series([" ".join(tags) for tags, _ in filled])
        changed = sum(count for _, count in filled)
        probes[threshold] = (changed, _right_words(rows["label"], after, gold["label"]))
    return probes


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    args: argparse.Namespace
    stream: Stream
    cfg: TrainingConfig
    base: str
    workdir: Path
    threshold: float
    per_class: int
    tracks: dict[str, Track] = field(default_factory=lambda: {name: Track(name) for name in METHODS})
    buffers: dict[str, ReplayBuffer] = field(default_factory=dict)

    def seen(self, step: int) -> tuple[str, ...]:
        return self.stream.types[: step + 1]

    def step_rows(self, step: int) -> pd.DataFrame:
        """Part ``step`` with only its own type tagged."""
        return masked(self.stream.parts[step], [self.stream.types[step]])

    def gold_rows(self, step: int) -> pd.DataFrame:
        """Part ``step`` with every seen type tagged (what relabelling should recover)."""
        return masked(self.stream.parts[step], self.seen(step))

    def val(self, step: int) -> pd.DataFrame:
        return masked(self.stream.validation, self.seen(step))

    def test(self, step: int) -> pd.DataFrame:
        return masked(self.stream.test, self.seen(step))

    def record(self, name: str, step: int) -> None:
        track = self.tracks[name]
        assert track.model_dir is not None
        s = track.scores[step] = score(track.model_dir, self.test(step), self.cfg.max_length)
        logger.info("step %d, %s: micro F1 %.4f, macro F1 %.4f", step + 1, name, s.micro_f1, s.macro_f1)


def first_step(run: Run) -> None:
    """Type 1 alone from the base model: the same fit for every method, trained and scored once."""
    rows = run.step_rows(0)
    result, seconds = fit(run.cfg, run.base, rows, run.val(0), run.workdir / "step1", None)
    step_score = score(result.model_dir, run.test(0), run.cfg.max_length)
    for track in run.tracks.values():
        track.add_fit(0, result, seconds)
        track.scores[0] = step_score
    for name in ("loopline", "replay-only"):  # the retrain path seeds the buffer with the first training rows
        buffer = ReplayBuffer(run.workdir / name.replace(" ", "_") / "replay.parquet")
        run.buffers[name] = buffer.update(rows, run.per_class, run.cfg.seed, strata=TASK.strata)
    logger.info("step 1: micro F1 %.4f, macro F1 %.4f", step_score.micro_f1, step_score.macro_f1)


def sequential_step(run: Run, name: str, step: int) -> None:
    """One warm-started step of naive, loopline or replay-only."""
    track, rows = run.tracks[name], run.step_rows(step)
    assert track.model_dir is not None
    if name == "loopline":
        rows, info = relabel(rows, run.gold_rows(step), track.model_dir, run.threshold, run.cfg.max_length)
        track.relabelling[step] = info
        track.seconds += info.seconds
    replay = run.buffers[name].sample() if name in run.buffers else rows.iloc[:0]
    if name == "loopline" and not replay.empty:
        # As plan_retrain: replayed rows of earlier steps tag later types O, so they are repaired too.
        replay, filled = relabel_outside(replay, track.model_dir, run.threshold, run.cfg.max_length)
        track.relabelling[step] = dataclasses.replace(track.relabelling[step], replay_words=filled)
    out = run.workdir / name.replace(" ", "_") / f"step{step + 1}"
    result, seconds = fit(run.cfg, run.base, pd.concat([rows, replay]), run.val(step), out, track.model_dir)
    track.add_fit(step, result, seconds, len(replay))
    if name in run.buffers:  # as finish_retrain: the step's training rows join the buffer afterwards
        run.buffers[name].update(rows, run.per_class, run.cfg.seed, strata=TASK.strata).save()
    run.record(name, step)


def joint_step(run: Run, step: int) -> None:
    """A fresh fine-tune of the base model on parts 1..step with all seen types' gold tags."""
    rows = pd.concat([masked(part, run.seen(step)) for part in run.stream.parts[: step + 1]])
    result, seconds = fit(
        run.cfg, run.base, rows, run.val(step), run.workdir / "joint" / f"step{step + 1}", None
    )
    run.tracks["joint"].add_fit(step, result, seconds)
    run.record("joint", step)


def run_steps(run: Run) -> None:
    first_step(run)
    last = len(run.stream.types) - 1
    for step in range(1, last + 1):
        for name in SEQUENTIAL:
            if name in run.args.methods:
                sequential_step(run, name, step)
        if "joint" in run.args.methods and (run.args.joint == "every-step" or step == last):
            joint_step(run, step)


# ---------------------------------------------------------------- report


def _score_of(run: Run, name: str, step: int) -> StepScore | None:
    """A method's score after ``step`` (0-based); None where it was not trained then."""
    return run.tracks[name].scores.get(step)


def steps_table(run: Run) -> list[str]:
    rows = []
    for step, kind in enumerate(run.stream.types):
        cells: list[object] = [f"step {step + 1}", kind, "+".join(run.seen(step))]
        for name in METHODS:
            s = _score_of(run, name, step)
            cells += [pct(s.micro_f1 if s else None), pct(s.macro_f1 if s else None)]
        rows.append(cells)
    headers = ["step", "new type", "types scored"]
    for name in METHODS:
        headers += [f"{name} micro %", f"{name} macro %"]
    return markdown_table(headers, rows, align="lll" + "r" * 2 * len(METHODS))


def _changed_right(changed: int, right: int) -> str:
    return f"{changed} ({right})"


def _rows_with_replay(track: Track, step: int) -> str:
    if step not in track.train_rows:
        return "—"
    return f"{track.train_rows[step]} ({track.replay_rows[step]} replay)"


def data_table(run: Run) -> list[str]:
    tracks, rows = run.tracks, []
    for step in range(len(run.stream.types)):
        info = tracks["loopline"].relabelling.get(step)
        relabelled = _changed_right(info.changed_words, info.right_words) if info else "—"
        probes = " / ".join(_changed_right(*info.probes[t]) for t in PROBE_THRESHOLDS) if info else "—"
        rows.append(
            [
                f"step {step + 1}",
                tracks["naive"].train_rows.get(step, "—"),
                _rows_with_replay(tracks["loopline"], step),
                _rows_with_replay(tracks["replay-only"], step),
                tracks["joint"].train_rows.get(step, "—"),
                info.hidden_words if info else "—",
                relabelled,
                info.replay_words if info else "—",
                probes,
            ]
        )
    headers = [
        "step",
        "naive train rows",
        "loopline train rows",
        "replay-only train rows",
        "joint train rows",
        "old-type words tagged O",
        f"words relabelled at {run.threshold:g} (of them = hidden gold)",
        "replay words relabelled",
        "would be at " + " / ".join(f"{t:g}" for t in PROBE_THRESHOLDS),
    ]
    return markdown_table(headers, rows)


def _type_f1(run: Run, name: str, step: int, kind: str) -> float | None:
    s = _score_of(run, name, step)
    return None if s is None else s.per_type.get(kind, 0.0)


def types_table(run: Run) -> list[str]:
    """Each type's F1 right after its step → after the last step."""
    last, rows = len(run.stream.types) - 1, []
    for step, kind in enumerate(run.stream.types):
        cells: list[object] = [kind]
        for name in SEQUENTIAL:
            learned, final = _type_f1(run, name, step, kind), _type_f1(run, name, last, kind)
            cells.append("—" if final is None else f"{pct(learned)} → {pct(final)}")
        cells.append(pct(_type_f1(run, "joint", last, kind)))
        rows.append(cells)
    headers = ["type", *[f"{name}: learned → final F1 %" for name in SEQUENTIAL], "joint final F1 %"]
    return markdown_table(headers, rows)


def final_table(run: Run) -> list[str]:
    last, rows = len(run.stream.types) - 1, []
    for name in METHODS:
        s, track = _score_of(run, name, last), run.tracks[name]
        if s is None:
            rows.append([f"{name} (not run)", "—", "—", "—", "—"])
            continue
        rows.append([name, pct(s.micro_f1), pct(s.macro_f1), f"{track.samples:,}", f"{track.seconds:.0f}"])
    for name, (micro, macro) in PUBLISHED.items():
        rows.append([f"{name}, published", pct(micro), pct(macro), "—", "—"])
    headers = ["method, after all steps", "micro F1 %", "macro F1 %", "samples trained", "train s"]
    return markdown_table(headers, rows)


def _versus(a: StepScore | None, b: StepScore | None) -> str:
    if a is None or b is None:
        return "not run"
    return (
        f"{100 * (a.micro_f1 - b.micro_f1):+.1f} points micro, {100 * (a.macro_f1 - b.macro_f1):+.1f} macro"
    )


def verdict_lines(run: Run) -> list[str]:
    last = len(run.stream.types) - 1
    final = {name: _score_of(run, name, last) for name in METHODS}
    ours = final["loopline"]
    goal = "not run" if ours is None else ("met" if ours.micro_f1 >= GOAL_MICRO_F1 else "NOT met")
    return [
        f"- goal loopline ≥ {100 * GOAL_MICRO_F1:.0f} micro F1: {goal} "
        f"({pct(ours.micro_f1 if ours else None)}); naive against loopline: {_versus(final['naive'], ours)}",
        f"- O-label repair: loopline against replay-only: {_versus(ours, final['replay-only'])}",
        f"- loopline against joint: {_versus(ours, final['joint'])}",
    ]


def report_lines(run: Run, load: str, commit: str, wall: float, cpu: float) -> list[str]:
    args, cfg, stream = run.args, run.cfg, run.stream
    sizes = "/".join(str(len(part)) for part in stream.parts)
    model = "tiny random BERT (SMOKE: numbers are meaningless)" if args.smoke else "packaged all-MiniLM-L6-v2"
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    names = ("generated", "generated") if args.smoke else ("eng.testa", "eng.testb")
    return [
        f"## bench_ner_incremental — class-incremental CoNLL-2003 NER, {utc_now()}"
        + (" (SMOKE)" if args.smoke else ""),
        "",
        f"- machine: {machine_line()}; load average before → after: {load}",
        f"- commit at start: {commit}",
        f"- command: {command_line('bench_ner_incremental.py')}",
        f"- data: {stream.source}; {sum(len(p) for p in stream.parts):,} of {stream.train_pool:,} training "
        f"sentences (seed {args.seed}) in {len(stream.parts)} disjoint parts of {sizes}; early stopping on "
        f"{len(stream.validation):,} {names[0]} sentences, scored on {len(stream.test):,} {names[1]} "
        "sentences, both with the gold tags of the seen types only",
        f"- steps: {' → '.join(stream.types)}, one type per step, the step's other types tagged O",
        f"- model: {model}; every fit {cfg.epochs} epoch(s), lr {cfg.learning_rate:g}, head lr {head_lr:g}, "
        f"label smoothing {cfg.label_smoothing:g}, warmup {cfg.warmup_ratio:g}, batch {cfg.batch_size}, "
        f"max length {cfg.max_length}, best epoch on validation entity micro F1, {cfg.precision}, "
        f"torch threads {cfg.num_threads or 'default'}; relabel threshold {run.threshold:g}; "
        f"replay {run.per_class} rows per stratum (a sentence's set of entity types); "
        f"joint `{args.joint}`; methods run: {', '.join(args.methods)}",
        f"- time: {wall:.0f} s wall, {cpu:.0f} s CPU of this process",
        "",
        *steps_table(run),
        "",
        "Step 1 (its type alone, from the base model) is one fit shared by all methods. Micro / macro are "
        "entity-level F1 (seqeval strict) over the types seen so far.",
        "",
        "Relabelling (loopline only): words of earlier types that the step's data tags O, how many "
        "`relabel_outside` set from the previous model (in brackets: set to the hidden gold tag), how many "
        "it set in the replay sample (as `plan_retrain` does), and, not trained on, how many its rule "
        "`fill_outside` would set at lower thresholds.",
        "",
        *data_table(run),
        "",
        *types_table(run),
        "",
        *final_table(run),
        "",
        *verdict_lines(run),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    for noisy in ("loopline.evaluation", "loopline.inference", "loopline.data.replay"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)  # inference too, not only train_model
    stream = build_stream(args)
    load_before, commit = load_average(), git_commit()
    wall, cpu = time.perf_counter(), time.process_time()
    threshold = args.relabel_threshold or TrainingConfig().relabel_outside_above or 0.9
    per_class = ReplayConfig().per_class if args.replay_per_class is None else args.replay_per_class
    with tempfile.TemporaryDirectory(prefix="bench-ner-incremental-") as tmp:
        base = tiny_model(Path(tmp) / "tiny-bert") if args.smoke else Settings().resolved_base_model
        workdir = Path(tmp) / "run" if args.smoke else args.workdir
        shutil.rmtree(workdir, ignore_errors=True)  # fresh models and buffers every run
        run = Run(args, stream, training_config(args), base, workdir, threshold, per_class)
        run_steps(run)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    lines = report_lines(run, f"{load_before} → {load_average()}", commit, wall, cpu)
    publish_section(lines, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
