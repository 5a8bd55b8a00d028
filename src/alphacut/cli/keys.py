"""``alphacut keys create|list|revoke|usage`` and ``alphacut db upgrade|current``: the API
keys and the metadata database they live in."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from alphacut.cli.common import err, fail
from alphacut.cli.tables import print_table
from alphacut.errors import AlphacutError

if TYPE_CHECKING:
    from alphacut.service.keys import KeyService
    from alphacut.storage.database import Database

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def database() -> Database:
    """The database, ready: SQLite migrated, PostgreSQL checked to be at the newest
    migration (else one line that says to run `alphacut db upgrade`, and exit 2)."""
    from alphacut.config import get_settings
    from alphacut.storage.database import Database

    try:
        db = Database(get_settings().resolved_database_url)
        db.prepare()
    except AlphacutError as exc:
        fail(exc.message, 2)
    return db


def key_service() -> KeyService:
    from alphacut.service.keys import KeyService

    return KeyService(database())


def _day(value: datetime | None) -> str:
    """A UTC date in one word, so each row splits into the same fields for awk; ``-`` for
    never (``--json`` has the times to the second)."""
    return value.strftime("%Y-%m-%d") if value else "-"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "default",
    stage: Annotated[str, typer.Option("--stage", help="test or live.")] = "test",
) -> None:
    """Create a key and print it. It is shown this once; only its hash is stored."""
    try:
        secret, key = key_service().create(name, stage)  # type: ignore[arg-type]
    except AlphacutError as exc:
        fail(exc.message, 2)
    err.print(f"created {key.id} ({key.stage}, {key.name!r}); the key, shown only now:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every key, one line each.

    Id, stage, prefix, active or revoked, created, last used, name (--json: the times to the
    second)."""
    keys = key_service().all()
    if as_json:
        rows = [
            {
                "id": key.id,
                "name": key.name,
                "stage": key.stage,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    # One line a key within 80 columns (a name of up to 11 characters); the name last: it
    # may hold spaces, the other columns never do.
    print_table(
        ("ID", "STAGE", "PREFIX", "STATUS", "CREATED", "LAST USED", "NAME"),
        [
            [
                key.id,
                key.stage,
                key.prefix,
                ("revoked", "red") if key.revoked_at else "active",
                _day(key.created_at),
                _day(key.last_used_at),
                key.name,
            ]
            for key in keys
        ],
    )


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    try:
        key_service().revoke(key_id)
    except AlphacutError as exc:
        fail(exc.message)
    err.print(f"revoked {key_id}")


@keys_app.command("usage")
def keys_usage(
    days: Annotated[int, typer.Option("--days", min=1, help="Length of the recent window.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Requests and processed images per key (what the 201 responses counted)."""
    service = key_service()
    names = {key.id: key.name for key in service.all()}
    totals = service.usage(days)
    if as_json:
        rows = [
            {
                "id": total.key_id,
                "name": names.get(total.key_id),
                "requests": total.requests,
                "images": total.images,
                f"images_last_{days}_days": total.images_recent,
            }
            for total in totals
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    print_table(
        ("ID", "REQUESTS", "IMAGES", f"LAST {days} DAYS", "NAME"),
        [
            [
                total.key_id,
                str(total.requests),
                str(total.images),
                str(total.images_recent),
                names.get(total.key_id, "?"),
            ]
            for total in totals
        ],
    )


# db --------------------------------------------------------------------------------------

db_app = typer.Typer(help="The metadata database's schema (migrations).", no_args_is_help=True)


def _open_database() -> Database:
    from alphacut.config import get_settings
    from alphacut.storage.database import Database

    try:
        return Database(get_settings().resolved_database_url)
    except AlphacutError as exc:
        fail(exc.message, 2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to this version's newest migration (idempotent). Run it once before
    starting (or after upgrading) the replicas of a PostgreSQL deployment; SQLite is
    upgraded by every start on its own."""
    db = _open_database()
    before, head = db.revisions()
    db.migrate()
    db.close()
    if before == head:
        err.print(f"the schema is at the newest migration already ({head})")
    else:
        err.print(f"upgraded the schema from {before or 'nothing'} to {head}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema's migration and the newest one; exit 1 when they differ."""
    db = _open_database()
    current, head = db.revisions()
    db.close()
    typer.echo(f"current: {current or 'none'}\nnewest: {head}")
    if current != head:
        err.print("the schema is behind: run `alphacut db upgrade`")
        raise typer.Exit(1)
