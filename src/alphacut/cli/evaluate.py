"""``alphacut eval``: score models and refinements against hand-made masks."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alphacut.cli.common import err, fail
from alphacut.cli.tables import out_console, print_table, progress_shown
from alphacut.errors import AlphacutError
from alphacut.files import write_atomic
from alphacut.models.registry import Refine

if TYPE_CHECKING:
    from rich.console import Console

    from alphacut.evaluation import ConfidenceReport, ImageResult, RuntimeVerdict
    from alphacut.models.store import ModelStore
    from alphacut.noc import ClickReport, Trace

_EVAL_COLUMNS = [("iou", "IOU", 4), ("mae", "MAE", 4), ("boundary_f", "BOUND_F", 4),
                 ("sad", "SAD", 2), ("grad", "GRAD", 2)]  # fmt: skip


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
            help="Model to score: fast, precise, auto or an installed catalogue model (repeat "
            "to compare; default fast and precise).",
        ),
    ] = None,
    refine: Annotated[
        list[Refine] | None,
        typer.Option(
            "--refine",
            "-r",
            help="auto, none, edges, zoom or consensus (repeat to compare; default auto).",
        ),
    ] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            "--runtime",
            help="Run through this runtime and precision: openvino-fp32, openvino-bf16 or "
            "onnxruntime-fp32 (repeat to compare: the first is the reference, and each other "
            "gets the rule's verdict: docs/performance.md). Default: what the settings pick.",
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
    clicks: Annotated[
        int,
        typer.Option(
            "--clicks",
            min=0,
            max=100,
            help="Then correct each cut-out with up to N clicks of a simulated user (RITM's "
            "protocol) and print NoC@85, NoC@90, NoF@90, IoU after 1/3/5 clicks, s/click.",
        ),
    ] = 0,
) -> None:
    """Score models and refinements against hand-made masks.

    IoU, MAE, boundary F, SAD, gradient error and seconds per image, overall and for small
    subjects (under 5% of the frame) apart; one row per model, refinement and runtime, side
    by side. With two or more --runtime, each
    runtime after the first is judged against it by the rule for a change of runtime or
    precision (mean IoU within 0.002, mean boundary F within 0.005, no photo's mask below IoU
    0.80 against the reference's): exit status 1 if one fails. For each variant, how well
    its confidence score ranks and estimates the IoU (AUROC for IoU under 0.80, Spearman,
    mean |confidence - IoU|, a table by decile)."""
    from alphacut.config import get_settings
    from alphacut.engine.sessions import RUNTIME_NAMES
    from alphacut.evaluation import (
        Variant,
        confidence_reports,
        evaluate,
        load_pairs,
        runtime_verdicts,
        spread,
        summarize,
    )

    # The arguments and pairs.csv, before any model loads: a refusal is exit 2.
    if not (folder / "pairs.csv").is_file():
        fail(f"{folder} has no pairs.csv (columns image,mask: paths relative to the folder)", 2)
    try:
        pairs = spread(load_pairs(folder), limit)
        settings = get_settings()
        store = settings.model_store()
        names = model or ["fast", "precise"]
        for name in runtime or []:
            if name not in RUNTIME_NAMES:
                raise ValueError(
                    f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIME_NAMES)}"
                )
        runtimes: list[str | None] = list(runtime) if runtime else [None]
        # auto may name the same refinement as another option: each variant runs once.
        variants = list(
            dict.fromkeys(
                Variant(name, _refine_of(name, option, store), chosen)
                for name in names
                for option in refine or [Refine.AUTO]
                for chosen in runtimes
            )
        )
    except (AlphacutError, ValueError, KeyError, OSError) as exc:
        fail(str(exc), 2)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not progress_shown(),
    ) as progress:  # fmt: skip
        task = progress.add_task("scoring", total=len(pairs) * len(variants))
        try:
            results = evaluate(
                pairs,
                variants,
                settings=settings,
                store=store,
                tolerance=tolerance,
                on_result=lambda _: progress.advance(task),
                clicks=clicks,
            )
        except (AlphacutError, ValueError, OSError) as exc:  # a bad photo, mask or pairing
            fail(str(exc))
        except KeyboardInterrupt:  # Ctrl-C: the shell's 130, not click's "Aborted!" and 1
            err.print("interrupted: nothing scored is printed (--limit N scores fewer pairs)")
            raise typer.Exit(130) from None
    summaries = summarize(results)
    # Plain tables (alphacut.cli.tables): one line a variant, figures first and the variant
    # (which holds spaces) last, so that grep and awk read them.
    console = out_console()
    console.print(f"{folder.name}: {len(pairs)} pairs, boundary tolerance {tolerance} px")
    print_table(
        [title for _key, title, _digits in _EVAL_COLUMNS] + ["S/IMAGE", "VARIANT"],
        [
            [
                *(f"{summary.all[key]:.{digits}f}" for key, _title, digits in _EVAL_COLUMNS),
                f"{summary.seconds_per_image:.3f}",
                summary.variant,
            ]
            for summary in summaries
        ],
        console,
    )
    if any(summary.small for summary in summaries):
        console.print("small subjects (under 5% of the frame):")
        print_table(
            ("PHOTOS", "IOU", "MAE", "BOUND_F", "VARIANT"),
            [
                [
                    str(summary.small_images),
                    *(f"{summary.small[key]:.4f}" for key in ("iou", "mae", "boundary_f")),
                    summary.variant,
                ]
                for summary in summaries
                if summary.small
            ],
            console,
        )
    reports = confidence_reports(results, settings.doubtful_below)
    _print_confidence(console, reports)
    click_reports = _click_reports(results, clicks)
    _print_clicks(console, click_reports)
    verdicts = runtime_verdicts(results)
    for verdict in verdicts:
        _print_verdict(console, verdict)
    if json_out is not None:
        document = {
            "folder": str(folder),
            "tolerance": tolerance,
            "summaries": [asdict(summary) for summary in summaries],
            "confidence": [asdict(report) for report in reports],
            "verdicts": [asdict(v) | {"passes": v.passes} for v in verdicts],
            "clicks": [asdict(report) for report in click_reports],
            "images": [asdict(result) for result in results],
        }
        write_atomic(json_out, json.dumps(_finite(document), indent=2).encode())
    if any(not verdict.passes for verdict in verdicts):
        raise typer.Exit(1)


def _click_reports(results: list[ImageResult], clicks: int) -> list[ClickReport]:
    """One :class:`~alphacut.noc.ClickReport` per variant that was clicked on."""
    from alphacut.noc import click_report

    traces: dict[str, list[Trace]] = {}
    for result in results:
        if result.clicks is not None:
            traces.setdefault(result.variant, []).append(result.clicks)
    return [click_report(label, found, clicks) for label, found in traces.items()]


def _print_clicks(console: Console, reports: list[ClickReport]) -> None:
    if not reports:
        return
    console.print("Correcting with clicks (simulated user, RITM's protocol):")
    print_table(
        ("NOC@85", "NOC@90", "NOF@90", "IOU_0", "IOU_1", "IOU_3", "IOU_5", "S/CLICK", "VARIANT"),
        [
            [
                f"{report.noc85:.2f}",
                f"{report.noc90:.2f}",
                f"{report.nof90:.1%}",
                f"{report.iou_before:.4f}",
                *(f"{report.iou_after[k]:.4f}" for k in (1, 3, 5)),
                f"{report.seconds_per_click:.3f}",
                report.label,
            ]
            for report in reports
        ],
        console,
    )
    console.print(f"  at most {reports[0].max_clicks} clicks a photo; 0 where the cut-out is "
                  "already at the IoU")  # fmt: skip


def _finite(value: object) -> object:
    """``value`` with NaN (an AUROC without bad photos...) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _refine_of(name: str, option: Refine, store: ModelStore) -> str:
    """The refinement a variant runs (``auto`` decides its own: consensus)."""
    from alphacut.engine.refine import resolve_refine
    from alphacut.models.registry import AUTO_MODEL

    spec = store.spec(name)
    if name == AUTO_MODEL and spec.checker is not None:  # else auto is precise's model alone
        if option not in (Refine.AUTO, Refine.CONSENSUS):
            raise ValueError(f"model auto runs refine consensus, not {option}")
        return Refine.CONSENSUS
    return resolve_refine(option, spec.refine)


def _print_confidence(console: Console, reports: list[ConfidenceReport]) -> None:
    """Per variant: how well its confidence ranks and estimates the IoU, and by decile."""
    if not reports:
        return
    console.print(
        "confidence, the estimated IoU, against the real one:\n"
        "  BAD: photos under IoU 0.80; AUROC: how well the confidence finds them;\n"
        "  SPEARMAN: rank correlation; MEAN_ERR: mean |confidence - IoU|;\n"
        f"  DOUBTFUL: under {reports[0].threshold:g}; REALLY: of those, under IoU 0.80",
        markup=False,
    )
    print_table(
        ("AUROC", "BAD", "SPEARMAN", "MEAN_ERR", "DOUBTFUL", "REALLY", "NO_SUBJECT", "VARIANT"),
        [
            [
                f"{report.auroc:.3f}",
                str(report.bad),
                f"{report.spearman:+.3f}",
                f"{report.calibration:.3f}",
                str(report.flagged),
                str(report.flagged_bad),
                str(report.refused),
                report.variant,
            ]
            for report in reports
        ],
        console,
    )
    for report in reports:
        kept = ", ".join(f"{name} {count}" for name, count in report.kept.items())
        console.print(f"{report.variant}, masks kept: {kept}", markup=False)
        console.print(
            f"{report.variant}, by decile of confidence (mean confidence -> mean IoU): "
            + "; ".join(f"{conf:.2f} -> {iou:.2f}" for conf, iou, _n in report.deciles),
            markup=False,
        )


def _print_verdict(console: Console, verdict: RuntimeVerdict) -> None:
    """The rule's verdict on one runtime against its reference, with the figures behind it."""
    (iou_ref, iou_new), (f_ref, f_new) = verdict.iou, verdict.boundary_f
    word = "[green]PASS[/]" if verdict.passes else "[red]FAIL[/]"
    console.print(
        f"{word} {verdict.candidate} against {verdict.reference}, {verdict.images} photos: "
        f"mean IoU {iou_new:.4f} ({iou_new - iou_ref:+.4f}), boundary F {f_new:.4f} "
        f"({f_new - f_ref:+.4f}), lowest agreement {verdict.min_agreement:.3f}; "
        f"{verdict.seconds[1]:.3f} s/photo against {verdict.seconds[0]:.3f}"
    )
    console.print(
        "  least agreement: " + ", ".join(f"{image} {value:.3f}" for image, value in verdict.worst)
    )
    for failure in verdict.failures:
        console.print(f"  fails: {failure}")
