"""Import direction: only ``loopline.flows`` imports Prefect, only the CLI imports ``loopline.flows``, and the
``flows/`` shims of a checkout re-export the flows themselves."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "loopline"
FLOWS = PACKAGE / "flows"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if FLOWS not in p.parents)


def test_only_loopline_flows_imports_prefect() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in library_modules()
        if any(name == "prefect" or name.startswith("prefect.") for name in imported_modules(path))
    ]
    assert offenders == []


def test_only_the_cli_imports_loopline_flows() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in library_modules()
        if path != PACKAGE / "cli.py"
        and any(
            name == "loopline.flows" or name.startswith("loopline.flows.") for name in imported_modules(path)
        )
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("train_flow", ["train_flow", "main"]),
        ("feedback_flow", ["feedback_flow"]),
        ("monitor_flow", ["monitor_flow"]),
        ("retrain_flow", ["retrain_flow"]),
        ("demo_flow", ["demo_flow"]),
        ("deployments", ["build_deployments", "serve_deployments"]),
    ],
)
def test_checkout_shims_re_export_the_installed_flows(module: str, names: list[str]) -> None:
    shim = importlib.import_module(f"flows.{module}")
    real = importlib.import_module(f"loopline.flows.{module}")
    for name in names:
        assert getattr(shim, name) is getattr(real, name)


# What the read-only commands (validate, feedback import, models, history) import: torch, transformers
# and scikit-learn cost seconds per one-shot process, so they load only where a model or metric runs.
LIGHT_MODULES = ["loopline.tasks", "loopline.registry", "loopline.registry.lookups", "loopline.data.tagged"]
HEAVY = ["torch", "transformers", "sklearn", "seqeval"]


def test_tasks_and_registry_lookups_import_without_torch_transformers_or_sklearn() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in LIGHT_MODULES)
        + f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_a_task_still_reaches_its_model_class() -> None:
    from loopline.tasks import get_task

    assert get_task("sequence").model_class.__name__ == "AutoModelForSequenceClassification"
    assert get_task("token").model_class.__name__ == "AutoModelForTokenClassification"
