"""The storage suite, run on each backend (SQLite + local files, PostgreSQL + S3) with the
same assertions: schema, every query that writes, files and rows staying paired, what a
crash leaves and what `alphacut doctor` makes of it."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from alphacut.config import Settings
from alphacut.service.doctor import examine
from alphacut.service.ids import new_image_id, new_public_token
from alphacut.service.keys import KeyService
from alphacut.service.results import ResultStore
from alphacut.storage.blobs import BlobNotFoundError, BlobStore, LocalBlobStore
from alphacut.storage.database import Database, ImageRecord, SchemaOutdatedError, utcnow
from alphacut.storage.factory import BlobUrlError, open_blob_store
from alphacut.storage.s3 import S3BlobStore
from backends.conftest import Backend
from fleetservers import S3, Postgres

EXE = str(Path(sys.executable).with_name("alphacut"))


def _image(db: Database, blobs: BlobStore, key_id: str, data: bytes = b"png") -> ImageRecord:
    """An image as the service stores one: the file first, then its row."""
    image_id = new_image_id()
    record = ImageRecord(
        id=image_id,
        key_id=key_id,
        name="photo",
        format="png",
        width=1,
        height=1,
        size=len(data),
        blob_key=f"images/{image_id[6:8]}/{image_id}.png",
        public_token=None,
        created_at=utcnow(),
    )
    blobs.put(record.blob_key, data)
    db.add_image(record)
    return record


def _put_unknown(backend: Backend, blobs: BlobStore, name: str) -> None:
    """Something in the store that is none of its files (a .DS_Store), put there behind the
    store's back."""
    if isinstance(blobs, S3BlobStore):
        blobs.client.put_object(Bucket=blobs.bucket, Key=blobs.prefix + name, Body=b"junk")
    else:
        assert isinstance(blobs, LocalBlobStore)
        (blobs.root / name).parent.mkdir(parents=True, exist_ok=True)
        (blobs.root / name).write_bytes(b"junk")


def test_schema_is_migrated_and_at_the_newest_revision(backend: Backend) -> None:
    db = backend.database()
    db.migrate()  # idempotent
    assert {"api_keys", "images", "usage", "results"} <= set(inspect(db.engine).get_table_names())
    current, head = db.revisions()
    assert current == head and head
    db.prepare()  # at head: ready on either backend
    assert db.engine.dialect.name == backend.name.split("+")[0]


def test_blob_round_trip_listing_and_checks(backend: Backend) -> None:
    blobs = backend.blobs()
    assert blobs.check() is None
    key = "images/ab/image_ab.png"
    assert not blobs.exists(key)
    with pytest.raises(BlobNotFoundError):
        blobs.get(key)
    blobs.put(key, b"first")
    blobs.put(key, b"second")  # a rewrite replaces the file whole
    assert blobs.get(key) == b"second" and blobs.exists(key)
    assert 0 <= blobs.age(key) < 60
    assert sorted(blobs.stored_keys()) == [key]
    blobs.delete(key)
    blobs.delete(key)  # a missing key is not an error
    assert not blobs.exists(key) and list(blobs.stored_keys()) == []
    for bad in ("../etc/passwd", "images/../x.png", "IMAGES/A.PNG", "/abs.png"):
        with pytest.raises(ValueError, match="invalid blob key"):
            blobs.put(bad, b"x")


def test_usage_upserts_survive_concurrent_requests(backend: Backend) -> None:
    db = backend.database()
    _secret, key = KeyService(db).create("k", "test")
    day = date(2026, 1, 2)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: db.record_usage(key.id, day, requests=1, images=2), range(200)))
    (total,) = db.usage(day)
    assert (total.requests, total.images, total.images_recent) == (200, 400, 400)
    assert db.usage(day + timedelta(days=1))[0].images_recent == 0


def test_concurrent_publishes_agree_on_one_token(backend: Backend) -> None:
    db = backend.database()
    _secret, key = KeyService(db).create("k", "test")
    image = _image(db, backend.blobs(), key.id)
    with ThreadPoolExecutor(8) as pool:
        tokens = list(
            pool.map(lambda _: db.publish(key.id, image.id, new_public_token()), range(40))
        )
    assert len({record.public_token for record in tokens if record}) == 1
    token = tokens[0].public_token if tokens[0] else None
    assert token and db.image_by_token(token) is not None
    KeyService(db).revoke(key.id)
    assert db.image_by_token(token) is None, "revoking unpublishes"


def test_pages_and_times_read_back_alike(backend: Backend) -> None:
    db, blobs = backend.database(), backend.blobs()
    _secret, key = KeyService(db).create("k", "test")
    made = [_image(db, blobs, key.id) for _ in range(5)]
    first = db.page(key.id, 2, None)
    assert first is not None and [i.id for i in first.items] == [made[4].id, made[3].id]
    second = db.page(key.id, 2, first.next_from)
    assert second is not None and [i.id for i in second.items] == [made[2].id, made[1].id]
    assert second.previous_from == made[4].id
    read = db.image(key.id, made[0].id)
    assert read is not None and read.created_at.tzinfo is not None
    assert abs(read.created_at - made[0].created_at) < timedelta(seconds=1)
    assert db.stored_bytes(key.id) == 5 * len(b"png")


def test_failed_commit_leaves_no_file_and_sweeps_remove_both(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, blobs = backend.database(), backend.blobs()
    _secret, key = KeyService(db).create("k", "test")
    results = ResultStore(db, blobs, ttl_seconds=60)

    def broken(*_args: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(db, "add_result", broken)
    with pytest.raises(RuntimeError):
        results.save(key.id, b"png", "png")
    assert list(blobs.stored_keys()) == []
    monkeypatch.undo()
    kept = [results.save(key.id, b"png", "png") for _ in range(3)]
    record, data = results.get(kept[0].token)
    assert data == b"png" and record.expires_at > datetime.now(UTC)
    assert set(blobs.stored_keys()) == db.blob_keys("result") == {r.blob_key for r in kept}
    assert results.sweep(utcnow() + timedelta(minutes=2)) == 3
    assert list(blobs.stored_keys()) == [] and db.blob_keys("result") == set()


def _doctor(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "doctor", "--grace", "0", *args],
        capture_output=True,
        text=True,
        env=backend.env(),
        timeout=60,
    )


def test_crash_leftovers_are_found_and_repaired_by_doctor(backend: Backend) -> None:
    db, blobs = backend.database(), backend.blobs()
    _secret, key = KeyService(db).create("k", "test")
    kept = _image(db, blobs, key.id)
    lost = _image(db, blobs, key.id)
    blobs.delete(lost.blob_key)  # a row whose file is gone
    orphan = "images/zz/image_zzorphan000000000000000.png"
    blobs.put(orphan, b"\x89PNG")  # a file whose row was never committed
    _put_unknown(backend, blobs, "images/.DS_Store")

    report = examine(db, blobs, repair=False, grace_seconds=0)
    assert report.rows_without_file == [f"image {lost.id}"]
    assert report.files_without_row == [orphan]
    assert report.unknown_entries == ["images/.DS_Store"]
    assert not report.healthy

    check = _doctor(backend)
    assert check.returncode == 1, check.stderr
    assert "file without a row" in check.stderr and "row without its file" in check.stderr
    fix = _doctor(backend, "--repair")
    assert fix.returncode == 0, fix.stderr
    again = _doctor(backend)
    assert again.returncode == 0 and "consistent" in again.stderr, again.stderr

    assert db.blob_keys("image") == set(blobs.stored_keys()) == {kept.blob_key}
    assert blobs.get(kept.blob_key) == b"png"
    assert blobs.unknown_entries() == []


def test_young_files_without_rows_are_left_alone(backend: Backend) -> None:
    db, blobs = backend.database(), backend.blobs()
    blobs.put("images/ab/image_abyoung00000000000000000.png", b"x")
    report = examine(db, blobs, repair=True, grace_seconds=600)
    assert report.recent_files_skipped == 1 and report.healthy
    assert list(blobs.stored_keys()) == ["images/ab/image_abyoung00000000000000000.png"]


# Backend specifics -----------------------------------------------------------------------


def test_postgres_must_be_migrated_explicitly(postgres: Postgres, tmp_path: Path) -> None:
    """A database server is migrated by `alphacut db upgrade`, never by a replica's start:
    until then start-up and the CLI refuse with one line saying what to run."""
    url = postgres.new_database()
    db = Database(url)
    with pytest.raises(SchemaOutdatedError, match="run `alphacut db upgrade`"):
        db.prepare()
    env = {"ALPHACUT_DATABASE_URL": url, "ALPHACUT_DATA_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run(
            [EXE, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
        )

    refused = cli("keys", "list")
    assert refused.returncode == 2 and "alphacut db upgrade" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli("db", "current").returncode == 1
    upgraded = cli("db", "upgrade")
    assert upgraded.returncode == 0 and "upgraded the schema" in upgraded.stderr
    current = cli("db", "current")
    assert current.returncode == 0 and "current: 0003" in current.stdout
    assert cli("db", "upgrade").returncode == 0  # idempotent
    db.prepare()
    db.close()
    # The plain postgresql:// scheme means psycopg 3 too (SQLAlchemy would pick psycopg2).
    assert Database(url.replace("+psycopg", "")).engine.dialect.driver == "psycopg"


def test_sqlite_migrates_itself(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.prepare()
    assert db.revisions()[0] == db.revisions()[1]
    db.close()


def test_s3_listing_follows_pages(s3: S3) -> None:
    store = S3BlobStore(s3.new_bucket(), "many", page_size=2)
    keys = [f"images/ab/image_ab{n}.png" for n in range(5)]
    for key in keys:
        store.put(key, b"x")
    assert sorted(store.stored_keys()) == keys
    other = S3BlobStore(store.bucket, "other")  # prefixes keep stores apart in one bucket
    assert list(other.stored_keys()) == []


def test_s3_unknown_entries_are_quarantined_beside_the_prefix(s3: S3) -> None:
    store = S3BlobStore(s3.new_bucket(), "store")
    store.client.put_object(Bucket=store.bucket, Key="store/.DS_Store", Body=b"junk")
    assert store.unknown_entries() == [".DS_Store"]
    where = store.quarantine(".DS_Store")
    assert where == f"s3://{store.bucket}/store-quarantine/.DS_Store"
    assert store.unknown_entries() == []
    bare = S3BlobStore(store.bucket)  # the whole bucket: its quarantine is never scanned
    bare.client.put_object(Bucket=store.bucket, Key="notes.txt", Body=b"junk")
    assert bare.quarantine("notes.txt").endswith("/alphacut-quarantine/notes.txt")
    assert "alphacut-quarantine/notes.txt" not in bare.unknown_entries()


def test_s3_check_names_a_missing_bucket(s3: S3) -> None:
    assert S3BlobStore(s3.new_bucket()).check() is None
    assert "bucket not reachable" in (S3BlobStore("no-such-bucket-here").check() or "")


@pytest.mark.parametrize(
    ("blob_url", "presigned", "error"),
    [
        ("s3://", False, "names no bucket"),
        ("ftp://host/x", False, "is not file:///absolute/path or s3://bucket/prefix"),
        ("file://otherhost/x", False, "is not file:///absolute/path"),
        (None, True, "needs an s3://"),
        ("file:///tmp/x", True, "needs an s3://"),
    ],
)
def test_unusable_blob_urls_are_refused(
    tmp_path: Path, blob_url: str | None, presigned: bool, error: str
) -> None:
    settings = Settings(data_dir=tmp_path, blob_url=blob_url, blob_presigned_urls=presigned)
    with pytest.raises(BlobUrlError, match=error):
        open_blob_store(settings)


def test_file_blob_url_is_a_local_store(tmp_path: Path) -> None:
    store = open_blob_store(Settings(data_dir=tmp_path, blob_url=f"file://{tmp_path}/elsewhere"))
    assert isinstance(store, LocalBlobStore) and store.root == (tmp_path / "elsewhere").resolve()
    default = open_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalBlobStore) and default.root == (tmp_path / "blobs").resolve()
