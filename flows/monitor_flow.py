"""Shim: ``loopline.flows.monitor_flow`` under its checkout name."""

from __future__ import annotations

from loopline.flows.monitor_flow import monitor_flow

__all__ = ["monitor_flow"]
