"""A run: device, Dask client, progress, timings and the ``O.log`` file.

The CLI and the pipeline runner create a :class:`Run`; library functions
never do (they take data and return data).  ``O.log`` records the command
line, versions, device, cluster and the time of every step.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from popgen.errors import PopgenError

log = logging.getLogger("popgen")

#: the command line of this process's popgen invocation (set by the CLI)
COMMAND_LINE: list[str] | None = None

_VERSIONED = ("popgen", "numpy", "dask", "distributed", "xarray", "zarr", "numba", "sgkit", "bio2zarr", "cupy-cuda12x", "dask-cuda")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class Run:
    """State of one popgen invocation; use :func:`start_run`."""

    def __init__(self, out: str, device: str, client, progress: bool):
        self.out = out
        self.device = device
        self.client = client
        self.progress = progress
        self.timings: list[tuple[str, float]] = []
        self.outputs: list[str] = []

    def compute(self, *collections, label: str = "computing"):
        """Evaluate Dask collections on this run's scheduler, with a progress bar."""
        from popgen.progress import compute

        return compute(*collections, label=label, progress=self.progress)

    @contextlib.contextmanager
    def step(self, name: str):
        log.info("step %s: started", name)
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings.append((name, dt))
        log.info("step %s: done in %.2f s", name, dt)

    def wrote(self, path) -> None:
        self.outputs.append(str(path))
        log.info("wrote %s", path)


def _setup_logging(log_path: Path | None, quiet: bool) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    root = logging.getLogger("popgen")
    root.setLevel(logging.INFO)
    root.propagate = False
    if not quiet:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(h)
    if log_path is not None:
        fh = logging.FileHandler(log_path, mode="w")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        handlers.append(fh)
    for h in handlers:
        root.addHandler(h)
    return handlers


@contextlib.contextmanager
def start_run(out, *, device: str = "auto", cluster: str = "local", progress: bool = True,
              command_line: list[str] | None = None, quiet: bool = False, threads: int | None = None):
    """Resolve the device, start the Dask client, and log to ``OUT.log``.

    Yields a :class:`Run`.  The client (if any) is closed on exit.
    """
    from popgen.backend import resolve_device
    from popgen.io.files import ensure_parent

    t0 = time.perf_counter()
    ensure_parent(out)
    handlers = _setup_logging(Path(f"{out}.log"), quiet)
    try:
        argv = command_line if command_line is not None else (COMMAND_LINE if COMMAND_LINE is not None else sys.argv[1:])
        log.info("popgen %s", shlex.join(argv))
        log.info("versions: %s", ", ".join(f"{k} {v}" for k, v in versions().items()))
        dev = resolve_device(device)
        log.info("device: %s (requested %s)", dev, device)
        if dev == "gpu" and cluster == "local":
            cluster = "local-cuda"
        from popgen.cluster import cluster_client, describe, in_process

        with cluster_client(cluster, threads_per_worker=threads) as client:
            log.info("cluster: %s", describe(client) if client is not None else in_process(cluster))
            run = Run(str(out), dev, client, progress)
            try:
                yield run
            except PopgenError as e:
                log.info("failed: %s", e)
                raise
            total = time.perf_counter() - t0
            log.info("timings: %s; total %.2f s", ", ".join(f"{n} {t:.2f} s" for n, t in run.timings), total)
    finally:
        for h in handlers:
            logging.getLogger("popgen").removeHandler(h)
            h.close()
