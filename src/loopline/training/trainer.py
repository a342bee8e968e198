"""Fine-tune a sequence classifier: one epoch loop, early stopping, resumable checkpoints.

``train_model`` returns metrics and writes three things under ``output_dir``: ``model/`` (the
best epoch, safetensors + tokenizer), ``results.json`` and, while a run is unfinished,
``checkpoints/last.pt`` (everything needed to resume at the next epoch). Tracking (MLflow) is the
caller's job, through ``on_epoch_end``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup, set_seed

from loopline.config import TrainingConfig
from loopline.errors import LooplineError, TrainingError
from loopline.inference import predict_proba_encoded, resolve_device
from loopline.training.batching import EncodedDataset, LengthGroupedSampler, PaddingCollator, encode_texts
from loopline.training.model import (
    build_model,
    check_labels,
    extend_labels,
    load_model_labels,
    warm_start,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
MAX_GRAD_NORM = 1.0
_HEAD_PREFIXES = ("classifier.", "pre_classifier.", "score.")
# Settings that change how fast training runs, not what it computes: a resume may change them.
_RUNTIME_ONLY = {"device", "num_threads", "eval_batch_size"}


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: mean train loss, validation scores, training-phase throughput and duration.

    ``seconds`` is the training phase only (no validation), the time ``samples_per_s`` and
    ``tokens_per_s`` are measured over; tokens are real tokens, padding excluded.
    """

    epoch: int
    train_loss: float
    val_accuracy: float
    val_macro_f1: float
    samples_per_s: float
    tokens_per_s: float
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train_model``; ``model_dir`` holds the best epoch's model."""

    model_dir: Path
    labels: list[str]
    history: list[EpochMetrics]
    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    stopped_early: bool
    samples_per_s: float
    tokens_per_s: float
    device: str
    num_train_rows: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        data["history"] = [m.to_dict() for m in self.history]
        return data


@dataclass
class _RunState:
    """What a checkpoint restores besides tensors."""

    epoch: int = 0  # last completed epoch
    history: list[EpochMetrics] = field(default_factory=list)
    best_score: float = float("-inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False


@dataclass(frozen=True)
class _Prepared:
    """Tokenised train/validation data."""

    train: EncodedDataset
    val_ids: list[list[int]]
    val_labels: np.ndarray


@dataclass
class _Run:
    """Everything one training run works with."""

    cfg: TrainingConfig
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    data: _Prepared
    device: torch.device
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    output_dir: Path
    fingerprint: str
    state: _RunState = field(default_factory=_RunState)


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
) -> TrainResult:
    """Fine-tune on ``train_df`` (columns text, label), select the best epoch on ``val_df``.

    ``labels=None`` takes the sorted labels of ``train_df`` or, warm-starting from
    ``init_model_dir``, the champion's labels followed by new ones, sorted. With ``init_model_dir``
    the champion is loaded (head grown for new labels) instead of ``base_model``. An unfinished
    run with the same labels, data and settings in ``output_dir`` resumes at its next epoch.
    ``on_epoch_end`` is called after each epoch's checkpoint is written.
    """
    output_dir = Path(output_dir)
    _check_frame(train_df, "train_df")
    _check_frame(val_df, "val_df")
    labels = _resolve_labels(train_df, labels, init_model_dir)
    _check_val_labels(val_df, labels)
    output_dir.mkdir(parents=True, exist_ok=True)
    with _torch_threads(cfg.num_threads):
        run = _setup_run(train_df, val_df, cfg, base_model, output_dir, labels, init_model_dir)
        _log_run_block(run, train_df)
        _train_epochs(run, on_epoch_end)
    result = _result(run)
    save_results(result, output_dir / "results.json", cfg, base_model, init_model_dir)
    (output_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # finished: model/ and results.json remain
    return result


# ---------------------------------------------------------------- input checks


def _check_frame(df: pd.DataFrame, name: str) -> None:
    missing = [column for column in ("text", "label") if column not in df.columns]
    if missing:
        raise TrainingError(
            f"{name} lacks column(s) {missing}; it has {list(df.columns)}.",
            where=name,
            hint="Load data with loopline.data.loading.load_labelled_text (it names text and label columns).",
        )
    if df.empty:
        raise TrainingError(
            f"{name} has no rows.",
            where=name,
            hint="Check the data contract's quarantine report: every row may have been rejected.",
        )
    bad = df.index[~df["text"].map(lambda text: isinstance(text, str)) | df["label"].isna()]
    if len(bad):
        raise TrainingError(
            f"{name} has {len(bad)} rows with a missing text or label.",
            where=f"{name} rows {_row_refs(df, bad)}",
            hint="Run the training-data contract first; it quarantines such rows.",
        )


def _row_refs(df: pd.DataFrame, index: pd.Index, limit: int = 5) -> str:
    rows = df.loc[index[:limit], "source_row"] if "source_row" in df.columns else index[:limit]
    return ", ".join(str(row) for row in rows) + (" …" if len(index) > limit else "")


def _resolve_labels(
    train_df: pd.DataFrame, labels: list[str] | None, init_model_dir: str | None
) -> list[str]:
    seen = sorted(train_df["label"].astype(str).unique())
    if labels is None:
        labels = extend_labels(load_model_labels(init_model_dir), seen) if init_model_dir else seen
        return check_labels(labels, where="labels of train_df")
    labels = check_labels(labels)
    unknown = sorted(set(seen) - set(labels))
    if unknown:
        raise TrainingError(
            f"train_df has labels that are not in `labels`: {unknown[:10]}.",
            where="train_df column label",
            hint="Add them to `labels` (appended at the end) or pass labels=None.",
        )
    return labels


def _check_val_labels(val_df: pd.DataFrame, labels: list[str]) -> None:
    unknown_rows = val_df.index[~val_df["label"].astype(str).isin(labels)]
    if len(unknown_rows):
        names = sorted(val_df.loc[unknown_rows, "label"].astype(str).unique())
        raise TrainingError(
            f"val_df has {len(unknown_rows)} rows with labels the model will not know: {names[:10]}.",
            where=f"val_df rows {_row_refs(val_df, unknown_rows)}",
            hint="Put rows of every label into the training data, or drop these rows from validation.",
        )


# ---------------------------------------------------------------- setup


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
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    cfg: TrainingConfig,
    base_model: str,
    output_dir: Path,
    labels: list[str],
    init_model_dir: str | None,
) -> _Run:
    try:
        device = resolve_device(cfg.device)
    except LooplineError as err:
        raise TrainingError(err.what, hint=err.hint) from err
    set_seed(cfg.seed)
    model, tokenizer = (
        warm_start(init_model_dir, labels) if init_model_dir else build_model(base_model, labels)
    )
    model.to(device)  # type: ignore[arg-type]  # transformers' stub of .to() is narrower than torch's
    data = _prepare_data(train_df, val_df, tokenizer, labels, cfg.max_length)
    loader = _train_loader(data.train, tokenizer, cfg, device)
    optimizer = _build_optimizer(model, cfg, device)
    total_steps = cfg.epochs * len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    run = _Run(cfg, model, tokenizer, labels, data, device, loader, optimizer, scheduler, output_dir, "")
    run.fingerprint = _fingerprint(cfg, labels, base_model, init_model_dir, train_df, val_df)
    _resume_if_possible(run)
    return run


def _prepare_data(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    max_length: int,
) -> _Prepared:
    label2id = {label: i for i, label in enumerate(labels)}
    train_ids = encode_texts(tokenizer, train_df["text"].tolist(), max_length)
    train_labels = [label2id[label] for label in train_df["label"].astype(str)]
    val_ids = encode_texts(tokenizer, val_df["text"].tolist(), max_length)
    val_labels = np.array([label2id[label] for label in val_df["label"].astype(str)], dtype=np.int64)
    return _Prepared(EncodedDataset(train_ids, train_labels), val_ids, val_labels)


def _train_loader(
    dataset: EncodedDataset, tokenizer: PreTrainedTokenizerBase, cfg: TrainingConfig, device: torch.device
) -> DataLoader:
    cuda = device.type == "cuda"
    sampler = LengthGroupedSampler(dataset.lengths, cfg.batch_size, seed=cfg.seed)
    collator = PaddingCollator(tokenizer.pad_token_id or 0, pad_to_multiple_of=8 if cuda else None)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, pin_memory=cuda)


def _build_optimizer(model: PreTrainedModel, cfg: TrainingConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm weights; the head may get its own rate."""
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith(_HEAD_PREFIXES), param.ndim >= 2)
            groups.setdefault(key, []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": head_lr if is_head else cfg.learning_rate,
            "weight_decay": cfg.weight_decay if decays else 0.0,
        }
        for (is_head, decays), params in sorted(groups.items())
    ]
    # The fused kernel exists for CPU too: ~10x faster steps than the per-tensor default there.
    fused = device.type in {"cpu", "cuda"}
    return torch.optim.AdamW(param_groups, lr=cfg.learning_rate, fused=fused, foreach=None if fused else True)


def _fingerprint(
    cfg: TrainingConfig,
    labels: list[str],
    base_model: str,
    init_model_dir: str | None,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
) -> str:
    """Identity of a run: a checkpoint resumes only a run with the same fingerprint."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in cfg.model_dump().items() if k not in _RUNTIME_ONLY}
    identity = {"cfg": settings, "labels": labels, "base": str(base_model), "init": str(init_model_dir)}
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for df in (train_df, val_df):
        frame = df[["text", "label"]].astype(str)
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _log_run_block(run: _Run, train_df: pd.DataFrame) -> None:
    cfg, steps = run.cfg, len(run.loader)
    precision = "bf16 autocast" if run.device.type == "cuda" else f"fp32, {torch.get_num_threads()} threads"
    first = run.data.train.input_ids[0]
    logger.info("***** Running training *****")
    logger.info("  Num examples = %d (validation %d)", len(run.data.train), len(run.data.val_ids))
    logger.info("  Num labels = %d: %s", len(run.labels), ", ".join(run.labels[:20]))
    logger.info("  Num epochs = %d (early stopping patience %d)", cfg.epochs, cfg.early_stopping_patience)
    logger.info("  Batch size = %d, max length = %d", cfg.batch_size, cfg.max_length)
    logger.info("  Steps per epoch = %d, total optimization steps = %d", steps, steps * cfg.epochs)
    logger.info(
        "  Learning rate = %g (head %g)", cfg.learning_rate, cfg.head_learning_rate or cfg.learning_rate
    )
    logger.info("  Device = %s (%s)", run.device, precision)
    logger.info(
        "  Example: text=%r label=%r tokens=%s",
        str(train_df["text"].iloc[0])[:200],
        str(train_df["label"].iloc[0]),
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
        state = run.state
        state.epoch, state.history = epoch, [*state.history, metrics]
        if metrics.val_macro_f1 > state.best_score:
            state.best_score, state.best_epoch, state.bad_epochs = metrics.val_macro_f1, epoch, 0
            save_model(run.model, run.tokenizer, run.output_dir / "model")
        else:
            state.bad_epochs += 1
            state.stopped_early = bool(patience) and state.bad_epochs >= patience and epoch < run.cfg.epochs
        _save_checkpoint(run)
        logger.info(
            "Epoch %d/%d: loss %.4f, val accuracy %.4f, val macro-F1 %.4f, %.1f samples/s, %.0f tokens/s%s",
            epoch,
            run.cfg.epochs,
            metrics.train_loss,
            metrics.val_accuracy,
            metrics.val_macro_f1,
            metrics.samples_per_s,
            metrics.tokens_per_s,
            " (best)" if state.best_epoch == epoch else "",
        )
        if state.stopped_early:
            logger.info("Early stopping: no validation macro-F1 gain for %d epoch(s).", state.bad_epochs)
        if on_epoch_end is not None:
            on_epoch_end(metrics)


def _run_epoch(run: _Run, epoch: int) -> EpochMetrics:
    run.loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
    loss, samples, tokens, seconds = _train_one_epoch(run)
    accuracy, macro_f1 = _validate(run)
    return EpochMetrics(
        epoch=epoch,
        train_loss=loss,
        val_accuracy=accuracy,
        val_macro_f1=macro_f1,
        samples_per_s=samples / seconds,
        tokens_per_s=tokens / seconds,
        seconds=seconds,
    )


def _train_one_epoch(run: _Run) -> tuple[float, int, int, float]:
    """Mean loss, samples, real tokens and seconds of one pass over the training data."""
    model, cfg, device = run.model, run.cfg, run.device
    cuda = device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    loss_sum = torch.zeros((), device=device)
    samples = tokens = 0
    start = time.perf_counter()
    for batch in run.loader:
        samples += len(batch["labels"])
        tokens += int(batch["attention_mask"].sum())
        batch = {key: value.to(device, non_blocking=cuda) for key, value in batch.items()}
        targets = batch.pop("labels")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(**batch).logits
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach() * len(targets)
    mean_loss = float(loss_sum) / max(samples, 1)  # float() waits for the GPU
    return mean_loss, samples, tokens, time.perf_counter() - start


def _validate(run: _Run) -> tuple[float, float]:
    probabilities = predict_proba_encoded(
        run.model,
        run.data.val_ids,
        pad_token_id=run.tokenizer.pad_token_id or 0,
        device=run.device,
        batch_size=run.cfg.eval_batch_size,
    )
    predicted = probabilities.argmax(axis=1)
    truth = run.data.val_labels
    accuracy = float((predicted == truth).mean())
    macro_f1 = float(f1_score(truth, predicted, average="macro", zero_division=0))
    return accuracy, macro_f1


def _result(run: _Run) -> TrainResult:
    history = run.state.history
    seconds = sum(m.seconds for m in history) or float("nan")
    return TrainResult(
        model_dir=run.output_dir / "model",
        labels=list(run.labels),
        history=list(history),
        best_epoch=run.state.best_epoch,
        best_val_macro_f1=run.state.best_score,
        epochs_run=len(history),
        stopped_early=run.state.stopped_early,
        samples_per_s=sum(m.samples_per_s * m.seconds for m in history) / seconds,
        tokens_per_s=sum(m.tokens_per_s * m.seconds for m in history) / seconds,
        device=str(run.device),
        num_train_rows=len(run.data.train),
    )


# ---------------------------------------------------------------- files


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place; a crash leaves the old or the new one, not a mix."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> Path:
    """Save a classifier (safetensors, config with id2label, tokenizer) atomically to ``model_dir``."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    _replace_dir(tmp, model_dir)
    return model_dir


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
    return path


def _rng_state() -> dict[str, Any]:
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, cached = legacy
    return {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(run: _Run) -> None:
    state = run.state
    payload = {
        "fingerprint": run.fingerprint,
        "run_state": {**asdict(state), "history": [m.to_dict() for m in state.history]},
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_state(),
    }
    path = run.output_dir / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _resume_if_possible(run: _Run) -> None:
    path = run.output_dir / CHECKPOINT_FILE
    if not path.is_file():
        return
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("fingerprint") != run.fingerprint:
        logger.warning("Ignoring checkpoint %s: it is from a run with other data, labels or settings.", path)
        return
    if not (run.output_dir / "model" / "config.json").is_file():
        logger.warning("Ignoring checkpoint %s: its best model folder is missing.", path)
        return
    run.model.load_state_dict(payload["model"])
    run.optimizer.load_state_dict(payload["optimizer"])
    run.scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"])
    saved = payload["run_state"]
    run.state = _RunState(**{**saved, "history": [EpochMetrics(**m) for m in saved["history"]]})
