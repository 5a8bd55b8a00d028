"""The command line in an 80-column terminal and in a pipe (issue 27): tables one line a row,
never cut, no box drawing or colour when piped; no progress bar in a log; Ctrl-C on a folder
says how far it got and how to resume; rembg's verbs. Real subprocesses: ``COLUMNS=80``,
stdout and stderr pipes (not terminals), as ``| grep`` and ``| awk`` see them."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from alphacut.models.registry import CATALOGUE

EXE = str(Path(sys.executable).with_name("alphacut"))
NARROW = {"COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"}
BOX = set("┏┓┗┛┃━┡┩│─└┘┌┐├┤┼╇╈━…")


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    done = subprocess.run(
        [EXE, *map(str, args)], capture_output=True, timeout=300, cwd=cwd, input=stdin,
        env={**os.environ, **NARROW, **(env or {})},
    )  # fmt: skip
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()
    )


def plain(text: str) -> None:
    """What a pipe must get: no escape sequences, no box drawing, no carriage returns."""
    assert "\x1b" not in text and "\r" not in text, repr(text[:200])
    assert not BOX & set(text), sorted(BOX & set(text))


def test_models_list_fits_80_columns_one_line_a_model() -> None:
    done = run("models", "list")
    assert done.returncode == 0, done.stderr
    plain(done.stdout)
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "ALIASES", "SIZE", "STATUS", "LICENCE"]
    assert [row.split()[0] for row in rows] == list(CATALOGUE)  # every name whole
    for line in done.stdout.splitlines():
        assert len(line) <= 80 or len(line.split()[0]) > 80, line
    fast = next(row.split() for row in rows if row.startswith("u2netp "))
    assert fast == ["u2netp", "fast", "4.6MB", "installed", "Apache-2.0"]  # a word a field


def piped(into: list[str]) -> str:
    """``alphacut models list | INTO...``: a real pipe between two processes."""
    listing = subprocess.Popen(
        [EXE, "models", "list"], stdout=subprocess.PIPE, env={**os.environ, **NARROW}
    )
    assert listing.stdout is not None
    done = subprocess.run(into, stdin=listing.stdout, capture_output=True, text=True, timeout=120)
    listing.stdout.close()
    assert listing.wait(timeout=120) == 0
    return done.stdout


def test_models_list_piped_into_grep_and_awk_finds_the_rows() -> None:
    names = [line.split()[0] for line in piped(["grep", "birefnet"]).splitlines()]
    assert names == [name for name in CATALOGUE if "birefnet" in name]
    installed = piped(["awk", '$4 == "installed" {print $1}']).split()
    assert installed == ["u2netp", "isnet-general-use"]


def test_the_details_are_in_show_and_long() -> None:
    spec = CATALOGUE["bria-rmbg-2.0"]
    shown = run("models", "show", "bria-rmbg-2.0")
    assert shown.returncode == 0, shown.stderr
    plain(shown.stdout)
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert fields["licence"].strip() == spec.licence  # whole, on one line
    assert fields["model"].strip() == spec.summary
    assert fields["commercial use"].strip() == "no"
    assert fields["path"].strip().endswith(spec.filename)
    assert "openvino" in fields["runtime"] or "onnxruntime" in fields["runtime"]
    alias = run("models", "show", "precise")
    assert "name:" in alias.stdout and "isnet-general-use" in alias.stdout
    long = run("models", "list", "--long")
    plain(long.stdout)
    for name, model in CATALOGUE.items():
        assert f"name:             {name}\n" in long.stdout
        assert model.licence in long.stdout and model.summary in long.stdout


def test_keys_list_is_one_line_a_key(tmp_path: Path) -> None:
    env = {"ALPHACUT_DATA_DIR": str(tmp_path)}
    assert run("keys", "create", "--name", "ci", env=env).returncode == 0
    assert run("keys", "create", "--name", "line\nbreak \x1b[31mred", env=env).returncode == 0
    done = run("keys", "list", env=env)
    assert done.returncode == 0, done.stderr
    plain(done.stdout)
    header, *rows = done.stdout.splitlines()
    assert len(rows) == 2 and header.split()[0] == "ID"
    assert all(len(line) <= 80 for line in done.stdout.splitlines()[:2]), done.stdout
    assert all(row.split()[0].startswith("key_") and row.split()[3] == "active" for row in rows)
    assert rows[1].endswith("line\\nbreak \\x1b[31mred")  # shown, never obeyed
    usage = run("keys", "usage", env=env)
    plain(usage.stdout)
    assert [line.split()[0] for line in usage.stdout.splitlines()[1:]] == []


def test_a_folder_run_in_a_log_has_no_progress_bar(tmp_path: Path, photo: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(photo, folder / name)
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    done = run("remove", folder, "--out-dir", tmp_path / "out", "-m", "fast")
    assert done.returncode == 1
    plain(done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines  # the failure and the summary: one line each
    assert lines[0].startswith("failed: ") and "c.jpg" in lines[0]
    assert lines[1].startswith("2 of 3 done in ")


# -f and the suffix: the suffix decides, -f must agree (the refusals: test_refusals.py) ------


@pytest.mark.parametrize(
    ("args", "name", "pil_format"),
    [
        ([], "x.jpeg", "JPEG"),
        ([], "x.webp", "WEBP"),
        (["-f", "jpeg"], "x.jpg", "JPEG"),
        (["-f", "webp"], "x", "WEBP"),
        ([], "x", "PNG"),
    ],
)
def test_the_file_holds_the_format_its_name_says(
    tmp_path: Path, photo: Path, args: list[str], name: str, pil_format: str
) -> None:
    target = tmp_path / name
    done = run("remove", photo, "-o", target, "-m", "fast", *args)
    assert done.returncode == 0, done.stderr
    with Image.open(target) as made:
        assert made.format == pil_format


def test_jpeg_bytes_never_go_into_a_png_file(tmp_path: Path, photo: Path) -> None:
    done = run("remove", photo, "-f", "jpeg", "-o", tmp_path / "x.png", "-m", "fast")
    assert done.returncode == 2
    assert "-f jpeg writes JPEG but -o" in done.stderr and "name the file" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_image_data_is_never_written_to_a_terminal(photo: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([EXE, "remove", "-", "-m", "fast"], input=photo.read_bytes(),
                              stdout=follower, stderr=subprocess.PIPE, timeout=120)  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert b"not writing image data to a terminal" in done.stderr


# Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_on_a_folder_says_how_far_and_how_to_resume(tmp_path: Path, photo: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    total = 12
    for index in range(total):
        shutil.copy(photo, folder / f"p{index:02}.jpg")
    command = [EXE, "remove", str(folder), "--out-dir", str(out), "-m", "fast"]
    running = subprocess.Popen(command, stderr=subprocess.PIPE, cwd=tmp_path,
                               env={**os.environ, **NARROW})  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out.is_dir() and len(list(out.iterdir())) >= 2):
        assert running.poll() is None and time.monotonic() < deadline, "no output came"
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)
    _, stderr_bytes = running.communicate(timeout=120)
    stderr = stderr_bytes.decode()
    assert running.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    written = len(list(out.glob("*.png")))
    assert 2 <= written < total, "interrupted before the end"
    assert f"interrupted: {written} of {total} done" in stderr  # what was written, counted
    resume = next(line for line in stderr.splitlines() if line.startswith("to resume: "))
    again = shlex.split(resume.removeprefix("to resume: "))
    assert again == [*command, "--skip-existing"]  # the exact command line, resumable
    finished = subprocess.run(again, capture_output=True, timeout=300, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert f"skipping {written} whose output exists" in finished.stderr.decode()
    assert len(list(out.glob("*.png"))) == total


# rembg's verbs ----------------------------------------------------------------------------


def test_rembg_i_runs_remove_and_says_the_command(tmp_path: Path, photo: Path) -> None:
    target = tmp_path / "out.png"
    done = run("i", photo, target, "-m", "u2netp", "-om", "-a")
    assert done.returncode == 0, done.stderr
    assert f"this runs: alphacut remove {photo} -o {target} -m u2netp --mask" in done.stderr
    assert "-a: not needed here" in done.stderr
    with Image.open(target) as made:
        assert (made.format, made.mode) == ("PNG", "L")  # -om: the mask
    red = run("i", photo, tmp_path / "red.png", "-m", "u2netp", "-bgc", "255", "0", "0", "255")
    assert red.returncode == 0 and "--bg '#ff0000ff'" in red.stderr
    with Image.open(tmp_path / "red.png") as made:
        assert made.convert("RGBA").getpixel((0, 0)) == (255, 0, 0, 255)  # a background pixel
    piped = run("i", "-m", "u2netp", "-", stdin=photo.read_bytes())  # rembg i < in > out
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("\ufffdPNG")


def test_rembg_p_runs_remove_into_a_folder_skipping_what_exists(
    tmp_path: Path, photo: Path
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(photo, folder / name)
    out.mkdir()
    (out / "a.png").write_bytes(b"made before")
    done = run("p", folder, out, "-m", "u2netp")
    assert done.returncode == 0, done.stderr
    assert f"--out-dir {out} -m u2netp --skip-existing" in done.stderr
    assert (out / "a.png").read_bytes() == b"made before"  # as rembg's p: left alone
    with Image.open(out / "b.png") as made:
        assert made.mode == "RGBA"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["p", "{in}", "{out}", "-w"], "no watch mode"),
        (["p", "{in}", "{out}", "-d"], "never deletes an input"),
        (["i", "{in}/a.jpg", "{out}/x.png", "-x", '{"sam_prompt": []}'], "--extras"),
        (["i", "{in}/a.jpg", "-"], "to stdout from stdin only"),
        (["s", "--port", "7000"], "alphacut serve"),
        (["d", "u2net"], "alphacut models install"),
        (["b", "1024", "768"], "alphacut remove -"),
    ],
)
def test_rembg_verbs_that_cannot_be_run_point_the_way(
    tmp_path: Path, photo: Path, args: list[str], words: str
) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(photo, tmp_path / "in" / "a.jpg")
    done = run(*[a.replace("{in}", str(tmp_path / "in")).replace("{out}", str(tmp_path / "o"))
                 for a in args])  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert words in " ".join(done.stderr.split())
    assert not (tmp_path / "o").exists() and "Traceback" not in done.stderr


def test_rembg_verbs_stay_out_of_the_help() -> None:
    shown = run("--help", env={"COLUMNS": "120"}).stdout
    assert "remove" in shown
    assert not any(line.strip().startswith(("i ", "p ", "s ")) for line in shown.splitlines())


def test_ctrl_c_in_install_and_eval_exits_130(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not click's "Aborted!" and exit 1: the shell's 130 and a line that says what now
    (in-process: the interrupt raised where the download or the scoring would be)."""
    from typer.testing import CliRunner

    import alphacut.evaluation
    from alphacut.cli import app
    from alphacut.models.install import ModelInstaller

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelInstaller, "install", interrupt)
    monkeypatch.setattr(alphacut.evaluation, "evaluate", interrupt)
    installing = CliRunner().invoke(app, ["models", "install", "u2net"])
    assert installing.exit_code == 130 and "resumes" in installing.stderr
    shutil.copy(photo, tmp_path / "car.jpg")
    Image.new("L", (480, 360)).save(tmp_path / "car.png")
    (tmp_path / "pairs.csv").write_text("image,mask\ncar.jpg,car.png\n")
    scoring = CliRunner().invoke(app, ["eval", str(tmp_path), "-m", "fast"])
    assert scoring.exit_code == 130 and "interrupted" in scoring.stderr
