"""Shim: ``loopline.flows.demo_flow`` under its checkout name."""

from __future__ import annotations

from loopline.flows.demo_flow import demo_flow

__all__ = ["demo_flow"]
