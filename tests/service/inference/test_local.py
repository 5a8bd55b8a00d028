"""Inference behind its port: data-only jobs, removers made once, only model work in the
model's slot, models loaded at start-up and /readyz until they are."""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from alphacut.config import Settings
from alphacut.engine import pipeline
from alphacut.engine.effects import Effects, Length
from alphacut.engine.outputs import OutputSpec
from alphacut.engine.pipeline import Remover
from alphacut.errors import NotFoundError
from alphacut.service.inference.local import LocalInference
from alphacut.service.inference.port import InferenceJob
from alphacut.service.work import WorkQueue
from alphacut.storage.blobs import LocalBlobStore
from servers import Server


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalInference]:
    settings = Settings(data_dir=tmp_path, load_models=[])
    image_queue = WorkQueue("image", 2, 4, 1, timeout=60)
    inference_queue = WorkQueue("inference", 1, 4, 1, timeout=60)
    blobs = LocalBlobStore(tmp_path / "blobs")
    yield LocalInference(settings, blobs, image_queue, inference_queue)
    image_queue.shutdown()
    inference_queue.shutdown()


def test_a_job_is_plain_data(photo: Path) -> None:
    job = InferenceJob(
        model="fast",
        data=photo.read_bytes(),
        outputs=(OutputSpec("cutout", "webp", 80), OutputSpec("binary_mask", "png")),
        effects=Effects(crop=True, crop_margin=(Length(5, relative=True),)),
    )
    assert pickle.loads(pickle.dumps(job)) == job  # noqa: S301 - our own bytes
    by_key = InferenceJob(model="precise", blob_key="images/ab/image_ab.png", pixels=1000)
    assert pickle.loads(pickle.dumps(by_key)) == by_key  # noqa: S301 - our own bytes


def test_outputs_come_back_encoded_in_the_order_asked(local: LocalInference, photo: Path) -> None:
    specs = (
        OutputSpec("cutout", "png"),
        OutputSpec("binary_mask", "png"),
        OutputSpec("background", "jpeg", 90, background="#ff0000"),
        OutputSpec("mask", "webp"),
    )
    result = local.submit(InferenceJob(model="fast", data=photo.read_bytes(), outputs=specs))
    cut, binary, red, mask = (Image.open(io.BytesIO(out.data)) for out in result.outputs)
    assert (cut.mode, cut.format, cut.size) == ("RGBA", "PNG", (result.width, result.height))
    assert set(np.unique(np.asarray(binary))) <= {0, 255}
    assert red.format == "JPEG" and red.mode == "RGB"
    assert mask.format == "WEBP"
    alpha = np.asarray(cut)[..., 3]
    assert (np.asarray(binary) == np.where(alpha >= 128, 255, 0)).all()
    assert (result.model, result.refine) == ("fast", "edges")
    for stage in ("decode", "inference", "compose", "encode"):
        assert result.timings[stage] > 0


def test_the_result_is_the_librarys(local: LocalInference, photo: Path) -> None:
    """The port adds no processing of its own: the same pixels as Remover.remove."""
    result = local.submit(InferenceJob(model="fast", data=photo.read_bytes()))
    direct = Remover("fast", settings=local.settings).remove(photo.read_bytes())
    served = np.asarray(Image.open(io.BytesIO(result.outputs[0].data)))
    assert (served == direct.array).all()


def test_removers_are_made_once_per_model_and_refinement(
    local: LocalInference, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str, str | None]] = []
    original = Remover.__init__

    def counting(self: Remover, model: str | None = None, **kwargs: Any) -> None:
        made.append((str(model), kwargs.get("refine")))
        original(self, model, **kwargs)

    monkeypatch.setattr(Remover, "__init__", counting)
    for _ in range(3):
        local.submit(InferenceJob(model="fast", data=photo.read_bytes()))
    local.submit(InferenceJob(model="fast", refine="none", data=photo.read_bytes()))
    assert made == [("fast", None), ("fast", "none")]


def test_only_model_work_holds_the_model_slot(
    local: LocalInference, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding, resizing to and from the model's size, refining, composing and encoding run
    while the model's queue is empty (its one slot free); the model's pass alone holds it."""
    seen: dict[str, list[int]] = {}

    def watch(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def watching(*args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, []).append(local.inference_queue.pending)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, watching)

    remover = local.remover("fast")
    loaded = remover.load()
    watch(type(loaded), "run")
    watch(remover, "compose")
    for stage in ("preprocess", "to_mask", "firm_alpha"):
        watch(pipeline, stage)
    watch(Image, "open")
    local.submit(InferenceJob(model="fast", data=photo.read_bytes()))
    assert seen == {
        "open": [0],
        "preprocess": [0],
        "run": [1],
        "to_mask": [0],
        "firm_alpha": [0],
        "compose": [0],
    }


def test_each_model_pass_takes_the_slot_on_its_own(
    local: LocalInference, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """consensus runs two models: two passes, each in the slot, the work between outside."""
    pending: list[int] = []
    for kind in {type(local.remover("precise").load()), type(local.remover("fast").load())}:
        original = kind.run

        def watching(self: Any, tensor: Any, _original: Any = original) -> Any:
            pending.append(local.inference_queue.pending)
            return _original(self, tensor)

        monkeypatch.setattr(kind, "run", watching)
    local.submit(InferenceJob(model="precise", refine="consensus", data=photo.read_bytes()))
    assert pending == [1, 1]
    assert local.inference_queue.pending == 0


def test_a_stored_image_deleted_before_its_turn_is_a_404(local: LocalInference) -> None:
    with pytest.raises(NotFoundError, match="deleted"):
        local.submit(InferenceJob(model="fast", blob_key="images/ab/image_gone.png", pixels=10))


def test_a_job_needs_exactly_one_input(local: LocalInference, photo: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        local.submit(InferenceJob(model="fast"))
    with pytest.raises(ValueError, match="exactly one"):
        local.submit(InferenceJob(model="fast", data=b"x", blob_key="images/ab/image_ab.png"))


def test_models_load_at_start_up_and_readyz_waits_for_them(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    loading = threading.Event()
    original = Remover.load

    def slow_load(self: Remover) -> Any:
        loading.set()
        release.wait(30)
        return original(self)

    monkeypatch.setattr(Remover, "load", slow_load)
    server: Server = make_server(load_models=["fast"], wait_for_models=False)
    assert loading.wait(30), "the model was not loaded at start-up"
    with server.client() as client:
        waiting = client.get("/readyz")
        assert waiting.status_code == 503 and waiting.json()["checks"]["model"] == "loading"
        assert client.get("/healthz").status_code == 200
        release.set()
        for _ in range(300):
            ready = client.get("/readyz")
            if ready.status_code == 200:
                break
            threading.Event().wait(0.1)
        assert ready.status_code == 200 and ready.json()["checks"]["model"] == "ok"


def test_a_job_is_costed_from_what_was_decoded_when_it_understates_its_size(
    tmp_path: Path, photo: Path
) -> None:
    """A stored image's job says its pixels (a fleet job's payload could lie): what decodes
    is costed again before the model runs, 413 when it could never fit (review of issue 23:
    a size the header hid or a payload understated held nothing of the budget)."""
    from alphacut.errors import ImageTooLargeError
    from alphacut.service.memory import MB, MemoryBudget

    settings = Settings(data_dir=tmp_path, load_models=[])
    budget = MemoryBudget(300 * MB, 1, 1)  # the model fits; a 3 MP job with it does not
    image_queue = WorkQueue("image", 2, 4, 1, timeout=60, budget=budget)
    inference_queue = WorkQueue("inference", 1, 4, 1, timeout=60, budget=budget)
    blobs = LocalBlobStore(tmp_path / "blobs")
    big = io.BytesIO()
    Image.open(photo).convert("RGB").resize((2000, 1500)).save(big, "JPEG")
    blobs.put("images/ab/image_ab.jpg", big.getvalue())
    local = LocalInference(settings, blobs, image_queue, inference_queue, budget)
    try:
        with pytest.raises(ImageTooLargeError):
            local.submit(InferenceJob(model="fast", blob_key="images/ab/image_ab.jpg", pixels=1))
        assert budget.held == 0
    finally:
        image_queue.shutdown()
        inference_queue.shutdown()
