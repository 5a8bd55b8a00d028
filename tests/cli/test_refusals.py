"""Every refusal that can be made before a model loads is made before it, with exit 2 (issue
27): run in-process with the model's load and prediction replaced by ones that fail the test,
so that a refusal that came after the model started would show as a wrong exit code and a
recorded call. One case (or a table of cases) per class of mistake."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from alphacut.cli import app
from alphacut.cli.remove import output_format
from alphacut.engine.pipeline import Remover
from alphacut.errors import InvalidInputError


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model's load and prediction, recorded and failed: a refusal must come first."""
    calls: list[str] = []

    def used(name: str) -> object:
        def stand_in(self: Remover, *args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"the model was {name} before the refusal")

        return stand_in

    monkeypatch.setattr(Remover, "load", used("loaded"))
    monkeypatch.setattr(Remover, "predict", used("run"))
    return calls


@pytest.fixture
def photos(tmp_path: Path, photo: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "car.jpg")
    shutil.copy(photo, folder / "car2.jpg")
    return folder


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def said(result: Result) -> str:
    return " ".join(result.stderr.split())  # one line, however the console wrapped it


def refused(result: Result, calls: list[str], words: str) -> None:
    assert result.exit_code == 2, (words, result.exit_code, result.stderr, result.exception)
    assert words in said(result), said(result)
    assert calls == [], "the model was used before the refusal"
    assert "Traceback" not in result.stderr


# remove: options, formats, paths, hints, models -------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["-o", "{out}/a.png", "--out-dir", "{out}"], "either -o or --out-dir"),
        (["--mask", "--bg", "red"], "either --mask or --bg"),
        (["--bg", "notacolour"], "colour"),
        (["-f", "jpg", "--bg", "#ff000080"], "translucent"),
        (["--crop", "--crop-margin", "garbage"], "margin"),
        (["-f", "gif"], "unsupported output format 'gif'"),
        (["--report", "{out}/report.txt"], "name a .csv or a .json file"),
        (["--point", "1;2"], "a point is x,y"),
        (["--box", "1,2,3"], "a box is x,y,width,height"),
        (["-m", "huge"], "unknown model 'huge'"),
        (["-m", "auto", "-r", "edges"], "model auto chooses between two models"),
        (["-m", "fast", "-r", "consensus"], "consensus needs a second model to check u2netp"),
        (["-r", "sharpen"], "'sharpen' is not one of"),
        (["-q", "0"], "--quality"),
    ],
)
def test_options_are_refused_before_the_model(
    photos: Path, tmp_path: Path, model_calls: list[str], options: list[str], words: str
) -> None:
    args = [arg.replace("{out}", str(tmp_path / "out")) for arg in options]
    refused(invoke("remove", photos / "car.jpg", *args), model_calls, words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fmt", "name", "expected"),
    [
        (None, "x.png", "png"),
        (None, "x.PNG", "png"),
        (None, "x.jpg", "jpeg"),
        (None, "x.jpeg", "jpeg"),
        (None, "x.JPEG", "jpeg"),
        (None, "x.webp", "webp"),
        (None, "x", "png"),  # no suffix: PNG, or -f
        ("webp", "x", "webp"),
        ("png", "x.png", "png"),
        ("jpg", "x.jpg", "jpeg"),
        ("jpeg", "x.jpg", "jpeg"),
        ("jpg", "x.jpeg", "jpeg"),
        ("JPG", "x.JPG", "jpeg"),
        ("webp", "x.webp", "webp"),
        ("webp", None, "webp"),  # stdout, --out-dir: -f alone
        (None, None, "png"),
    ],
)
def test_the_suffix_and_format_agree(fmt: str | None, name: str | None, expected: str) -> None:
    assert output_format(fmt, Path(name) if name else None) == expected


FORMATS = ("png", "jpg", "jpeg", "webp")
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MISMATCHES = [
    (fmt, suffix)
    for fmt in FORMATS
    for suffix in SUFFIXES
    if {fmt, suffix[1:]} not in ({"jpg", "jpeg"},) and fmt != suffix[1:]
]


@pytest.mark.parametrize(("fmt", "suffix"), MISMATCHES)
def test_a_format_that_contradicts_the_suffix_is_refused(
    photos: Path, tmp_path: Path, model_calls: list[str], fmt: str, suffix: str
) -> None:
    target = tmp_path / f"x{suffix}"
    result = invoke("remove", photos / "car.jpg", "-f", fmt, "-o", target)
    refused(result, model_calls, f"-f {fmt} writes")
    assert f"ends in {suffix}" in said(result) and "leave -f out" in said(result)
    assert not target.exists()


@pytest.mark.parametrize("name", ["x.gif", "x.txt", "x.png.bak"])
def test_a_suffix_that_is_no_output_format_is_refused(
    photos: Path, tmp_path: Path, model_calls: list[str], name: str
) -> None:
    result = invoke("remove", photos / "car.jpg", "-o", tmp_path / name)
    refused(result, model_calls, "is none of them")
    with pytest.raises(InvalidInputError, match="name it"):
        output_format("webp", Path(name))


def test_paths_are_refused_before_the_model(
    photos: Path, tmp_path: Path, model_calls: list[str]
) -> None:
    car = photos / "car.jpg"
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.csv").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    cases: list[tuple[list[str | Path], str]] = [
        (["remove", tmp_path / "nothing.jpg"], "no such file or directory"),
        (["remove", tmp_path / "empty"], "no JPEG, PNG"),
        (["remove", photos, "-o", tmp_path / "x.png"], "-o names one output file"),
        (["remove", car, "-o", tmp_path / "no" / "x.png"], "does not exist"),
        (["remove", car, "-o", photos], "that is a folder"),
        (["remove", car, "--out-dir", tmp_path / "afile"], "is a file, not a folder"),
        (["remove", car, "--out-dir", tmp_path / "afile" / "sub"], "is a file, not a folder"),
        (["remove", car, "-o", car], "refusing to overwrite the input"),
        (["remove", "-", car], "cannot be combined"),
        (["remove", "-", "--out-dir", tmp_path], "not --out-dir, with '-'"),
        (["remove", car, "--report", tmp_path / "empty.csv"], "is a folder"),
        (["remove", car, tmp_path / "out.png"], "did you mean"),
    ]
    for args, words in cases:
        refused(invoke(*args), model_calls, words)


def test_an_output_that_would_replace_an_input_in_a_folder_run(
    photos: Path, model_calls: list[str]
) -> None:
    # --out-dir beside a PNG input: car.png's output is car.png itself
    Image.new("RGB", (8, 8)).save(photos / "flat.png")
    refused(
        invoke("remove", photos / "flat.png", photos / "car.jpg", "--out-dir", photos),
        model_calls,
        "refusing to overwrite the input",
    )


def test_a_folder_that_cannot_be_written_is_refused_before_the_model(
    photos: Path, tmp_path: Path, model_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # (chmod does not stop root, which runs these tests: the permission check is stood in)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real(p, mode))
    car = photos / "car.jpg"
    refused(invoke("remove", car, "-o", locked / "x.png"), model_calls, "cannot write into")
    refused(invoke("remove", car, "--out-dir", locked / "new"), model_calls, "cannot write into")
    shutil.copy(car, locked / "car.jpg")
    refused(invoke("remove", locked / "car.jpg"), model_calls, "beside the inputs")


def test_hints_that_do_not_fit_the_photo_are_refused_before_the_model(
    photos: Path, tmp_path: Path, model_calls: list[str]
) -> None:
    car, out = photos / "car.jpg", tmp_path / "out.png"
    refused(invoke("remove", car, "-o", out, "--point", "480,0"), model_calls, "(480, 0)")
    refused(invoke("remove", car, "-o", out, "--box", "400,300,100,100"), model_calls, "inside")
    refused(invoke("remove", photos, "--point", "1,1"), model_calls, "give one input")


def test_a_photo_too_wide_for_the_format_is_refused_before_the_model(
    tmp_path: Path, model_calls: list[str]
) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGB", (20_000, 2)).save(wide)
    result = invoke("remove", wide, "-f", "webp")
    refused(result, model_calls, "16,383 pixels on a side")
    assert str(wide) in said(result)


# the other commands ----------------------------------------------------------------------


@pytest.fixture
def no_install(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from alphacut.models.install import ModelInstaller

    calls: list[str] = []

    def install(self: ModelInstaller, names: object) -> None:
        calls.append("install")
        raise AssertionError("installing began before the refusal")

    monkeypatch.setattr(ModelInstaller, "install", install)
    return calls


def test_models_install_refuses_its_arguments_first(tmp_path: Path, no_install: list[str]) -> None:
    fetched = tmp_path / "m.onnx"
    fetched.write_bytes(b"x")
    refused(invoke("models", "install", "no-such-model"), no_install, "unknown model")
    refused(invoke("models", "install", "u2net", "--from", tmp_path / "no"), no_install, "no such")
    refused(
        invoke("models", "install", "u2net", "silueta", "--from", fetched),
        no_install,
        "installs one model",
    )
    refused(invoke("models", "show", "no-such-model"), no_install, "unknown model")


@pytest.fixture
def no_eval(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import alphacut.evaluation

    calls: list[str] = []

    def evaluate(*args: object, **kwargs: object) -> None:
        calls.append("evaluate")
        raise AssertionError("scoring began before the refusal")

    monkeypatch.setattr(alphacut.evaluation, "evaluate", evaluate)
    return calls


def test_eval_refuses_its_arguments_first(tmp_path: Path, photo: Path, no_eval: list[str]) -> None:
    refused(invoke("eval", tmp_path), no_eval, "has no pairs.csv")
    shutil.copy(photo, tmp_path / "car.jpg")
    Image.new("L", (480, 360)).save(tmp_path / "car.png")
    (tmp_path / "pairs.csv").write_text("image,mask\ncar.jpg,car.png\n")
    refused(invoke("eval", tmp_path, "--runtime", "tensorrt-fp8"), no_eval, "unknown runtime")
    refused(invoke("eval", tmp_path, "-m", "huge"), no_eval, "unknown model 'huge'")
    refused(invoke("eval", tmp_path, "-m", "auto", "-r", "none"), no_eval, "runs refine consensus")
    (tmp_path / "pairs.csv").write_text("image,mask\n../car.jpg,car.png\n")
    refused(invoke("eval", tmp_path), no_eval, "outside")
