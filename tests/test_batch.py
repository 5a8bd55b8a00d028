"""alphacut.batch: the folder pipeline's behaviour with stand-in stages (no model, no timing).

The command line's use of it, with the real model, is in tests/cli/test_remove.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from alphacut.batch import Outcome, run_pipeline
from alphacut.errors import AlphacutError, InvalidInputError

EXPECTED = (AlphacutError, OSError)

BATCH_THREADS = ("alphacut-load", "alphacut-finish")  # not the servers' threads


class Recorder:
    """Stand-in stages that note which thread ran what and how many photos were in memory."""

    def __init__(self, fail: dict[tuple[str, int], BaseException] | None = None) -> None:
        self.fail = fail or {}
        self.lock = threading.Lock()
        self.held: set[int] = set()  # loaded and not finished: what a photo costs in memory
        self.most_held = 0
        self.threads: dict[str, set[str]] = {"load": set(), "model": set(), "finish": set()}
        self.outcomes: list[Outcome[int, str]] = []
        self.loaded: list[int] = []
        self.finished: list[int] = []

    def _enter(self, stage: str, job: int) -> None:
        self.threads[stage].add(threading.current_thread().name)
        error = self.fail.get((stage, job))
        if error is not None:
            self._release(job)
            raise error

    def _release(self, job: int) -> None:
        with self.lock:
            self.held.discard(job)

    def load(self, job: int) -> str:
        with self.lock:
            self.loaded.append(job)
            self.held.add(job)
            self.most_held = max(self.most_held, len(self.held))
        self._enter("load", job)
        return f"pixels{job}"

    def model(self, job: int, loaded: str) -> str:
        self._enter("model", job)
        return f"mask{job}"

    def finish(self, job: int, loaded: str, mask: str) -> str:
        self._enter("finish", job)
        self._release(job)
        with self.lock:
            self.finished.append(job)
        return f"{loaded}+{mask}"

    def run(
        self, jobs: list[int], report: Callable[[Outcome[int, str]], None] | None = None
    ) -> None:
        run_pipeline(jobs, self.load, self.model, self.finish, report or self.outcomes.append,
                     EXPECTED)  # fmt: skip


def test_every_job_is_reported_once_with_its_result() -> None:
    recorder = Recorder()
    recorder.run(list(range(30)))
    assert sorted(o.job for o in recorder.outcomes) == list(range(30))
    assert all(o.error is None and o.result == f"pixels{o.job}+mask{o.job}"
               for o in recorder.outcomes)  # fmt: skip


def test_model_on_the_calling_thread_load_and_finish_on_their_own() -> None:
    recorder = Recorder()
    recorder.run(list(range(6)))
    assert recorder.threads["model"] == {threading.current_thread().name}
    assert recorder.threads["load"].isdisjoint(recorder.threads["model"])
    assert recorder.threads["finish"].isdisjoint(
        recorder.threads["model"] | recorder.threads["load"]
    )


def test_reports_come_on_the_calling_thread() -> None:
    recorder = Recorder()
    callers: set[str] = set()

    def report(outcome: Outcome[int, str]) -> None:
        callers.add(threading.current_thread().name)

    recorder.run(list(range(5)), report)
    assert callers == {threading.current_thread().name}


def test_memory_stays_bounded_for_a_long_batch() -> None:
    recorder = Recorder()
    recorder.run(list(range(200)))
    assert recorder.most_held <= 3, "one in the model, one loaded ahead, one being finished"


class SlowFinish(Recorder):
    """A first photo whose encoding takes long: the others must wait, not pile up."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.loaded_while_stuck: list[int] = []

    def finish(self, job: int, loaded: str, mask: str) -> str:
        if job == 0:
            with self.changed:  # an unbounded pipeline would load photo 3 and more meanwhile
                self.changed.wait_for(lambda: len(self.loaded) > 3, timeout=1.0)
            self.loaded_while_stuck = list(self.loaded)
        return super().finish(job, loaded, mask)

    def load(self, job: int) -> str:
        result = super().load(job)
        with self.changed:
            self.changed.notify_all()
        return result


def test_a_slow_finish_holds_the_rest_back() -> None:
    recorder = SlowFinish()
    recorder.run(list(range(20)))
    assert recorder.loaded_while_stuck == [0, 1, 2]
    assert recorder.most_held <= 3
    assert sorted(o.job for o in recorder.outcomes) == list(range(20))


@pytest.mark.parametrize("stage", ["load", "model", "finish"])
def test_a_failure_in_any_stage_fails_that_job_alone(stage: str) -> None:
    error = InvalidInputError("damaged") if stage != "finish" else OSError(28, "No space left")
    recorder = Recorder(fail={(stage, 3): error})
    recorder.run(list(range(8)))
    failed = [o for o in recorder.outcomes if o.error is not None]
    assert [(o.job, o.error) for o in failed] == [(3, error)]
    assert sorted(o.job for o in recorder.outcomes if o.error is None) == [0, 1, 2, 4, 5, 6, 7]


def test_failures_of_first_and_last_jobs() -> None:
    recorder = Recorder(fail={("load", 0): OSError(2, "gone"), ("model", 4): OSError(5, "io")})
    recorder.run(list(range(5)))
    assert sorted(o.job for o in recorder.outcomes if o.error is not None) == [0, 4]
    assert sorted(o.job for o in recorder.outcomes if o.error is None) == [1, 2, 3]


def test_one_job_runs_inline() -> None:
    recorder = Recorder()
    recorder.run([7])
    assert [o.result for o in recorder.outcomes] == ["pixels7+mask7"]
    everyone = set().union(*recorder.threads.values())
    assert everyone == {threading.current_thread().name}
    failing = Recorder(fail={("model", 7): InvalidInputError("bad")})
    failing.run([7])
    assert [o.job for o in failing.outcomes if o.error is not None] == [7]


def test_no_jobs_reports_nothing() -> None:
    recorder = Recorder()
    recorder.run([])
    assert recorder.outcomes == []


@pytest.mark.parametrize("stage", ["load", "model", "finish"])
def test_an_unexpected_error_ends_the_batch_on_the_calling_thread(stage: str) -> None:
    recorder = Recorder(fail={(stage, 2): ValueError("a bug")})
    with pytest.raises(ValueError, match="a bug"):
        recorder.run(list(range(10)))
    assert not [t for t in threading.enumerate() if t.name.startswith(BATCH_THREADS)]


def test_an_interrupt_completes_the_photo_being_finished_and_starts_no_more() -> None:
    recorder = Recorder(fail={("model", 5): KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        recorder.run(list(range(10)))
    # Photo 4 was being finished while 5 was in the model: it is completed (write_atomic
    # makes each output whole or absent) and reported once, so that an interrupted run
    # counts what it wrote; 6 was loaded ahead and is dropped; 7 never starts.
    assert recorder.finished == [0, 1, 2, 3, 4]
    assert max(recorder.loaded) <= 6
    assert [o.job for o in recorder.outcomes] == [0, 1, 2, 3, 4]
    assert recorder.outcomes[-1].result == "pixels4+mask4"
    assert not [t for t in threading.enumerate() if t.name.startswith(BATCH_THREADS)]
