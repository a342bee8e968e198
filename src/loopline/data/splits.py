"""Stratified train/validation/test splits, frozen per dataset version.

The first call for a version cuts the splits and writes them to
``data_dir/snapshots/<version>/splits/``; every later call reads those files back, whatever seed
or fractions it is given, so a model's test set never moves under it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from loopline.config import SplitConfig
from loopline.data.snapshots import DatasetVersion, snapshot_dir

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
SPLITS_DIR = "splits"
# sklearn's stratified cut needs two rows of a label; rarer labels stay on the training side.
MIN_ROWS_TO_STRATIFY = 2


@dataclass(frozen=True)
class Splits:
    """The three frozen parts of one dataset version."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def splits_dir(data_dir: Path, version: str) -> Path:
    """Folder holding the frozen splits of one version."""
    return snapshot_dir(data_dir, version) / SPLITS_DIR


Strata = Callable[[pd.Series], pd.Series]  # labels → the key a cut stratifies on (default: the label)


def load_or_create_splits(
    snapshot: DatasetVersion,
    df: pd.DataFrame,
    cfg: SplitConfig,
    seed: int,
    data_dir: Path,
    strata: Strata | None = None,
) -> Splits:
    """Return the frozen splits of ``snapshot``, cutting and saving them on the first call."""
    folder = splits_dir(data_dir, snapshot.version)
    if all((folder / f"{name}.parquet").is_file() for name in SPLIT_NAMES):
        splits = _read_splits(folder)
        if sum(len(part) for part in (splits.train, splits.validation, splits.test)) != len(df):
            logger.warning("Frame has %d rows but the frozen splits of %s differ", len(df), snapshot.version)
        logger.info("Read frozen splits of %s (%s)", snapshot.version, _sizes(splits))
        return splits
    splits = create_splits(df, cfg, seed, strata)
    _write_splits(folder, splits, {"seed": seed, **cfg.model_dump(), "version": snapshot.version})
    logger.info("Created splits of %s with seed %d (%s)", snapshot.version, seed, _sizes(splits))
    return splits


def create_splits(df: pd.DataFrame, cfg: SplitConfig, seed: int, strata: Strata | None = None) -> Splits:
    """Cut ``df`` into train/validation/test parts stratified by ``strata`` of the labels (the task's:
    the label itself, or a sentence's entity types); pure, nothing is saved."""
    rest, test = _stratified_cut(df.reset_index(drop=True), cfg.test_fraction, seed, strata)
    # Validation is a share of all rows, so rescale it to the rows left after the test cut.
    validation_share = cfg.validation_fraction / (1.0 - cfg.test_fraction)
    train, validation = _stratified_cut(rest, validation_share, seed + 1, strata)
    return Splits(train=_tidy(train), validation=_tidy(validation), test=_tidy(test))


def _stratified_cut(
    df: pd.DataFrame, fraction: float, seed: int, strata: Strata | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off ``fraction`` of rows, stratified by label; rare labels stay in the first part."""
    labels = df["label"].astype(str) if strata is None else strata(df["label"])
    counts = labels.value_counts()
    common = labels.isin(counts[counts >= MIN_ROWS_TO_STRATIFY].index)
    rare, pool = df[~common], df[common]
    if len(pool) < 2:
        return df, df.iloc[0:0]
    try:
        keep, cut = train_test_split(
            pool, test_size=fraction, random_state=seed, stratify=labels[common], shuffle=True
        )
    except ValueError as err:
        # Too few rows for one per label in the cut (tiny data): a plain random cut still works.
        logger.warning("Stratified split impossible (%s); using a random split", err)
        keep, cut = train_test_split(pool, test_size=fraction, random_state=seed, shuffle=True)
    return pd.concat([keep, rare]), cut


def _tidy(part: pd.DataFrame) -> pd.DataFrame:
    return part.sort_index().reset_index(drop=True)


def _sizes(splits: Splits) -> str:
    return ", ".join(f"{name}={len(getattr(splits, name))}" for name in SPLIT_NAMES)


def _read_splits(folder: Path) -> Splits:
    parts = {name: pd.read_parquet(folder / f"{name}.parquet") for name in SPLIT_NAMES}
    return Splits(**parts)


def _write_splits(folder: Path, splits: Splits, meta: dict[str, object]) -> None:
    """Write all parts into a temporary folder, then rename it: splits exist whole or not at all."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SPLITS_DIR}-", dir=folder.parent))
    try:
        for name in SPLIT_NAMES:
            getattr(splits, name).to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():  # a partial folder from an older crash: replace it
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
