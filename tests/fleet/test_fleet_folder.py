"""scripts/fleet owns only the folder it made (issue 22, item 0: an empty FLEET_DIR once made
the checkout the fleet folder, and `fleet down` deleted it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "scripts" / "fleet"


def fleet(command: str, folder: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALPHACUT_FLEET_DIR": folder}
    return subprocess.run(
        [sys.executable, str(FLEET), command], env=env, capture_output=True, text=True, timeout=60
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


def test_down_removes_only_what_up_listed_and_keeps_the_logs(tmp_path: Path) -> None:
    (tmp_path / ".alphacut-fleet").write_text("made by scripts/fleet up\n")
    (tmp_path / "state.json").write_text('{"processes": {}, "replicas": []}')
    for made in ("pg", "worker-0", "replica-1", "logs"):
        (tmp_path / made).mkdir()
        (tmp_path / made / "f").write_text("x")
    (tmp_path / "someone-elses").mkdir()
    answer = fleet("down", str(tmp_path))
    assert answer.returncode == 0, answer.stderr
    assert not (tmp_path / "pg").exists() and not (tmp_path / "worker-0").exists()
    assert not (tmp_path / "state.json").exists()
    assert (tmp_path / "logs" / "f").exists() and (tmp_path / "someone-elses").exists()
