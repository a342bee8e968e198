"""The registry tests use the root conftest's tiny classifier and MLflow store."""

from tests.conftest import LABELS, MlflowStore

__all__ = ["LABELS", "MlflowStore"]
