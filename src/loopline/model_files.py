"""What a saved classifier folder says about itself, read without loading weights or transformers.

:func:`read_labels` is the one reader of a model folder's labels; :func:`labels_from_id2label` is the
one rule that turns an ``id2label`` mapping (from a ``config.json`` or a loaded model's config, keys
ints or their strings) into the labels in head order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopline.errors import DataError


def labels_from_id2label(id2label: Mapping[Any, Any] | None) -> list[str]:
    """The labels of an ``id2label`` mapping in head (id) order, as strings; [] for None or empty."""
    mapping = id2label or {}
    return [str(mapping[key]) for key in sorted(mapping, key=int)]


def read_labels(model_dir: str | Path) -> list[str]:
    """The classifier's labels in head order (``id2label`` of its ``config.json``)."""
    return labels_from_id2label(_read_config(model_dir).get("id2label"))


def _read_config(model_dir: str | Path) -> dict[str, Any]:
    config_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{model_dir} is not a saved transformers model (no config.json).",
            where=str(model_dir),
            hint="Pass the 'model' folder written by training (save_pretrained + tokenizer).",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"Cannot read the model's config.json: {err}", where=str(config_path)) from None
    return dict(config) if isinstance(config, dict) else {}


def read_architectures(model_dir: str | Path) -> list[str]:
    """``architectures`` of the model's ``config.json`` (e.g. ``["BertForTokenClassification"]``)."""
    return [str(arch) for arch in _read_config(model_dir).get("architectures") or []]
