"""Data: load labelled text, versioned snapshots, frozen splits, replay buffer, synthetic demo data."""

from __future__ import annotations

from loopline.data.demo import (
    DEMO_INTENTS,
    NEW_INTENT,
    generate_demo_dataset,
    generate_feedback_batch,
    minimum_functionality_examples,
    write_demo_files,
)
from loopline.data.loading import load_labelled_text
from loopline.data.replay import ReplayBuffer
from loopline.data.snapshots import DatasetVersion, load_snapshot, save_snapshot
from loopline.data.splits import Splits, load_or_create_splits

__all__ = [
    "DEMO_INTENTS",
    "NEW_INTENT",
    "DatasetVersion",
    "ReplayBuffer",
    "Splits",
    "generate_demo_dataset",
    "generate_feedback_batch",
    "load_labelled_text",
    "load_or_create_splits",
    "load_snapshot",
    "minimum_functionality_examples",
    "save_snapshot",
    "write_demo_files",
]
