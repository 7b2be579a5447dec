"""Errors of the runtime (bad job specs reuse :class:`eaco.errors.InputError`)."""

from __future__ import annotations


class RuntimeStateError(RuntimeError):
    """The store or a process is not in the state an operation needs."""


class ApiError(RuntimeError):
    """The daemon answered a request with an error (or could not be reached)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)
