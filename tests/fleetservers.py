"""Real servers for the shared-storage backends, each on a free loopback port with its data
in a temp dir: PostgreSQL (Debian's, initdb + pg_ctl), an S3 API (moto's standalone server)
and Redis (Debian's redis-server, with a password). ``scripts/install-servers`` installs the
Debian ones.

A server that cannot be found or started FAILS the test under CI (``CI=true``); elsewhere
the test is skipped with the reason, so that a laptop without PostgreSQL can still run the
rest of the suite.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from servers import free_port

INSTALL_HINT = "run scripts/install-servers (Debian: apt-get install postgresql redis-server)"


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere: a missing server must never pass CI silently."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT})")


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


# PostgreSQL ------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Postgres:
    port: int
    user: str = "alphacut"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on the server; its URL."""
        from sqlalchemy import create_engine, text

        name = f"t_{uuid.uuid4().hex[:16]}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb + postgres on a free port (trust auth on loopback only, no fsync: test data).
    As root it runs as the ``postgres`` user, since PostgreSQL refuses to run as root."""
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL (initdb) not found")
    run_as: list[str] = []
    if os.geteuid() == 0:
        account = "postgres" if _user_exists("postgres") else "nobody"
        run_as = ["runuser", "-u", account, "--"]
    root = Path(tempfile.mkdtemp(prefix="alphacut-pg-"))
    data = root / "data"
    if run_as:
        shutil.chown(root, user=run_as[2])
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "alphacut", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        process = subprocess.Popen(
            [*run_as, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = Postgres(port)

        def ready() -> bool:
            import psycopg

            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=alphacut dbname=postgres").close()
            except psycopg.OperationalError:
                return False
            return True

        _wait(ready, process, "postgres")
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        unavailable(f"PostgreSQL could not start: {exc} {detail.decode(errors='replace')[-500:]}")
    try:
        yield server
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# S3 (moto) -------------------------------------------------------------------------------

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    endpoint: str
    buckets: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The standard AWS settings that point boto3 (and so alphacut) at this server."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def new_bucket(self) -> str:
        """A fresh bucket; its name."""
        import boto3

        name = f"alphacut-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_boto_args()).create_bucket(Bucket=name)
        return name


def _boto_args() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@contextmanager
def s3_server() -> Iterator[S3]:
    """moto's standalone S3 server (its own process) on a free port."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        unavailable("moto_server not installed (the dev extra installs moto[server])")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    try:
        _wait(ready, process, "moto_server")
    except RuntimeError as exc:
        _stop(process)
        unavailable(f"moto_server could not start: {exc}")
    try:
        yield S3(endpoint)
    finally:
        _stop(process)


# Redis -----------------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str]:
    """redis-server on a free port, nothing persisted, with a password of its own as a
    deployment's must have (the broker is a trust boundary: whoever reaches it can have a
    worker process any stored image); yields its URL, ``redis://:PASSWORD@127.0.0.1:PORT``.
    The configuration goes in on standard input, so the password is on no command line."""
    exe = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if exe is None:
        unavailable("redis-server not found")
    port = free_port()
    password = secrets.token_urlsafe(24)
    process = subprocess.Popen(
        [exe, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    process.stdin.write(
        f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\n'.encode()
    )
    process.stdin.close()
    url = f"redis://:{password}@127.0.0.1:{port}"

    def ready() -> bool:
        import redis

        with suppress(redis.RedisError):
            return bool(redis.Redis.from_url(url).ping())
        return False

    try:
        _wait(ready, process, "redis-server")
    except RuntimeError as exc:
        _stop(process)
        unavailable(f"redis-server could not start: {exc}")
    try:
        yield url
    finally:
        _stop(process)
