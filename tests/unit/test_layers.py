"""Import direction: only ``loopline.flows`` imports Prefect, only the CLI imports ``loopline.flows``, and the
``flows/`` shims of a checkout re-export the flows themselves."""

from __future__ import annotations

import ast
import importlib
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
