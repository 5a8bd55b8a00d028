"""The image operations' largest buffers and longest loops are bounded before they start.

Pillow's ``resize`` scales rows first, into an image ``size[0]`` wide and as tall as the
source box; the wrapper below records that intermediate for every call, so a test fails the
moment any operation would ask for more pixels than the limit, without allocating them.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from alphacut.engine import operations as ops
from alphacut.engine.pipeline import Remover
from alphacut.errors import ImageTooLargeError, ProcessingTimeoutError, ServiceBusyError
from alphacut.models.registry import MODELS
from alphacut.service.memory import Cost, MemoryBudget, operation_cost, removal_cost
from alphacut.service.work import WorkQueue, checkpoint

LIMIT = 2_000_000


@pytest.fixture
def largest_buffer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pixels of the largest image any resize made or would have made internally."""
    seen = [0]
    original = Image.Image.resize

    def resize(self: Image.Image, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        box = kwargs.get("box") or (args[1] if len(args) > 1 else None)
        x0, y0, x1, y1 = box or (0, 0, self.width, self.height)
        both_passes = size[0] != x1 - x0 and size[1] != y1 - y0
        intermediate = size[0] * math.ceil(y1 - y0) if both_passes else 0
        seen[0] = max(seen[0], intermediate, size[0] * size[1])
        if seen[0] > LIMIT:
            raise AssertionError(f"a resize to {size} from box {box} would exceed the limit")
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    return seen


@pytest.mark.parametrize(
    ("source", "request_"),
    [
        # The review's bomb: cover scales a 100x200 source to 9999 px wide first.
        ((100, 200), {"width": 9999, "height": 1, "fit": "cover"}),
        ((50, 1000), {"width": 9999, "height": 1, "fit": "cover"}),
        ((1000, 50), {"width": 1, "height": 9999, "fit": "cover"}),
        # Rows first would make a 9999 x 2,000,000 intermediate.
        ((1, 2_000_000), {"width": 9999, "height": 1, "fit": "fill"}),
        ((2_000_000, 1), {"width": 1, "height": 9999, "fit": "fill"}),
        ((1, 2_000_000), {"width": 9999, "height": 1, "fit": "contain"}),
        ((1000, 2000), {"width": 1999, "height": 1000, "fit": "fill"}),
    ],
)
def test_resize_never_builds_more_than_the_limit(
    largest_buffer: list[int], source: tuple[int, int], request_: dict[str, Any]
) -> None:
    image = Image.new("RGB", source, (10, 200, 30))
    result = ops.resize(image, max_pixels=LIMIT, **request_)
    assert result.size == (request_["width"], request_["height"])
    assert largest_buffer[0] <= LIMIT
    if request_["fit"] == "contain":
        return  # letterboxed: mostly background
    # The colour survives the two passes (no black edges from a box mistake); Pillow's
    # fixed-point weights lose a few levels when 2,000,000 rows average into one.
    assert np.asarray(result)[..., :3].reshape(-1, 3).mean(axis=0) == pytest.approx(
        [10, 200, 30], abs=12
    )


def test_cover_shows_the_part_its_position_names() -> None:
    left_half_red = np.zeros((100, 200, 3), np.uint8)
    left_half_red[:, :100] = (255, 0, 0)
    image = Image.fromarray(left_half_red)
    cases: list[tuple[ops.Position, bool]] = [("left", True), ("right", False)]
    for position, red in cases:
        out = ops.resize(
            image, width=50, height=50, fit="cover", position=position, max_pixels=LIMIT
        )
        assert bool(np.asarray(out)[25, 25, 0] > 200) == red


def test_output_over_the_limit_is_refused_before_any_work(largest_buffer: list[int]) -> None:
    with pytest.raises(ImageTooLargeError):
        ops.resize_size((10, 10), 9999, 9999, LIMIT)
    with pytest.raises(ImageTooLargeError):
        ops.rotate_size((1400, 1400), 45.0, LIMIT)
    assert ops.rotate_size((1400, 1000), 90.0, LIMIT) == (1000, 1400)
    assert largest_buffer[0] == 0


def _paste_reference(base: Image.Image, mark: Image.Image, left: int, top: int, rep: str) -> Any:
    """The watermark as the old code made it: one paste per tile."""

    def starts(offset: int, size: int, extent: int, repeat: bool) -> list[int]:
        if not repeat:
            return [offset]
        first = offset % size - size if offset % size else 0
        return list(range(first, extent, size))

    canvas = base.convert("RGBA")
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    for y in starts(top, mark.height, canvas.height, rep in ("repeat", "repeat_y")):
        for x in starts(left, mark.width, canvas.width, rep in ("repeat", "repeat_x")):
            layer.paste(mark, (x, y))
    return np.asarray(Image.alpha_composite(canvas, layer).convert("RGB"))


@pytest.mark.parametrize("repetition", ["no_repeat", "repeat", "repeat_x", "repeat_y"])
@pytest.mark.parametrize("offset", [(0, 0), (5, 3), (-4, -9), (295, 198), (400, 0), (-20, -20)])
def test_watermark_tiles_as_one_paste_per_tile_would(
    repetition: str, offset: tuple[int, int]
) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    mark = Image.fromarray(rng.integers(0, 255, (7, 11, 4), dtype=np.uint8))
    mine = ops.watermark(
        base,
        [ops.Watermark(mark, offset[0], offset[1], repetition=repetition)],  # type: ignore[arg-type]
        max_pixels=LIMIT,
    )
    assert (np.asarray(mine) == _paste_reference(base, mark, *offset, repetition)).all()


def test_a_tiny_repeated_watermark_is_not_pasted_per_pixel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pastes = [0]
    original = Image.Image.paste

    def paste(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        pastes[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "paste", paste)
    base = Image.new("RGB", (400, 300))
    one = Image.new("RGBA", (1, 1), (255, 0, 0, 255))
    marks = [ops.Watermark(one, repetition="repeat")] * 5
    out = ops.watermark(base, marks, max_pixels=LIMIT)
    assert np.asarray(out)[..., 0].min() == 255
    assert pastes[0] <= 5  # 120,000 pastes per mark before


def test_watermark_stops_between_marks_once_its_time_is_up() -> None:
    calls = [0]

    def step() -> None:
        calls[0] += 1
        if calls[0] > 2:
            raise ProcessingTimeoutError("stopped")

    mark = ops.Watermark(Image.new("RGBA", (4, 4), (0, 0, 0, 255)))
    with pytest.raises(ProcessingTimeoutError):
        ops.watermark(Image.new("RGB", (50, 50)), [mark] * 5, max_pixels=LIMIT, step=step)
    assert calls[0] == 3


# The work queue: costs, the memory budget and cooperative time limits ----------------------


def test_a_job_that_could_never_fit_the_budget_is_refused_before_it_runs() -> None:
    ran = []
    queue = WorkQueue("t", 1, 1, 3, timeout=10, budget=MemoryBudget(1000, 1.0, 3))
    with pytest.raises(ImageTooLargeError, match="needs about"):
        queue.run(lambda: ran.append(1), cost=Cost(1001, 0.1))
    assert ran == []
    assert queue.run(lambda: 7, cost=Cost(1000, 0.1)) == 7
    queue.shutdown()


def test_a_job_that_would_outlast_the_time_limit_is_refused_before_it_runs() -> None:
    queue = WorkQueue("t", 1, 1, 3, timeout=5, budget=MemoryBudget(1000, 1.0, 3))
    with pytest.raises(ImageTooLargeError, match="longer than the limit"):
        queue.run(lambda: None, cost=Cost(10, 6.0))
    queue.shutdown()


def test_jobs_share_the_budget_and_wait_for_memory_then_503() -> None:
    budget = MemoryBudget(1000, 0.3, 3)
    queue = WorkQueue("t", 2, 2, 3, timeout=30, budget=budget)
    release = threading.Event()
    first = threading.Thread(target=queue.run, args=(release.wait,), kwargs={"cost": Cost(800, 1)})
    first.start()
    while budget.held < 800:
        time.sleep(0.01)
    with pytest.raises(ServiceBusyError, match="memory"):
        queue.run(lambda: None, cost=Cost(300, 1))  # waits 0.3 s for memory, then 503
    waiter = threading.Thread(target=queue.run, args=(lambda: None,), kwargs={"cost": Cost(300, 1)})
    budget.wait_seconds = 30
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive()  # waiting for the first job's memory
    release.set()
    first.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    assert budget.held == 0
    queue.shutdown()


def test_memory_errors_become_a_503_and_release_the_budget() -> None:
    budget = MemoryBudget(1000, 1.0, 3)
    queue = WorkQueue("t", 1, 1, 3, timeout=10, budget=budget)

    def allocate() -> None:
        raise MemoryError

    with pytest.raises(ServiceBusyError, match="ran out of memory"):
        queue.run(allocate, cost=Cost(500, 0.1))
    assert budget.held == 0
    queue.shutdown()


def test_a_timed_out_job_stops_at_its_next_checkpoint() -> None:
    queue = WorkQueue("t", 1, 0, 3, timeout=0.3)
    outcome: list[str] = []

    def long_job() -> None:
        try:
            for _ in range(200):  # 10 s unless stopped
                time.sleep(0.05)
                checkpoint()
            outcome.append("finished")
        except ProcessingTimeoutError:
            outcome.append("stopped")
            raise

    with pytest.raises(ProcessingTimeoutError):
        queue.run(long_job)
    queue.shutdown()  # waits for the worker: it stops at the checkpoint after 0.3 s
    assert outcome == ["stopped"]


def test_costs_grow_with_pixels_and_cover_the_measured_peaks() -> None:
    # bench/memory.py measured, at 50 MP: decode 8 B/px, rotate with its output 28 B/px
    # (address space), fast+edges 50 B/px and precise+consensus 82 B/px with their sessions.
    mp50 = 50_000_000
    assert operation_cost("rotate", mp50, mp50).bytes >= 28 * mp50
    fast, precise = MODELS["u2netp"], MODELS["isnet-general-use"]
    assert removal_cost(fast, "edges", mp50, None).bytes >= 50 * mp50
    assert removal_cost(precise, "consensus", mp50, fast).bytes >= 82 * mp50
    assert (
        removal_cost(fast, "none", 1000, None).bytes < removal_cost(fast, "none", 10**6, None).bytes
    )
    # A large downloadable model is costed like the packaged model of its input size, plus
    # its own (much larger) session.
    large = removal_cost(MODELS["birefnet-general"], "none", mp50, None)
    assert large.bytes > removal_cost(precise, "none", mp50, None).bytes


def test_a_removal_of_an_extreme_shape_never_builds_more_than_the_limit(
    largest_buffer: list[int], fast: Any
) -> None:
    """The model input of a 1 x 2,000,000 px photo: Pillow's rows-first order would make a
    320 x 2,000,000 px image on the way to 320 x 320 (the engine's resize orders the passes)."""
    line = Image.new("RGB", (1, 2_000_000), (200, 30, 30))
    lenient = Remover("fast", settings=fast.settings.model_copy(update={"no_subject_share": 0.0}))
    cut = lenient.remove(line)  # a plain line has no subject: the check is off here
    assert cut.size == (1, 2_000_000)
    assert largest_buffer[0] <= LIMIT


def test_the_engine_keeps_pillows_exact_result_for_ordinary_shapes() -> None:
    from alphacut.engine.resize import resize

    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    ours = resize(photo, (320, 320), Image.Resampling.LANCZOS, threads=2)
    assert (
        np.asarray(ours) == np.asarray(photo.resize((320, 320), Image.Resampling.LANCZOS))
    ).all()


def test_cover_with_one_side_given_never_steps_past_the_source() -> None:
    """7x15 to width 489 (height rounded to 1048): the covering box came out at -1.8e-15 px
    and Pillow refused it, a 500 the contract test found."""
    from alphacut.engine.operations import resize

    out = resize(
        Image.new("RGB", (7, 15)), width=489, height=None, fit="cover",
        position="bottom-left", max_pixels=10**8,
    )  # fmt: skip
    assert out.size == (489, 1048)
