"""The README is a test: its "Use it on your data" commands, exactly as written, each its own process."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import pytest

from tests.cli.conftest import COLUMNS, Cli, copy_project, folder_listing, tiny_toml

README = Path(__file__).parents[2] / "README.md"
# What each README command must print (beyond exit 0 and no traceback), in this scenario: v1 trained,
# feedback with a new intent imported, the monitor waits (lenient test settings), retrain makes v2.
EXPECTED = {
    "validate": "rows",
    "train": "Registered loopline-classifier version 1",
    "models": "production",
    "evaluate": "accuracy",
    "feedback import": "accepted",
    "feedback quarantined": "Quarantined feedback",
    "monitor": "decision: no retrain",
    "retrain": "Retrain promoted: version=2",
    "decisions": "registered v2",
    "rollback": "production: v2 → v1 (rollback)",
    "promote": "production: v1 → v2",
    "history": "canary ok",
}


def readme_commands() -> list[list[str]]:
    """The loopline lines of the first bash block under "## Use it on your data"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it on your data") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no bash block under 'Use it on your data'"
    lines = [line for line in block.group(1).splitlines() if line.startswith("loopline ")]
    return [shlex.split(line, comments=True)[1:] for line in lines]


def command_name(args: list[str]) -> str:
    return " ".join(args[:2]) if args[0] == "feedback" else args[0]


def copy_user_files(user_files: dict[str, Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in user_files.items():
        shutil.copy(path, folder / name)


def test_the_readme_sequence_works_command_by_command(
    tmp_path: Path, user_files: dict[str, Path], tiny_model_dir: Path
) -> None:
    """On the embedded default, Prefect's temporary server included: nothing configured but loopline.toml."""
    work = tmp_path / "work"
    copy_user_files(user_files, work)
    (work / "loopline.toml").write_text(tiny_toml(tiny_model_dir))
    before = folder_listing(work)
    cli = Cli(cwd=work, user_home=tmp_path / "user")
    commands = readme_commands()
    assert [command_name(c) for c in commands] == list(EXPECTED), "README and this test disagree"
    for args in commands:
        started = time.monotonic()
        result = cli.ok(*args)
        print(f"loopline {' '.join(args)}: {time.monotonic() - started:.1f} s")
        assert EXPECTED[command_name(args)] in result.output, result.explain()
    left = folder_listing(work) - before
    assert left and all(path.startswith(".loopline") for path in left), sorted(left)[:20]
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()


ENV_SETTINGS = {
    "LOOPLINE_TEXT_COLUMN": "utterance",
    "LOOPLINE_LABEL_COLUMN": "intent",
    "LOOPLINE_TRAINING__EPOCHS": "1",
    "LOOPLINE_TRAINING__MAX_LENGTH": "32",
    "LOOPLINE_GATE__MIN_MACRO_F1": "0",
    "LOOPLINE_GATE__MIN_ACCURACY": "0",
    "LOOPLINE_GATE__MIN_BEHAVIOUR_PASS_RATE": "0",
    "LOOPLINE_GATE__TOLERANCE": "1",
    "LOOPLINE_GATE__MAX_CLASS_RECALL_DROP": "1",
    "LOOPLINE_GATE__MIN_NEW_LABEL_RECALL": "0",
    "LOOPLINE_MONITOR__REFERENCE_SIZE": "200",
}


def test_home_elsewhere_and_settings_from_the_environment(
    tmp_path: Path, user_files: dict[str, Path], tiny_model_dir: Path, prefect_api: str
) -> None:
    """Cron's way: absolute paths, settings in the environment, the home elsewhere; the working folder
    stays empty."""
    data, home, work = tmp_path / "data", tmp_path / "stores" / "home", tmp_path / "cron-cwd"
    copy_user_files(user_files, data)
    work.mkdir()
    env = {**ENV_SETTINGS, "LOOPLINE_BASE_MODEL": str(tiny_model_dir)}
    cli = Cli(cwd=work, user_home=tmp_path / "user", prefect_api=prefect_api, env_extra=env)
    h = ["--home", str(home)]
    assert "version 1" in cli.ok("train", "--data", str(data / "data.csv"), *h).output
    assert "accepted" in cli.ok("feedback", "import", str(data / "feedback.csv"), *h).output
    assert "Retrain promoted: version=2" in cli.ok("retrain", *h).output
    assert "v2 → v1 (rollback)" in cli.ok("rollback", *h).output
    history = cli.ok("history", *h).output
    assert "rollback" in history and "promotion" in history
    assert folder_listing(work) == set()
    assert {"mlflow.db", "feedback.db", "mlartifacts", "models"} <= {p.name for p in home.iterdir()}


def test_config_file_elsewhere_and_home_from_the_environment(
    tmp_path: Path, user_files: dict[str, Path], tiny_model_dir: Path, prefect_api: str
) -> None:
    config = tmp_path / "etc" / "loopline.toml"
    config.parent.mkdir()
    config.write_text(tiny_toml(tiny_model_dir) + '\ntext_column = "utterance"\nlabel_column = "intent"\n')
    # Top-level keys after a section would belong to it: put them first.
    body = config.read_text().splitlines()
    top = [line for line in body if line.startswith(("text_column", "label_column"))]
    config.write_text("\n".join(top + [line for line in body if line not in top]) + "\n")
    work, home = tmp_path / "cwd", tmp_path / "home"
    work.mkdir()
    cli = Cli(
        cwd=work, user_home=tmp_path / "user", prefect_api=prefect_api, env_extra={"LOOPLINE_HOME": str(home)}
    )
    c = ["--config", str(config)]
    cli.ok("train", "--data", str(user_files["data.csv"]), *c)
    assert "production" in cli.ok("models", *c).output
    cli.ok("feedback", "import", str(user_files["feedback.csv"]), *c)
    assert "monitor" in cli.ok("decisions", *c).output or cli.ok("monitor", *c)
    assert folder_listing(work) == set()
    assert (home / "feedback.db").is_file()


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_copied_or_moved_home_is_refused_until_relocated(
    how: str, tmp_path: Path, projects: dict[str, Path], prefect_api: str
) -> None:
    work = tmp_path / "work"
    copy_project(projects["v1"], work)  # a trained project of this test's own
    cli = Cli(cwd=work, user_home=tmp_path / "user", prefect_api=prefect_api)
    target = tmp_path / "elsewhere" / "h"
    target.parent.mkdir()
    shutil.rmtree(
        work / ".loopline" / "models", ignore_errors=True
    )  # the copy downloads from its own artifacts
    if how == "copied":
        shutil.copytree(work / ".loopline", target, symlinks=True)
    else:
        shutil.move(work / ".loopline", target)
    refused = cli.run("models", "--home", str(target))
    assert refused.returncode == 2, refused.explain()
    assert "loopline relocate --home" in refused.output and "Traceback" not in refused.output
    assert "Relocated" in cli.ok("relocate", "--home", str(target)).output
    if how == "copied":
        shutil.rmtree(work / ".loopline")  # the copy must not need the original any more
    evaluated = cli.ok("evaluate", "--data", "other.csv", *COLUMNS, "--home", str(target))
    assert "accuracy" in evaluated.output
    assert "nothing to do" in cli.ok("relocate", "--home", str(target)).output
