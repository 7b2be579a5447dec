"""Errors raised for bad input. Each names the file, line and field and says what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a trace row, a config value, a command-line option.

    ``str(err)`` reads ``<source>:<line>: field '<field>': <message>`` with the parts that are known.
    """

    def __init__(
        self,
        source: str,
        message: str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = str(self.source)
        if self.line is not None:
            where += f":{self.line}"
        if self.field is not None:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


class PolicyError(RuntimeError):
    """A policy returned a decision that the cluster cannot carry out (a bug in the policy)."""
