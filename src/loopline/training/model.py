"""Build a classifier (sequence or token) from a base model, warm-start from a champion, grow its head.

Label order rule: a label keeps its id for the life of a model line. A warm start may only
append labels (the champion's labels must be a prefix of the new list); new ones are appended
sorted by the caller (see ``extend_labels``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from loopline.errors import LooplineError, TrainingError
from loopline.model_files import read_labels
from loopline.tasks import Task, get_task, task_of_model

logger = logging.getLogger(__name__)

#: Names under which transformers' sequence- and token-classification models keep their output layer.
_HEAD_PATHS = ("classifier", "classifier.out_proj", "score", "classifier.linear", "logits_proj")
#: New label rows start at the mean old logit minus this margin. The mean is already below the top
#: logit, so no old prediction flips at growth; the margin only covers the noise. Keep it small:
#: AdamW moves a bias by at most ~lr per step, so a margin of 1.0 cannot be unlearned in a short
#: warm start (measured: a new intent stayed at recall 0 with 1.0, see git history).
NEW_LABEL_BIAS_MARGIN = 0.05
_NEW_ROW_NOISE = 0.1  # noise std of new rows, relative to the std of the old rows


def check_labels(labels: Sequence[str], *, where: str = "labels") -> list[str]:
    """Return ``labels`` as a list after checking they are ≥2 unique non-empty strings."""
    labels = list(labels)
    bad = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if bad:
        raise TrainingError(
            f"Labels must be non-empty strings; got {bad[:5]!r}.",
            where=where,
            hint="Fill or drop rows with empty labels (the data contract quarantines them).",
        )
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise TrainingError(
            f"Labels are listed twice: {duplicates[:5]}.", where=where, hint="List each once."
        )
    if len(labels) < 2:
        raise TrainingError(
            f"A classifier needs at least 2 labels; got {labels}.",
            where=where,
            hint="Add labelled rows of at least one more class.",
        )
    return labels


def model_labels(model: PreTrainedModel) -> list[str]:
    """The model's labels in id order, from ``config.id2label``."""
    id2label = model.config.id2label or {}
    return [str(id2label[i]) for i in range(len(id2label))]


def extend_labels(old: Sequence[str], seen: Sequence[str]) -> list[str]:
    """Old labels in their order, then labels only in ``seen``, sorted (the label order rule)."""
    known = set(old)
    return [*old, *sorted({label for label in seen if label not in known})]


class _DropNewHeadWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "newly initialized" not in record.getMessage()


@contextmanager
def _quiet_head_init() -> Iterator[None]:
    """Drop transformers' "newly initialized" warning: a fresh head is what we ask for.

    A filter, not a log level: transformers 4.57 runs extra checks (and warns) when the level of
    its modeling logger is raised.
    """
    quiet = logging.getLogger("transformers.modeling_utils")
    drop = _DropNewHeadWarning()
    quiet.addFilter(drop)
    try:
        yield
    finally:
        quiet.removeFilter(drop)


def _label_config(labels: list[str]) -> dict[str, object]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def _require_dir(path: str, role: str, hint: str) -> Path:
    model_path = Path(path)
    if not (model_path / "config.json").is_file():
        raise TrainingError(f"No transformers model found ({role}).", where=f"{model_path}", hint=hint)
    return model_path


def build_model(
    base_model: str, labels: list[str], task: Task | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A classifier of ``task`` (default: sequence) with a fresh head for ``labels`` on top of
    ``base_model`` (a local model dir).

    A sentence-transformers folder (a plain ``BertModel`` checkpoint) works: the encoder weights
    are loaded and the classification head is initialised.
    """
    task = task or get_task("sequence")
    labels = check_labels(labels)
    path = _require_dir(
        base_model, "base model", "Pass the folder of a saved transformers model (config.json, weights)."
    )
    with _quiet_head_init():
        single_label = {"problem_type": "single_label_classification"} if task.name == "sequence" else {}
        model, info = task.model_class.from_pretrained(
            path, **_label_config(labels), **single_label, output_loading_info=True
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if info["missing_keys"]:
        logger.info("Initialised new weights on %s: %s", path.name, sorted(info["missing_keys"]))
    return model, tokenizer


def _load_classifier_dir(model_dir: str, task: Task) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = _require_dir(
        model_dir, "model to warm-start from", "Pass the folder of a fine-tuned loopline model."
    )
    try:
        found = task_of_model(path)
    except LooplineError as err:
        raise TrainingError(
            err.what,
            where=str(path),
            hint="Pass a base encoder as base_model, and only fine-tuned classifiers as init_model_dir.",
        ) from None
    if found.name != task.name:
        raise TrainingError(
            f"The model to warm-start from is a {found.name} classifier, but the task is {task.name}.",
            where=str(path),
            hint=f'Set task = "{found.name}" (--task {found.name}), or start a new model line for '
            f"the {task.name} task (another model_name).",
        )
    model = task.model_class.from_pretrained(path)
    return model, AutoTokenizer.from_pretrained(path)


def warm_start(
    model_dir: str, labels: list[str], task: Task | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a fine-tuned classifier; grow its head when ``labels`` appends new labels.

    The model's labels must be a prefix of ``labels`` (same labels, same order): label ids never
    change, so past predictions, metrics and the replay buffer stay comparable.
    """
    labels = check_labels(labels)
    model, tokenizer = _load_classifier_dir(model_dir, task or get_task("sequence"))
    old = model_labels(model)
    if labels[: len(old)] != old:
        missing = [label for label in old if label not in labels]
        problem = f"drops {missing[:10]}" if missing else "reorders them"
        raise TrainingError(
            f"The new label list {problem}: a warm start keeps the model's {len(old)} labels, in order, "
            "and may only append new ones.",
            where=f"{model_dir} (labels {old[:10]}{'…' if len(old) > 10 else ''})",
            hint="Pass labels=None to extend the model's labels automatically, or start from the base "
            "model (no init_model_dir) to train a new label space.",
        )
    if len(labels) > len(old):
        grow_classifier_head(model, labels[len(old) :])
    return model, tokenizer


def _head_layer(model: PreTrainedModel) -> tuple[str, nn.Linear]:
    """The output ``nn.Linear`` (one row per label) of a sequence- or token-classification model."""
    num_labels = model.config.num_labels
    for dotted in _HEAD_PATHS:
        module: nn.Module | None = model
        for part in dotted.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            return dotted, module
    raise TrainingError(
        f"Cannot find the classification layer of {type(model).__name__}.",
        hint=f"Use a model whose head is one of {_HEAD_PATHS}.",
    )


def _new_rows(old: nn.Linear, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    weight = old.weight.detach()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((count, weight.shape[1]), generator=generator, dtype=torch.float32)
    scale = _NEW_ROW_NOISE * float(weight.float().std()) if weight.shape[0] > 1 else 0.01
    rows = weight.float().mean(dim=0, keepdim=True) + scale * noise
    if old.bias is None:
        return rows.to(weight.dtype), torch.empty(0)
    bias = old.bias.detach().float().mean() - NEW_LABEL_BIAS_MARGIN
    return rows.to(weight.dtype), bias.expand(count).to(old.bias.dtype)


def grow_classifier_head(model: PreTrainedModel, new_labels: Sequence[str], seed: int = 0) -> PreTrainedModel:
    """Append one output row per new label; old rows and biases are copied exactly.

    New rows start at the mean of the old rows plus small noise, with a bias
    ``NEW_LABEL_BIAS_MARGIN`` below the mean old bias, so old logits are unchanged and an old
    input's top label does not flip to a new label before training. Updates the config's
    num_labels/id2label/label2id. Changes ``model`` in place and returns it.
    """
    old_labels = model_labels(model)
    new_labels = list(new_labels)
    clash = sorted(set(new_labels) & set(old_labels))
    if clash:
        raise TrainingError(f"Labels {clash} are already in the model.", hint="Pass only new labels.")
    labels = check_labels([*old_labels, *new_labels])
    path, old = _head_layer(model)
    grown = nn.Linear(old.in_features, len(labels), bias=old.bias is not None)
    grown.to(device=old.weight.device, dtype=old.weight.dtype)
    rows, bias = _new_rows(old, len(new_labels), seed)
    with torch.no_grad():
        grown.weight[: len(old_labels)] = old.weight
        grown.weight[len(old_labels) :] = rows.to(old.weight.device)
        if old.bias is not None:
            grown.bias[: len(old_labels)] = old.bias
            grown.bias[len(old_labels) :] = bias.to(old.bias.device)
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, grown)
    for key, value in _label_config(labels).items():
        setattr(model.config, key, value)
    if hasattr(model, "num_labels"):
        setattr(model, "num_labels", len(labels))  # noqa: B010 - not a declared attribute of every model
    logger.info(
        "Grew the classifier head from %d to %d labels: added %s", len(old_labels), len(labels), new_labels
    )
    return model


def load_model_labels(model_dir: str) -> list[str]:
    """Labels (id order) of a saved classifier, read from its config without loading weights."""
    path = _require_dir(
        model_dir, "model to warm-start from", "Pass the folder of a fine-tuned loopline model."
    )
    return read_labels(path)
