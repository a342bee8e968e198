"""Domain-incremental NER on CrossNER: news → politics → science → music → literature → ai.

Each domain brings its own entity types (politician, scientist, band, writer, algorithm, ...) beside
the shared ones (person, organisation, location, country, misc), so the label set grows every round,
and the tiny target-domain training sets (100–200 sentences, Liu et al., 2021) are the feedback.

Driven through loopline's real pipeline functions, without MLflow and Prefect (as
``bench_continual.py``), with ``task = "token"``:

* **round 0, news** — a seeded sample of ``conll2003/train.txt`` (``--news-rows``) through the bootstrap
  path: the token training contract, ``save_snapshot``, frozen splits (``load_splits``), a fit of the
  packaged MiniLM and the first-model gate (``assess_candidate``).
* **rounds 1..5** — the domain's ``train.txt`` (plus ``--dev-rows`` of its ``dev.txt``) written as a
  CoNLL file and taken in by ``pipeline.feedback.intake_feedback`` (FeedbackStore on SQLite + the token
  feedback contract); ``pipeline.retrain.plan_retrain`` (the feedback split ``FEEDBACK_SPLIT``, the
  class-balanced replay buffer, ``relabel_outside`` on O words, the head grown by the new types);
  ``pipeline.fit.fit_candidate`` warm-started from the champion; ``assess_candidate``; then
  ``finish_retrain``. The candidate is passed on as the next champion (``--gate record``, default) or
  only when the gate passes (``--gate enforce``).
* **naive** (skip with ``--no-naive``) — warm start from the previous naive model on the gold rows of the
  same feedback training part alone: no replay, no relabelling.
* **joint** — the upper bound: one fresh fine-tune of the base model on everything loopline trained on
  (news training split + every domain's feedback training part, gold tags), after the last round.

After every round each model is scored on a seeded sample (``--test-rows``) of every seen domain's
test.txt with the file's gold tags (all types): entity micro F1 (seqeval strict, as
``evaluate_model``), per domain and over their union. Goals (issue 10): final F1 on every domain within
3 points of joint; no earlier domain dropping more than 3 points from right after it was learned.

    python benchmarks/bench_ner_domains.py --data ../shared/data/crossner --precision bf16 --threads 1
    python benchmarks/bench_ner_domains.py --smoke   # tiny random BERT, generated sentences, seconds

Every run also writes its per-domain F1 as JSON (``--scores``, default ``WORKDIR/scores.json``). One seed
with 300–650 test sentences per domain moves a domain's F1 by 2–3 points, the size of the goal, so the
goals are judged on seed means: run seeds (in parallel if the cores allow) into their own workdirs, then

    python benchmarks/bench_ner_domains.py --combine /tmp/nd13/scores.json /tmp/nd14/scores.json ...

Appends a section to benchmarks/RESULTS.md (not with --smoke unless --results is given).
"""

from __future__ import annotations

import argparse
import json
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
    failed_checks_summary,
    gate_check_note,
    git_commit,
    load_average,
    machine_line,
    markdown_table,
    pct,
    prepare_environment,
    publish_section,
    timed_fit,
    tiny_model,
    utc_now,
    with_epochs,
)
from loopline.config import ReplayConfig, Settings, TrainingConfig
from loopline.data.snapshots import save_snapshot
from loopline.data.tagged import read_conll, sentences_to_frame
from loopline.feedback.store import FeedbackStore
from loopline.inference import load_classifier
from loopline.model_files import read_labels
from loopline.pipeline.assess import assess_candidate
from loopline.pipeline.champion import Champion
from loopline.pipeline.datasets import load_splits
from loopline.pipeline.feedback import FeedbackIntake, intake_feedback
from loopline.pipeline.retrain import RetrainPlan, finish_retrain, plan_retrain
from loopline.tasks import get_task
from loopline.training.trainer import TrainResult

logger = logging.getLogger("bench_ner_domains")

NEWS = "news"
NEWS_FOLDER = "conll2003"
DOMAINS = ("politics", "science", "music", "literature", "ai")
TARGET_GAP = 0.03  # final F1 within 3 points of joint on every domain
TARGET_DROP = 0.03  # no earlier domain dropping more than 3 points
TASK = get_task("token")
UNION = "all seen"
SCORE_KEYS = {"seed", "command", "domains", "test_sentences", "learned", "final", "joint"}
# --smoke: a few types per domain, shared ones (person, location) beside domain-specific ones.
SMOKE_TYPES = {
    NEWS_FOLDER: ("person", "location", "organisation"),
    "politics": ("person", "politician", "politicalparty", "location"),
    "science": ("person", "scientist", "chemicalcompound", "organisation"),
}
SMOKE_FILLER = (
    *("the", "a", "of", "in", "on", "said", "report", "new", "old"),
    *("with", "from", "after", "year", "city", "group", "was", "has"),
)
SMOKE_SIZES = {"train": 60, "dev": 20, "test": 30}


# ---------------------------------------------------------------- arguments and data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data" / "crossner",
        help="CrossNER folder (holding ner_data/<domain>/{train,dev,test}.txt).",
    )
    parser.add_argument("--domains", nargs="+", choices=DOMAINS, default=list(DOMAINS), help="In order.")
    parser.add_argument("--news-rows", type=int, default=1500, help="Seeded sample of conll2003/train.txt.")
    parser.add_argument(
        "--dev-rows", type=int, default=0, help="dev.txt sentences added to a domain's feedback."
    )
    parser.add_argument("--test-rows", type=int, default=300, help="Seeded sample of each test.txt scored.")
    parser.add_argument("--news-epochs", type=int, default=6, help="Epochs of the first (news) model.")
    parser.add_argument("--epochs", type=int, help="Epochs of each domain round (default: loopline's).")
    parser.add_argument("--joint-epochs", type=int, default=6, help="Epochs of the joint model.")
    parser.add_argument(
        "--patience",
        type=int,
        help="Early-stopping patience of the news and domain rounds, 0 = off (default: loopline's).",
    )
    parser.add_argument(
        "--joint-patience", type=int, help="Joint's early-stopping patience, 0 = off (default: loopline's)."
    )
    parser.add_argument("--gate", choices=("record", "enforce"), default="record")
    parser.add_argument("--no-naive", action="store_true", help="Skip the naive warm starts.")
    parser.add_argument("--relabel-threshold", type=float, help="Default: loopline's relabel_outside_above.")
    parser.add_argument("--replay-per-class", type=int, help="Replay rows per stratum (default: loopline's).")
    parser.add_argument(
        "--replay-max-share",
        type=float,
        help="replay.max_share: the domain's rows are repeated until replay is at most this share of a "
        "round's training rows (default: loopline's, off).",
    )
    parser.add_argument("--lr", type=float, help="Encoder learning rate (default: loopline's).")
    parser.add_argument("--head-lr", type=float, help="Head learning rate (default: loopline's).")
    parser.add_argument("--label-smoothing", type=float, help="Label smoothing (default: loopline's).")
    parser.add_argument("--batch-size", type=int, help="Training batch size (default: loopline's).")
    parser.add_argument("--max-length", type=int, default=128, help="Subwords per sentence.")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default).")
    add_precision_arg(parser)
    parser.add_argument("--seed", type=int, default=13, help="Sampling, split and training seed.")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".loopline" / "bench" / "ner_domains")
    parser.add_argument("--scores", type=Path, help="This run's F1 as JSON (default WORKDIR/scores.json).")
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="SCORES",
        help="Train nothing: the mean over runs (seeds) of their --scores files, and the goals on it.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny random BERT, generated sentences, 1 epoch."
    )
    parser.add_argument("--results", type=Path, help="Markdown file to append to (default RESULTS.md).")
    parser.add_argument("--no-write", action="store_true", help="Print only; append nothing.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.news_epochs = args.epochs = args.joint_epochs = 1
        args.domains = [d for d in args.domains if d in SMOKE_TYPES] or list(SMOKE_TYPES)[1:]
        args.news_rows, args.test_rows, args.max_length = min(args.news_rows, 120), 30, 64
        args.dev_rows = min(args.dev_rows, 10)
        args.threads = args.threads or 1  # seconds, not minutes, on a busy shared machine
    for name in ("news_rows", "test_rows", "news_epochs", "joint_epochs", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    for name in ("dev_rows", "patience", "joint_patience"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more (got {value})")
    return args


@dataclass(frozen=True)
class Domain:
    """One domain's rows: what arrives as training data (feedback) and the sampled test sentences."""

    name: str
    arrival: pd.DataFrame  # text, label (space-joined tokens / BIO tags)
    test: pd.DataFrame
    train_sentences: int  # of train.txt (all arrive; news: the pool the sample came from)
    dev_sentences: int  # of dev.txt added to the arrival
    types: tuple[str, ...]  # entity types of the arrival's gold tags


def _sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    frame = frame[["text", "label"]].reset_index(drop=True)
    if n is None or n >= len(frame):
        return frame
    return frame.iloc[np.sort(np.random.default_rng(seed).permutation(len(frame))[:n])].reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass --data FOLDER holding CrossNER's ner_data/<domain>/ files.")
    return sentences_to_frame(read_conll(path, scheme="bio"))[["text", "label"]]


def load_domains(root: Path, args: argparse.Namespace) -> list[Domain]:
    """News (a sample of conll2003/train.txt) then each ``--domains`` entry, all read from ``root``."""
    folder = root / "ner_data" if (root / "ner_data").is_dir() else root
    domains = []
    for name in [NEWS, *args.domains]:
        files = folder / (NEWS_FOLDER if name == NEWS else name)
        train = _read(files / "train.txt")
        if name == NEWS:
            arrival, dev = _sample(train, args.news_rows, args.seed), 0
        else:
            extra = _sample(_read(files / "dev.txt"), args.dev_rows, args.seed) if args.dev_rows else None
            arrival = train if extra is None else pd.concat([train, extra], ignore_index=True)
            dev = 0 if extra is None else len(extra)
        test = _sample(_read(files / "test.txt"), args.test_rows, args.seed)
        types = tuple(sorted(TASK.classes(arrival["label"])))
        domains.append(Domain(name, arrival, test, len(train), dev, types))
    return domains


def write_smoke_data(root: Path, seed: int) -> Path:
    """Generated CoNLL files (``token<TAB>tag``, BIO, lower-case types) for ``--smoke``, under ``root``."""
    rng = np.random.default_rng(seed)
    filler = SMOKE_FILLER
    for domain, types in SMOKE_TYPES.items():
        names = {kind: [f"{kind[:4].title()}{i}" for i in range(6)] for kind in types}
        for split, n in SMOKE_SIZES.items():
            lines: list[str] = []
            for _ in range(n * (2 if domain == NEWS_FOLDER else 1)):
                for _ in range(int(rng.integers(1, 3))):
                    lines += [f"{w}\tO" for w in rng.choice(filler, size=int(rng.integers(1, 4)))]
                    kind = str(rng.choice(types))
                    words = [str(rng.choice(names[kind])) for _ in range(int(rng.integers(1, 3)))]
                    lines += [f"{w}\t{'B' if i == 0 else 'I'}-{kind}" for i, w in enumerate(words)]
                lines += [".\tO", ""]
            path = root / "ner_data" / domain / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines), encoding="utf-8")
    return root


def write_conll(frame: pd.DataFrame, path: Path) -> Path:
    """Rows (space-joined tokens and tags) as a CoNLL file, the feedback file a domain's annotators send."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = [
        "\n".join(f"{w}\t{t}" for w, t in zip(text.split(), tags.split(), strict=True))
        for text, tags in zip(frame["text"].astype(str), frame["label"].astype(str), strict=True)
    ]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- settings and scoring


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """loopline's defaults, with the flags given on the command line."""
    overrides = {
        "learning_rate": args.lr,
        "head_learning_rate": args.head_lr,
        "label_smoothing": args.label_smoothing,
        "batch_size": args.batch_size,
        "num_threads": args.threads,
        "precision": args.precision,
        "epochs": args.epochs,
        "relabel_outside_above": args.relabel_threshold,
        "early_stopping_patience": args.patience,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    return TrainingConfig(**given, seed=args.seed, max_length=args.max_length)


def make_settings(home: Path, base_model: str, args: argparse.Namespace) -> Settings:
    given = {"per_class": args.replay_per_class, "max_share": args.replay_max_share}
    replay = ReplayConfig(**{key: value for key, value in given.items() if value is not None})
    return Settings(
        home=home, task="token", base_model=base_model, training=training_config(args), replay=replay
    )


def score(model_dir: Path, tests: dict[str, pd.DataFrame], max_length: int) -> dict[str, float]:
    """Entity micro F1 per domain and over the union: one prediction pass, the token task's metrics
    (those ``evaluate_model`` computes) on each domain's slice."""
    tagger = load_classifier(model_dir, device="cpu", max_length=max_length)
    frame = pd.concat([t.assign(domain=name) for name, t in tests.items()], ignore_index=True)
    tags, probabilities = tagger.predict(frame["text"].astype(str).tolist())
    predicted, confidences = np.asarray(tags, dtype=object), np.asarray(probabilities)
    gold = frame["label"].astype(str).to_numpy()

    def f1(mask: np.ndarray) -> float:
        return TASK.metrics(list(gold[mask]), list(predicted[mask]), confidences[mask], tagger.labels).primary

    scores = {name: f1((frame["domain"] == name).to_numpy()) for name in tests}
    scores[UNION] = f1(np.ones(len(frame), dtype=bool))
    return scores


# ---------------------------------------------------------------- the run


@dataclass
class Track:
    """One method's models and scores; index r of ``f1`` is "after round r" (0 = news)."""

    name: str
    model_dir: Path | None = None
    f1: list[dict[str, float]] = field(default_factory=list)
    train_rows: list[int] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0

    def add_training(self, result: TrainResult, seconds: float) -> None:
        self.model_dir = result.model_dir
        self.train_rows.append(result.num_train_rows)
        self.samples += result.num_train_rows * result.epochs_run
        self.seconds += seconds


@dataclass(frozen=True)
class RoundInfo:
    """What loopline's pipeline did in one round."""

    domain: str
    rows_in: int
    accepted: int
    quarantined: int
    batch_status: str
    new_types: int
    feedback_train: int  # rows of this domain trained on (after the feedback split)
    replay_rows: int
    relabelled_words: int
    train_rows: int
    epochs_run: int
    gate_passed: bool | None
    gate_failed: list[str]
    promoted: bool


@dataclass
class Run:
    args: argparse.Namespace
    settings: Settings
    domains: list[Domain]
    workdir: Path
    tracks: dict[str, Track]
    rounds: list[RoundInfo] = field(default_factory=list)
    joint_train: list[pd.DataFrame] = field(default_factory=list)
    joint_val: list[pd.DataFrame] = field(default_factory=list)

    def tests(self, upto: int) -> dict[str, pd.DataFrame]:
        return {d.name: d.test for d in self.domains[: upto + 1]}

    def record(self, name: str, upto: int) -> None:
        track = self.tracks[name]
        assert track.model_dir is not None
        track.f1.append(score(track.model_dir, self.tests(upto), self.settings.training.max_length))
        logger.info("%s after %s: %s", name, self.domains[upto].name, _scores_line(track.f1[-1]))


def _scores_line(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.1f}" for k, v in scores.items())


def bootstrap(run: Run) -> Champion:
    """The first model as train_flow makes it: contract, snapshot, frozen splits, fit, first-model gate."""
    settings = with_epochs(run.settings, run.args.news_epochs)
    news = run.domains[0]
    contract = TASK.validate_training(news.arrival, settings.contract, "news sample", settings.quarantine_dir)
    snapshot = save_snapshot(
        contract.accepted[["text", "label"]], settings.data_dir, source="news", label_units=TASK.label_units
    )
    splits = load_splits(settings, snapshot.version)
    result, seconds = timed_fit(settings, splits.train, splits.validation, run.workdir / "round0")
    run.tracks["loopline"].add_training(result, seconds)
    gate = assess_candidate(
        settings, result.model_dir, {"test": splits.test}, run.workdir / "round0" / "gate"
    )
    run.joint_train.append(splits.train)
    run.joint_val.append(splits.validation)
    run.record("loopline", 0)
    if "naive" in run.tracks:  # naive starts from the same first model
        shared, naive = run.tracks["loopline"], run.tracks["naive"]
        naive.model_dir, naive.train_rows, naive.f1 = (
            result.model_dir,
            list(shared.train_rows),
            list(shared.f1),
        )
        naive.samples, naive.seconds = shared.samples, shared.seconds
    run.rounds.append(
        RoundInfo(
            NEWS, len(news.arrival), len(contract.accepted), len(contract.quarantined), "bootstrap",
            len(news.types), len(splits.train), 0, 0, result.num_train_rows, result.epochs_run,
            gate.passed, [gate_check_note(c) for c in gate.failed_checks], True,
        )
    )  # fmt: skip
    return Champion("1", result.model_dir, {"loopline.test_version": snapshot.version})


def _gold_rows(rows: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (texts of the plan's frames, tags possibly relabelled) with their gold tags again."""
    tags = dict(zip(gold["text"].astype(str), gold["label"].astype(str), strict=True))
    return pd.DataFrame({"text": rows["text"].astype(str), "label": rows["text"].astype(str).map(tags)})


def domain_round(run: Run, store: FeedbackStore, champion: Champion, rnd: int) -> Champion:
    """intake → plan_retrain → warm fit → gate → finish_retrain, as retrain_flow calls them."""
    settings, domain = run.settings, run.domains[rnd]
    workdir = run.workdir / f"round{rnd}"
    path = write_conll(domain.arrival, settings.home / "incoming" / f"{domain.name}.conll")
    intake: FeedbackIntake = intake_feedback(settings, store, path, read_labels(champion.model_dir))
    if intake.batch_status != "accepted":
        logger.warning(
            "%s: feedback batch %s (%s); the round trains nothing",
            domain.name,
            intake.batch_status,
            intake.reason,
        )
        return _skipped_round(run, rnd, intake, champion)
    accepted = store.accepted_unused_feedback()
    gold = accepted[["text", "label"]].astype(str)  # this batch, and any a kept champion left unused
    plan: RetrainPlan = plan_retrain(settings, store, champion, workdir / "data")
    result, seconds = timed_fit(
        settings,
        plan.frame("train"),
        plan.frame("validation"),
        workdir / "loopline",
        labels=plan.labels,
        init_model_dir=str(plan.champion_dir),
    )
    run.tracks["loopline"].add_training(result, seconds)
    gate = assess_candidate(
        settings,
        result.model_dir,
        plan.eval_frames(),
        workdir / "evaluation",
        champion_dir=plan.champion_dir,
        new_labels=plan.new_classes,
    )
    promote = bool(gate.passed) or run.args.gate == "record"
    if promote:
        finish_retrain(settings, store, plan, str(rnd + 1))
        champion = Champion(str(rnd + 1), result.model_dir, dict(champion.tags))
    else:
        run.tracks["loopline"].model_dir = champion.model_dir  # the champion stays in production
    # What loopline trained and validated on of the feedback, with the gold tags, for naive and joint
    # (a kept champion's feedback stays unused and comes back next round: joint takes it then).
    feedback_train = _gold_rows(plan.frame("feedback_train"), gold)
    feedback_val = _gold_rows(plan.frame("validation").iloc[len(run.joint_val[0]) :], gold)
    if promote:
        run.joint_train.append(feedback_train)
        run.joint_val.append(feedback_val)
    run.record("loopline", rnd)
    if "naive" in run.tracks:
        naive = run.tracks["naive"]
        val = pd.concat([run.joint_val[0], feedback_val], ignore_index=True)
        out = workdir / "naive"
        fitted, took = timed_fit(settings, feedback_train, val, out, init_model_dir=str(naive.model_dir))
        naive.add_training(fitted, took)
        run.record("naive", rnd)
    run.rounds.append(
        RoundInfo(
            domain.name, intake.rows_added, intake.accepted, intake.quarantined, intake.batch_status,
            len(plan.new_classes), len(feedback_train),
            len(plan.frame("train")) - plan.feedback_repeats * len(feedback_train),
            plan.relabelled_words, result.num_train_rows, result.epochs_run, gate.passed,
            [gate_check_note(c) for c in gate.failed_checks], promote,
        )
    )  # fmt: skip
    return champion


def _skipped_round(run: Run, rnd: int, intake: FeedbackIntake, champion: Champion) -> Champion:
    """A rejected batch trains nothing: every model is scored as it stands."""
    for name, track in run.tracks.items():
        if name != "joint":
            track.train_rows.append(0)
            run.record(name, rnd)
    run.rounds.append(
        RoundInfo(
            run.domains[rnd].name, intake.rows_added, intake.accepted, intake.quarantined,
            intake.batch_status, 0, 0, 0, 0, 0, 0, None, [intake.reason.splitlines()[0]], False,
        )
    )  # fmt: skip
    return champion


def joint_fit(run: Run) -> None:
    """A fresh fine-tune of the base model on every row loopline trained on, gold tags."""
    settings = with_epochs(run.settings, run.args.joint_epochs)
    if (
        run.args.joint_patience is not None
    ):  # e.g. 0: as many passes as loopline makes, whatever validation says
        training = settings.training.model_copy(update={"early_stopping_patience": run.args.joint_patience})
        settings = settings.model_copy(update={"training": training})
    train, val = pd.concat(run.joint_train, ignore_index=True), pd.concat(run.joint_val, ignore_index=True)
    result, seconds = timed_fit(settings, train, val, run.workdir / "joint")
    run.tracks["joint"].add_training(result, seconds)
    run.record("joint", len(run.domains) - 1)


def run_stream(run: Run) -> None:
    champion = bootstrap(run)
    with FeedbackStore(run.settings.resolved_feedback_db_url) as store:
        for rnd in range(1, len(run.domains)):
            champion = domain_round(run, store, champion, rnd)
    joint_fit(run)


# ---------------------------------------------------------------- report


def rounds_table(run: Run) -> list[str]:
    rows = []
    for r, info in enumerate(run.rounds):
        if info.gate_passed is None and r > 0:
            verdict = f"not run: batch {info.batch_status}"
        else:
            verdict = (
                "passed" if info.gate_passed else f"FAILED: {failed_checks_summary(info.gate_failed, 'type')}"
            )
        naive = run.tracks.get("naive")
        rows.append(
            [
                f"{r} {info.domain}",
                f"{info.rows_in} / {info.accepted} / {info.quarantined}",
                f"+{info.new_types}",
                info.feedback_train,
                f"{info.train_rows} ({info.replay_rows} replay)",
                info.relabelled_words,
                info.epochs_run,
                "—" if naive is None else naive.train_rows[r],
                verdict + ("" if info.promoted else " (champion kept)"),
            ]
        )
    headers = [
        "round",
        "rows in / accepted / quarantined",
        "new types",
        "domain rows trained",
        "loopline train rows",
        "words relabelled",
        "epochs run",
        "naive train rows",
        "loopline gate",
    ]
    return markdown_table(headers, rows, align="lrrrrrrrl")


def f1_table(run: Run, name: str) -> list[str]:
    """Per round × per seen domain F1 of one sequential method."""
    names = [d.name for d in run.domains]
    rows = []
    for r, scores in enumerate(run.tracks[name].f1):
        rows.append([f"{r} {names[r]}", *[pct(scores.get(n)) for n in names], pct(scores[UNION])])
    return markdown_table([f"{name}: after round", *[f"{n} F1 %" for n in names], f"{UNION} F1 %"], rows)


def final_table(run: Run) -> list[str]:
    joint = run.tracks["joint"].f1[-1]
    ours = run.tracks["loopline"].f1
    naive = run.tracks.get("naive")
    rows = []
    for r, domain in enumerate(run.domains):
        learned, final = ours[r][domain.name], ours[-1][domain.name]
        rows.append(
            [
                domain.name,
                len(domain.test),
                pct(learned),
                pct(final),
                f"{100 * (final - learned):+.1f}",
                "—"
                if naive is None
                else f"{pct(naive.f1[r][domain.name])} → {pct(naive.f1[-1][domain.name])}",
                pct(joint[domain.name]),
                f"{100 * (final - joint[domain.name]):+.1f}",
            ]
        )
    rows.append(
        [
            UNION,
            sum(len(d.test) for d in run.domains),
            "—",
            pct(ours[-1][UNION]),
            "—",
            "—" if naive is None else pct(naive.f1[-1][UNION]),
            pct(joint[UNION]),
            f"{100 * (ours[-1][UNION] - joint[UNION]):+.1f}",
        ]
    )
    headers = [
        "domain",
        "test sentences",
        "loopline learned F1 %",
        "loopline final F1 %",
        "final − learned (points)",
        "naive learned → final %",
        "joint F1 %",
        "loopline − joint (points)",
    ]
    return markdown_table(headers, rows)


def cost_table(run: Run) -> list[str]:
    rows = [[name, f"{track.samples:,}", f"{track.seconds / 60:.1f}"] for name, track in run.tracks.items()]
    return markdown_table(["method", "samples trained", "train min"], rows)


def goal_lines(
    order: Sequence[str], learned: dict[str, float], final: dict[str, float], joint: dict[str, float]
) -> list[str]:
    """The two goals on per-domain F1: right after a domain was learned, after the last round, joint."""
    gaps = {name: joint[name] - final[name] for name in order}
    worst_gap = max(gaps, key=lambda n: gaps[n])
    drops = {name: learned[name] - final[name] for name in order[:-1]}
    worst_drop = max(drops, key=lambda n: drops[n]) if drops else None
    gap_met = gaps[worst_gap] <= TARGET_GAP
    drop_line = "no earlier domain"
    drop_met = True
    if worst_drop is not None:
        drop_met = drops[worst_drop] <= TARGET_DROP
        drop_line = (
            f"worst drop: {worst_drop} {pct(learned[worst_drop])} → {pct(final[worst_drop])}, "
            f"{100 * drops[worst_drop]:.1f} points"
        )
    return [
        f"- within {100 * TARGET_GAP:.0f} points of joint on every domain: {'met' if gap_met else 'NOT met'} "
        f"(worst: {worst_gap}, loopline − joint {-100 * gaps[worst_gap]:+.1f} points)",
        f"- no earlier domain dropping more than {100 * TARGET_DROP:.0f} points: "
        f"{'met' if drop_met else 'NOT met'} ({drop_line})",
    ]


def verdict_lines(run: Run) -> list[str]:
    scores = run_scores(run)
    lines = goal_lines(scores["domains"], scores["learned"], scores["final"], scores["joint"])
    if "naive" in run.tracks:
        naive, ours = run.tracks["naive"].f1[-1], run.tracks["loopline"].f1[-1]
        lines.append(
            f"- naive against loopline, final F1 over all domains: {pct(naive[UNION])} vs "
            f"{pct(ours[UNION])} ({100 * (naive[UNION] - ours[UNION]):+.1f} points)"
        )
    return lines


# ---------------------------------------------------------------- scores files and their mean


def run_scores(run: Run) -> dict:
    """What ``--combine`` needs of a run: per-domain F1 when learned, after the last round, and joint's."""
    ours = run.tracks["loopline"].f1
    order = [d.name for d in run.domains]
    return {
        "seed": run.args.seed,
        "command": command_line("bench_ner_domains.py"),
        "domains": order,
        "test_sentences": {d.name: len(d.test) for d in run.domains},
        "learned": {name: ours[r][name] for r, name in enumerate(order)},
        "final": {name: ours[-1][name] for name in [*order, UNION]},
        "joint": {name: run.tracks["joint"].f1[-1][name] for name in [*order, UNION]},
    }


def read_scores(paths: Sequence[Path]) -> list[dict]:
    runs = []
    for path in paths:
        try:
            scores = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--combine: cannot read {path}: {exc}") from None
        missing = sorted(SCORE_KEYS - set(scores)) if isinstance(scores, dict) else sorted(SCORE_KEYS)
        if missing:
            raise SystemExit(f"--combine: {path} is not a bench_ner_domains scores file (no {missing})")
        runs.append(scores)
    orders = {tuple(r["domains"]) for r in runs}
    if len(orders) > 1:
        raise SystemExit(f"--combine: the runs saw different domains: {sorted(orders)}")
    return runs


def _mean_std(values: Sequence[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def combined_lines(paths: Sequence[Path], commit: str) -> list[str]:
    """A section with the per-domain mean ± std (population) over runs, and the goals on the means."""
    runs = read_scores(paths)
    order = runs[0]["domains"]
    mean = {
        key: {n: float(np.mean([r[key][n] for r in runs])) for n in runs[0][key]}
        for key in ("learned", "final", "joint")
    }
    rows = []
    for name in [*order, UNION]:
        gaps = [r["final"][name] - r["joint"][name] for r in runs]
        learned = [r["learned"][name] for r in runs] if name in mean["learned"] else None
        rows.append(
            [
                name,
                "—" if learned is None else _mean_std(learned),
                _mean_std([r["final"][name] for r in runs]),
                "—" if learned is None else f"{100 * (mean['final'][name] - mean['learned'][name]):+.1f}",
                _mean_std([r["joint"][name] for r in runs]),
                f"{100 * np.mean(gaps):+.1f}",
                " / ".join(f"{100 * g:+.1f}" for g in gaps),
            ]
        )
    headers = [
        "domain",
        "loopline learned F1 %",
        "loopline final F1 %",
        "final − learned (points)",
        "joint F1 %",
        "loopline − joint (points)",
        "per run",
    ]
    seeds = ", ".join(str(r["seed"]) for r in runs)
    tests = ", ".join(f"{n} {runs[0]['test_sentences'][n]}" for n in order)
    return [
        f"## bench_ner_domains — mean of {len(runs)} runs (seeds {seeds}), {utc_now()}",
        "",
        f"- commit: {commit}; command: {command_line('bench_ner_domains.py')}",
        f"- runs: {'; '.join(r['command'] for r in runs)}",
        f"- test sentences per domain (first run): {tests}",
        "",
        *markdown_table(headers, rows),
        "",
        "mean ± std over the runs (population std); the goals below are judged on the means.",
        "",
        *goal_lines(order, mean["learned"], mean["final"], mean["joint"]),
    ]


def _joint_patience(args: argparse.Namespace) -> str:
    return "" if args.joint_patience is None else f" with patience {args.joint_patience}"


def report_lines(run: Run, load: str, commit: str, wall: float, cpu: float) -> list[str]:
    args, cfg, domains = run.args, run.settings.training, run.domains
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    model = "tiny random BERT (SMOKE: numbers are meaningless)" if args.smoke else "packaged all-MiniLM-L6-v2"
    source = "generated CoNLL files (smoke)" if args.smoke else str(args.data)
    arrivals = ", ".join(
        f"{d.name} {len(d.arrival)}"
        + (f" ({d.train_sentences} train + {d.dev_sentences} dev)" if d.dev_sentences else "")
        for d in domains[1:]
    )
    return [
        f"## bench_ner_domains — domain-incremental CrossNER NER, {utc_now()}"
        + (" (SMOKE)" if args.smoke else ""),
        "",
        f"- machine: {machine_line()}; load average before → after: {load}",
        f"- commit at start: {commit}",
        f"- command: {command_line('bench_ner_domains.py')}",
        f"- data: {source}; news: {len(domains[0].arrival):,} of {domains[0].train_sentences:,} conll2003 "
        f"train sentences (seed {args.seed}); feedback sentences per domain: {arrivals}; scored on "
        f"{args.test_rows} sampled test sentences per domain (fewer where the file has fewer), gold tags "
        "as in the files (all types)",
        f"- order: {' → '.join(d.name for d in domains)}; entity types per domain: "
        + "; ".join(f"{d.name} {len(d.types)}" for d in domains),
        f"- model: {model}; epochs news {args.news_epochs} / domain rounds {cfg.epochs} / joint "
        f"{args.joint_epochs}{_joint_patience(args)} (early stopping, patience "
        f"{cfg.early_stopping_patience}, on entity F1 of "
        f"validation = news validation split + the feedback's validation part), lr {cfg.learning_rate:g}, "
        f"head lr {head_lr:g}, label smoothing {cfg.label_smoothing:g}, warmup {cfg.warmup_ratio:g}, batch "
        f"{cfg.batch_size}, max length {cfg.max_length}, {cfg.precision}, torch threads "
        f"{cfg.num_threads or 'default'}; replay {run.settings.replay.per_class} rows per stratum (a "
        f"sentence's set of entity types), max share {run.settings.replay.max_share or 'off'}; relabel "
        f"threshold {cfg.relabel_outside_above}; gate mode "
        f"`{args.gate}`; joint trained once after the last round",
        f"- time: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU of this process",
        "",
        *rounds_table(run),
        "",
        "Rows in = the domain's feedback file; `plan_retrain` holds part of it out (20% for the gate, 10% "
        'for validation, sentences whose entity-type set is rare stay in training), so "domain rows '
        'trained" is what loopline (and naive, with gold tags) trained on of it; loopline adds its replay '
        "sample. Joint trains on the news training split plus every domain's trained rows.",
        "",
        *f1_table(run, "loopline"),
        "",
        *([*f1_table(run, "naive"), ""] if "naive" in run.tracks else []),
        *final_table(run),
        "",
        *cost_table(run),
        "",
        *verdict_lines(run),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.combine:
        publish_section(combined_lines(args.combine, git_commit()), args.results, args.smoke, args.no_write)
        return 0
    prepare_environment()
    for noisy in ("loopline.contracts", "great_expectations", "loopline.evaluation", "loopline.inference"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)  # inference too, not only the fits
    load_before, commit = load_average(), git_commit()
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-ner-domains-") as tmp:
        if args.smoke:
            args.data = write_smoke_data(Path(tmp) / "crossner", args.seed)
        domains = load_domains(args.data, args)
        base = tiny_model(Path(tmp) / "tiny-bert") if args.smoke else Settings().resolved_base_model
        workdir = Path(tmp) / "run" if args.smoke else args.workdir
        shutil.rmtree(workdir, ignore_errors=True)  # a fresh store, buffer and models every run
        methods = ["loopline", *([] if args.no_naive else ["naive"]), "joint"]
        run = Run(
            args,
            make_settings(workdir / "home", base, args),
            domains,
            workdir,
            {m: Track(m) for m in methods},
        )
        run_stream(run)
        scores = args.scores or (None if args.smoke else workdir / "scores.json")
        if scores is not None:
            scores.parent.mkdir(parents=True, exist_ok=True)
            scores.write_text(json.dumps(run_scores(run), indent=1), encoding="utf-8")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    lines = report_lines(run, f"{load_before} → {load_average()}", commit, wall, cpu)
    publish_section(lines, args.results, args.smoke, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
