"""Shim: ``loopline.flows.train_flow`` under its checkout name; ``python -m flows.train_flow PATH`` trains."""

from __future__ import annotations

from loopline.flows.train_flow import main, train_flow

__all__ = ["main", "train_flow"]

if __name__ == "__main__":
    main()
