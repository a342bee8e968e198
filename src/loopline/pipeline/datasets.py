"""Frozen splits of a dataset snapshot, read back by reference (the snapshot version)."""

from __future__ import annotations

from loopline.config import Settings
from loopline.data.snapshots import DatasetVersion, load_snapshot
from loopline.data.splits import Splits, load_or_create_splits


def load_splits(settings: Settings, snapshot: DatasetVersion) -> Splits:
    """The snapshot's train/validation/test splits, created on first use and frozen afterwards."""
    _, frame = load_snapshot(settings.data_dir, snapshot.version)
    return load_or_create_splits(snapshot, frame, settings.split, settings.training.seed, settings.data_dir)
