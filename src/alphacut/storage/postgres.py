"""PostgreSQL (psycopg 3): every wait for the server bounded, so that one that stops
answering costs a request a 503 in seconds instead of a hang.

Four bounds, each for a failure the others miss:

- ``connect_timeout`` (libpq's): opening a connection to a server that takes the TCP
  connection but never answers the start-up (a stopped process, a full backlog);
- ``statement_timeout`` (the server's own): a slow statement on a live server is cancelled
  there, and the connection stays usable;
- TCP keepalives and ``tcp_user_timeout``: a host or network that is gone (no ACK comes back),
  on idle pooled connections and in mid-request;
- a read timeout on the client: a server that is stopped (SIGSTOP, a frozen VM, a stuck
  disk) still has a kernel that ACKs every packet, so neither of the two before fires and a
  statement would wait forever (measured: keepalives every 1 s and a ``tcp_user_timeout`` of
  2 s did not end a query on a stopped server in 12 s), and the server cannot enforce its
  statement timeout. As PgJDBC's ``socketTimeout`` and pgx's context deadlines do, an
  exchange (a statement and its whole answer, a commit, a ping) still unanswered after the
  read timeout, longer than the statement timeout, closes the connection and fails at once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psycopg

# Private names of psycopg (pinned in constraints.txt; tests/storage/test_postgres_timeouts.py
# fails if they change): the wait's own timeout, and its default interval.
from psycopg.connection import _WAIT_INTERVAL
from psycopg.errors import _WaitTimeout
from psycopg.rows import TupleRow
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

if TYPE_CHECKING:
    from psycopg.abc import PQGen

T = TypeVar("T")


class Timeouts(Protocol):
    """The bounds this module applies (``alphacut.storage.database.DatabaseTimeouts``)."""

    @property
    def connect_seconds(self) -> int: ...
    @property
    def statement_seconds(self) -> float: ...
    @property
    def read_seconds(self) -> float: ...


class ServerNotAnsweringError(psycopg.OperationalError):
    """The server did not answer within the read timeout; the connection was closed."""


class AnsweringConnection(psycopg.Connection[TupleRow]):
    """A psycopg connection whose every exchange with the server after connecting (queries,
    commits, rollbacks, the pool's pings) ends within ``read_timeout`` seconds."""

    read_timeout: float | None = None

    def wait(
        self, gen: PQGen[T], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> T:
        bound = self.read_timeout
        if bound is None or (timeout is not None and timeout <= bound):
            return super().wait(gen, interval, timeout)  # the caller's own timeout, if any
        try:
            return super().wait(gen, interval, bound)
        except _WaitTimeout:
            # Half a protocol exchange is left on the wire: the connection cannot be used
            # again (SQLAlchemy sees it closed and drops it from the pool).
            self.pgconn.finish()
            raise ServerNotAnsweringError(
                f"the database server did not answer within {bound:g} s; connection closed"
            ) from None


def connect_args(url: URL, timeouts: Timeouts) -> dict[str, Any]:
    """libpq parameters for ``timeouts``; any the URL sets itself wins (``options`` are
    joined, unless they set ``statement_timeout`` already)."""
    user_timeout_ms = math.ceil(timeouts.read_seconds * 1000)
    idle = max(1, math.ceil(timeouts.read_seconds / 2))
    wanted: dict[str, Any] = {
        "connect_timeout": timeouts.connect_seconds,
        "keepalives": 1,
        # A dead peer found within about the read timeout: idle half of it, then 3 probes
        # a quarter apart (Linux's defaults, 2 h + 9 x 75 s, would find it in 2 h 11 min).
        "keepalives_idle": idle,
        "keepalives_interval": max(1, math.ceil(timeouts.read_seconds / 4)),
        "keepalives_count": 3,
        "tcp_user_timeout": user_timeout_ms,
    }
    args = {name: value for name, value in wanted.items() if name not in url.query}
    options = str(url.query.get("options") or "")
    if "statement_timeout" not in options:
        statement_ms = math.ceil(timeouts.statement_seconds * 1000)
        args["options"] = f"{options} -c statement_timeout={statement_ms}".strip()
    return args


def bound_connections(engine: Engine, read_timeout: float) -> None:
    """Make ``engine`` open :class:`AnsweringConnection`s bounded by ``read_timeout``."""

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> AnsweringConnection:
        connection = AnsweringConnection.connect(*cargs, **cparams)
        connection.read_timeout = read_timeout
        return connection
