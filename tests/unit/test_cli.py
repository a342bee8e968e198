"""The CLI turns bad input into one readable message and exit code 2, never a stack trace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from loopline.cli import app

runner = CliRunner()


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.csv"), "--home", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "absent.csv" in result.output
    assert "Traceback" not in result.output


def test_validate_missing_column_names_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({"utterance": ["hello there"], "label": ["greet"]}).to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path), "--home", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "--text-col" in result.output and "utterance" in result.output


def test_validate_reports_quarantine_and_keeps_every_row(tmp_path: Path) -> None:
    texts = [f"please send my new card number {i} soon" for i in range(20)] + [
        f"how do I reset the pin code {i}" for i in range(20)
    ]
    frame = pd.DataFrame({"text": [*texts, ""], "label": ["card"] * 20 + ["pin"] * 20 + ["card"]})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path), "--home", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    quarantined = list((tmp_path / "h" / "quarantine").glob("*.csv"))
    assert len(quarantined) == 1
    bad = pd.read_csv(quarantined[0])
    assert len(bad) == 1 and "text is missing" in bad["reason"].iloc[0]  # an empty CSV cell is null


def test_models_on_empty_store_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "--home", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "Train and register a model first" in " ".join(result.output.split())  # rich wraps at the width


def test_schedule_image_needs_work_pool(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schedule", "--image", "loopline/worker:1", "--home", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "--image needs --work-pool" in " ".join(result.output.split())


def test_schedule_home_does_not_reach_a_work_pool(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schedule", "--work-pool", "p", "--home", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "LOOPLINE_HOME" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "h").exists()
