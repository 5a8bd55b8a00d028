"""`alphacut doctor`: check that every row has its file and every file its row, and repair.

A crash (SIGKILL, power loss) can leave, at most: a file written whose row was never
committed (an orphan), a half-written temp file, or, if a disk was tampered with, a row
whose file is gone. Files younger than ``grace_seconds`` are left alone: with the service
running they may be writes whose row is about to be committed.

Anything else in the blob folders (``.DS_Store``, a file copied in by hand, a symlink) is an
unknown entry: reported, never followed or deleted; ``--repair`` moves it, as it is, out of the
store (to ``blobs-quarantine/`` beside it), for a person to look at.

A repair deletes only what the database and the store, read together, show to be a crash's
leftover. When not one file of the store has a row in the database and more than
``MOST_UNMATCHED`` rows and files would go, they do not belong together (a new or another
database, another bucket or data folder): every file, or every row, looks like a leftover, so
nothing is deleted and the report says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from alphacut.config import Settings
from alphacut.engine.pipeline import Remover
from alphacut.errors import AlphacutError
from alphacut.models.store import ModelStore
from alphacut.storage.blobs import BlobStore
from alphacut.storage.database import BlobOwner, Database

MOST_UNMATCHED = 16
"""Rows and files a repair deletes although not one file has a row. A crash leaves a few
(one per write in flight; an installation whose last image lost its file, one); a database
paired with another installation's store leaves every row or every file unmatched."""


@dataclass
class Report:
    rows_without_file: list[str] = field(default_factory=list)  # "image image_..." etc.
    files_without_row: list[str] = field(default_factory=list)
    recent_files_skipped: int = 0
    temp_files: int = 0
    unknown_entries: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # entry -> where it went
    not_moved: dict[str, str] = field(default_factory=dict)  # entry -> why
    mismatch: str | None = None  # why no row and no file was deleted (they do not match)
    repaired: bool = False

    @property
    def healthy(self) -> bool:
        return not (
            self.rows_without_file
            or self.files_without_row
            or self.temp_files
            or self.unknown_entries
        )


def examine(
    db: Database, blobs: BlobStore, *, repair: bool, grace_seconds: float = 600.0
) -> Report:
    report = Report(repaired=repair)
    known: set[str] = set()
    missing: list[tuple[BlobOwner, str]] = []
    for owner in get_args(BlobOwner):
        known |= db.blob_keys(owner)
        missing += [(owner, row_id) for row_id in db.rows_without_file(owner, blobs.exists)]
    report.rows_without_file = [f"{owner} {row_id}" for owner, row_id in missing]
    stored: set[str] = set()
    for key in blobs.stored_keys():
        stored.add(key)
        if key in known:
            continue
        if blobs.age(key) < grace_seconds:
            report.recent_files_skipped += 1
            continue
        report.files_without_row.append(key)
    unmatched = len(missing) + len(report.files_without_row)
    if unmatched > MOST_UNMATCHED and not known & stored:
        report.mismatch = (
            f"not one of the store's {len(stored)} files has a row in this database "
            f"({len(known)} rows name files): check that ALPHACUT_DATABASE_URL and "
            "ALPHACUT_BLOB_URL (or ALPHACUT_DATA_DIR) name the same installation's; if they "
            "do, remove what is listed above by hand"
        )
    report.temp_files = blobs.remove_temp_files(grace_seconds, dry_run=not repair)
    report.unknown_entries = blobs.unknown_entries()
    if repair and report.mismatch is None:
        for owner, row_id in missing:
            db.delete_row(owner, row_id)
        for key in report.files_without_row:
            blobs.delete(key)
    if repair:
        for entry in report.unknown_entries:
            try:
                report.quarantined[entry] = blobs.quarantine(entry)
            except OSError as exc:  # reported; the rest of the repair goes on
                report.not_moved[entry] = exc.strerror or type(exc).__name__
    return report


def model_runtimes(settings: Settings, store: ModelStore) -> dict[str, str]:
    """Each model the service loads at start-up (``ALPHACUT_LOAD_MODELS``), loaded here as
    the service loads it, and what its session says it runs on (onnxruntime's execution
    providers, OpenVINO's devices: not what the settings hoped for); or why it cannot load
    (``ALPHACUT_DEVICE=cuda`` where CUDA does not start, a model not installed)."""
    found: dict[str, str] = {}
    for name in settings.load_models:
        try:
            remover = Remover(name, settings=settings, store=store)
            shown = name if name == remover.spec.name else f"{name} ({remover.spec.name})"
            found[shown] = remover.load().choice.describe()
        except AlphacutError as exc:
            found[name] = f"unavailable: {exc.message}"
    return found
