"""``alphacut remove``: the engine-only path, from files, folders or stdin to cut-outs.

Paths and options are checked and the jobs planned before any model loads (a mistake is
one line and exit 2); then :mod:`alphacut.batch` decodes, predicts and writes in three stages.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alphacut.cli.common import err, fail
from alphacut.cli.tables import progress_shown
from alphacut.errors import AlphacutError, FormatLimitError, InvalidInputError
from alphacut.files import write_atomic
from alphacut.models.registry import Refine

if TYPE_CHECKING:
    from alphacut.engine.formats import OutputFormat

IMAGE_SUFFIXES = {
    *(".jpg", ".jpeg", ".png", ".webp"),
    *(".bmp", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"),  # read by the CLI only
}
# Files alphacut itself writes next to their inputs; never picked up again from a folder.
OUTPUT_MARKERS = (".cutout", ".mask")


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


@dataclass(frozen=True)
class ReportRow:
    """One photo of ``--report``: where it went, which model's mask it got, how sure that is;
    or why it failed."""

    input: str
    output: str | None
    model: str | None
    confidence: float | None
    doubtful: bool | None
    error: str | None = None


def check_report(path: Path) -> None:
    """``--report``'s file must be .csv or .json, and writable: refused before any work."""
    if path.suffix.lower() not in (".csv", ".json"):
        raise InvalidInputError(f"--report {path}: name a .csv or a .json file")
    if path.is_dir():
        raise InvalidInputError(f"--report {path} is a folder; name a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"--report {path}: cannot write into {folder}")


def write_report(path: Path, rows: list[ReportRow]) -> None:
    """The rows as CSV (a header line, then one line per photo) or a JSON list, written
    atomically: a reader never sees half a report."""
    import csv
    import dataclasses
    import io
    import json

    records = [dataclasses.asdict(row) for row in rows]
    if path.suffix.lower() == ".json":
        data = json.dumps(records, indent=1) + "\n"
    else:
        text = io.StringIO()
        writer = csv.DictWriter(text, [f.name for f in dataclasses.fields(ReportRow)])
        writer.writeheader()
        for record in records:
            writer.writerow({key: _cell(value) for key, value in record.items()})
        data = text.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data.encode("utf-8"))


def _cell(value: object) -> str:
    """A CSV cell: empty for none, ``true``/``false`` as in the JSON report, and text that a
    spreadsheet would run as a formula (a file named ``=HYPERLINK(...).jpg``) quoted with a
    leading ``'`` (OWASP's advice for CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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


def output_format(fmt: str | None, output: Path | None) -> OutputFormat:
    """The format to write: ``-o``'s suffix decides, ``-f`` where there is no suffix (stdout,
    ``--out-dir``, ``-o`` without one), else PNG. ``-f`` and a suffix that say two formats
    are refused before any work (exit 2): ``-f jpg -o x.png`` would otherwise write JPEG
    bytes into a file every viewer takes for a PNG."""
    from alphacut.engine.formats import FORMATS, OUTPUT_FORMATS, parse_format

    named = parse_format(fmt) if fmt is not None else None
    suffix = output.suffix if output is not None else ""
    if output is None or not suffix:
        return named or "png"
    suffixes = ", ".join(f".{FORMATS[f].extension}" for f in OUTPUT_FORMATS) + " or .jpeg"
    try:
        implied = parse_format(suffix)
    except InvalidInputError:
        with_suffix = output.with_suffix(f".{FORMATS[named or 'png'].extension}")
        raise InvalidInputError(
            f"-o {output}: alphacut writes PNG, JPEG or WebP, and the file's suffix says "
            f"which ({suffixes}); {suffix} is none of them: name it {with_suffix}"
        ) from None
    if named is not None and named != implied:
        with_suffix = output.with_suffix(f".{FORMATS[named].extension}")
        raise InvalidInputError(
            f"-f {fmt} writes {named.upper()} but -o {output} ends in {suffix}, which says "
            f"{implied.upper()}: name the file {with_suffix}, or leave -f out (the suffix "
            "decides the format)"
        )
    return implied


def _writable_folder(start: Path, label: str) -> None:
    """Refuse a folder that could not be written (or made) later, after the model ran."""
    folder = start
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidInputError(f"{label}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{label}: cannot write into {folder}")


def _check_jobs(jobs: list[Job], output: Path | None, out_dir: Path | None) -> None:
    """What the planned jobs would refuse one by one after the model ran, refused once for
    the whole run before it (exit 2): an output that is one of the inputs, image data to a
    terminal, a folder that cannot be written."""
    inputs = {job.source.resolve() for job in jobs if job.source is not None}
    for job in jobs:
        if job.target is None:
            if sys.stdout.isatty():
                raise InvalidInputError(
                    "not writing image data to a terminal; use -o FILE or redirect: "
                    "alphacut remove - < photo.jpg > cutout.png"
                )
        elif job.target.resolve() in inputs:
            source = job.source if job.source is not None else "stdin"
            raise InvalidInputError(
                f"refusing to overwrite the input {job.target} with the cut-out of {source}; "
                "choose another -o or --out-dir"
            )
    if output is not None:
        _writable_folder(output.parent, f"-o {output}")
    elif out_dir is not None:
        _writable_folder(out_dir, f"--out-dir {out_dir}")
    else:
        for folder in sorted({job.target.parent for job in jobs if job.target is not None}):
            _writable_folder(folder, "beside the inputs (--out-dir DIR writes elsewhere)")


def _check_size(job: Job, fmt: OutputFormat, crop: bool) -> None:
    """One photo that the output format cannot hold whole (a 20,000-pixel-wide strip as
    WebP), refused from its header before the model runs; with --crop the cut-out may be
    smaller, so it is left to the encoder. A header that cannot be read is left to the
    decoder, which says what is wrong with the file."""
    from PIL import Image

    from alphacut.engine.encode import check_dimensions

    if crop or job.source is None:
        return
    try:
        with Image.open(job.source) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any unreadable header: the decoder reports it
        return
    try:  # either orientation: the limit is per side
        check_dimensions(width, height, fmt)
    except FormatLimitError as exc:
        raise InvalidInputError(f"{job.source}: {exc.message}") from None


REMOVE_HELP = (
    "Remove the background from images.\n\n"
    "Every path given is an input (use -o for the output file). Without -o or --out-dir, "
    "each result is written beside its input as NAME.cutout.png (NAME.mask.png with --mask). "
    "An input file is never overwritten. A JPEG result has no transparency: the subject goes "
    "on white unless --bg names another colour."
)


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
            help="fast, precise, auto (picks between the two per photo) or any installed "
            "model (alphacut models list). Default: precise.",
        ),
    ] = None,
    refine: Annotated[
        Refine | None,
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
    box: Annotated[
        str | None,
        typer.Option(
            "--box",
            metavar="X,Y,W,H",
            help="The subject lies in this box (pixels of the photo): the model looks at it "
            "alone and nothing outside is kept.",
        ),
    ] = None,
    points: Annotated[
        list[str] | None,
        typer.Option(
            "--point",
            metavar="X,Y[:bg]",
            help="A click that corrects the cut-out: X,Y is subject, X,Y:bg background "
            "(repeat it, in order; docs/quality.md).",
        ),
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write one row per photo (input, output, model, confidence, doubtful, error) "
            "to FILE: .csv or .json.",
        ),
    ] = None,
) -> None:
    run_remove(
        inputs,
        output=output,
        out_dir=out_dir,
        model=model,
        refine=refine,
        mask=mask,
        bg=bg,
        crop=crop,
        crop_margin=crop_margin,
        fmt=fmt,
        quality=quality,
        skip_existing=skip_existing,
        box=box,
        points=points,
        report_file=report_file,
    )


def resume_command(argv: list[str]) -> str:
    """The command line that ran, with ``--skip-existing``: what resumes an interrupted
    folder run. ``python -m alphacut`` is said as such; the program as it was typed."""
    program = argv[0]
    head = [sys.executable, "-m", "alphacut"] if program.endswith("__main__.py") else [program]
    rest = argv[1:] if "--skip-existing" in argv else [*argv[1:], "--skip-existing"]
    return shlex.join([*head, *rest])


def run_remove(
    inputs: list[str],
    *,
    output: Path | None = None,
    out_dir: Path | None = None,
    model: str | None = None,
    refine: Refine | None = None,
    mask: bool = False,
    bg: str | None = None,
    crop: bool = False,
    crop_margin: str = "0",
    fmt: str | None = None,
    quality: int | None = None,
    skip_existing: bool = False,
    box: str | None = None,
    points: list[str] | None = None,
    report_file: Path | None = None,
    command: list[str] | None = None,
) -> None:
    """``alphacut remove``, for the command and for rembg's verbs (:mod:`alphacut.cli.rembg`),
    which pass the ``alphacut remove`` command line they stand for as ``command`` (what an
    interrupted run says to resume with; default: this process's own)."""
    from concurrent.futures import ThreadPoolExecutor

    from alphacut.batch import Outcome, run_pipeline
    from alphacut.engine.config import engine_settings
    from alphacut.engine.decode import DecodedImage
    from alphacut.engine.hints import MAX_POINTS, Hints, parse_box, parse_point
    from alphacut.engine.pipeline import Cutout, Prediction, Remover

    ready: dict[Job, DecodedImage] = {}  # decoded before the model loads (--box, --point)
    try:
        if output is not None and out_dir is not None:
            raise InvalidInputError("use either -o or --out-dir, not both")
        if len(points or []) > MAX_POINTS:
            raise InvalidInputError(f"--point: at most {MAX_POINTS}")
        hints = Hints(
            parse_box(box) if box is not None else None,
            tuple(parse_point(text) for text in points or []),
        )
        chosen = output_format(fmt, output)
        _check_options(chosen, bg, mask, crop, crop_margin, quality)
        if report_file is not None:
            check_report(report_file)
        jobs = _plan(inputs, output, out_dir, chosen, mask)
        if hints and len(jobs) != 1:
            raise InvalidInputError("--box and --point are in one photo's pixels: give one input")
        _check_jobs(jobs, output, out_dir)
        if skip_existing:
            kept = [job for job in jobs if job.target is None or not job.target.exists()]
            if len(kept) < len(jobs):
                err.print(f"skipping {len(jobs) - len(kept)} whose output exists")
            jobs = kept
            if not jobs:
                if report_file is not None:
                    write_report(report_file, [])  # never an old report left looking current
                return
        if len(jobs) == 1:
            _check_size(jobs[0], chosen, crop)
        # The engine's settings only: a service setting (database, blob store...) that does
        # not validate is no reason to refuse a local removal.
        settings = engine_settings()
        # One model pass at a time here (alphacut.batch): one stream, compiled once.
        settings = settings.model_copy(update={"inference_streams": 1})
        remover = Remover(model, refine=refine, settings=settings, store=settings.model_store())
        if hints:  # checked against the photo (upright) before the model loads: exit 2
            (job,) = jobs
            decoded = remover.decode(job.source if job.source is not None else sys.stdin.buffer)
            hints.check(*decoded.image.size)
            ready[job] = decoded
        if not remover.installed():
            remover.load()  # fail once, clearly: the model is missing
    except AlphacutError as exc:
        fail(exc.message, 2 if isinstance(exc, InvalidInputError) else 1)
    # The model loads (OpenVINO's import and compile, 0.2-0.5 s) while the first photo is read
    # and decoded; the first prediction waits for it.
    starter = ThreadPoolExecutor(1, thread_name_prefix="alphacut-model-load")
    loading = starter.submit(remover.load)
    starter.shutdown(wait=False)

    inputs_resolved = {job.source.resolve() for job in jobs if job.source is not None}
    failures = 0
    rows: list[ReportRow] = []
    threshold = settings.doubtful_below
    started = time.perf_counter()

    # The three stages of alphacut.batch: load (own thread), model (here), finish (own thread).
    def load(job: Job) -> DecodedImage:
        if job.target is not None and job.target.resolve() in inputs_resolved:  # checked
            raise InvalidInputError(f"refusing to overwrite the input {job.target}")  # a race
        if job in ready:
            return ready.pop(job)
        return remover.decode(job.source if job.source is not None else sys.stdin.buffer)

    def predict(job: Job, decoded: DecodedImage) -> Prediction:
        # The model's input is made while the model may still be loading (the engine asks for
        # the session after it: the session cache waits for the load thread's load).
        try:
            return remover.predict(decoded, hints=hints)
        except AlphacutError:
            failed = loading.exception()  # the load thread is done: the lock was free
            if isinstance(failed, AlphacutError):  # would not load: once, for the whole run
                fail(failed.message)
            raise

    def finish(job: Job, decoded: DecodedImage, found: Prediction) -> Cutout:
        cut = remover.compose(decoded, found)
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
        job, exc, cut = outcome.job, outcome.error, outcome.result
        name = str(job.source) if job.source else "stdin"
        target = str(job.target) if job.target is not None else "stdout"
        if isinstance(exc, AlphacutError):
            failures += 1
            err.print(f"[red]failed:[/red] {name}: {exc.message}")
            rows.append(ReportRow(name, None, None, None, None, exc.message))
        elif isinstance(exc, OSError):
            failures += 1
            where = exc.filename or (job.target if job.target is not None else name)
            err.print(f"[red]failed:[/red] {name}: {where}: {exc.strerror or exc}")
            rows.append(ReportRow(name, None, None, None, None, f"{where}: {exc.strerror or exc}"))
        elif cut is not None:
            rows.append(ReportRow(name, target, cut.mask_model, cut.confidence, cut.doubtful))
            if len(jobs) == 1 and job.target is not None:
                seconds = time.perf_counter() - started
                size = f"{cut.width}x{cut.height}"
                sure = "" if cut.confidence is None else f", confidence {cut.confidence:.2f}"
                doubt = " [yellow]doubtful: check it[/yellow]" if cut.doubtful else ""
                err.print(f"{name} -> {job.target} ({size}, {seconds:.2f} s{sure}){doubt}")

    expected = (AlphacutError, OSError)
    try:
        if len(jobs) == 1:
            run_pipeline(jobs, load, predict, finish, report, expected)
        else:
            # A bar on a terminal only: piped or logged, the failures and the summary alone.
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            shown = progress_shown()
            with Progress(*columns, console=err, transient=False, disable=not shown) as progress:
                task = progress.add_task("removing backgrounds", total=len(jobs))

                def report_and_advance(outcome: Outcome[Job, Cutout]) -> None:
                    report(outcome)
                    progress.advance(task)

                run_pipeline(jobs, load, predict, finish, report_and_advance, expected)
    except KeyboardInterrupt:
        done = len(rows) - failures
        failed = f", {failures} failed" if failures else ""
        err.print(f"interrupted: {done} of {len(jobs)} done{failed}", markup=False)
        if report_file is not None:
            _write_report_or_fail(report_file, rows)
        if len(jobs) > 1:
            resume = shlex.join(command) if command else resume_command(sys.argv)
            err.print(f"to resume: {resume}", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if len(jobs) > 1:
        done = len(jobs) - failures
        err.print(f"{done} of {len(jobs)} done in {time.perf_counter() - started:.1f} s")
        doubtful = [row for row in rows if row.doubtful]
        if doubtful:
            listed = f"; {report_file} lists them" if report_file else "; --report FILE lists them"
            err.print(
                f"[yellow]{len(doubtful)} of {done} cut-outs look doubtful[/yellow] "
                f"(confidence under {threshold:g}){listed}"
            )
    if report_file is not None:
        _write_report_or_fail(report_file, rows)
    if failures:
        raise typer.Exit(1)


def _write_report_or_fail(path: Path, rows: list[ReportRow]) -> None:
    try:
        write_report(path, rows)
    except OSError as exc:
        fail(f"could not write the report {path}: {exc.strerror or exc}")
    err.print(f"report: {path} ({len(rows)} rows)")
