"""Storage: migrations, the blob store's key checks, and files and rows staying paired."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from alphacut.config import Settings
from alphacut.service.images import ImageService
from alphacut.service.keys import KeyService
from alphacut.service.work import WorkQueue
from alphacut.storage.blobs import BlobNotFoundError, LocalBlobStore
from alphacut.storage.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'a.db'}")
    database.migrate()
    return database


def test_migrations_create_the_schema_and_are_idempotent(db: Database) -> None:
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert {"api_keys", "images", "usage", "alembic_version"} <= tables


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "images/../../x.png", "/abs.png", "images/a.png/../b.png", "x", "a b.png",
     "images//a.png", "IMAGES/A.PNG", "images/a.png\x00"],
)  # fmt: skip
def test_blob_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put(key, b"data")


def test_blob_round_trip(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("images/ab/image_ab.png", b"data")
    assert store.get("images/ab/image_ab.png") == b"data"
    assert list(store.stored_keys()) == ["images/ab/image_ab.png"]
    store.delete("images/ab/image_ab.png")
    store.delete("images/ab/image_ab.png")
    with pytest.raises(BlobNotFoundError):
        store.get("images/ab/image_ab.png")


def test_failed_commit_leaves_no_file(
    tmp_path: Path, db: Database, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    blobs = LocalBlobStore(tmp_path / "blobs")
    queue = WorkQueue("t", 1, 1, 1)
    images = ImageService(settings, db, blobs, queue)
    _secret, key = KeyService(db).create("k", "test")

    def broken(*_args: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(db, "add_image", broken)
    with pytest.raises(RuntimeError):
        images.create(key.id, "x", photo.read_bytes())
    assert list(blobs.stored_keys()) == []
    monkeypatch.undo()
    record = images.create(key.id, "x", photo.read_bytes())
    assert list(blobs.stored_keys()) == [record.blob_key]
    assert db.blob_keys("image") == {record.blob_key}
    images.delete(key.id, record.id)
    assert list(blobs.stored_keys()) == [] and db.blob_keys("image") == set()
    queue.shutdown()


def test_usage_counters_survive_concurrent_requests(db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date

    _secret, key = KeyService(db).create("k", "test")
    day = date(2026, 1, 2)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: db.record_usage(key.id, day, requests=1, images=2), range(200)))
    (total,) = db.usage(day)
    assert (total.requests, total.images) == (200, 400)
