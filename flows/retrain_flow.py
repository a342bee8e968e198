"""Shim: ``loopline.flows.retrain_flow`` under its checkout name."""

from __future__ import annotations

from loopline.flows.retrain_flow import retrain_flow

__all__ = ["retrain_flow"]
