"""The metadata store: API keys, images and usage, in any database SQLAlchemy speaks.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL needs only a
``ALPHACUT_DATABASE_URL``. The schema is created and upgraded by Alembic migrations (at
start-up for SQLite, by ``alphacut db upgrade`` for PostgreSQL), never by ``create_all``, so
that a later schema change is a migration, not a rewrite. Callers get plain frozen records,
never ORM rows tied to a session.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, event, func, make_url, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from alphacut.errors import AlphacutError, BackendUnavailableError, InsufficientStorageError
from alphacut.files import write_atomic
from alphacut.storage.models import ApiKeyRow, ImageRow, ResultRow, UsageRow

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tables whose every row owns one stored file: the table and its id column.
BlobOwner = Literal["image", "result"]
_BLOB_OWNERS: dict[BlobOwner, tuple[type[ImageRow] | type[ResultRow], Any]] = {
    "image": (ImageRow, ImageRow.id),
    "result": (ResultRow, ResultRow.token),
}

_MIGRATIONS = Path(__file__).parent / "migrations"

# Space an SQLite database keeps in a file beside it, given up when a delete finds the disk
# full (an "emergency ballast", as CockroachDB keeps one), so that space can be freed through
# the API even then: SQLite needs room in its WAL to delete a row. 8 MiB is twice what the WAL
# holds at most between two automatic checkpoints (1000 pages of 4 KiB).
RESERVE_BYTES = 8 * 1024 * 1024
_DISK_FULL_MESSAGE = (
    "the server's database is out of disk space: nothing more can be stored until space is "
    "freed (reading and deleting images still work)"
)


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Bounds on every wait for the database (``ALPHACUT_DATABASE_*_TIMEOUT_SECONDS``): the
    pool's for any database, the others for PostgreSQL only (SQLite has no server to wait
    for; its own lock wait is ``busy_timeout``). Past one: 503 + ``retry_after_seconds``."""

    connect_seconds: int
    statement_seconds: float
    read_seconds: float
    pool_seconds: float
    retry_after_seconds: int


# Retry-After of a Database opened without timeouts (maintenance commands, tests): the
# service always passes its ALPHACUT_RETRY_AFTER_SECONDS.
UNCONFIGURED_RETRY_AFTER = 5


class SchemaOutdatedError(AlphacutError):
    """The database cannot be used as it is (not migrated, or not a supported kind)."""

    status = 503
    code = "database_not_ready"


def _disk_full(exc: DBAPIError) -> bool:
    """SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100)."""
    orig = exc.orig
    if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return "53100" in (getattr(orig, "pgcode", None), getattr(orig, "sqlstate", None))


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes; we store UTC


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    stage: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            id=row.id,
            name=row.name,
            stage=row.stage,
            prefix=row.prefix,
            created_at=_aware(row.created_at) or row.created_at,
            revoked_at=_aware(row.revoked_at),
            last_used_at=_aware(row.last_used_at),
        )


@dataclass(frozen=True)
class ImageRecord:
    id: str
    key_id: str
    name: str
    format: str
    width: int
    height: int
    size: int
    blob_key: str
    public_token: str | None
    created_at: datetime
    confidence: float | None = None  # remove-background's estimated IoU of the cut-out

    @classmethod
    def of(cls, row: ImageRow) -> ImageRecord:
        return cls(
            id=row.id,
            key_id=row.key_id,
            name=row.name,
            format=row.format,
            width=row.width,
            height=row.height,
            size=row.size,
            blob_key=row.blob_key,
            public_token=row.public_token,
            created_at=_aware(row.created_at) or row.created_at,
            confidence=row.confidence,
        )


@dataclass(frozen=True)
class ResultRecord:
    token: str
    key_id: str
    format: str
    blob_key: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: ResultRow) -> ResultRecord:
        return cls(
            token=row.token,
            key_id=row.key_id,
            format=row.format,
            blob_key=row.blob_key,
            created_at=_aware(row.created_at) or row.created_at,
            expires_at=_aware(row.expires_at) or row.expires_at,
        )


@dataclass(frozen=True)
class Page:
    items: list[ImageRecord]
    previous_from: str | None
    next_from: str | None


@dataclass(frozen=True)
class UsageTotal:
    key_id: str
    requests: int
    images: int
    images_recent: int


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """Engine, migrations and every query the service makes."""

    def __init__(self, url: str, timeouts: DatabaseTimeouts | None = None) -> None:
        """``timeouts``: None (maintenance commands, tests) waits as long as the driver does;
        the service passes its settings' (:func:`alphacut.storage.factory.open_database`)."""
        if make_url(url).drivername == "postgresql":  # psycopg 3, not SQLAlchemy's psycopg2
            url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
        self.url = url
        self.timeouts = timeouts
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        parsed = make_url(url)
        dialect = parsed.get_dialect().name
        if dialect not in ("sqlite", "postgresql"):
            raise SchemaOutdatedError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
        options: dict[str, Any] = {"pool_pre_ping": True}
        in_memory = dialect == "sqlite" and parsed.database in (None, "", ":memory:")
        if timeouts is not None and not in_memory:  # an in-memory SQLite has no queue pool
            options["pool_timeout"] = timeouts.pool_seconds
        if timeouts is not None and dialect == "postgresql":
            from alphacut.storage import postgres  # psycopg only where PostgreSQL is used

            options["connect_args"] = postgres.connect_args(parsed, timeouts)
        self.engine: Engine = create_engine(url, **options)
        if timeouts is not None and dialect == "postgresql":
            postgres.bound_connections(self.engine, timeouts.read_seconds)
        if dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        database = make_url(url).database if self.engine.dialect.name == "sqlite" else None
        self.file = Path(database) if database and database != ":memory:" else None
        self.reserve = self.file.with_name(f"{self.file.name}-reserve") if self.file else None

    @property
    def migrates_itself(self) -> bool:
        """SQLite (one machine, the embedded default) is migrated by whatever opens it; a
        database server shared by replicas only by `alphacut db upgrade` (Alembic's advice:
        migrations run once, explicitly, not by every replica racing at start-up)."""
        return self.engine.dialect.name == "sqlite"

    def _alembic(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent), and keep the reserve."""
        config = self._alembic()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        self.ensure_reserve()

    def revisions(self) -> tuple[str | None, str]:
        """(the schema's migration, the newest this version of alphacut has)."""
        head = ScriptDirectory.from_config(self._alembic()).get_current_head() or ""
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current, head

    def prepare(self) -> None:
        """Ready for use: SQLite is migrated; a database server must already be at the
        newest migration, else :class:`SchemaOutdatedError` says what to run."""
        if self.migrates_itself:
            self.migrate()
            return
        current, head = self.revisions()
        if current != head:
            raise SchemaOutdatedError(
                f"the database schema is at {current or 'nothing (empty database)'}, this "
                f"alphacut needs {head}: run `alphacut db upgrade` (once, before starting "
                "the replicas)"
            )

    def ping(self) -> None:
        with self._answering(), self.engine.connect() as connection:
            connection.execute(select(1))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction. A full disk raises :class:`InsufficientStorageError` (507); a
        database that does not answer in time, :class:`BackendUnavailableError` (503)."""
        with self._answering(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _answering(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            if _disk_full(exc):
                raise InsufficientStorageError(_DISK_FULL_MESSAGE) from exc
            if self._unavailable(exc):
                cause = exc.orig or exc
                raise self._unavailable_error(f"{type(cause).__name__}: {cause}") from exc
            raise
        except PoolTimeoutError as exc:  # every pooled connection busy past pool_timeout
            raise self._unavailable_error("no pooled connection came free") from exc

    def _unavailable(self, exc: DBAPIError) -> bool:
        """The server did not answer or cannot serve now (a dropped connection, a timeout,
        a shutdown, too many connections: PostgreSQL's operational errors). SQLite's are
        left as they were (its only waits are on its own file lock)."""
        return exc.connection_invalidated or (
            self.engine.dialect.name == "postgresql" and isinstance(exc, OperationalError)
        )

    def _unavailable_error(self, why: str) -> BackendUnavailableError:
        log.warning("the database did not answer in time: %s", why)
        retry = self.timeouts.retry_after_seconds if self.timeouts else UNCONFIGURED_RETRY_AFTER
        return BackendUnavailableError(f"the database is not answering; retry in {retry} s", retry)

    # Disk space --------------------------------------------------------------------------

    def free_bytes(self) -> int | None:
        """Free space beside an SQLite file; ``None`` for a database server."""
        return shutil.disk_usage(self.file.parent).free if self.file else None

    def ensure_reserve(self) -> bool:
        """(Re)create the reserve file when it is missing and the disk has room for it
        twice over; True when it is in place."""
        if self.reserve is None:
            return False
        if self.reserve.is_file():
            return True
        try:
            if shutil.disk_usage(self.reserve.parent).free < 2 * RESERVE_BYTES:
                return False
            write_atomic(self.reserve, os.urandom(RESERVE_BYTES))  # random: not compressible
        except OSError as exc:
            log.warning("could not create the disk space reserve %s: %s", self.reserve, exc)
            return False
        return True

    def _release_reserve(self) -> bool:
        if self.reserve is None or not self.reserve.is_file():
            return False
        self.reserve.unlink(missing_ok=True)
        log.warning(
            "the disk is full: the database's %d MiB reserve was released so that deletes can "
            "free space; it is put back once the disk has room",
            RESERVE_BYTES >> 20,
        )
        return True

    def _freeing(self, write: Callable[[], T]) -> T:
        """``write`` (a delete, which frees space), once more on the reserve if the disk is
        full."""
        try:
            return write()
        except InsufficientStorageError:
            if not self._release_reserve():
                raise
        return write()

    # API keys ----------------------------------------------------------------------------

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        with self.session() as session:
            session.add(
                ApiKeyRow(
                    id=key.id,
                    name=key.name,
                    stage=key.stage,
                    prefix=key.prefix,
                    secret_hash=secret_hash,
                    created_at=key.created_at,
                )
            )

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        with self.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == secret_hash))
            return ApiKey.of(row) if row else None

    def keys(self) -> list[ApiKey]:
        with self.session() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
            return [ApiKey.of(row) for row in rows]

    def count_keys(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0

    def revoke_key(self, key_id: str) -> bool:
        """Revoke the key and unpublish its images, in one transaction: what a revoked key
        published stops being served at once, and stays unpublished."""

        def revoke() -> bool:
            with self.session() as session:
                result = session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    return False
                session.execute(
                    update(ImageRow)
                    .where(ImageRow.key_id == key_id, ImageRow.public_token.is_not(None))
                    .values(public_token=None)
                )
                return True

        return self._freeing(revoke)

    def touch_key(self, key_id: str, when: datetime) -> None:
        with self.session() as session:
            session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=when)
            )

    # Images ------------------------------------------------------------------------------

    def add_image(self, image: ImageRecord) -> None:
        with self.session() as session:
            session.add(
                ImageRow(
                    id=image.id,
                    key_id=image.key_id,
                    name=image.name,
                    format=image.format,
                    width=image.width,
                    height=image.height,
                    size=image.size,
                    blob_key=image.blob_key,
                    public_token=image.public_token,
                    created_at=image.created_at,
                    confidence=image.confidence,
                )
            )

    def image(self, key_id: str, image_id: str) -> ImageRecord | None:
        with self.session() as session:
            row = session.scalar(
                select(ImageRow).where(ImageRow.id == image_id, ImageRow.key_id == key_id)
            )
            return ImageRecord.of(row) if row else None

    def image_by_token(self, token: str) -> ImageRecord | None:
        """The published image, unless its key is revoked (revoking unpublishes too; this is
        the second lock on the door)."""
        with self.session() as session:
            row = session.scalar(
                select(ImageRow)
                .join(ApiKeyRow, ApiKeyRow.id == ImageRow.key_id)
                .where(ImageRow.public_token == token, ApiKeyRow.revoked_at.is_(None))
            )
            return ImageRecord.of(row) if row else None

    def stored_bytes(self, key_id: str) -> int:
        """The bytes of every image the key stores."""
        with self.session() as session:
            total = session.scalar(select(func.sum(ImageRow.size)).where(ImageRow.key_id == key_id))
            return int(total or 0)

    def page(self, key_id: str, take: int, from_id: str | None) -> Page | None:
        """Newest first. ``from_id`` starts the page (inclusive); ``None`` if it is not an
        image of this key."""
        with self.session() as session:
            mine = select(ImageRow).where(ImageRow.key_id == key_id)
            start: int | None = None
            if from_id is not None:
                start = session.scalar(
                    select(ImageRow.seq).where(ImageRow.id == from_id, ImageRow.key_id == key_id)
                )
                if start is None:
                    return None
            query = mine if start is None else mine.where(ImageRow.seq <= start)
            rows = list(session.scalars(query.order_by(ImageRow.seq.desc()).limit(take + 1)))
            next_from = rows[take].id if len(rows) > take else None
            previous_from = None
            if start is not None:
                newer = list(
                    session.scalars(
                        select(ImageRow.id)
                        .where(ImageRow.key_id == key_id, ImageRow.seq > start)
                        .order_by(ImageRow.seq.asc())
                        .limit(take)
                    )
                )
                previous_from = newer[-1] if newer else None
            return Page([ImageRecord.of(row) for row in rows[:take]], previous_from, next_from)

    def delete_image(self, key_id: str, image_id: str) -> ImageRecord | None:
        """Remove the row (the caller then removes its file); works on a full disk too."""

        def remove() -> ImageRecord | None:
            with self.session() as session:
                row = session.scalar(
                    select(ImageRow).where(ImageRow.id == image_id, ImageRow.key_id == key_id)
                )
                if row is None:
                    return None
                record = ImageRecord.of(row)
                session.execute(delete(ImageRow).where(ImageRow.seq == row.seq))
                return record

        return self._freeing(remove)

    def publish(self, key_id: str, image_id: str, token: str) -> ImageRecord | None:
        """Give the image ``token`` unless it has one already, then read it back, in one
        transaction: concurrent publishes all answer the one token that stays."""
        mine = (ImageRow.id == image_id, ImageRow.key_id == key_id)
        with self.session() as session:
            # The write comes first, so that SQLite takes its write lock before reading.
            session.execute(
                update(ImageRow)
                .where(*mine, ImageRow.public_token.is_(None))
                .values(public_token=token)
            )
            row = session.scalar(select(ImageRow).where(*mine))
            return ImageRecord.of(row) if row else None

    def unpublish(self, key_id: str, image_id: str) -> ImageRecord | None:
        mine = (ImageRow.id == image_id, ImageRow.key_id == key_id)
        with self.session() as session:
            session.execute(update(ImageRow).where(*mine).values(public_token=None))
            row = session.scalar(select(ImageRow).where(*mine))
            return ImageRecord.of(row) if row else None

    # Results -----------------------------------------------------------------------------

    def add_result(self, result: ResultRecord) -> None:
        with self.session() as session:
            session.add(
                ResultRow(
                    token=result.token,
                    key_id=result.key_id,
                    format=result.format,
                    blob_key=result.blob_key,
                    created_at=result.created_at,
                    expires_at=result.expires_at,
                )
            )

    def result(self, token: str) -> ResultRecord | None:
        """The result, unless its key is revoked."""
        with self.session() as session:
            row = session.scalar(
                select(ResultRow)
                .join(ApiKeyRow, ApiKeyRow.id == ResultRow.key_id)
                .where(ResultRow.token == token, ApiKeyRow.revoked_at.is_(None))
            )
            return ResultRecord.of(row) if row else None

    def take_expired_results(self, now: datetime, limit: int = 1000) -> list[ResultRecord]:
        """Remove up to ``limit`` expired result rows and return them (their files are the
        caller's to delete)."""
        with self.session() as session:
            rows = list(
                session.scalars(
                    select(ResultRow)
                    .where(ResultRow.expires_at <= now)
                    .limit(limit)
                    # Replicas sweeping at once take different rows (PostgreSQL; SQLite has
                    # one writer and no FOR UPDATE).
                    .with_for_update(skip_locked=True)
                )
            )
            records = [ResultRecord.of(row) for row in rows]
            if rows:
                session.execute(
                    delete(ResultRow).where(ResultRow.token.in_([r.token for r in records]))
                )
            return records

    # Rows that own a file (images, results): the store's consistency checks -------------

    def blob_keys(self, owner: BlobOwner) -> set[str]:
        """The file keys the ``owner`` table's rows point to."""
        with self.session() as session:
            return set(session.scalars(select(_BLOB_OWNERS[owner][0].blob_key)))

    def rows_without_file(self, owner: BlobOwner, exists: Callable[[str], bool]) -> list[str]:
        """Ids of the ``owner`` rows whose file ``exists`` says is missing."""
        table, ident = _BLOB_OWNERS[owner]
        with self.session() as session:
            rows = session.execute(select(ident, table.blob_key)).all()
        return [row_id for row_id, key in rows if not exists(key)]

    def delete_row(self, owner: BlobOwner, row_id: str) -> None:
        table, ident = _BLOB_OWNERS[owner]
        with self.session() as session:
            session.execute(delete(table).where(ident == row_id))

    # Usage -------------------------------------------------------------------------------

    def record_usage(self, key_id: str, day: date, *, requests: int, images: int) -> None:
        """Add to a key's counters for ``day``, atomically (an upsert: concurrent requests of
        one key must not race to create the same row)."""
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(UsageRow).values(
            key_id=key_id, day=day, requests=requests, images=images
        )
        statement = statement.on_conflict_do_update(
            index_elements=[UsageRow.key_id, UsageRow.day],
            set_={
                "requests": UsageRow.requests + statement.excluded.requests,
                "images": UsageRow.images + statement.excluded.images,
            },
        )
        with self.session() as session:
            session.execute(statement)

    def key_usage(self, key_id: str, since: date) -> tuple[int, int]:
        """``key_id``'s requests and images from ``since`` on: a range read of the primary
        key (key_id, day), a month of rows at most."""
        with self.session() as session:
            requests, images = session.execute(
                select(
                    func.coalesce(func.sum(UsageRow.requests), 0),
                    func.coalesce(func.sum(UsageRow.images), 0),
                ).where(UsageRow.key_id == key_id, UsageRow.day >= since)
            ).one()
            return int(requests), int(images)

    def usage(self, since: date) -> list[UsageTotal]:
        with self.session() as session:
            recent = func.sum(UsageRow.images).filter(UsageRow.day >= since)
            rows = session.execute(
                select(
                    UsageRow.key_id,
                    func.sum(UsageRow.requests),
                    func.sum(UsageRow.images),
                    recent,
                ).group_by(UsageRow.key_id)
            )
            return [UsageTotal(k, int(r or 0), int(i or 0), int(n or 0)) for k, r, i, n in rows]
