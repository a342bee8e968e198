"""Prefect flows: thin wiring of ``loopline.pipeline`` steps into tasks, retries, schedules and triggers.

The one part of the package that imports Prefect; only the CLI (and the ``flows/`` shims of a checkout)
import it. Shipped inside ``loopline`` so a worker with loopline installed resolves every entrypoint
(``loopline.flows.retrain_flow:retrain_flow``) without a second top-level package.
"""
