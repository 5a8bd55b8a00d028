"""scripts/fleet owns only the folder it made, and removes only what its state file lists
(issue 22, item 0: an empty FLEET_DIR once made the checkout the fleet folder, and `fleet
down` deleted it); its Redis asks for a password (item 15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetservers import unavailable

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "scripts" / "fleet"


def fleet(
    command: str, folder: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {}), "ALPHACUT_FLEET_DIR": folder}
    return subprocess.run(
        [sys.executable, str(FLEET), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", ["up", "down"])
@pytest.mark.parametrize("folder", ["", " ", "/", str(REPO), str(REPO.parent), str(Path.home())])
def test_an_unsafe_fleet_folder_is_refused_before_anything(command: str, folder: str) -> None:
    before = sorted(p.name for p in REPO.iterdir())
    answer = fleet(command, folder)
    assert answer.returncode != 0
    assert "refusing" in answer.stderr or "empty" in answer.stderr
    assert sorted(p.name for p in REPO.iterdir()) == before
    assert not (REPO / "state.json").exists() and not (REPO / "logs").exists()


@pytest.mark.parametrize("command", ["up", "down"])
def test_a_folder_holding_other_files_is_refused_and_kept(command: str, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not the fleet's")
    (tmp_path / "state.json").write_text('{"processes": {}, "replicas": []}')
    answer = fleet(command, str(tmp_path))
    assert answer.returncode != 0 and "did not create" in answer.stderr
    assert (tmp_path / "mine.txt").read_text() == "not the fleet's"
    assert (tmp_path / "state.json").exists()


def _made(folder: Path, *names: str) -> list[dict[str, object]]:
    """state.json's record of folders `up` made (each created here, as `up` does)."""
    entries: list[dict[str, object]] = []
    for index, name in enumerate(names):
        (folder / name).mkdir()
        (folder / name / "f").write_text("x")
        token = f"{index:032x}"
        (folder / name / ".made-by-scripts-fleet").write_text(token)
        info = (folder / name).lstat()
        entries.append({"name": name, "dev": info.st_dev, "ino": info.st_ino, "token": token})
    return entries


def _state(folder: Path, made: list[dict[str, object]]) -> None:
    (folder / ".alphacut-fleet").write_text("made by scripts/fleet up\n")
    state = {"made": made, "processes": {}, "replicas": []}
    (folder / "state.json").write_text(json.dumps(state))


def test_down_removes_only_what_up_listed_and_keeps_the_logs(tmp_path: Path) -> None:
    _state(tmp_path, _made(tmp_path, "pg", "worker-0", "replica-1"))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "f").write_text("x")
    (tmp_path / "someone-elses").mkdir()
    answer = fleet("down", str(tmp_path))
    assert answer.returncode == 0, answer.stderr
    assert not (tmp_path / "pg").exists() and not (tmp_path / "worker-0").exists()
    assert not (tmp_path / "replica-1").exists() and not (tmp_path / "state.json").exists()
    assert (tmp_path / "logs" / "f").exists() and (tmp_path / "someone-elses").exists()
    assert (tmp_path / ".alphacut-fleet").exists()


def test_down_removes_nothing_that_state_json_does_not_list_as_made_here(tmp_path: Path) -> None:
    """Named like the fleet's folders but not recorded, or recorded but replaced since (another
    inode, a symlink), or a name that leads out of the folder: all left as they are."""
    home = tmp_path / "fleet"
    home.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    made = _made(home, "pg", "worker-1")
    (home / "worker-0").mkdir()  # named like the fleet's, never recorded
    (home / "worker-0" / "precious").write_text("keep")
    shutil.rmtree(home / "pg")  # recorded, then replaced by another folder (often the same inode)
    (home / "pg").mkdir()
    (home / "pg" / "precious").write_text("keep")
    shutil.rmtree(home / "worker-1")  # recorded, then replaced by a link to elsewhere
    (home / "worker-1").symlink_to(outside, target_is_directory=True)
    info = outside.lstat()
    for name in ("../outside", str(outside), "logs", ".", ""):
        made.append({"name": name, "dev": info.st_dev, "ino": info.st_ino, "token": "0" * 32})
    _state(home, made)
    (home / "logs").mkdir()
    answer = fleet("down", str(home))
    assert answer.returncode == 0, answer.stderr
    assert (home / "worker-0" / "precious").read_text() == "keep"
    assert (home / "pg" / "precious").read_text() == "keep"
    assert (home / "worker-1").is_symlink() and (outside / "precious").read_text() == "keep"
    assert (home / "logs").is_dir()
    assert "left alone" in answer.stdout


def test_down_refuses_a_state_file_that_is_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"made": [], "processes": {}, "replicas": []}')
    home = tmp_path / "fleet"
    home.mkdir()
    (home / ".alphacut-fleet").write_text("made by scripts/fleet up\n")
    (home / "state.json").symlink_to(elsewhere)
    answer = fleet("down", str(home))
    assert answer.returncode != 0 and "not a regular file" in answer.stderr
    assert elsewhere.exists() and (home / "state.json").is_symlink()


@pytest.fixture
def reachable_folder() -> Iterator[Path]:
    """A folder PostgreSQL's own user can reach when the tests run as root (pytest's tmp_path
    is 0700): made here, removed here."""
    made = Path(tempfile.mkdtemp(prefix="alphacut-test-fleet-"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made)


@pytest.mark.parametrize("reachable", [True, False], ids=["home-755", "home-under-0700"])
def test_up_records_each_thing_it_makes_and_a_failed_up_removes_exactly_those(
    reachable: bool, reachable_folder: Path, tmp_path: Path
) -> None:
    """A real `up` whose Redis fails to start (a stand-in that reads its configuration and
    exits): by then PostgreSQL and the S3 server run and `pg` is made. state.json is private
    at every moment and names them; Redis got a password of its own on standard input, none
    on its command line; the failed `up` stops them and removes `pg`, and only that. As root
    in a folder PostgreSQL's user cannot reach (pytest's, or `mktemp -d`'s, 0700), `pg` is a
    private folder of the fleet's own in the temp folder, recorded and removed the same."""
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        unavailable("PostgreSQL (initdb) not found")
    base = reachable_folder if reachable else tmp_path
    home, seen, bin_dir = (base / name for name in ("fleet", "seen", "bin"))
    seen.mkdir()
    bin_dir.mkdir()
    stand_in = bin_dir / "redis-server"
    stand_in.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {seen}/argv\n'
        f"cat > {seen}/config\n"
        f'stat -c %a "{home}/state.json" > {seen}/mode\n'
        f'cp "{home}/state.json" {seen}/state.json\n'
        "exit 3\n"
    )
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    answer = fleet("up", str(home), env=env, timeout=180)
    assert answer.returncode != 0 and "redis exited with 3" in answer.stderr, answer.stderr
    state = json.loads((seen / "state.json").read_text())
    assert (seen / "mode").read_text().strip() == "600"
    assert [entry["name"] for entry in state["made"]] == ["pg"]
    pg = state["made"][0]
    if "path" in pg:  # made in the temp folder: only as root, only for an unreachable home
        assert not reachable and os.geteuid() == 0
        assert Path(pg["path"]).parent == Path(tempfile.gettempdir()).resolve()
        assert not Path(pg["path"]).exists()
    else:
        assert reachable or os.geteuid() != 0
    assert set(state["processes"]) == {"postgres", "s3", "redis"}
    password = state["redis_password"]
    assert len(password) >= 32
    assert (seen / "argv").read_text().split() == ["-"], "no password on the command line"
    assert f"requirepass {password}\n" in (seen / "config").read_text()
    assert sorted(p.name for p in home.iterdir()) == [".alphacut-fleet", "logs"]
    assert {p.name for p in (home / "logs").iterdir()} >= {"postgres.log", "s3.log", "redis.log"}
    for entry in state["processes"].values():
        with pytest.raises(ProcessLookupError):
            os.killpg(entry["pid"], 0)
    for log in (home / "logs").iterdir():
        assert password not in log.read_text(errors="replace")
