"""What every command shares: the error console and the one way to stop with an error."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Say what went wrong in one red line on stderr and exit with ``code`` (2: bad input)."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
