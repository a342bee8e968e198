"""Pipeline steps: library calls composed into the units the Prefect flows run as tasks.

Each step takes settings and references (paths, dataset versions, run ids) and returns a small
frozen result, so the flows stay thin wiring and the same steps can run without Prefect.
"""
