"""`alphacut doctor --repair` deletes only leftovers that the database and the store, read
together, show (issue 22, item 0's audit): pointed at a database and a store that are not one
installation's, where every file or every row looks like a leftover, it deletes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alphacut.service.doctor import MOST_UNMATCHED, examine
from alphacut.service.ids import new_image_id
from alphacut.service.keys import KeyService
from alphacut.storage.blobs import LocalBlobStore
from alphacut.storage.database import Database, ImageRecord, utcnow

EXE = str(Path(sys.executable).with_name("alphacut"))
COUNT = MOST_UNMATCHED + 4


def _installation(folder: Path, images: int) -> tuple[Database, LocalBlobStore, list[str]]:
    """A database and a store of ``images`` images, each its file and its row."""
    db = Database(f"sqlite:///{folder / 'alphacut.db'}")
    db.migrate()
    blobs = LocalBlobStore(folder / "blobs")
    _secret, key = KeyService(db).create("k", "test")
    keys = []
    for _ in range(images):
        image_id = new_image_id()
        record = ImageRecord(
            id=image_id, key_id=key.id, name="photo", format="png", width=1, height=1, size=3,
            blob_key=f"images/{image_id[6:8]}/{image_id}.png", public_token=None,
            created_at=utcnow(),
        )  # fmt: skip
        blobs.put(record.blob_key, b"png")
        db.add_image(record)
        keys.append(record.blob_key)
    return db, blobs, keys


def test_a_store_with_another_database_loses_no_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _db, blobs, keys = _installation(tmp_path / "a", COUNT)
    other, _blobs, _keys = _installation(tmp_path / "b", 0)  # a new database, say
    report = examine(other, blobs, repair=True, grace_seconds=0)
    assert report.mismatch is not None and len(report.files_without_row) == COUNT
    assert set(blobs.stored_keys()) == set(keys)


def test_a_database_with_another_store_loses_no_row(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    db, _blobs, keys = _installation(tmp_path / "a", COUNT)
    _other, empty, _keys = _installation(tmp_path / "b", 0)  # an empty bucket, say
    report = examine(db, empty, repair=True, grace_seconds=0)
    assert report.mismatch is not None and len(report.rows_without_file) == COUNT
    assert db.blob_keys("image") == set(keys)


def test_a_crash_leftover_beside_matched_files_is_still_repaired(tmp_path: Path) -> None:
    db, blobs, keys = _installation(tmp_path, 1)
    orphans = [f"images/zz/image_zzorphan{n:015d}.png" for n in range(COUNT)]
    for orphan in orphans:
        blobs.put(orphan, b"png")
    report = examine(db, blobs, repair=True, grace_seconds=0)
    assert report.mismatch is None and sorted(report.files_without_row) == orphans
    assert list(blobs.stored_keys()) == keys


def test_doctor_repair_says_why_it_deleted_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _db, blobs, keys = _installation(tmp_path / "a", COUNT)
    _installation(tmp_path / "b", 0)
    env = {
        **os.environ,
        "ALPHACUT_DATA_DIR": str(tmp_path / "a"),
        "ALPHACUT_DATABASE_URL": f"sqlite:///{tmp_path / 'b' / 'alphacut.db'}",
    }
    fix = subprocess.run(
        [EXE, "doctor", "--repair", "--grace", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert fix.returncode == 1, fix.stderr
    assert "nothing deleted" in fix.stderr and "repaired" not in fix.stderr
    assert set(blobs.stored_keys()) == set(keys)
