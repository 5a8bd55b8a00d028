"""API keys: created once and shown once, stored as a SHA-256 hash, revocable.

A key is 40 random base62 characters after its stage prefix, so a fast hash is the right
tool (there is nothing to brute-force); the hash is what the database indexes and compares.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from alphacut.errors import InsufficientStorageError, InvalidInputError, NotFoundError
from alphacut.service import metrics
from alphacut.service.ids import new_key_id, new_key_secret
from alphacut.storage.database import ApiKey, Database, UsageTotal, utcnow

log = logging.getLogger(__name__)
Stage = Literal["test", "live"]
_TOUCH_EVERY_S = 60.0
_WARN_EVERY_S = 60.0
# What a failed bookkeeping write raises: a full disk, a database that is locked or gone.
_BOOKKEEPING_ERRORS = (InsufficientStorageError, SQLAlchemyError)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class KeyService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        # Counts whose write failed, added to the next write: (key id, day) -> requests, images
        self._unwritten: dict[tuple[str, date], tuple[int, int]] = {}
        self._warned_at = -_WARN_EVERY_S

    def create(self, name: str, stage: Stage) -> tuple[str, ApiKey]:
        """A new key: the secret (to show once) and its record."""
        if stage not in ("test", "live"):
            raise InvalidInputError("stage must be test or live")
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise InvalidInputError("a key name must be 1-100 characters")
        secret = new_key_secret(stage)
        key = ApiKey(
            id=new_key_id(),
            name=name,
            stage=stage,
            prefix=secret[:9],
            created_at=utcnow(),
            revoked_at=None,
            last_used_at=None,
        )
        self.db.add_key(key, hash_secret(secret))
        return secret, key

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key this secret belongs to, or ``None``."""
        if not secret or len(secret) > 200:
            return None
        key = self.db.key_by_hash(hash_secret(secret))
        if key is None or key.revoked_at is not None:
            return None
        self._touch(key.id)
        return key

    def _touch(self, key_id: str) -> None:
        """Record last use, at most once a minute per key (not a write per request)."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
                return
            self._touched[key_id] = now
        try:
            self.db.touch_key(key_id, utcnow())
        except _BOOKKEEPING_ERRORS as exc:
            self._warn("when a key was last used", exc)

    def all(self) -> list[ApiKey]:
        return self.db.keys()

    def revoke(self, key_id: str) -> None:
        """Revoke the key; its published images are unpublished in the same transaction."""
        if not self.db.revoke_key(key_id):
            raise NotFoundError(f"no active key {key_id!r}")

    def record(self, key_id: str, *, requests: int = 1, images: int = 0) -> None:
        """Count a request and the images it processed. Never fails the request: when the
        write fails (a full disk, a locked database), the counts wait in memory and go with
        the next write that succeeds (lost only if the process ends first)."""
        day = datetime.now(UTC).date()
        with self._lock:
            self._keep(key_id, day, requests, images)
            counts, self._unwritten = self._unwritten, {}
        for (key, when), (n_requests, n_images) in counts.items():
            try:
                self.db.record_usage(key, when, requests=n_requests, images=n_images)
            except _BOOKKEEPING_ERRORS as exc:
                with self._lock:
                    self._keep(key, when, n_requests, n_images)
                self._warn("usage counts (kept, to be written with the next ones)", exc)

    def bill(self, key_id: str, images: int, answered: Callable[[], bool]) -> None:
        """Count ``images`` processed images for the key, unless the client has gone
        (``answered()`` is false: it timed out or gave up, nobody receives the answer, so it
        is not billed). Every API bills its images through here."""
        if images and answered():
            self.record(key_id, requests=0, images=images)
            metrics.billed(images)

    def _keep(self, key_id: str, day: date, requests: int, images: int) -> None:
        old_requests, old_images = self._unwritten.get((key_id, day), (0, 0))
        self._unwritten[key_id, day] = (old_requests + requests, old_images + images)

    def _warn(self, what: str, exc: Exception) -> None:
        """Log a failed bookkeeping write, at most once a minute (not once per request)."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at < _WARN_EVERY_S:
                return
            self._warned_at = now
        log.warning("could not record %s: %s", what, exc)

    def usage(self, days: int = 30) -> list[UsageTotal]:
        return self.db.usage(date.today() - timedelta(days=days - 1))

    def key_usage(self, key_id: str, days: int = 30) -> tuple[int, int]:
        """One key's requests and images over the last ``days`` UTC days, today included
        (the days its counts are kept by)."""
        since = datetime.now(UTC).date() - timedelta(days=days - 1)
        return self.db.key_usage(key_id, since)
