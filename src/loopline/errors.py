"""Errors a user can act on: each says what was wrong, where, and what to do."""

from __future__ import annotations


class LooplineError(Exception):
    """Base of loopline's errors. ``str(err)`` is a complete message for a person."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        parts = [what if what.endswith((".", "!", "?", ":")) else what + "."]
        if where:
            parts.append(f"Where: {where}.")
        if hint:
            parts.append(f"What to do: {hint}")
        super().__init__(" ".join(parts))


class ConfigError(LooplineError):
    """Settings cannot be used: a bad value, an unknown key or variable, an unreadable file, a bad URI."""


class StoreError(LooplineError):
    """A store (MLflow tracking/registry, artifact root, feedback database) cannot be reached or used."""


class DataError(LooplineError):
    """Input data cannot be read or has the wrong shape (missing file, column, encoding...)."""


class ContractViolation(LooplineError):
    """A data contract failed; the flow stops before training. Carries the validation outcome."""

    def __init__(
        self, what: str, *, where: str | None = None, hint: str | None = None, result: object = None
    ):
        super().__init__(what, where=where, hint=hint)
        self.result = result


class TrainingError(LooplineError):
    """Training could not run (bad configuration, no usable data, interrupted beyond resume)."""


class GateFailed(LooplineError):
    """The evaluation gate said no; the candidate is not promotable. Carries the gate report."""

    def __init__(
        self, what: str, *, where: str | None = None, hint: str | None = None, report: object = None
    ):
        super().__init__(what, where=where, hint=hint)
        self.report = report


class RegistryError(LooplineError):
    """The MLflow registry refused an operation (unknown version, alias, rollback target...)."""
