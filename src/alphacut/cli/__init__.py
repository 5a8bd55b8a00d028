"""The ``alphacut`` command line: remove backgrounds from files, folders or stdin; manage models.

One module per command group; this one builds the root app and registers them. The commands
import what they use when they run, so ``--version`` and ``--help`` load no engine, numpy,
onnxruntime or service.
"""

from __future__ import annotations

from typing import Annotated

import typer

from alphacut import __version__
from alphacut.cli import evaluate, keys, models, rembg, remove, serve

app = typer.Typer(
    name="alphacut",
    help="Self-hosted, offline background removal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alphacut {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Cut the subject out of photos with real segmentation models, on your own machine."""


# In this order in --help: the commands, then the groups.
app.command(help=remove.REMOVE_HELP)(remove.remove)
app.command()(serve.doctor)
app.command("eval")(evaluate.eval_command)
app.command()(serve.serve)
app.command()(serve.worker)
app.add_typer(models.models_app, name="models")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(keys.db_app, name="db")
rembg.register(app)  # rembg's verbs (i, p; s, d, b point the way), hidden from --help


def main() -> None:
    app()
