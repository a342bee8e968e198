"""What differs between task kinds, behind one small interface (as transformers maps a task to its
``AutoModelFor*`` class and its metrics).

Every task stores a row as one ``text`` and one ``label`` string, so snapshots, splits, the feedback
store and the replay buffer never ask which task they hold: a sequence row's label is its class; a
token row's text is its words joined by spaces and its label their BIO tags joined the same way.
The task says what those strings mean: the label space of the model head, how rows are encoded for
the model, how predictions are decoded, the metrics, the data contracts and what drift watches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from loopline.config import ContractConfig

if TYPE_CHECKING:  # torch and transformers load where a task builds or runs a model
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from loopline.contracts.result import ContractResult  # Great Expectations: slow to import
    from loopline.evaluation.metrics import EvalMetrics

TaskName = Literal["sequence", "token"]


@dataclass(frozen=True)
class Encoded:
    """Rows ready for the model: subword ids, per-row targets (a class id, or one id per subword with
    ``-100`` where no tag is trained), the first-subword position of each word (token task) and how many
    words ``max_length`` cut off."""

    input_ids: list[list[int]]
    targets: list[int] | list[list[int]] | None
    word_starts: list[list[int]] | None = None
    truncated_words: int = 0


@dataclass(frozen=True)
class Decoded:
    """Predictions as the label strings rows are stored with, and one confidence per row."""

    labels: list[str]
    confidences: np.ndarray


class Task(Protocol):
    """One task kind; the trainer, gate, registry, monitor and CLI work through this only."""

    @property
    def name(self) -> TaskName:
        """``sequence`` or ``token`` (``Settings.task``)."""
        ...

    @property
    def model_class(self) -> Any:
        """``AutoModelFor*`` class that builds and loads the task's models."""
        ...

    @property
    def architecture_suffix(self) -> str:
        """The ``architectures`` suffix in a saved model's config.json: how a model folder tells its task."""
        ...

    @property
    def primary_name(self) -> str:
        """Name of the primary score in metrics and MLflow (``val_<name>``, ``test.<name>``)."""
        ...

    @property
    def has_behaviour_checks(self) -> bool:
        """Whether the behaviour checks (invariance, minimum functionality) apply to this task's models."""
        ...

    def label_space(self, values: Iterable[str]) -> list[str]:
        """The head's labels (id order) for a new model trained on rows with these label strings."""
        ...

    def extend_labels(self, old: Sequence[str], values: Iterable[str]) -> list[str]:
        """``old`` in its order, then the labels these rows need that ``old`` lacks (a grown head)."""
        ...

    def classes(self, values: Iterable[str]) -> set[str]:
        """What the gate counts as classes in these rows: labels, or entity types."""
        ...

    def class_labels(self, classes: Collection[str]) -> list[str]:
        """The head labels that stand for ``classes`` (a class itself, or B-/I- of an entity type)."""
        ...

    def strata(self, values: pd.Series) -> pd.Series:
        """A key per row that splits stratify on and the replay buffer balances over."""
        ...

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        values: Sequence[str] | None,
        label2id: dict[str, int],
        max_length: int,
    ) -> Encoded:
        """Tokenise rows (with targets when ``values`` is given)."""
        ...

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        """Mean training loss of a batch."""
        ...

    def predict_encoded(
        self,
        model: PreTrainedModel,
        encoded: Encoded,
        labels: Sequence[str],
        *,
        pad_token_id: int,
        device: torch.device,
        batch_size: int,
    ) -> Decoded:
        """Predict encoded rows; labels come back in the rows' stored format."""
        ...

    def metrics(
        self, true: Sequence[str], predicted: Sequence[str], confidences: np.ndarray, labels: Sequence[str]
    ) -> EvalMetrics:
        """Typed metrics of predictions against stored labels (``primary`` is what the gate compares)."""
        ...

    def read_labelled(
        self, path: Path, text_column: str, label_column: str, encoding: str, label_map: dict[str, str]
    ) -> pd.DataFrame:
        """A labelled file as the canonical ``text, label, source_row`` frame."""
        ...

    def validate_training(
        self,
        df: pd.DataFrame,
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
        *,
        docs_dir: Path | None = None,
    ) -> ContractResult:
        """Hold training rows to the task's training-data contract (bad rows quarantined with reasons);
        GX Data Docs of the run go to ``docs_dir`` when given (never fatal)."""
        ...

    def validate_feedback(
        self,
        df: pd.DataFrame,
        known_labels: Collection[str],
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
    ) -> ContractResult:
        """Hold a feedback batch to the task's feedback contract."""
        ...

    def label_units(self, values: pd.Series) -> pd.Series:
        """What label drift compares, one value per unit: the label of a row, or each entity mention's
        type (``O`` for a sentence without one)."""
        ...
