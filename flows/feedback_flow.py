"""Shim: ``loopline.flows.feedback_flow`` under its checkout name."""

from __future__ import annotations

from loopline.flows.feedback_flow import feedback_flow

__all__ = ["feedback_flow"]
