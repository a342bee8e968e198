"""``loopline train --nproc 2``: torchrun (gloo) through the fit step, against the one-process run.

Dropout is off in this tiny model, so the two runs take the same optimiser steps on the same global
batches and must agree to float rounding; any sharding or reduction mistake shows as a different loss.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import COLUMNS, Cli, copy_project, tiny_toml

pytestmark = pytest.mark.xdist_group("distributed")


@pytest.fixture(scope="module")
def dropout_free_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    config = BertConfig.from_pretrained(
        tiny_model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    BertModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def train_runs(home: Path) -> list[dict[str, object]]:
    """Each training run of the main experiment: its epoch metrics and tags."""
    conn = sqlite3.connect(home / "mlflow.db")
    try:
        runs = conn.execute(
            "SELECT r.run_uuid FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
            "WHERE e.name NOT LIKE '%-promotions'"
        ).fetchall()
        found = []
        for (run,) in runs:
            metrics = conn.execute(
                "SELECT key, step, value FROM metrics WHERE run_uuid = ? AND key LIKE 'epoch.%'", (run,)
            ).fetchall()
            tags = dict(conn.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run,)).fetchall())
            found.append({"metrics": {(k, s): v for k, s, v in metrics}, "tags": tags})
        return found
    finally:
        conn.close()


def versions(home: Path) -> int:
    conn = sqlite3.connect(home / "mlflow.db")
    try:
        return int(conn.execute("SELECT count(*) FROM model_versions").fetchone()[0])
    finally:
        conn.close()


def test_two_processes_register_one_version_from_one_run_matching_one_process(
    projects: dict[str, Path], dropout_free_model: Path, tmp_path: Path, prefect_api: str
) -> None:
    homes = {}
    for nproc in ("1", "2"):
        folder = tmp_path / f"nproc{nproc}"
        copy_project(projects["empty"], folder)
        (folder / "loopline.toml").write_text(
            tiny_toml(dropout_free_model).replace("epochs = 1", "epochs = 2")
        )
        cli = Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api)
        cli.ok("train", "--data", "data.csv", *COLUMNS, "--nproc", nproc)
        homes[nproc] = folder / ".loopline"

    single, [ddp] = train_runs(homes["1"]), train_runs(homes["2"])
    assert versions(homes["2"]) == 1 and len(single) == 1
    assert ddp["tags"]["loopline.train_processes"] == "2"
    assert single[0]["tags"]["loopline.train_processes"] == "1"
    expected = single[0]["metrics"]
    assert {key for key, _ in expected} >= {"epoch.train_loss", "epoch.val_accuracy", "epoch.val_macro_f1"}
    assert ddp["metrics"].keys() == expected.keys()  # rank 0 logged every epoch, once
    for key, value in expected.items():
        if key[0].startswith(("epoch.train_loss", "epoch.val_")):
            assert ddp["metrics"][key] == pytest.approx(value, abs=1e-4), key
    assert not list(homes["2"].glob("runs/*/torchrun/*.parquet"))  # the plan's frames are cleaned up
