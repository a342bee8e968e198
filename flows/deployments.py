"""Shim: ``loopline.flows.deployments`` under its checkout name."""

from __future__ import annotations

from loopline.flows.deployments import build_deployments, serve_deployments

__all__ = ["build_deployments", "serve_deployments"]
