"""``alphacut serve``, ``worker`` and ``doctor``: run the service, run a fleet's inference
worker, and check the image store against its database."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Annotated

import typer

from alphacut.cli.common import err, fail
from alphacut.cli.keys import database, key_service
from alphacut.engine.config import usable_cpus
from alphacut.errors import AlphacutError


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
    import logging.config

    from alphacut.api.server import (
        PageKey,
        ServerConfig,
        listen,
        log_config,
        raise_open_file_limit,
        serve_until_stopped,
    )
    from alphacut.config import get_settings
    from alphacut.models.store import ModelStatus
    from alphacut.service.metrics import processes as metrics_processes
    from alphacut.service.startup import check_startup

    settings = get_settings()
    # uvicorn's set-up from the start: the start-up check's warnings in ALPHACUT_LOG_FORMAT too
    logging.config.dictConfig(log_config(settings.log_format))
    store = settings.model_store()
    try:  # said here in one line, not in a worker's startup traceback
        check_startup(settings, store, runs_models=not settings.inference_url)
    except AlphacutError as exc:
        fail(exc.message, 2)
    # SQLite: migrated once, before any worker starts; PostgreSQL: checked to be migrated.
    service = key_service()
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
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    # Several processes: their metrics in files of one directory, which goes with the server
    # (in on_stop: the process dies by the signal that stopped it, past any `finally`).
    metrics_dir = ExitStack()
    try:
        metrics_dir.enter_context(metrics_processes(settings, several=workers > 1))
    except AlphacutError as exc:
        sock.close()
        fail(exc.message, 2)
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
    used = sorted(settings.configured_models)
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

    def stop() -> None:
        page_key.close()
        metrics_dir.close()

    with sock:
        serve_until_stopped(config, sock, on_stop=stop)


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
    from alphacut import logs
    from alphacut.config import get_settings
    from alphacut.service.startup import check_startup
    from alphacut.worker import run_worker

    settings = get_settings()
    logs.configure(settings.log_format)  # ALPHACUT_LOG_FORMAT, the pool processes' too
    if not settings.inference_url:
        fail("ALPHACUT_INFERENCE_URL is not set: point it at the fleet's Redis", 2)
    try:
        # No CUDA session in this parent: the pool forks, and CUDA does not survive a fork;
        # the provider is checked here, each process's load fails loudly where CUDA does not.
        check_startup(settings, settings.model_store(), runs_models=False)
        if settings.device == "cuda":
            from alphacut.engine.sessions import onnx

            onnx.providers("cuda")
    except AlphacutError as exc:
        fail(exc.message, 2)
    processes = concurrency or settings.inference_workers or 1
    if "ALPHACUT_INFERENCE_THREADS" not in os.environ:  # the cores, shared by the processes
        threads = max(1, usable_cpus() // processes)
        settings = settings.model_copy(update={"inference_threads": threads})
    try:
        run_worker(settings, processes, name)
    except AlphacutError as exc:  # the metrics port taken: said before any job is taken
        fail(exc.message, 2)


def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found.")] = False,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Leave files younger than this (seconds) alone."),
    ] = 600.0,
) -> None:
    """Check the image store against its database (after a crash).

    Every image row must have its file and every file its row; unknown files in the store
    are reported (--repair moves them to blobs-quarantine/)."""
    from alphacut.config import get_settings
    from alphacut.service.doctor import examine, model_runtimes
    from alphacut.storage.factory import open_blob_store

    # The models this service loads, loaded: what each session says it runs on.
    for name, runtime in model_runtimes(get_settings(), get_settings().model_store()).items():
        err.print(f"model runtime: {name}: {runtime}", markup=False)
    db = database()
    try:
        blobs = open_blob_store(get_settings())
    except AlphacutError as exc:
        fail(exc.message, 2)
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
