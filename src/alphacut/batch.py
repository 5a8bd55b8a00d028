"""Many photos at the model's speed: the small pipeline behind ``alphacut remove FOLDER``.

Removing a background is three kinds of work: *load* (read and decode the file), *model*
(the segmentation model's pass, which already keeps ``inference_threads`` busy) and *finish*
(compose the cut-out, encode it, write it). Done one after another, the model waits while
each photo is decoded and encoded. Here they overlap, three photos at a time::

    load thread    photo N+1   (decoding, or decoded and waiting)
    main thread    photo N     (in the model)
    finish thread  photo N-1   (composed, encoded, written)

- Two single-worker thread pools and the calling thread; no queues to size or drain. The
  decode of the next photo is submitted when the model takes the current one, and the finish
  of photo N is submitted only once photo N-1's finish is done, so at most two photos are in
  memory beside the one in the model, whatever the size of the folder or of its photos.
- Decoding, composing and encoding are numpy/Pillow/zlib work that mostly releases the GIL,
  and so does the model's runtime: the threads really run side by side.
- The model already keeps ``inference_threads`` cores busy (all of them by default), so the
  two helper threads mostly fill its gaps. On Linux they run at a lower priority (nice +10,
  for those threads alone), so that they take the cores the model leaves idle rather than
  slowing the model down. On the 2-core development machine (fast model, 20 photos at 1 MP,
  one process, medians of 5 interleaved runs on an otherwise idle machine): 5.49 s one after
  another, 5.15 s in this pipeline at equal priority, 5.09 s with it; the model's stage alone
  4.14 s. With cores to spare (a GPU, or fewer inference threads than cores) the pipeline
  runs at the model's speed: with one inference thread, 8.3 s against 8.2 s (equal priority).
- Outcomes are reported on the calling thread, in input order, one per job: a result, or the
  failure (one of the ``expected`` exception types) of the first stage that failed; the other
  jobs go on. Any other exception is a bug: it ends the batch, raised on the calling thread.
- Ctrl-C reaches the calling thread; the photo being finished is completed (its file is
  written atomically, so no half-written output exists either way) and reported, the one
  being loaded is dropped, and the interrupt goes on up.
- One job runs inline on the calling thread: nothing to overlap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Job = TypeVar("Job")
Loaded = TypeVar("Loaded")
Predicted = TypeVar("Predicted")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Outcome(Generic[Job, Result]):
    """What became of one job: its result, or the error that stopped it."""

    job: Job
    result: Result | None = None
    error: BaseException | None = None


def _give_way_to_the_model() -> None:
    """Lower this thread's priority (Linux's nice is per thread; elsewhere: nothing)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def run_pipeline(
    jobs: Sequence[Job],
    load: Callable[[Job], Loaded],
    model: Callable[[Job, Loaded], Predicted],
    finish: Callable[[Job, Loaded, Predicted], Result],
    report: Callable[[Outcome[Job, Result]], None],
    expected: tuple[type[BaseException], ...],
) -> None:
    """Run ``finish(job, loaded, model(job, loaded))`` with ``loaded = load(job)`` for every
    job, ``load`` and ``finish`` on their own threads and ``model`` on this one, overlapped
    as the module docstring says; ``report`` is called here, in order, once per job."""
    if not jobs:
        return
    if len(jobs) == 1:
        job = jobs[0]
        try:
            loaded = load(job)
            result = finish(job, loaded, model(job, loaded))
        except expected as exc:
            report(Outcome(job, error=exc))
        else:
            report(Outcome(job, result))
        return

    loader = ThreadPoolExecutor(1, "alphacut-load", initializer=_give_way_to_the_model)
    finisher = ThreadPoolExecutor(1, "alphacut-finish", initializer=_give_way_to_the_model)

    def settle(job: Job, future: Future[Result]) -> Outcome[Job, Result]:
        try:
            return Outcome(job, future.result())
        except expected as exc:
            return Outcome(job, error=exc)

    behind: tuple[Job, Future[Result]] | None = None  # photo N-1, being finished
    try:
        ahead = loader.submit(load, jobs[0])
        for index, job in enumerate(jobs):
            current = ahead  # photo N, loaded (or being loaded) while N-1 was in the model
            if index + 1 < len(jobs):
                ahead = loader.submit(load, jobs[index + 1])
            failed: Outcome[Job, Result] | None = None
            try:
                loaded = current.result()
                predicted = model(job, loaded)
            except expected as exc:
                failed = Outcome(job, error=exc)
            if behind is not None:  # before photo N's finish starts: at most one at a time
                settled, behind = settle(*behind), None  # never reported twice
                report(settled)
            if failed is not None:
                report(failed)
            else:
                behind = (job, finisher.submit(finish, job, loaded, predicted))
        if behind is not None:
            settled, behind = settle(*behind), None
            report(settled)
    except KeyboardInterrupt:
        # The photo being finished is completed (its file written): reported, so that the
        # count an interrupted run prints is what was written.
        loader.shutdown(wait=True, cancel_futures=True)
        finisher.shutdown(wait=True)
        if behind is not None:
            report(settle(*behind))
        raise
    finally:
        # Normally both are idle here; after an interrupt or a bug, the photo being
        # finished is completed and the one not yet loaded is dropped.
        loader.shutdown(wait=True, cancel_futures=True)
        finisher.shutdown(wait=True)  # one photo at most, submitted or running: completed
