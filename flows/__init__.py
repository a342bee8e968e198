"""Shims of a checkout: ``python -m flows.train_flow PATH`` and ``from flows.<name> import <flow>`` keep
working. The flows live in :mod:`loopline.flows`, which is what gets installed (a top-level package named
``flows`` would collide with other projects'); each module here only re-exports its namesake."""
