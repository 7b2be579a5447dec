"""``python -m eaco.runtime [serve options]``: the daemon, before ``eaco serve`` is registered."""

from __future__ import annotations

import typer

from eaco.runtime_cli import serve_command


def main() -> None:
    typer.run(serve_command)


if __name__ == "__main__":
    main()
