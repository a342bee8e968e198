"""The MLflow model registry: log and register models, promote by alias, keep history, roll back."""

from loopline.registry.models import (
    VersionSummary,
    get_alias_version,
    get_version,
    list_versions,
    log_model,
    register_model,
    set_alias,
)
from loopline.registry.promotion import PromotionEvent, promote, promotion_history, rollback

__all__ = [
    "PromotionEvent",
    "VersionSummary",
    "get_alias_version",
    "get_version",
    "list_versions",
    "log_model",
    "promote",
    "promotion_history",
    "register_model",
    "rollback",
    "set_alias",
]
