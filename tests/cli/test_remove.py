"""The command line, end to end: the installed ``alphacut`` executable in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import alphacut
from alphacut.engine.sessions import openvino
from alphacut.models.registry import CATALOGUE

EXE = str(Path(sys.executable).with_name("alphacut"))


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return subprocess.run(
        [EXE, *args], input=stdin, capture_output=True, timeout=300, cwd=cwd,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def photos(tmp_path: Path, photo: Path, portrait: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(photo, folder / "car.jpg")
    shutil.copy(portrait, folder / "nested" / "person.JPG")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return folder


def _image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"alphacut {alphacut.__version__}"


def test_models_list_json() -> None:
    done = run("models", "list", "--json")
    assert done.returncode == 0
    listing = json.loads(done.stdout)
    models = {m["name"]: m for m in listing["models"]}
    assert list(models) == list(CATALOGUE)  # every catalogue model, installed or not
    assert models["u2netp"]["aliases"] == ["fast"] and models["u2netp"]["status"] == "installed"
    assert models["isnet-general-use"]["aliases"] == ["precise"]
    assert models["isnet-general-use"]["status"] == "installed"
    assert "Apache-2.0" in models["u2netp"]["licence"]
    assert models["bria-rmbg-2.0"]["commercial_use"] is False


def test_models_list_shows_each_models_runtime() -> None:
    done = run("models", "list", "--json", env={"ALPHACUT_RUNTIME": "onnxruntime"})
    assert done.returncode == 0, done.stderr
    runtimes = [m["runtime"] for m in json.loads(done.stdout)["models"]]
    assert all(r.startswith("onnxruntime fp32 on ") and "(asked for" in r for r in runtimes)
    done = run("models", "list", "--json", env={"ALPHACUT_RUNTIME": "auto"})
    models = {m["name"]: m["runtime"] for m in json.loads(done.stdout)["models"]}
    fast, precise = models["u2netp"], models["isnet-general-use"]
    # bf16 changes U2-Netp's masks, not IS-Net's (docs/performance.md): IS-Net runs in bf16
    # where the CPU does bf16 natively
    native = openvino.native_bf16() is not None
    assert "openvino fp32" in fast and "auto" in fast and "auto" in precise
    assert ("openvino bf16" if native else "openvino fp32") in precise
    assert "openvino fp32" in models["birefnet-general"]  # never measured: fp32 by default
    forced = run("models", "list", "--json", env={"ALPHACUT_PRECISION": "fp32"})
    models = {m["name"]: m["runtime"] for m in json.loads(forced.stdout)["models"]}
    assert (
        "openvino fp32" in models["isnet-general-use"]
        and "fp32 asked for" in (models["isnet-general-use"])
    )
    opted = run("models", "list", "--json",
                env={"ALPHACUT_MODEL_PRECISION": '{"birefnet-general": "bf16"}'})  # fmt: skip
    models = {m["name"]: m["runtime"] for m in json.loads(opted.stdout)["models"]}
    if native:  # an operator's bf16, said not to be measured
        assert (
            "openvino bf16" in models["birefnet-general"]
            and "NOT measured" in (models["birefnet-general"])
        )
    else:
        assert "no native bf16" in models["birefnet-general"]
    assert "openvino fp32" in models["birefnet-portrait"]


def test_models_list_table_shows_missing_models(tmp_path: Path) -> None:
    done = run("models", "list", env={"ALPHACUT_MODEL_DIR": str(tmp_path)})
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "missing" in text and "fast" in text and "precise" in text


def test_single_file_beside_its_input(photos: Path) -> None:
    done = run("remove", str(photos / "car.jpg"), "--model", "fast")
    assert done.returncode == 0, done.stderr
    result = _image(photos / "car.cutout.png")
    assert result.mode == "RGBA" and result.size == _image(photos / "car.jpg").size


def test_folder_recursive_with_a_bad_file(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run("remove", str(photos), "--out-dir", str(out), "-m", "fast")
    assert done.returncode == 1, "a failed file makes the exit code non-zero"
    stderr = done.stderr.decode()
    assert "broken.png" in stderr and "truncated or damaged" in stderr
    assert "2 of 3 done" in stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "car.png",
        "nested/person.png",
    ]


def test_outputs_are_not_picked_up_again(photos: Path) -> None:
    (photos / "broken.png").unlink()
    assert run("remove", str(photos), "-m", "fast").returncode == 0
    assert run("remove", str(photos), "-m", "fast").returncode == 0
    names = sorted(p.name for p in photos.rglob("*.png"))
    assert names == ["car.cutout.png", "person.cutout.png"]


def test_stdin_to_stdout(photo: Path) -> None:
    done = run("remove", "-", "-m", "fast", stdin=photo.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x89PNG")


def test_stdin_to_file_with_options(photo: Path, tmp_path: Path) -> None:
    target = tmp_path / "flat.jpg"
    done = run("remove", "-", "-o", str(target), "-m", "fast", "--bg", "#00ff00", "-q", "80",
               stdin=photo.read_bytes())  # fmt: skip
    assert done.returncode == 0, done.stderr
    image = _image(target)
    assert image.format == "JPEG" and image.mode == "RGB"


@pytest.mark.parametrize(
    ("args", "suffix", "pil_format", "mode"),
    [
        (["--mask"], ".png", "PNG", "L"),
        (["--format", "webp"], ".webp", "WEBP", "RGBA"),
        (["--format", "jpg", "--quality", "70"], ".jpg", "JPEG", "RGB"),
        (["--bg", "#ff000080"], ".png", "PNG", "RGBA"),
    ],
)
def test_output_options(
    photos: Path, args: list[str], suffix: str, pil_format: str, mode: str
) -> None:
    done = run("remove", str(photos / "car.jpg"), "-m", "fast", *args)
    assert done.returncode == 0, done.stderr
    marker = ".mask" if "--mask" in args else ".cutout"
    image = _image(photos / f"car{marker}{suffix}")
    assert (image.format, image.mode) == (pil_format, mode)


def test_crop_with_margin(photos: Path, tmp_path: Path) -> None:
    full, cropped = tmp_path / "full.png", tmp_path / "crop.png"
    assert run("remove", str(photos / "car.jpg"), "-m", "fast", "-o", str(full)).returncode == 0
    done = run("remove", str(photos / "car.jpg"), "-m", "fast", "--crop", "--crop-margin", "5px",
               "-o", str(cropped))  # fmt: skip
    assert done.returncode == 0, done.stderr
    box = np.asarray(_image(full))[..., 3] > 8
    rows, cols = np.nonzero(box)
    expected = (cols.max() - cols.min() + 1 + 10, rows.max() - rows.min() + 1 + 10)
    assert _image(cropped).size == expected


def test_never_overwrites_an_input(photos: Path) -> None:
    source = photos / "car.jpg"
    before = source.read_bytes()
    done = run("remove", str(source), "-o", str(source), "-m", "fast")
    assert done.returncode == 2  # refused before any work (issue 27)
    assert b"refusing to overwrite the input" in done.stderr
    assert source.read_bytes() == before
    png = photos / "car.png"
    shutil.copy(photos / "car.jpg", png)
    done = run("remove", str(png), "--out-dir", str(photos), "-m", "fast")
    assert done.returncode == 2 and b"refusing" in done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["remove", "{in}", "-o", "x.png"], "-o names one output file"),
        (["remove", "{in}/car.jpg", "-o", "a.png", "--out-dir", "d"], "either -o or --out-dir"),
        (["remove", "{in}/car.jpg", "--mask", "--bg", "red"], "either --mask or --bg"),
        (["remove", "{in}/car.jpg", "--format", "gif"], "unsupported output format"),
        (["remove", "{in}/nothing.jpg"], "no such file"),
        (["remove", "{in}/car.jpg", "--model", "huge"], "unknown model 'huge'"),
        (["remove", "{in}/car.jpg", "--bg", "notacolour"], "invalid colour"),
        (["remove", "{in}/car.jpg", "--quality", "0"], "--quality"),
        (["remove", "{in}/car.jpg", "--refine", "sharpen"], "'sharpen' is not one of"),
        (["eval", "{in}"], "has no pairs.csv"),
    ],
)
def test_usage_errors(photos: Path, args: list[str], words: str) -> None:
    done = run(*[a.replace("{in}", str(photos)) for a in args], cwd=photos)
    assert done.returncode != 0
    assert words in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


def test_missing_model_tells_what_to_run(photos: Path, tmp_path: Path) -> None:
    done = run("remove", str(photos / "car.jpg"), env={"ALPHACUT_MODEL_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "alphacut models install isnet-general-use" in done.stderr.decode()


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "alphacut", "--version"], capture_output=True)
    assert done.returncode == 0 and b"alphacut" in done.stdout


def test_eval_scores_variants_side_by_side(shared: Path, tmp_path: Path) -> None:
    """Two refinements of the fast model on 4 DAVIS pairs: a row each, and per-image JSON."""
    out = tmp_path / "scores.json"
    davis = shared / "evaldata" / "davis345"
    done = run("eval", str(davis), "-m", "fast", "-r", "none", "-r", "zoom", "--limit", "4",
               "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    table = done.stdout.decode()
    assert "fast refine=none" in table and "fast refine=zoom" in table
    document = json.loads(out.read_text())
    assert [s["variant"] for s in document["summaries"]] == ["fast refine=none", "fast refine=zoom"]
    images = document["images"]
    assert len(images) == 8 and {i["image"] for i in images} == {"000.jpg", "115.jpg", "229.jpg",
                                                                 "344.jpg"}  # fmt: skip
    for image in images:
        assert 0 <= image["scores"]["iou"] <= 1 and 0 <= image["scores"]["boundary_f"] <= 1
        assert 0 <= image["scores"]["mae"] <= 1 and image["seconds"] > 0


def test_eval_compares_two_runtimes_by_the_rule(shared: Path, tmp_path: Path) -> None:
    """onnxruntime against OpenVINO, both fp32, on 3 DAVIS pairs: the same masks within the
    rule, so PASS and exit 0; the verdict and each photo's agreement are in the JSON."""
    out = tmp_path / "scores.json"
    davis = shared / "evaldata" / "davis345"
    done = run("eval", str(davis), "-m", "fast", "-r", "none", "--limit", "3",
               "--runtime", "onnxruntime-fp32", "--runtime", "openvino-fp32",
               "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    said = done.stdout.decode()
    assert "PASS fast refine=none openvino-fp32 against fast refine=none onnxruntime-fp32" in said
    document = json.loads(out.read_text())
    (verdict,) = document["verdicts"]
    assert verdict["passes"] and verdict["images"] == 3 and verdict["min_agreement"] > 0.99
    compared = [i for i in document["images"] if i["reference"]]
    assert len(compared) == 3 and all(i["agreement"] > 0.99 for i in compared)


def test_eval_refuses_an_unknown_runtime(shared: Path) -> None:
    done = run("eval", str(shared / "evaldata" / "davis345"), "--runtime", "tensorrt-fp8")
    assert done.returncode == 2
    assert "unknown runtime 'tensorrt-fp8'; choose one of: openvino-fp32" in done.stderr.decode()


def test_eval_names_a_mask_that_does_not_fit_its_photo(photo: Path, tmp_path: Path) -> None:
    shutil.copy(photo, tmp_path / "car.jpg")
    Image.new("L", (10, 10)).save(tmp_path / "car.png")
    (tmp_path / "pairs.csv").write_text("image,mask\ncar.jpg,car.png\n")
    done = run("eval", str(tmp_path), "-m", "fast")
    assert done.returncode == 1
    assert "car.jpg is 480x360 but its mask car.png is 10x10" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


def test_serve_refuses_a_cuda_device_it_cannot_use(tmp_path: Path) -> None:
    # never a quiet fall back to the CPU: one line and exit 2 before anything starts (this
    # machine's onnxruntime has no CUDA provider; the test is skipped where it has one)
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here has its CUDA provider")
    done = run("serve", "--port", "1",
               env={"ALPHACUT_DEVICE": "cuda", "ALPHACUT_DATA_DIR": str(tmp_path)})  # fmt: skip
    assert done.returncode == 2
    assert "device 'cuda' was asked for, but onnxruntime has no CUDA provider" in (
        done.stderr.decode()
    )
    assert "Traceback" not in done.stderr.decode()


def test_serve_refuses_a_refine_some_model_cannot_do(tmp_path: Path) -> None:
    done = run(
        "serve",
        "--port",
        "1",
        env={"ALPHACUT_REFINE": "consensus", "ALPHACUT_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "consensus needs a second model to check u2netp" in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_a_result_too_wide_for_webp_is_a_clear_error(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGB", (20_000, 2), (200, 10, 10)).save(wide)
    # a plain strip has no subject: the check is off, this test is about the format's limit
    done = run("remove", str(wide), "-f", "webp", "-o", str(tmp_path / "out.webp"), "-m", "fast",
               env={"ALPHACUT_NO_SUBJECT_SHARE": "0"})  # fmt: skip
    stderr = " ".join(done.stderr.decode().split())  # rich wraps long lines
    assert done.returncode == 2  # from the header, before the model runs (issue 27)
    assert "20000x2 pixels" in stderr and "16,383 pixels on a side" in stderr, stderr
    assert "Traceback" not in stderr and not (tmp_path / "out.webp").exists()


# Options checked first, paths named, rembg habits (issue 15) -----------------------------


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--bg", "notacolor"], "colour"),
        (["--crop", "--crop-margin", "garbage"], "crop margin"),
        (["-f", "jpg", "--bg", "#ff000080"], "translucent"),
        (["--mask", "--bg", "red"], "either --mask or --bg"),
        (["-m", "huge"], "huge"),
        (["-r", "sharpen"], "sharpen"),
    ],
)
def test_every_option_is_checked_before_any_model_runs(
    photos: Path, options: list[str], said: str
) -> None:
    done = run("remove", str(photos), *options)
    assert done.returncode == 2, done.stderr.decode()
    assert said in done.stderr.decode().lower() or said in done.stderr.decode()
    assert not list(photos.rglob("*.cutout.*")), "nothing processed"
    assert done.stderr.decode().count("\n") <= 8, "one message, not one per file"


def test_options_that_do_nothing_are_said(tmp_path: Path, photo: Path) -> None:
    done = run("remove", str(photo), "-m", "fast", "-q", "80", "--crop-margin", "10%",
               "-o", str(tmp_path / "out.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    said = done.stderr.decode()
    assert "--quality does nothing for PNG" in said
    assert "--crop-margin does nothing without --crop" in said


def test_path_mistakes_name_the_right_path(tmp_path: Path, photo: Path) -> None:
    missing = run("remove", str(photo), "-o", str(tmp_path / "missing" / "dir" / "x.png"))
    assert missing.returncode == 2
    assert f"{tmp_path / 'missing' / 'dir'} does not exist" in missing.stderr.decode()
    (tmp_path / "somedir").mkdir()
    folder = run("remove", str(photo), "-o", str(tmp_path / "somedir"))
    assert folder.returncode == 2 and "--out-dir" in folder.stderr.decode()
    (tmp_path / "afile").write_text("x")
    not_folder = run("remove", str(photo), "--out-dir", str(tmp_path / "afile"))
    assert not_folder.returncode == 2 and "is a file, not a folder" in not_folder.stderr.decode()


def test_the_rembg_habit_of_naming_the_output_second(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out.png"
    first = run("remove", str(photo), str(out), "-m", "fast")
    assert first.returncode == 2
    assert f"-o {out}" in first.stderr.decode() and "did you mean" in first.stderr.decode()
    assert run("remove", str(photo), "-o", str(out), "-m", "fast").returncode == 0
    again = run("remove", str(photo), str(out), "-m", "fast")
    assert again.returncode == 2 and "looks like a cut-out" in again.stderr.decode()
    assert not (tmp_path / "out.cutout.png").exists(), "the earlier output was not processed"


def test_skip_existing_resumes_a_batch(photos: Path) -> None:
    out = photos.parent / "out"
    first = run("remove", str(photos), "--out-dir", str(out), "-m", "fast")
    assert first.returncode == 1  # broken.png fails; the two photos are done
    made = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    stamps = {p: (out / p).stat().st_mtime_ns for p in made}
    again = run("remove", str(photos), "--out-dir", str(out), "-m", "fast", "--skip-existing")
    assert "skipping 2 whose output exists" in again.stderr.decode()
    assert {p: (out / p).stat().st_mtime_ns for p in made} == stamps


def test_help_shows_flags_as_flags_and_lists_choices() -> None:
    shown = run("remove", "--help", env={"COLUMNS": "160"}).stdout.decode()
    assert "fast, precise, auto" in shown and "any installed" in shown
    assert "-r" in shown and "<auto|none|edges|zoom|consensus>" in shown
    for flag in ("--mask", "--crop", "--skip-existing"):
        line = next(line for line in shown.splitlines() if flag in line)
        assert "<bool>" not in line, line


def test_stdin_from_a_terminal_is_said_not_waited_on(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([EXE, "remove", "-"], stdin=follower, capture_output=True,
                              timeout=60)  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert "terminal" in done.stderr.decode()


def test_bmp_and_heic_photos_are_read(tmp_path: Path, photo: Path) -> None:
    """The formats the HTTP APIs refuse but cameras and phones make (docs/cli.md)."""
    import pillow_heif

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
    image.save(folder / "camera.bmp")
    pillow_heif.from_pillow(image).save(folder / "phone.heic", quality=90)
    done = run("remove", str(folder), "--out-dir", str(out), "-m", "fast")
    assert done.returncode == 0, done.stderr
    for name in ("camera.png", "phone.png"):
        result = _image(out / name)
        assert result.mode == "RGBA" and result.size == image.size
        alpha = np.asarray(result.getchannel("A"))
        assert (alpha == 0).mean() > 0.1 and (alpha == 255).mean() > 0.1, name


# Folders through the pipeline (issue 14) -------------------------------------------------


def test_a_folder_through_the_pipeline_matches_one_by_one(
    tmp_path: Path, fixtures: Path, fast: alphacut.Remover
) -> None:
    """Decoding, the model and encoding overlap (alphacut.batch); the cut-outs are the ones
    the library makes photo by photo, and a damaged file in the middle fails alone."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photos = sorted(fixtures.glob("*.jpg"))  # anime-girl, car, cloth, plants
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)  # sorts third
    done = run("remove", str(folder), "--out-dir", str(out), "-m", "fast")
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "failed:" in stderr and "broken.jpg" in stderr and "4 of 5 done" in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in photos)
    for photo in photos:
        made = np.asarray(_image(out / f"{photo.stem}.png").getchannel("A"), dtype=np.int16)
        expected = fast.remove(photo).array[..., 3].astype(np.int16)
        assert made.shape == expected.shape
        assert np.abs(made - expected).max() <= 1, photo.name


def test_skip_existing_through_the_pipeline_writes_only_what_is_missing(
    photos: Path, photo: Path
) -> None:
    (photos / "broken.png").unlink()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(photo, photos / name)
    out = photos.parent / "out"
    assert run("remove", str(photos), "--out-dir", str(out), "-m", "fast").returncode == 0
    made = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert [str(p) for p in made] == ["a.png", "b.png", "car.png", "nested/person.png"]
    (out / "b.png").unlink()
    stamps = {p: (out / p).stat().st_mtime_ns for p in made if p.name != "b.png"}
    again = run("remove", str(photos), "--out-dir", str(out), "-m", "fast", "--skip-existing")
    assert again.returncode == 0, again.stderr.decode()
    assert "skipping 3 whose output exists" in again.stderr.decode()
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps
    assert _image(out / "b.png").size == _image(photo).size


def test_any_model_name_is_passed_to_the_library(photos: Path) -> None:
    done = run("remove", str(photos / "car.jpg"), "-m", "no-such-model")
    assert done.returncode == 2
    assert "unknown model 'no-such-model'" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    assert not list(photos.rglob("*.cutout.*"))


def test_a_model_that_will_not_load_fails_the_run_once(photos: Path, tmp_path: Path) -> None:
    # The model loads beside the first decode; its failure still ends the run, with one
    # message and no output (here: a runtime that cannot run on the device asked for).
    done = run(
        "remove", str(photos), "--out-dir", str(tmp_path / "out"), "-m", "fast",
        env={"ALPHACUT_RUNTIME": "openvino", "ALPHACUT_DEVICE": "cuda"},
    )  # fmt: skip
    text = done.stderr.decode()
    assert done.returncode == 1
    assert text.count("needs runtime onnxruntime") == 1, text
    assert "Traceback" not in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# Issue 25: each cut-out's confidence on the line it prints, the folder's "N of M cut-outs look
# doubtful" summary, --report FILE (CSV or JSON, one row per photo, failures included), --model
# auto, and a photo without a subject reported as a failure, never written as an empty cut-out.


@pytest.fixture
def mixed_folder(tmp_path: Path, photo: Path, portrait: Path) -> Path:
    made = tmp_path / "in"
    made.mkdir()
    shutil.copy(photo, made / "car.jpg")
    shutil.copy(portrait, made / "person.jpg")
    Image.new("RGB", (480, 360), (200, 190, 180)).save(made / "wall.png")
    return made


def test_one_photo_prints_its_confidence(tmp_path: Path, photo: Path) -> None:
    done = run("remove", str(photo), "-o", str(tmp_path / "out.png"), "-m", "fast")
    assert done.returncode == 0, done.stderr
    line = done.stderr.decode()
    assert "confidence 0." in line and "doubtful" not in line
    wary = run("remove", str(photo), "-o", str(tmp_path / "o2.png"), "-m", "fast",
               env={"ALPHACUT_DOUBTFUL_BELOW": "1"})  # fmt: skip
    assert "doubtful: check it" in wary.stderr.decode()


def test_a_folder_report_as_csv_lists_every_photo(tmp_path: Path, mixed_folder: Path) -> None:
    report = tmp_path / "report.csv"
    out = tmp_path / "out"
    done = run("remove", str(mixed_folder), "--out-dir", str(out), "-m", "fast",
               "--report", str(report), env={"ALPHACUT_DOUBTFUL_BELOW": "1"})  # fmt: skip
    assert done.returncode == 1  # the wall failed
    stderr = done.stderr.decode()
    assert "wall.png: no subject found" in stderr
    assert "2 of 2 cut-outs look doubtful" in stderr and str(report) in stderr
    with report.open(newline="") as opened:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(opened)}
    assert set(rows) == {"car.jpg", "person.jpg", "wall.png"}
    car = rows["car.jpg"]
    assert car["model"] == "u2netp" and car["doubtful"] == "true" and car["error"] == ""
    assert 0 < float(car["confidence"]) <= 1 and Path(car["output"]).exists()
    wall = rows["wall.png"]
    assert wall["output"] == "" and wall["confidence"] == "" and "no subject" in wall["error"]
    assert not (out / "wall.png").exists()  # never an empty cut-out


def test_a_json_report_with_model_auto(tmp_path: Path, mixed_folder: Path) -> None:
    (mixed_folder / "wall.png").unlink()
    report = tmp_path / "sub" / "report.json"
    done = run("remove", str(mixed_folder), "--out-dir", str(tmp_path / "out"), "-m", "auto",
               "--report", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "look doubtful" not in done.stderr.decode()  # two clear photos
    rows = json.loads(report.read_text())
    assert len(rows) == 2
    for row in rows:
        assert row["model"] in ("isnet-general-use", "u2netp") and row["error"] is None
        assert 0.7 < row["confidence"] <= 1 and row["doubtful"] is False


def test_a_report_file_that_is_neither_csv_nor_json_is_refused_before_any_work(
    tmp_path: Path, photo: Path
) -> None:
    done = run("remove", str(photo), "-o", str(tmp_path / "out.png"), "--report",
               str(tmp_path / "report.txt"))  # fmt: skip
    assert done.returncode == 2
    assert "--report" in done.stderr.decode() and not (tmp_path / "out.png").exists()


def test_a_csv_report_never_hands_a_spreadsheet_a_formula(tmp_path: Path, photo: Path) -> None:
    shutil.copy(photo, tmp_path / "=HYPERLINK(1).jpg")
    done = run("remove", "=HYPERLINK(1).jpg", "-m", "fast", "--report", "r.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "r.csv").open(newline="") as opened:
        (row,) = list(csv.DictReader(opened))
    assert row["input"] == "'=HYPERLINK(1).jpg" and row["output"].startswith("'=HYPERLINK")
    assert row["doubtful"] in ("true", "false")


def test_a_report_into_a_folder_is_refused_before_any_work(tmp_path: Path, photo: Path) -> None:
    (tmp_path / "r.csv").mkdir()
    done = run(
        "remove", str(photo), "-o", str(tmp_path / "o.png"), "--report", str(tmp_path / "r.csv")
    )
    assert done.returncode == 2 and not (tmp_path / "o.png").exists()


def test_clicks_and_a_box_correct_one_photo(photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    done = run("remove", str(photo), "-o", str(out), "-m", "fast",
               "--point", "5,5", "--point", "240,200:bg")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    alpha = np.asarray(_image(out).getchannel("A"))
    assert alpha[5, 5] == 255 and alpha[200, 240] == 0
    boxed = tmp_path / "boxed.png"
    done = run("remove", str(photo), "-o", str(boxed), "-m", "fast", "--box", "100,80,280,250")
    assert done.returncode == 0, done.stderr.decode()
    alpha = np.asarray(_image(boxed).getchannel("A"))
    assert not alpha[:80].any() and not alpha[:, 380:].any() and alpha.any()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--point", "1,2:sideways"], 2, "unknown point label"),
        (["--point", "1;2"], 2, "a point is x,y"),
        (["--box", "1,2,3"], 2, "a box is x,y,width,height"),
        (["--box", "0,0,0,5"], 2, "a width and height > 0"),
        # checked against the decoded photo before the model loads (issue 27)
        (["--point", "480,0"], 2, "point (480, 0) is outside the photo (480x360"),
        (["--box", "400,300,100,100"], 2, "inside the photo (480x360)"),
    ],
)
def test_bad_clicks_and_boxes_are_said(
    photo: Path, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    done = run("remove", str(photo), "-o", str(tmp_path / "out.png"), "-m", "fast", *args)
    assert done.returncode == code, done.stderr.decode()
    assert says in done.stderr.decode() and "Traceback" not in done.stderr.decode()


def test_clicks_take_one_input(photos: Path, tmp_path: Path) -> None:
    done = run("remove", str(photos), "--out-dir", str(tmp_path / "out"), "--point", "1,1")
    assert done.returncode == 2
    assert "give one input" in done.stderr.decode()


def test_eval_counts_the_clicks_a_simulated_user_needs(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    davis = shared / "evaldata" / "davis345"
    done = run("eval", str(davis), "-m", "fast", "--limit", "2", "--clicks", "3",
               "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert "Correcting with clicks" in done.stdout.decode()
    (report,) = json.loads(out.read_text())["clicks"]
    assert report["count"] == 2 and report["max_clicks"] == 3
    assert 0 <= report["noc90"] <= 3 and report["iou_after"]["5"] >= report["iou_before"] - 0.1
    for image in json.loads(out.read_text())["images"]:
        assert 1 <= len(image["clicks"]["ious"]) <= 4
