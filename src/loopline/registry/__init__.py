"""The MLflow model registry: log and register models, promote by alias, keep history, roll back."""

from loopline.registry.models import (
    PromotionEvent,
    VersionSummary,
    get_alias_version,
    list_versions,
    log_model,
    promote,
    promotion_history,
    register_model,
    rollback,
    set_alias,
)

__all__ = [
    "PromotionEvent",
    "VersionSummary",
    "get_alias_version",
    "list_versions",
    "log_model",
    "promote",
    "promotion_history",
    "register_model",
    "rollback",
    "set_alias",
]
