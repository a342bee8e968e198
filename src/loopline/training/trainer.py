"""Fine-tune a classifier of any task: one epoch loop, early stopping, resumable checkpoints.

``train_model`` returns metrics and writes three things under ``output_dir``: ``model/`` (the
best epoch, safetensors + tokenizer), ``results.json`` and, while a run is unfinished,
``checkpoints/last.pt`` (everything needed to resume at the next epoch). What differs between tasks
(encoding, loss, decoding, the validation score) comes from the :class:`~loopline.tasks.Task`; inputs,
the optimiser and the checkpoint files live in their own modules. Tracking (MLflow) is the caller's
job, through ``on_epoch_end``. Started by ``torchrun`` (see ``loopline.pipeline.torchrun``), the same
loop runs as one rank of a DDP job: ``loopline.training.distributed`` says what changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase, set_seed

from loopline.config import TrainingConfig
from loopline.errors import LooplineError, TrainingError
from loopline.forward import resolve_device
from loopline.progress import tracked
from loopline.tasks import Task, get_task
from loopline.training.batching import EncodedDataset, LengthGroupedSampler, PaddingCollator
from loopline.training.checkpoint import (
    CHECKPOINT_FILE,
    remove_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    save_json,
    save_model,
)
from loopline.training.distributed import (
    DistributedLengthGroupedSampler,
    Ranks,
    barrier,
    current_ranks,
    from_main,
    sum_over_ranks,
)
from loopline.training.inputs import (
    PreparedData,
    check_frame,
    check_val_labels,
    fingerprint,
    prepare_data,
    resolve_labels,
)
from loopline.training.model import build_model, warm_start
from loopline.training.optimiser import build_optimizer, build_scheduler

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_FILE", "EpochMetrics", "TrainResult", "save_results", "train_model"]

MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: mean train loss, validation scores, training-phase throughput and duration.

    ``val_score`` is the task's primary score (macro-F1 for sequences, entity micro F1 for tokens).
    ``seconds`` is the training phase only (no validation), the time ``samples_per_s`` and
    ``tokens_per_s`` are measured over; tokens are real tokens, padding excluded.
    """

    epoch: int
    train_loss: float
    val_accuracy: float
    val_score: float
    samples_per_s: float
    tokens_per_s: float
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train_model``; ``model_dir`` holds the best epoch's model.

    ``score_name`` names the validation score (``macro_f1``, ``entity_f1``); ``truncated_words`` counts
    words that ``max_length`` cut off (token task), so a too-short setting shows. ``world_size`` is the
    number of training processes; throughput is theirs together.
    """

    model_dir: Path
    labels: list[str]
    history: list[EpochMetrics]
    best_epoch: int
    best_val_score: float
    epochs_run: int
    stopped_early: bool
    samples_per_s: float
    tokens_per_s: float
    device: str
    num_train_rows: int
    task: str = "sequence"
    score_name: str = "macro_f1"
    truncated_words: int = 0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        data["history"] = [m.to_dict() for m in self.history]
        return data

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainResult:
        """Read back ``to_dict`` (``results.json``; extra keys such as ``params`` are ignored)."""
        names = set(cls.__dataclass_fields__)
        values = {key: value for key, value in saved.items() if key in names}
        values["model_dir"] = Path(values["model_dir"])
        values["history"] = _history(values["history"])
        return cls(**values)


@dataclass
class _RunState:
    """What a checkpoint restores besides tensors."""

    epoch: int = 0  # last completed epoch
    history: list[EpochMetrics] = field(default_factory=list)
    best_score: float = float("-inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "history": [m.to_dict() for m in self.history]}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> _RunState:
        history = _history(saved["history"])
        return cls(**{**saved, "history": history})


def _history(saved: list[dict[str, Any]]) -> list[EpochMetrics]:
    return [EpochMetrics(**_renamed(m)) for m in saved]


def _renamed(metrics: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints written before the task interface call the score val_macro_f1."""
    if "val_macro_f1" in metrics:
        metrics = {**metrics, "val_score": metrics["val_macro_f1"]}
        del metrics["val_macro_f1"]
    return metrics


@dataclass
class _Run:
    """Everything one training run works with."""

    cfg: TrainingConfig
    task: Task
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    data: PreparedData
    device: torch.device
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    output_dir: Path
    fingerprint: str
    ranks: Ranks
    forward: torch.nn.Module  # the model, wrapped in DDP when there are several ranks
    state: _RunState = field(default_factory=_RunState)

    @property
    def score_name(self) -> str:
        return self.task.primary_name


def train_model(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    cfg: TrainingConfig,
    base_model: str,
    output_dir: Path,
    *,
    labels: list[str] | None = None,
    init_model_dir: str | None = None,
    on_epoch_end: Callable[[EpochMetrics], None] | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Fine-tune on ``train_df`` (columns text, label), select the best epoch on ``val_df``.

    ``task`` (default: sequence classification) says what the rows mean. ``labels=None`` takes the
    task's label space of ``train_df`` or, warm-starting from ``init_model_dir``, the champion's labels
    followed by new ones. With ``init_model_dir`` the champion is loaded (head grown for new labels)
    instead of ``base_model``. An unfinished run with the same labels, data and settings in
    ``output_dir`` resumes at its next epoch. ``on_epoch_end`` is called after each epoch's checkpoint
    is written.
    """
    task = task or get_task("sequence")
    output_dir = Path(output_dir)
    check_frame(train_df, "train_df")
    check_frame(val_df, "val_df")
    labels = resolve_labels(task, train_df, labels, init_model_dir)
    check_val_labels(task, val_df, labels)
    output_dir.mkdir(parents=True, exist_ok=True)
    with _torch_threads(cfg.num_threads):
        run = _setup_run(task, train_df, val_df, cfg, base_model, output_dir, labels, init_model_dir)
        _log_run_block(run, train_df)
        _train_epochs(run, on_epoch_end)
    result = _result(run)
    if run.ranks.is_main:
        save_results(result, output_dir / "results.json", cfg, base_model, init_model_dir)
        remove_checkpoint(output_dir)  # finished: model/ and results.json remain
    barrier()  # no rank leaves before rank 0 has written the results
    return result


# ---------------------------------------------------------------- setup


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """Whether training steps run under bf16 autocast (``training.precision``)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _setup_run(
    task: Task,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    cfg: TrainingConfig,
    base_model: str,
    output_dir: Path,
    labels: list[str],
    init_model_dir: str | None,
) -> _Run:
    ranks = current_ranks()
    try:
        device = resolve_device(cfg.device)
    except LooplineError as err:
        raise TrainingError(err.what, hint=err.hint) from err
    if device.type == "cuda" and ranks.distributed:
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    set_seed(cfg.seed)
    model, tokenizer = (
        warm_start(init_model_dir, labels, task) if init_model_dir else build_model(base_model, labels, task)
    )
    model.to(device)  # type: ignore[arg-type]  # transformers' stub of .to() is narrower than torch's
    data = prepare_data(task, train_df, val_df, tokenizer, labels, cfg.max_length)
    loader = _train_loader(data.train, tokenizer, cfg, device, ranks)
    optimizer = build_optimizer(model, cfg, device)
    scheduler = build_scheduler(optimizer, cfg, len(loader))
    identity = fingerprint(cfg, task, labels, base_model, init_model_dir, train_df, val_df)
    saved = resume_checkpoint(output_dir, identity, model, optimizer, scheduler)  # every rank reads it
    # Wrapped after the resume: DDP starts every rank from rank 0's (restored) weights.
    forward = DistributedDataParallel(model) if ranks.distributed else model
    run = _Run(
        cfg,
        task,
        model,
        tokenizer,
        labels,
        data,
        device,
        loader,
        optimizer,
        scheduler,
        output_dir,
        identity,
        ranks,
        forward,
    )
    if saved is not None:
        run.state = _RunState.from_dict(saved)
    return run


def _train_loader(
    dataset: EncodedDataset,
    tokenizer: PreTrainedTokenizerBase,
    cfg: TrainingConfig,
    device: torch.device,
    ranks: Ranks,
) -> DataLoader:
    cuda = device.type == "cuda"
    sampler = (
        DistributedLengthGroupedSampler(dataset.lengths, cfg.batch_size, cfg.seed, ranks)
        if ranks.distributed
        else LengthGroupedSampler(dataset.lengths, cfg.batch_size, seed=cfg.seed)
    )
    collator = PaddingCollator(tokenizer.pad_token_id or 0, pad_to_multiple_of=8 if cuda else None)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, pin_memory=cuda)


def _log_run_block(run: _Run, train_df: pd.DataFrame) -> None:
    if not run.ranks.is_main:
        return
    cfg, steps = run.cfg, len(run.loader)
    precision = "bf16 autocast" if autocast_bf16(cfg.precision, run.device) else "fp32"
    if run.device.type == "cpu":
        precision += f", {torch.get_num_threads()} threads"
    first = run.data.train.input_ids[0]
    logger.info("***** Running training *****")
    logger.info("  Task = %s classification", run.task.name)
    logger.info("  Num examples = %d (validation %d)", len(run.data.train), len(run.data.val.input_ids))
    logger.info("  Num labels = %d: %s", len(run.labels), ", ".join(run.labels[:20]))
    logger.info("  Num epochs = %d (early stopping patience %d)", cfg.epochs, cfg.early_stopping_patience)
    logger.info("  Batch size = %d, max length = %d", cfg.batch_size, cfg.max_length)
    if run.ranks.distributed:
        logger.info(
            "  Processes = %d (DDP, %s), batch per process = %d",
            run.ranks.world_size,
            torch.distributed.get_backend(),
            -(-cfg.batch_size // run.ranks.world_size),
        )
    if run.data.truncated_words:
        logger.warning(
            "  %d words are beyond max_length = %d subwords and are not trained on (raise max_length)",
            run.data.truncated_words,
            cfg.max_length,
        )
    logger.info("  Steps per epoch = %d, total optimization steps = %d", steps, steps * cfg.epochs)
    logger.info(
        "  Learning rate = %g (head %g)", cfg.learning_rate, cfg.head_learning_rate or cfg.learning_rate
    )
    logger.info("  Device = %s (%s)", run.device, precision)
    logger.info(
        "  Example: text=%r label=%r tokens=%s",
        str(train_df["text"].iloc[0])[:200],
        str(train_df["label"].iloc[0])[:200],
        run.tokenizer.convert_ids_to_tokens(first[:24]),
    )
    if run.state.epoch:
        logger.info("  Resuming after epoch %d from %s", run.state.epoch, run.output_dir / CHECKPOINT_FILE)


# ---------------------------------------------------------------- the loop


def _train_epochs(run: _Run, on_epoch_end: Callable[[EpochMetrics], None] | None) -> None:
    patience = run.cfg.early_stopping_patience
    for epoch in range(run.state.epoch + 1, run.cfg.epochs + 1):
        if run.state.stopped_early:
            break
        metrics = _run_epoch(run, epoch)
        state = run.state  # every rank keeps the same state: the scores come from rank 0
        state.epoch, state.history = epoch, [*state.history, metrics]
        best = metrics.val_score > state.best_score
        if best:
            state.best_score, state.best_epoch, state.bad_epochs = metrics.val_score, epoch, 0
        else:
            state.bad_epochs += 1
            state.stopped_early = bool(patience) and state.bad_epochs >= patience and epoch < run.cfg.epochs
        if not run.ranks.is_main:
            continue
        if best:
            save_model(run.model, run.tokenizer, run.output_dir / "model")
        save_checkpoint(
            run.output_dir, run.fingerprint, state.to_dict(), run.model, run.optimizer, run.scheduler
        )
        logger.info(
            "Epoch %d/%d: loss %.4f, val accuracy %.4f, val %s %.4f, %.1f samples/s, %.0f tokens/s%s",
            epoch,
            run.cfg.epochs,
            metrics.train_loss,
            metrics.val_accuracy,
            run.score_name,
            metrics.val_score,
            metrics.samples_per_s,
            metrics.tokens_per_s,
            " (best)" if state.best_epoch == epoch else "",
        )
        if state.stopped_early:
            logger.info(
                "Early stopping: no validation %s gain for %d epoch(s).", run.score_name, state.bad_epochs
            )
        if on_epoch_end is not None:
            on_epoch_end(metrics)


def _run_epoch(run: _Run, epoch: int) -> EpochMetrics:
    run.loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
    loss, samples, tokens, seconds = _train_one_epoch(run, f"Epoch {epoch}/{run.cfg.epochs}")
    accuracy, score = _validate(run)
    return EpochMetrics(
        epoch=epoch,
        train_loss=loss,
        val_accuracy=accuracy,
        val_score=score,
        samples_per_s=samples / seconds,
        tokens_per_s=tokens / seconds,
        seconds=seconds,
    )


def _train_one_epoch(run: _Run, description: str) -> tuple[float, int, int, float]:
    """Mean loss, samples, real tokens and seconds of one pass over the training data (a progress bar
    named ``description`` on a terminal)."""
    model, cfg, device = run.model, run.cfg, run.device
    cuda = device.type == "cuda"
    bf16 = autocast_bf16(cfg.precision, device)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    loss_sum = torch.zeros((), device=device)
    samples = tokens = 0
    start = time.perf_counter()
    for batch in tracked(run.loader, description):
        samples += len(batch["labels"])
        tokens += int(batch["attention_mask"].sum())
        batch = {key: value.to(device, non_blocking=cuda) for key, value in batch.items()}
        targets = batch.pop("labels")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = run.forward(**batch).logits
        loss = run.task.loss(logits, targets, cfg.label_smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach() * len(targets)
    seconds = time.perf_counter() - start
    loss_total, samples_total, tokens_total = sum_over_ranks(float(loss_sum), samples, tokens)
    mean_loss = loss_total / max(samples_total, 1)  # float() above waited for the GPU
    return mean_loss, int(samples_total), int(tokens_total), seconds


def _validate(run: _Run) -> tuple[float, float]:
    """Validation accuracy and the task's primary score (rank 0 computes them, every rank gets them)."""
    accuracy = score = 0.0
    if run.ranks.is_main:
        decoded = run.task.predict_encoded(
            run.model,
            run.data.val,
            run.labels,
            pad_token_id=run.tokenizer.pad_token_id or 0,
            device=run.device,
            batch_size=run.cfg.eval_batch_size,
        )
        metrics = run.task.metrics(run.data.val_values, decoded.labels, decoded.confidences, run.labels)
        accuracy, score = metrics.accuracy, metrics.primary
    accuracy, score = from_main(accuracy, score)
    return accuracy, score


def _result(run: _Run) -> TrainResult:
    history = run.state.history
    seconds = sum(m.seconds for m in history) or float("nan")
    return TrainResult(
        model_dir=run.output_dir / "model",
        labels=list(run.labels),
        history=list(history),
        best_epoch=run.state.best_epoch,
        best_val_score=run.state.best_score,
        epochs_run=len(history),
        stopped_early=run.state.stopped_early,
        samples_per_s=sum(m.samples_per_s * m.seconds for m in history) / seconds,
        tokens_per_s=sum(m.tokens_per_s * m.seconds for m in history) / seconds,
        device=str(run.device),
        num_train_rows=len(run.data.train),
        task=run.task.name,
        score_name=run.score_name,
        truncated_words=run.data.truncated_words,
        world_size=run.ranks.world_size,
    )


def save_results(
    result: TrainResult,
    path: Path,
    cfg: TrainingConfig | None = None,
    base_model: str | None = None,
    init_model_dir: str | None = None,
) -> Path:
    """Write ``result.to_dict()`` (plus the training settings and model origin) as JSON."""
    payload = result.to_dict()
    if cfg is not None:
        payload["params"] = {**cfg.model_dump(), "base_model": base_model, "init_model_dir": init_model_dir}
    return save_json(payload, path)
