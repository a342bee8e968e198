"""Fine-tuning: model building and head growth, length-grouped batching, the training loop.

Names are imported lazily so that ``loopline.inference`` (which uses ``training.batching``)
does not pull in the trainer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.training.model import build_model, grow_classifier_head, warm_start
    from loopline.training.trainer import EpochMetrics, TrainResult, train_model

_EXPORTS = {
    "build_model": "loopline.training.model",
    "grow_classifier_head": "loopline.training.model",
    "warm_start": "loopline.training.model",
    "EpochMetrics": "loopline.training.trainer",
    "TrainResult": "loopline.training.trainer",
    "train_model": "loopline.training.trainer",
}
__all__ = ["EpochMetrics", "TrainResult", "build_model", "grow_classifier_head", "train_model", "warm_start"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
