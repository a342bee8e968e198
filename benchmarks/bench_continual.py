"""Class-incremental BANKING77: loopline's retrain path vs naive fine-tuning vs joint training.

The stream: ``--bootstrap-intents`` intents (40) train the first model; then ``--rounds`` (3)
feedback rounds each bring ~12 new intents plus fresh rows of intents seen before (rows not used
so far). Each intent gets ``--per-class-train`` rows of train.csv (60; fewer where it has fewer):
two thirds when it first appears, the rest spread over later rounds as fresh feedback.

Compared in one run, from the same bootstrap model:

* **loopline** — the real pipeline functions, without MLflow and Prefect: feedback batch written
  to CSV and taken in by ``pipeline.feedback.intake_feedback`` (FeedbackStore on SQLite +
  ``contracts.validate_feedback_batch``), ``pipeline.retrain.plan_retrain`` (70/10/20 split of the
  feedback, class-balanced ``ReplayBuffer``, frozen test split of the bootstrap snapshot),
  ``pipeline.fit.fit_candidate`` warm-started from the champion with its head grown to the new
  labels, ``pipeline.assess.assess_candidate`` (``evaluation.gate.evaluate_gate``), then
  ``pipeline.retrain.finish_retrain`` (feedback marked used, its rows folded into the buffer).
  The registry step (MLflow) is replaced by passing the candidate on as the next champion. With
  ``--gate record`` (default) the gate's verdict is reported and the candidate is promoted anyway,
  so the learning curve shows what replay + head growth do; ``--gate enforce`` keeps the champion
  when the gate fails (its feedback stays unused and is retried with the next round).
* **naive** — warm start + head growth on each round's feedback only (the same 70% training
  part loopline uses), no replay.
* **joint** — a fresh fine-tune of the base model on every row loopline's pipeline trained or
  validated on so far (bootstrap train split + all feedback training parts), no replay cap;
  the upper bound. Trained once after the last round (``--joint final``) or after every round.

Scored after every round on the rows of test.csv whose intent has been seen. Tasks for backward
transfer are the intent groups (bootstrap group + one per round): BWT = mean over groups but the
last of (accuracy after the last round − accuracy right after the group was learned), Lopez-Paz &
Ranzato (2017); ACC = mean over groups of the final accuracy.

    python benchmarks/bench_continual.py --data ../shared/data/banking77 --per-class-train 60
    python benchmarks/bench_continual.py --smoke     # tiny random BERT, demo intents, seconds

Appends a section to benchmarks/RESULTS.md (not with --smoke unless --results is given).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from common import (
    REPO_ROOT,
    command_line,
    failed_checks_summary,
    gate_check_note,
    git_commit,
    load_average,
    load_labelled_csv,
    machine_line,
    markdown_table,
    packaged_model_path,
    pct,
    prepare_environment,
    publish_section,
    timed_fit,
    tiny_model,
    utc_now,
    with_epochs,
)
from loopline.config import ReplayConfig, Settings, TrainingConfig
from loopline.contracts import validate_training_data
from loopline.data.snapshots import save_snapshot
from loopline.data.splits import Splits, create_splits
from loopline.evaluation.gate import GateReport
from loopline.feedback.store import FeedbackStore
from loopline.inference import load_classifier
from loopline.model_files import read_labels
from loopline.pipeline.assess import assess_candidate
from loopline.pipeline.champion import Champion
from loopline.pipeline.datasets import load_splits
from loopline.pipeline.feedback import intake_feedback
from loopline.pipeline.retrain import (
    FEEDBACK_SPLIT,
    RetrainPlan,
    finish_retrain,
    plan_retrain,
)
from loopline.training.trainer import TrainResult

logger = logging.getLogger("bench_continual")

INTRO_SHARE = 2 / 3  # of an intent's rows arrive with it; the rest come later as fresh feedback
TARGET_GAP = 0.03
TARGET_BWT = -0.02
METHODS = ("naive", "loopline", "joint")


@dataclass(frozen=True)
class Stream:
    """Intent groups (0 = bootstrap), the bootstrap rows, one feedback batch per round, test rows."""

    groups: list[list[str]]
    bootstrap: pd.DataFrame
    batches: list[pd.DataFrame]
    test: pd.DataFrame  # text, label, group
    rows_per_class: dict[str, int]


@dataclass
class Track:
    """One method's models and scores; index r of the lists is "after round r" (0 = bootstrap)."""

    name: str
    model_dir: Path | None = None
    accuracy: list[float] = field(default_factory=list)
    group_accuracy: list[dict[int, float]] = field(default_factory=list)
    train_rows: list[int] = field(default_factory=list)
    train_samples: int = 0
    train_seconds: float = 0.0

    def add_training(self, result: TrainResult, seconds: float) -> None:
        self.model_dir = result.model_dir
        self.train_rows.append(result.num_train_rows)
        self.train_samples += result.num_train_rows * result.epochs_run
        self.train_seconds += seconds


@dataclass(frozen=True)
class RoundInfo:
    """What loopline's pipeline did in one round."""

    round: int
    new_intents: int
    feedback_rows: int
    accepted: int
    quarantined: int
    already_stored: int  # rows the feedback store held from an earlier batch (not added again)
    batch_status: str
    train_rows: int
    replay_rows: int
    gate_passed: bool | None
    gate_failed: list[str]
    promoted: bool


@dataclass(frozen=True)
class Scores:
    """Summary of one method over the stream."""

    final_accuracy: float
    acc: float  # mean over groups of the final accuracy
    bwt: float | None


# ---------------------------------------------------------------- arguments and data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="Folder with train.csv and test.csv (text,category).")
    parser.add_argument("--per-class-train", type=int, default=60, help="train.csv rows used per intent.")
    parser.add_argument("--bootstrap-intents", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="Feedback rounds after the bootstrap.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of each warm-start round.")
    parser.add_argument("--bootstrap-epochs", type=int, default=5, help="Epochs of the first model.")
    parser.add_argument("--joint-epochs", type=int, default=5, help="Epochs of the joint model.")
    parser.add_argument("--joint", choices=("final", "every-round"), default="final")
    parser.add_argument("--gate", choices=("record", "enforce"), default="record")
    parser.add_argument("--replay-per-class", type=int, help="Replay rows per class (default: loopline's).")
    parser.add_argument("--lr", type=float, help="Encoder learning rate (default: loopline's).")
    parser.add_argument("--head-lr", type=float, help="Head learning rate (default: loopline's).")
    parser.add_argument("--label-smoothing", type=float, help="Label smoothing (default: loopline's).")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default).")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--workdir", type=Path, help="Work folder (default .loopline/bench/continual).")
    parser.add_argument("--smoke", action="store_true", help="Tiny random BERT, 10 demo intents, 1 epoch.")
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; append nothing.")
    args = parser.parse_args(argv)
    if args.data is None and not args.smoke:
        parser.error("--data is required (a folder with train.csv and test.csv), except with --smoke")
    if args.smoke:
        args.epochs = args.bootstrap_epochs = args.joint_epochs = 1
        args.per_class_train, args.bootstrap_intents = min(args.per_class_train, 24), 4
        args.threads = args.threads or 1  # seconds, not minutes, on a busy shared machine
    return args


def load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """train.csv and test.csv (without --data in a smoke run: loopline's synthetic demo data)."""
    if args.data is not None:
        train = load_labelled_csv(args.data / "train.csv")
        test = load_labelled_csv(args.data / "test.csv")
    else:
        from loopline.data.demo import generate_demo_dataset

        frame = generate_demo_dataset(n_rows=600, seed=0)[["text", "label"]]
        train, test = frame.iloc[:400], frame.iloc[400:]
    if args.smoke:
        test = test.groupby("label").head(8)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def intent_groups(labels: Sequence[str], bootstrap: int, rounds: int, seed: int) -> list[list[str]]:
    """Seeded shuffle of the intents: ``bootstrap`` first, the rest in ``rounds`` near-equal groups."""
    order = [str(x) for x in np.random.default_rng(seed).permutation(sorted(set(labels)))]
    rest = np.array_split(np.array(order[bootstrap:], dtype=object), rounds)
    return [sorted(order[:bootstrap]), *[sorted(str(x) for x in part) for part in rest]]


def build_stream(train: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace) -> Stream:
    """Assign every sampled training row to the round it arrives in."""
    train = train.drop_duplicates("text", keep=False)  # texts are unique in BANKING77; stay safe
    groups = intent_groups(train["label"], args.bootstrap_intents, args.rounds, args.seed)
    rng = np.random.default_rng(args.seed)
    parts: list[list[pd.DataFrame]] = [[] for _ in groups]
    counts: dict[str, int] = {}
    for first, intents in enumerate(groups):
        for intent in intents:
            rows = train[train["label"] == intent]
            rows = rows.iloc[rng.permutation(len(rows))[: args.per_class_train]]
            counts[intent] = len(rows)
            intro = round(INTRO_SHARE * len(rows))
            parts[first].append(rows.iloc[:intro])
            later = list(range(first + 1, len(groups)))
            if later:
                chunks = np.array_split(np.arange(intro, len(rows)), len(later))
                for when, chunk in zip(later, chunks, strict=True):
                    parts[when].append(rows.iloc[chunk])
    frames = [pd.concat(p).sample(frac=1.0, random_state=args.seed).reset_index(drop=True) for p in parts]
    group_of = {intent: g for g, intents in enumerate(groups) for intent in intents}
    test = test[test["label"].isin(group_of)].assign(group=lambda t: t["label"].map(group_of))
    return Stream(groups, frames[0], frames[1:], test.reset_index(drop=True), counts)


# ---------------------------------------------------------------- settings and scoring


def training_config(args: argparse.Namespace, epochs: int) -> TrainingConfig:
    """loopline's defaults, with the flags given on the command line."""
    overrides = {
        "learning_rate": args.lr,
        "head_learning_rate": args.head_lr,
        "label_smoothing": args.label_smoothing,
        "num_threads": args.threads,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    return TrainingConfig(**{**given, "epochs": epochs, "seed": args.seed})


def make_settings(home: Path, base_model: str, args: argparse.Namespace, epochs: int) -> Settings:
    replay = (
        ReplayConfig() if args.replay_per_class is None else ReplayConfig(per_class=args.replay_per_class)
    )
    return Settings(home=home, base_model=base_model, training=training_config(args, epochs), replay=replay)


def score_model(model_dir: Path, test: pd.DataFrame, max_length: int) -> tuple[float, dict[int, float]]:
    """Accuracy on ``test`` (rows of seen intents) overall and per intent group."""
    classifier = load_classifier(model_dir, max_length=max_length)
    predicted, _ = classifier.predict(test["text"].tolist())
    correct = pd.Series(np.asarray(predicted) == test["label"].to_numpy(), index=test.index)
    per_group = {int(g): float(correct[test["group"] == g].mean()) for g in sorted(test["group"].unique())}
    return float(accuracy_score(test["label"], predicted)), per_group


def record_scores(track: Track, test_seen: pd.DataFrame, max_length: int) -> None:
    assert track.model_dir is not None
    accuracy, per_group = score_model(track.model_dir, test_seen, max_length)
    track.accuracy.append(accuracy)
    track.group_accuracy.append(per_group)
    logger.info("%s: accuracy %.4f on %d test rows of seen intents", track.name, accuracy, len(test_seen))


def summarise(track: Track) -> Scores:
    """Final accuracy, ACC and BWT (None when the track was scored only at the end)."""
    final = track.group_accuracy[-1]
    acc = float(np.mean(list(final.values())))
    if len(track.group_accuracy) < len(final):
        return Scores(track.accuracy[-1], acc, None)
    learned = [track.group_accuracy[g][g] for g in range(len(final) - 1)]
    bwt = float(np.mean([final[g] - learned[g] for g in range(len(final) - 1)])) if learned else 0.0
    return Scores(track.accuracy[-1], acc, bwt)


# ---------------------------------------------------------------- the methods


def bootstrap(
    settings: Settings, stream: Stream, workdir: Path, loopline: Track
) -> tuple[Champion, GateReport, Splits]:
    """The first model as train_flow makes it: contract, snapshot, frozen splits, fit, first-model gate."""
    contract = validate_training_data(
        stream.bootstrap, settings.contract, "bootstrap", settings.quarantine_dir
    )
    snapshot = save_snapshot(contract.accepted[["text", "label"]], settings.data_dir, source="bootstrap")
    splits = load_splits(settings, snapshot.version)
    result, seconds = timed_fit(settings, splits.train, splits.validation, workdir / "bootstrap")
    loopline.add_training(result, seconds)
    gate = assess_candidate(settings, result.model_dir, {"test": splits.test}, workdir / "bootstrap" / "gate")
    champion = Champion("1", result.model_dir, {"loopline.test_version": snapshot.version})
    return champion, gate, splits


def intake_round(settings: Settings, store: FeedbackStore, batch: pd.DataFrame, rnd: int, known: list[str]):  # type: ignore[no-untyped-def]
    path = settings.home / "incoming" / f"feedback_round{rnd}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    batch[["text", "label"]].to_csv(path, index=False)
    return intake_feedback(settings, store, path, known)


def loopline_round(
    settings: Settings, store: FeedbackStore, champion: Champion, workdir: Path, track: Track
) -> tuple[RetrainPlan, TrainResult, GateReport]:
    """plan_retrain → warm-start fit with head growth → gate, exactly as retrain_flow calls them."""
    plan = plan_retrain(settings, store, champion, workdir / "data")
    result, seconds = timed_fit(
        settings,
        plan.frame("train"),
        plan.frame("validation"),
        workdir,
        labels=plan.labels,
        init_model_dir=str(plan.champion_dir),
    )
    track.add_training(result, seconds)
    eval_sets = plan.eval_frames()
    gate = assess_candidate(
        settings,
        result.model_dir,
        eval_sets,
        workdir / "evaluation",
        champion_dir=plan.champion_dir,
        new_labels=plan.new_labels,
    )
    return plan, result, gate


def feedback_parts(settings: Settings, feedback: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation parts of a feedback batch, cut as plan_retrain cuts them."""
    parts = create_splits(feedback[["text", "label"]].astype(str), FEEDBACK_SPLIT, settings.training.seed)
    return parts.train, parts.validation


def naive_round(settings: Settings, feedback: pd.DataFrame, workdir: Path, track: Track) -> None:
    """Warm start from the previous naive model on this round's feedback only (head grows, no replay)."""
    train, val = feedback_parts(settings, feedback)
    assert track.model_dir is not None
    result, seconds = timed_fit(settings, train, val, workdir, init_model_dir=str(track.model_dir))
    track.add_training(result, seconds)


def joint_fit(
    settings: Settings, train: pd.DataFrame, val: pd.DataFrame, workdir: Path, track: Track
) -> None:
    """A fresh fine-tune of the base model on everything seen so far."""
    result, seconds = timed_fit(settings, train, val, workdir, labels=sorted(set(train["label"])))
    track.add_training(result, seconds)


# ---------------------------------------------------------------- the run


@dataclass
class RunState:
    settings: Settings
    stream: Stream
    workdir: Path
    tracks: dict[str, Track]
    rounds: list[RoundInfo] = field(default_factory=list)
    joint_train: list[pd.DataFrame] = field(default_factory=list)
    joint_val: list[pd.DataFrame] = field(default_factory=list)


def run_stream(state: RunState, args: argparse.Namespace) -> None:
    settings, stream, tracks = state.settings, state.stream, state.tracks
    max_length = settings.training.max_length
    boot_settings = with_epochs(settings, args.bootstrap_epochs)
    champion, gate, splits = bootstrap(boot_settings, stream, state.workdir, tracks["loopline"])
    shared = tracks["loopline"]  # naive starts from the same first model
    tracks["naive"].model_dir, tracks["naive"].train_rows = champion.model_dir, list(shared.train_rows)
    tracks["naive"].train_samples, tracks["naive"].train_seconds = shared.train_samples, shared.train_seconds
    state.joint_train.append(splits.train)
    state.joint_val.append(splits.validation)
    test_seen = stream.test[stream.test["group"] == 0]
    for name in ("naive", "loopline"):
        record_scores(tracks[name], test_seen, max_length)
    state.rounds.append(
        _round_info(0, len(stream.groups[0]), stream.bootstrap, None, len(splits.train), 0, gate)
    )
    if args.joint == "every-round":
        _joint_now(state, args, 0, test_seen)
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        for rnd in range(1, len(stream.groups)):
            champion = _one_round(state, store, champion, rnd, args)
    if args.joint == "final":
        _joint_now(state, args, len(stream.groups) - 1, stream.test)


def _one_round(
    state: RunState, store: FeedbackStore, champion: Champion, rnd: int, args: argparse.Namespace
) -> Champion:
    settings, stream, tracks = state.settings, state.stream, state.tracks
    batch = stream.batches[rnd - 1]
    known = read_labels(champion.model_dir)
    intake = intake_round(settings, store, batch, rnd, known)
    accepted = store.accepted_unused_feedback()
    this_batch = accepted[accepted["batch_id"] == intake.batch_id]
    workdir = state.workdir / f"round{rnd}"
    naive_round(settings, this_batch, workdir / "naive", tracks["naive"])
    plan, result, gate = loopline_round(settings, store, champion, workdir / "loopline", tracks["loopline"])
    promote = gate.passed or args.gate == "record"
    if promote:
        finish_retrain(settings, store, plan, str(rnd + 1))
        champion = Champion(str(rnd + 1), result.model_dir, dict(champion.tags))
    else:
        tracks["loopline"].model_dir = champion.model_dir  # the champion stays in production
    train_part, val_part = feedback_parts(settings, this_batch)
    state.joint_train.append(train_part)
    state.joint_val.append(val_part)
    test_seen = stream.test[stream.test["group"] <= rnd]
    for name in ("naive", "loopline"):
        record_scores(tracks[name], test_seen, settings.training.max_length)
    replay_rows = len(plan.frame("train")) - len(plan.frame("feedback_train"))
    info = _round_info(rnd, len(stream.groups[rnd]), batch, intake, result.num_train_rows, replay_rows, gate)
    state.rounds.append(dataclasses.replace(info, promoted=promote))
    if args.joint == "every-round":
        _joint_now(state, args, rnd, test_seen)
    return champion


def _joint_now(state: RunState, args: argparse.Namespace, rnd: int, test_seen: pd.DataFrame) -> None:
    settings = with_epochs(state.settings, args.joint_epochs)
    train, val = pd.concat(state.joint_train), pd.concat(state.joint_val)
    joint_fit(settings, train, val, state.workdir / f"joint{rnd}", state.tracks["joint"])
    record_scores(state.tracks["joint"], test_seen, settings.training.max_length)


def _round_info(
    rnd: int,
    new_intents: int,
    batch: pd.DataFrame,
    intake: Any,
    train_rows: int,
    replay_rows: int,
    gate: GateReport,
) -> RoundInfo:
    return RoundInfo(
        round=rnd,
        new_intents=new_intents,
        feedback_rows=len(batch),
        accepted=intake.accepted if intake else len(batch),
        quarantined=intake.quarantined if intake else 0,
        already_stored=intake.duplicate_rows if intake else 0,
        batch_status=intake.batch_status if intake else "bootstrap",
        train_rows=train_rows,
        replay_rows=replay_rows,
        gate_passed=gate.passed,
        gate_failed=[gate_check_note(check) for check in gate.failed_checks],
        promoted=True,
    )


# ---------------------------------------------------------------- report


def rounds_table(state: RunState) -> list[str]:
    tracks, seen = state.tracks, 0
    joint_per_round = len(tracks["joint"].accuracy) == len(state.rounds)
    rows = []
    for info in state.rounds:
        seen += info.new_intents
        r = info.round
        verdict = "passed" if info.gate_passed else f"FAILED: {failed_checks_summary(info.gate_failed)}"
        joint = tracks["joint"].accuracy[r] if joint_per_round else None
        rows.append(
            [
                "bootstrap" if r == 0 else f"round {r}",
                f"{seen} (+{info.new_intents})",
                f"{info.feedback_rows} / {info.accepted} / {info.quarantined} / {info.already_stored}",
                tracks["naive"].train_rows[r],
                f"{info.train_rows} ({info.replay_rows} replay)",
                pct(tracks["naive"].accuracy[r]),
                pct(tracks["loopline"].accuracy[r]),
                pct(joint),
                verdict + ("" if info.promoted else " (champion kept)"),
            ]
        )
    headers = [
        "step",
        "intents seen",
        "rows in / accepted / quarantined / already stored",
        "naive train rows",
        "loopline train rows",
        "naive acc %",
        "loopline acc %",
        "joint acc %",
        "loopline gate",
    ]
    return markdown_table(headers, rows, align="llrrrrrrl")


def summary_table(state: RunState) -> list[str]:
    scores = {name: summarise(track) for name, track in state.tracks.items()}
    joint = scores["joint"].final_accuracy
    rows = []
    for name in METHODS:
        s, track = scores[name], state.tracks[name]
        gap = joint - s.final_accuracy
        rows.append(
            [
                name,
                pct(s.final_accuracy),
                pct(s.acc),
                "—" if s.bwt is None else f"{100 * s.bwt:+.1f}",
                "—" if name == "joint" else f"{100 * gap:+.1f}",
                f"{track.train_samples:,}",
                f"{track.train_seconds / 60:.1f}",
            ]
        )
    headers = [
        "method",
        "final acc, all intents %",
        "ACC (mean over groups) %",
        "BWT (points)",
        "gap to joint (points)",
        "samples trained",
        "train min",
    ]
    return markdown_table(headers, rows)


def _learned_to_final(track: Track, group: int) -> str:
    return f"{pct(track.group_accuracy[group][group])} → {pct(track.group_accuracy[-1][group])}"


def groups_table(state: RunState) -> list[str]:
    tracks, rows = state.tracks, []
    for g, intents in enumerate(state.stream.groups):
        rows.append(
            [
                "bootstrap" if g == 0 else f"round {g}",
                len(intents),
                _learned_to_final(tracks["naive"], g),
                _learned_to_final(tracks["loopline"], g),
                pct(tracks["joint"].group_accuracy[-1][g]),
            ]
        )
    headers = [
        "intent group",
        "intents",
        "naive: learned → final %",
        "loopline: learned → final %",
        "joint %",
    ]
    return markdown_table(headers, rows)


def verdict_lines(state: RunState) -> list[str]:
    naive, ours = summarise(state.tracks["naive"]), summarise(state.tracks["loopline"])
    gap = summarise(state.tracks["joint"]).final_accuracy - ours.final_accuracy
    bwt = ours.bwt if ours.bwt is not None else float("nan")
    return [
        f"- gap to joint ≤ {100 * TARGET_GAP:.0f} points: {'met' if gap <= TARGET_GAP else 'NOT met'} "
        f"({100 * gap:+.1f})",
        f"- loopline BWT ≥ {100 * TARGET_BWT:.0f} points: {'met' if bwt >= TARGET_BWT else 'NOT met'} "
        f"({100 * bwt:+.1f})",
        f"- naive vs loopline: final accuracy {100 * (naive.final_accuracy - ours.final_accuracy):+.1f} "
        f"points, ACC {100 * (naive.acc - ours.acc):+.1f} points, BWT {100 * (naive.bwt or 0):+.1f} vs "
        f"{100 * bwt:+.1f} (old intents get fresh rows in later rounds, so a group learned poorly at first "
        "can gain later: BWT rewards a weak start; read it with the learned → final table)",
    ]


def report_lines(state: RunState, args: argparse.Namespace, load: str, commit: str) -> list[str]:
    cfg, stream = state.settings.training, state.stream
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    rows = stream.rows_per_class.values()
    model = "tiny random BERT (SMOKE: numbers are meaningless)" if args.smoke else "packaged all-MiniLM-L6-v2"
    return [
        f"## bench_continual — {utc_now()}" + (" (SMOKE)" if args.smoke else ""),
        "",
        f"- machine: {machine_line()}; load average before → after: {load}",
        f"- commit at start: {commit}",
        f"- command: {command_line('bench_continual.py')}",
        f"- data: {args.data or 'synthetic demo data (loopline.data.demo)'}, subsampled: "
        f"{min(rows)}–{max(rows)} train.csv rows per intent (--per-class-train {args.per_class_train}, "
        f"{sum(rows):,} rows in all), {round(100 * INTRO_SHARE)}% arrive with the intent, the rest as fresh "
        f"feedback in later rounds; scored on the {len(stream.test):,} test.csv rows of all intents",
        f"- stream (seed {args.seed}): {len(stream.groups[0])} bootstrap intents, then "
        + ", ".join(f"+{len(g)}" for g in stream.groups[1:])
        + " new intents over "
        + f"{len(stream.groups) - 1} feedback rounds",
        f"- model: {model}; training: epochs bootstrap {args.bootstrap_epochs} / warm rounds {args.epochs} / "
        f"joint {args.joint_epochs}, lr {cfg.learning_rate:g}, head lr {head_lr:g}, "
        f"label smoothing {cfg.label_smoothing:g}, warmup {cfg.warmup_ratio:g}, batch {cfg.batch_size}, "
        f"max length {cfg.max_length}, patience {cfg.early_stopping_patience}, "
        f"torch threads {cfg.num_threads or 'default'}; replay "
        f"{state.settings.replay.per_class} rows per class; gate mode `{args.gate}`; joint `{args.joint}`",
        "",
        *rounds_table(state),
        "",
        "Rows in = feedback batch (already stored: rows the feedback store held from an earlier batch, "
        "not added twice); loopline trains on 70% of the accepted feedback plus its replay buffer "
        "(20% is held out for the gate, 10% joins validation); naive on the same 70% alone. Accuracy is on "
        "test.csv rows of the intents seen so far.",
        "",
        *summary_table(state),
        "",
        *groups_table(state),
        "",
        *verdict_lines(state),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    for noisy in ("loopline.contracts", "great_expectations", "loopline.evaluation"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    train, test = load_data(args)
    stream = build_stream(train, test, args)
    load_before, commit = load_average(), git_commit()
    with tempfile.TemporaryDirectory(prefix="bench-continual-") as tmp:
        base_model = tiny_model(Path(tmp) / "tiny-bert") if args.smoke else packaged_model_path()
        workdir = (
            Path(tmp) / "run"
            if args.smoke
            else (args.workdir or REPO_ROOT / ".loopline" / "bench" / "continual")
        )
        shutil.rmtree(workdir, ignore_errors=True)  # a fresh store, buffer and registry every run
        settings = make_settings(workdir / "home", base_model, args, args.epochs)
        state = RunState(settings, stream, workdir, {name: Track(name) for name in METHODS})
        run_stream(state, args)
    lines = report_lines(state, args, f"{load_before} → {load_average()}", commit)
    publish_section(lines, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
