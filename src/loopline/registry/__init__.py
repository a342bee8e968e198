"""The MLflow model registry: package and register models (``packaging``), find versions, aliases and
tags (``lookups``), promote by alias with history and roll back (``promotion``), check files
(``integrity``)."""

from loopline.registry.lookups import VersionSummary, get_alias_version, get_version, list_versions
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import PromotionEvent, promote, promotion_history, rollback, set_alias

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
