"""Files the service did not write, in its blob folders: never fatal, never followed.

Finder's ``.DS_Store``, Windows' ``Thumbs.db``, a file someone copied in, a directory named like
a key, symlinks out of the store: the service starts, ``alphacut doctor`` reports each one (exit
1, no traceback), ``doctor --repair`` moves them to ``DATA_DIR/blobs-quarantine/``, and nothing
outside the store is read, followed or deleted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from alphacut.config import Settings
from alphacut.service.results import ResultStore
from alphacut.storage.blobs import LocalBlobStore
from alphacut.storage.database import Database
from servers import start_server

EXE = str(Path(sys.executable).with_name("alphacut"))
TOKEN = "ab" + "0" * 46
STRAYS = [
    ".DS_Store",
    "Thumbs.db",
    "results/.DS_Store",
    "images/ab/weird name.png",
    "images/ab/UPPER.PNG",
    "images/ab/image_abdir00000000000000000000.png",  # a directory named like a key
    "images/ab/image_ablink0000000000000000000.png",  # a symlink to a file outside
    "results/zz",  # a symlink to a folder outside, holding a file named like a result
    "images/é",  # a folder whose name is no key's
]


def _plant(data_dir: Path, outside: Path) -> None:
    """The strays, an hour and a half old (past every grace period), and the outside files."""
    blobs = data_dir / "blobs"
    (outside / "secret.png").write_bytes(b"outside, never to be touched")
    (outside / "folder").mkdir()
    (outside / "folder" / f"{TOKEN}.png").write_bytes(b"outside too")
    (blobs / "images" / "ab").mkdir(parents=True)
    (blobs / "results").mkdir()
    for name in (".DS_Store", "Thumbs.db", "results/.DS_Store", "images/ab/weird name.png",
                 "images/ab/UPPER.PNG"):  # fmt: skip
        (blobs / name).write_bytes(b"junk")
    (blobs / "images/ab/image_abdir00000000000000000000.png").mkdir()
    (blobs / "images/ab/image_abdir00000000000000000000.png/inner.png").write_bytes(b"junk")
    (blobs / "images/ab/image_ablink0000000000000000000.png").symlink_to(outside / "secret.png")
    (blobs / "results/zz").symlink_to(outside / "folder", target_is_directory=True)
    (blobs / "images/é").mkdir()
    (blobs / "images/é/x.png").write_bytes(b"junk")
    old = time.time() - 5400
    for path in [*blobs.rglob("*"), *outside.rglob("*")]:
        os.utime(path, (old, old), follow_symlinks=False)


def _outside_intact(outside: Path) -> None:
    assert (outside / "secret.png").read_bytes() == b"outside, never to be touched"
    assert (outside / "folder" / f"{TOKEN}.png").read_bytes() == b"outside too"


def test_the_service_starts_and_serves_with_stray_files(tmp_path: Path, photo: Path) -> None:
    data_dir, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    _plant(data_dir, outside)
    server = start_server(Settings(data_dir=data_dir))
    try:
        with server.client(server.new_key()) as api:
            response = api.post(
                "/v1/images/upload", data={"name": "p"}, files={"image": ("p", photo.read_bytes())}
            )
            assert response.status_code == 201, response.text
        assert httpx.get(f"{server.url}/readyz").json()["checks"]["storage"] == "ok"
    finally:
        server.stop()
    _outside_intact(outside)
    for stray in STRAYS:
        assert os.path.lexists(data_dir / "blobs" / stray), f"{stray} is left alone"


def test_orphan_sweep_neither_crashes_nor_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _plant(tmp_path, outside)
    db = Database(f"sqlite:///{tmp_path / 'alphacut.db'}")
    db.migrate()
    assert ResultStore(db, LocalBlobStore(tmp_path / "blobs"), 60).remove_orphans() == 0
    _outside_intact(outside)


def _doctor(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [EXE, "doctor", "--grace", "0", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_doctor_reports_strays_and_repair_moves_them_aside(tmp_path: Path) -> None:
    data_dir, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    _plant(data_dir, outside)
    store = LocalBlobStore(data_dir / "blobs")
    store.put("images/cd/image_cdkept000000000000000000.png", b"an orphan")
    check = _doctor(data_dir)
    assert check.returncode == 1, check.stderr
    assert "Traceback" not in check.stderr
    for stray in STRAYS:
        assert f"unknown file: {stray!r}" in check.stderr, (stray, check.stderr)
    assert "file without a row: images/cd/image_cdkept000000000000000000.png" in check.stderr
    _outside_intact(outside)
    for stray in STRAYS:
        assert os.path.lexists(data_dir / "blobs" / stray), (
            "doctor without --repair changes nothing"
        )

    fix = _doctor(data_dir, "--repair")
    assert fix.returncode == 0, fix.stderr
    assert "Traceback" not in fix.stderr
    quarantine = data_dir / "blobs-quarantine"
    for stray in STRAYS:
        assert not os.path.lexists(data_dir / "blobs" / stray), stray
        assert os.path.lexists(quarantine / stray), stray
    assert (quarantine / "images/ab/image_ablink0000000000000000000.png").is_symlink()
    assert (quarantine / "images/ab/image_abdir00000000000000000000.png/inner.png").is_file()
    _outside_intact(outside)

    again = _doctor(data_dir)
    assert again.returncode == 0 and "consistent" in again.stderr, again.stderr
