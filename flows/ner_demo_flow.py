"""Shim: ``loopline.flows.ner_demo_flow`` under its checkout name."""

from __future__ import annotations

from loopline.flows.ner_demo_flow import ner_demo_flow

__all__ = ["ner_demo_flow"]
