"""rembg's verbs, so that a rembg user's habits and scripts work: ``alphacut i in.jpg out.png``
and ``alphacut p photos/ cutouts/`` run the ``alphacut remove`` command they stand for, after
one line on stderr that says it (the line to use from now on); ``s``, ``d`` and ``b`` say
which command does their work here and exit 2.

Running them, rather than only pointing to ``remove``, is what serves a rembg user best: a
script written for rembg keeps working, and the note teaches the real command. rembg's
options are translated where alphacut has the same thing (``-m``, ``-om``, ``-bgc``), said
to be unneeded where alphacut always does it (alpha matting, mask post-processing,
decontamination: its refinement), and refused (exit 2, before any work) where they would do
something alphacut will not do quietly (``-d`` deletes the inputs, ``-w`` watches forever,
``-x``'s extras are model settings rembg alone knows). The hidden commands stay out of
``alphacut --help``; ``alphacut i --help`` shows the options.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from alphacut.cli.common import err, fail
from alphacut.cli.remove import run_remove

# rembg's model names that alphacut spells differently.
MODEL_NAMES = {"bria-rmbg": "bria-rmbg-2.0"}

Model = Annotated[
    str | None, typer.Option("-m", "--model", help="Model (rembg's names; default: precise).")
]
OnlyMask = Annotated[
    bool, typer.Option("-om", "--only-mask", metavar="", help="Write the mask (--mask).")
]
BgColour = Annotated[
    tuple[int, int, int, int] | None,
    typer.Option("-bgc", "--bgcolor", metavar="R G B A", help="Background colour (--bg)."),
]
Matting = Annotated[
    bool, typer.Option("-a", "--alpha-matting", metavar="", help="Not needed (refine auto).")
]
PostProcess = Annotated[
    bool, typer.Option("-ppm", "--post-process-mask", metavar="", help="Not needed.")
]
Decontaminate = Annotated[
    bool, typer.Option("-dc", "--decontaminate", metavar="", help="Not needed (always done).")
]
Vitmatte = Annotated[bool, typer.Option("-vm", "--vitmatte", metavar="", help="Not needed.")]
# rembg's alpha-matting thresholds: taken (so its command lines parse), hidden, unneeded.
MattingFg = Annotated[int | None, typer.Option("-af", hidden=True)]
MattingBg = Annotated[int | None, typer.Option("-ab", hidden=True)]
MattingErode = Annotated[int | None, typer.Option("-ae", hidden=True)]
Extras = Annotated[str | None, typer.Option("-x", "--extras", help="Refused (rembg's own).")]


@dataclass
class Translated:
    """rembg's shared options as ``alphacut remove``'s: its arguments and their values."""

    args: list[str] = field(default_factory=list)
    model: str | None = None
    mask: bool = False
    bg: str | None = None


def _translate(
    model: str | None,
    only_mask: bool,
    bgcolor: tuple[int, int, int, int] | None,
    unneeded: dict[str, bool],
    extras: str | None,
) -> Translated:
    """rembg's shared options translated; the unneeded ones said, the ones that cannot be
    honoured refused (exit 2)."""
    if extras is not None:
        fail(
            "-x/--extras passes settings to rembg's own models; alphacut has no equivalent "
            "(alphacut remove --help lists its options)",
            2,
        )
    done = Translated()
    if model is not None:
        done.model = MODEL_NAMES.get(model, model)
        done.args += ["-m", done.model]
    if only_mask:
        done.mask = True
        done.args.append("--mask")
    if bgcolor is not None and bgcolor != (0, 0, 0, 0):  # rembg's default: transparent
        if not all(0 <= part <= 255 for part in bgcolor):
            fail(f"-bgc {' '.join(map(str, bgcolor))}: each of R G B A is 0..255", 2)
        done.bg = "#" + "".join(f"{part:02x}" for part in bgcolor)
        done.args += ["--bg", done.bg]
    said = [flag for flag, given in unneeded.items() if given]
    if said:
        err.print(
            f"note: {', '.join(said)}: not needed here; alphacut settles the edges and the "
            "subject's colour in soft pixels itself (--refine, docs/quality.md)",
            markup=False,
        )
    return done


def _say(verb: str, command: list[str]) -> None:
    err.print(
        f"note: `alphacut {verb}` is rembg's verb; this runs: {shlex.join(command)}",
        markup=False,
        soft_wrap=True,
    )


def rembg_i(
    input_path: Annotated[
        str, typer.Argument(metavar="[INPUT]", help="A photo, or - (stdin, the default).")
    ] = "-",
    output_path: Annotated[
        str | None,
        typer.Argument(metavar="[OUTPUT]", help="The cut-out (its suffix: the format)."),
    ] = None,
    model: Model = None,
    only_mask: OnlyMask = False,
    bgcolor: BgColour = None,
    alpha_matting: Matting = False,
    fg_threshold: MattingFg = None,
    bg_threshold: MattingBg = None,
    erode_size: MattingErode = None,
    post_process: PostProcess = False,
    decontaminate: Decontaminate = False,
    vitmatte: Vitmatte = False,
    extras: Extras = None,
) -> None:
    """rembg's `i`: runs `alphacut remove INPUT -o OUTPUT` (with -m, --mask, --bg for rembg's
    -m, -om, -bgc). Without OUTPUT the cut-out goes beside the photo (NAME.cutout.png)."""
    unneeded = {
        "-a": alpha_matting or any(v is not None for v in (fg_threshold, bg_threshold, erode_size)),
        "-ppm": post_process,
        "-dc": decontaminate,
        "-vm": vitmatte,
    }
    done = _translate(model, only_mask, bgcolor, unneeded, extras)
    if output_path == "-" and input_path != "-":
        fail(
            f"alphacut writes image data to stdout from stdin only: "
            f"alphacut remove - < {shlex.quote(input_path)} > cutout.png",
            2,
        )
    output = None if output_path in (None, "-") else Path(str(output_path))
    command = ["alphacut", "remove", input_path]
    if output is not None:
        command += ["-o", str(output)]
    command += done.args
    _say("i", command)
    run_remove(
        [input_path], output=output, model=done.model, mask=done.mask, bg=done.bg, command=command
    )


def rembg_p(
    input_folder: Annotated[Path, typer.Argument(metavar="INPUT", help="A folder of photos.")],
    output_folder: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Where cut-outs go.")],
    model: Model = None,
    only_mask: OnlyMask = False,
    bgcolor: BgColour = None,
    alpha_matting: Matting = False,
    fg_threshold: MattingFg = None,
    bg_threshold: MattingBg = None,
    erode_size: MattingErode = None,
    post_process: PostProcess = False,
    decontaminate: Decontaminate = False,
    vitmatte: Vitmatte = False,
    watch: Annotated[bool, typer.Option("-w", "--watch", metavar="", help="Refused.")] = False,
    delete_input: Annotated[
        bool, typer.Option("-d", "--delete_input", metavar="", help="Refused.")
    ] = False,
    accept_usage_cost: Annotated[
        bool, typer.Option("--accept-usage-cost", metavar="", help="Not needed (no bill).")
    ] = False,
    extras: Extras = None,
) -> None:
    """rembg's `p`: runs `alphacut remove INPUT --out-dir OUTPUT --skip-existing` (as rembg's
    p, a photo whose cut-out exists is left; sub-folders are kept as sub-folders)."""
    if watch:
        fail(
            "-w/--watch: alphacut has no watch mode; run the same command again (from cron, "
            "or inotifywait) with --skip-existing, which does only the new photos",
            2,
        )
    if delete_input:
        fail("-d/--delete_input: alphacut never deletes an input; delete them yourself", 2)
    del accept_usage_cost  # nothing here is billed: every model runs on this machine
    unneeded = {
        "-a": alpha_matting or any(v is not None for v in (fg_threshold, bg_threshold, erode_size)),
        "-ppm": post_process,
        "-dc": decontaminate,
        "-vm": vitmatte,
    }
    done = _translate(model, only_mask, bgcolor, unneeded, extras)
    if not input_folder.is_dir():
        fail(f"{input_folder}: not a folder (rembg's p takes a folder; for one photo: i)", 2)
    command = ["alphacut", "remove", str(input_folder), "--out-dir", str(output_folder)]
    command += [*done.args, "--skip-existing"]
    _say("p", command)
    run_remove(
        [str(input_folder)],
        out_dir=output_folder,
        model=done.model,
        mask=done.mask,
        bg=done.bg,
        skip_existing=True,
        command=command,
    )


_POINTERS = {
    "s": "rembg's `s` (its HTTP server) is `alphacut serve --host HOST --port PORT` here; it "
    "answers rembg's /api/remove too (docs/http-api.md)",
    "d": "rembg's `d` (download models) is `alphacut models install [NAME...]` here "
    "(`alphacut models list` shows them)",
    "b": "rembg's `b` (raw RGB frames on stdin) has no equivalent here; for one image: "
    "alphacut remove - < photo.jpg > cutout.png, for many: alphacut remove FOLDER --out-dir OUT",
}


def pointer(verb: str) -> Callable[[typer.Context], None]:
    """A rembg verb that alphacut does with another command: say which, exit 2."""

    def command(ctx: typer.Context) -> None:
        del ctx  # rembg's arguments, whatever they are: not run
        fail(_POINTERS[verb], 2)

    command.__doc__ = _POINTERS[verb]
    return command


CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    """Add rembg's verbs to ``app``, hidden from its help."""
    app.command("i", hidden=True)(rembg_i)
    app.command("p", hidden=True)(rembg_p)
    for verb in _POINTERS:
        app.command(verb, hidden=True, context_settings=CONTEXT, add_help_option=False)(
            pointer(verb)
        )
