"""The store on a really full disk (a tmpfs filled to the last byte): writes are refused with
InsufficientStorageError (507), nothing half-written stays, usage is kept for later, and a
delete still goes through, on the reserve the database keeps for that."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from alphacut.errors import InsufficientStorageError
from alphacut.service.keys import KeyService
from alphacut.storage.blobs import LocalBlobStore
from alphacut.storage.database import Database, ImageRecord, utcnow
from disks import fill, small_disk

KEY = "images/ab/image_ab0000000000000000000000.png"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path) as mount:
        yield mount


def test_a_blob_write_on_a_full_disk_is_507_and_leaves_nothing(disk: Path) -> None:
    store = LocalBlobStore(disk / "blobs", min_free_bytes=0)
    store.put("images/ab/image_ab1111111111111111111111.png", b"before")
    fill(disk)
    with pytest.raises(InsufficientStorageError, match="disk"):
        store.put(KEY, b"x" * 100_000)
    assert list(store.stored_keys()) == ["images/ab/image_ab1111111111111111111111.png"]
    assert not [path for path in (disk / "blobs").rglob("*") if path.name.endswith(".part")]
    assert store.get("images/ab/image_ab1111111111111111111111.png") == b"before"


def test_a_blob_write_under_the_free_space_threshold_is_refused_before_writing(
    disk: Path,
) -> None:
    free = shutil.disk_usage(disk).free
    store = LocalBlobStore(disk / "blobs", min_free_bytes=free - 1000)
    store.put(KEY, b"x" * 900)  # leaves just over the threshold
    with pytest.raises(InsufficientStorageError, match="free"):
        store.put("images/ab/image_ab2222222222222222222222.png", b"x" * 8192)
    assert list(store.stored_keys()) == [KEY]
    assert store.free_bytes() == shutil.disk_usage(disk).free


def _image(key_id: str, image_id: str) -> ImageRecord:
    blob = f"images/{image_id[6:8]}/{image_id}.png"
    return ImageRecord(image_id, key_id, "n", "png", 1, 1, 1, blob, None, utcnow())


def test_the_database_on_a_full_disk(disk: Path) -> None:
    db = Database(f"sqlite:///{disk / 'alphacut.db'}")
    db.migrate()
    assert db.reserve is not None and db.reserve.stat().st_size > 0
    keys = KeyService(db)
    _secret, key = keys.create("k", "test")
    for n in range(3):
        db.add_image(_image(key.id, f"image_ab{n:022d}"))
    filler = fill(disk)

    with pytest.raises(InsufficientStorageError):
        db.add_image(_image(key.id, f"image_ab{9:022d}"))
    # Usage accounting never fails a request: the counts wait in memory.
    keys.record(key.id, requests=1)
    keys.record(key.id, requests=1, images=2)
    assert db.usage(date(2000, 1, 1)) == []
    # Reads work, and so does a delete: it spends the reserve.
    assert [image.id for image in db.page(key.id, 10, None).items] == [  # type: ignore[union-attr]
        f"image_ab{n:022d}" for n in (2, 1, 0)
    ]
    assert db.delete_image(key.id, f"image_ab{0:022d}") is not None
    assert not db.reserve.exists()
    assert db.delete_image(key.id, f"image_ab{1:022d}") is not None

    filler.unlink()
    db.ensure_reserve()
    assert db.reserve.exists()
    keys.record(key.id, requests=1)
    (total,) = db.usage(date(2000, 1, 1))
    assert (total.requests, total.images) == (3, 2), "what waited is written with the next count"
    db.close()
