"""Progress display for Dask computations started by the CLI and the pipeline runner.

:func:`compute` is :func:`dask.compute` with a progress bar on stderr: tasks
done out of tasks in the graph, drawn with rich once the work has run for a
second.  With a distributed client active the counts come from the scheduler;
otherwise from a Dask callback on the local scheduler.  When stderr is not a
terminal (batch jobs, pipes) it prints a plain line every 30 s and a last one
at the end, and nothing for work shorter than that.  ``POPGEN_PROGRESS=0``
turns it off.  Library code computes nothing, so it never calls this.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

ENV_VAR = "POPGEN_PROGRESS"


def progress_enabled() -> bool:
    """False when ``POPGEN_PROGRESS`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def compute(*collections: Any, label: str = "computing", progress: bool = True, scheduler=None) -> tuple:
    """Compute Dask collections like :func:`dask.compute`, showing progress on stderr.

    Parameters
    ----------
    *collections
        Dask collections (arrays, dataframes, delayed, xarray objects); other
        objects are passed through, as with :func:`dask.compute`.
    label
        Text in front of the bar, e.g. ``"qc"`` or ``"pca: fit"``.
    progress
        False computes silently (so does ``POPGEN_PROGRESS=0``).
    scheduler
        As for :func:`dask.compute`; None uses the active distributed client
        if there is one, else Dask's default (threaded) scheduler.

    Returns
    -------
    tuple
        One computed value per collection, like :func:`dask.compute`.
    """
    import dask

    from popgen.backend import blas_for

    display = _Display(label) if progress and progress_enabled() else None
    try:
        client = _active_client(scheduler)
        if client is not None:  # its workers' BLAS runs single-threaded already
            if display is None:
                return dask.compute(*collections, scheduler=scheduler)
            return _compute_distributed(client, collections, display)
        with blas_for(scheduler):
            if display is None:
                return dask.compute(*collections, scheduler=scheduler)
            with _task_callback(display):
                return dask.compute(*collections, scheduler=scheduler)
    finally:
        if display is not None:
            display.close()


def _active_client(scheduler):
    """The distributed client ``scheduler`` (or the default one) means, else None."""
    if "distributed" not in sys.modules:  # no client can exist without it
        return None
    from distributed import Client, default_client

    if isinstance(scheduler, Client):
        return scheduler
    if scheduler is not None:
        return None
    import dask

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None  # e.g. dask.config.set(scheduler="sync") inside a client block
    try:
        return default_client()
    except ValueError:
        return None


def _compute_distributed(client, collections, display) -> tuple:
    import dask
    from distributed.diagnostics.progressbar import TextProgressBar

    class _Bar(TextProgressBar):
        def _draw_bar(self, remaining, all, **kwargs):
            display.update(all - remaining, all)

        def _draw_stop(self, **kwargs):
            pass

    which = [i for i, c in enumerate(collections) if dask.is_dask_collection(c)]
    futures = client.compute([collections[i] for i in which])
    try:
        if futures:
            # Blocks until every task is done or one fails; gather then raises its error.
            _Bar(futures, scheduler=client.scheduler.address, interval="200ms", loop=client.loop)
        values = client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    out = list(collections)
    for i, v in zip(which, values):
        out[i] = v
    return tuple(out)


def _task_callback(display):
    """A Dask callback reporting (finished, total) tasks of the local scheduler."""
    from dask.callbacks import Callback

    def posttask(key, result, dsk, state, worker_id):
        done = len(state["finished"])
        display.update(done, done + len(state["ready"]) + len(state["waiting"]) + len(state["running"]))

    return Callback(start_state=lambda dsk, state: posttask(None, None, dsk, state, None), posttask=posttask)


class _Display:
    """A rich bar on a terminal, occasional plain lines otherwise; silent for short work."""

    def __init__(self, label: str, *, delay: float = 1.0, every: float = 30.0, stream=None):
        self.label, self.delay, self.every = label, delay, every
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.start = self._last = time.monotonic()
        self.done = self.total = 0
        self._lines = 0
        self._progress = self._task = None
        self._lock = threading.Lock()

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.start < self.delay or now - self._last < (0.1 if self.tty else self.every):
            return
        with self._lock:
            self._last = now
            if self.tty:
                self._draw()
            else:
                self._line(now)

    def _draw(self) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tasks {task.fields[elapsed]}"),
                console=Console(file=self.stream),
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, elapsed="")
        elapsed = f"{time.monotonic() - self.start:.0f}s"
        self._progress.update(self._task, completed=self.done, total=self.total, elapsed=elapsed)

    def _line(self, now: float, final: str = "") -> None:
        pct = f"{100 * self.done // self.total}%" if self.total else "-"
        text = f"{self.label}: {pct} ({self.done}/{self.total} tasks) {now - self.start:.0f}s{final}\n"
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is not worth a crash
            return
        self._lines += 1

    def close(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._draw()
                self._progress.stop()
            elif self._lines:
                self._line(time.monotonic(), ", finished" if self.done == self.total else ", stopped")
