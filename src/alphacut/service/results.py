"""Short-lived result files (the Ximilar-style API's output URLs).

Each file gets an unguessable token; it can be fetched without a key until it expires
(24 h by default), then it answers 404 and a sweeper deletes the row and the file. The
sweeper runs at start-up and then periodically on a background thread; at start-up it also
removes result files that no row points to (left by a crash between file and row).
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime, timedelta

from alphacut.engine.formats import FORMATS, parse_format
from alphacut.errors import NotFoundError
from alphacut.storage.blobs import BlobNotFoundError, BlobStore, put_with_row
from alphacut.storage.database import Database, ResultRecord, utcnow

log = logging.getLogger(__name__)
RESULTS_PREFIX = "results/"
ORPHAN_GRACE_S = 3600.0


class ResultStore:
    def __init__(self, db: Database, blobs: BlobStore, ttl_seconds: int) -> None:
        self.db = db
        self.blobs = blobs
        self.ttl = timedelta(seconds=ttl_seconds)

    def save(self, key_id: str, data: bytes, fmt: str) -> ResultRecord:
        """Keep ``data`` (an image in ``fmt``) as a result file for the key, until it expires."""
        extension = FORMATS[parse_format(fmt)].extension
        token = secrets.token_hex(24)
        now = utcnow()
        record = ResultRecord(
            token=token,
            key_id=key_id,
            format=fmt,
            blob_key=f"{RESULTS_PREFIX}{token[:2]}/{token}.{extension}",
            created_at=now,
            expires_at=now + self.ttl,
        )
        put_with_row(self.blobs, record.blob_key, data, lambda: self.db.add_result(record))
        return record

    def find(self, token: str, now: datetime | None = None) -> ResultRecord:
        """The result's record (404 when there is none or it has expired)."""
        record = self.db.result(token) if len(token) == 48 else None
        if record is None or record.expires_at <= (now or utcnow()):
            raise NotFoundError("no such result, or it has expired")
        return record

    def get(self, token: str, now: datetime | None = None) -> tuple[ResultRecord, bytes]:
        record = self.find(token, now)
        try:
            return record, self.blobs.get(record.blob_key)
        except BlobNotFoundError:  # swept meanwhile
            raise NotFoundError("no such result, or it has expired") from None

    def sweep(self, now: datetime | None = None) -> int:
        """Delete expired results; returns how many."""
        removed = 0
        while True:
            batch = self.db.take_expired_results(now or utcnow())
            for record in batch:
                self.blobs.delete(record.blob_key)
            removed += len(batch)
            if len(batch) < 1000:
                return removed

    def remove_orphans(self, grace_seconds: float = ORPHAN_GRACE_S) -> int:
        """Result files no row points to (a crash between writing and committing), once
        they are older than ``grace_seconds`` (a younger one may be another worker's write
        whose row is about to be committed). Only the store's own files are candidates:
        an unknown file (``.DS_Store``, a symlink) is left for ``alphacut doctor``."""
        known = self.db.blob_keys("result")
        orphans = [
            key
            for key in self.blobs.stored_keys()
            if key.startswith(RESULTS_PREFIX)
            and key not in known
            and self.blobs.age(key) >= grace_seconds
        ]
        for key in orphans:
            self.blobs.delete(key)
        return len(orphans)


class Sweeper:
    """Calls :meth:`ResultStore.sweep` now and every ``interval`` seconds until stopped."""

    def __init__(self, store: ResultStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alphacut-sweeper", daemon=True)

    def start(self) -> None:
        """Sweep once, then start the thread. Housekeeping never stops the service from
        starting: a failure is logged and the next round tries again."""
        try:
            orphans = self.store.remove_orphans()
            expired = self.store.sweep()
        except Exception:
            log.exception("the start-up sweep failed; the service starts all the same")
        else:
            if orphans or expired:
                log.info("start-up sweep: %d expired results, %d orphan files", expired, orphans)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.sweep()
                self.store.db.ensure_reserve()  # put back once a full disk has room again
            except Exception:  # keep sweeping on the next round
                log.exception("sweeping expired results failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
