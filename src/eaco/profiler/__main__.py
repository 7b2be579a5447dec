"""``python -m eaco.profiler [OPTIONS]``: the same command as ``eaco profile``."""

from __future__ import annotations

import typer

from eaco.profiler.cli import profile_command


def main() -> None:
    typer.run(profile_command)


if __name__ == "__main__":
    main()
