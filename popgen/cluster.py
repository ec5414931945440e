"""Dask cluster set-up for the CLI and the pipeline runner.

Library functions never create a Dask client: they build lazy graphs and leave
the choice of scheduler to whoever calls ``.compute()``.  The CLI
(``--cluster SPEC``) and the pipeline runner open one here::

    with cluster_client("local") as client:
        log.info(describe(client))
        result = popgen.progress.compute(stat, label="qc")

``SPEC`` is one of

=====================  ==========================================================
``none``               no distributed client: Dask's in-process threaded scheduler
``local`` (default)    process-based ``LocalCluster`` sized to this machine (one
                       worker's worth of cores: in-process threads, see below)
``local-cuda``         ``dask_cuda.LocalCUDACluster``, one worker per GPU
``slurm``              ``dask_jobqueue.SLURMCluster`` from the ``slurm.yaml`` profile
``KIND:NAME``          profile ``NAME.yaml`` of that kind, e.g. ``slurm:bigmem``
``path/to/file.yaml``  a profile file (its ``kind:`` key says which cluster)
``tcp://HOST:PORT``    an already running scheduler (also ``tls://``, ``ucx://``)
=====================  ==========================================================

Profiles are YAML files sharing one schema (:class:`LocalProfile`,
:class:`LocalCUDAProfile`, :class:`SlurmProfile`, told apart by ``kind:``).
A name is looked up as ``NAME.yaml`` first in the current directory, then in
the repository's ``configs/cluster/``.  ``local`` and ``local-cuda`` fall back
to built-in defaults when no such file exists; ``slurm`` needs one.

Sizing of ``local``: about four threads per worker process
(``n_workers = max(1, round(cores / 4))``, ``threads = cores // n_workers``)
and the machine's memory split evenly between workers.  Where that is one
worker (up to 5 cores) and no profile or option sets ``n_workers`` (nor a
profile ``memory_limit`` or ``local_directory``, which only a worker has), the tasks
run on the in-process threaded scheduler instead: the same threads without a
scheduler, a worker event loop and every result copied between processes
(on two cores a LocalCluster doubled QC's time and tripled the PCA's).  Our tasks are NumPy,
BLAS and Numba kernels that release the GIL, and Dask's nannies pin BLAS to one
thread per worker thread, so threads use the cores well; the glue around them
(sgkit/xarray, task bookkeeping, VCF parsing) holds the GIL, which is why a
process gets four threads rather than all of them.  Few processes keep
per-worker memory large enough for sample-wide blocks (a 10 000-variant by
100 000-sample float32 block is 4 GB) and avoid copying blocks between
processes in tree reductions.  Cores are counted with
:func:`dask.system.cpu_count` (CPU affinity, as set by SLURM or ``taskset``,
and cgroup quotas), memory with :func:`distributed.system.memory_limit`
(psutil total, capped by cgroup and RLIMIT_RSS limits).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from popgen.errors import PopgenError

if TYPE_CHECKING:  # pragma: no cover
    import distributed

#: The repository's profile directory (``configs/`` sits next to the package).
REPO_PROFILE_DIR = Path(__file__).resolve().parents[1] / "configs" / "cluster"

KINDS = ("local", "local-cuda", "slurm")
ADDRESS_SCHEMES = ("tcp://", "tls://", "ucx://")
VALID_SPECS = "none, local, local-cuda, slurm, KIND:NAME (e.g. slurm:bigmem), PATH.yaml, tcp://HOST:PORT"

#: Threads per worker process targeted by the ``local`` sizing (see module docstring).
THREADS_PER_LOCAL_WORKER = 4

# Where each client came from (profile path), for describe(); weak so closed clients go.
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- profiles


@functools.lru_cache(maxsize=1)
def _profile_models() -> dict[str, type]:
    """The pydantic models by kind, built on first use so importing this module stays cheap."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    def _size(v):
        from dask.utils import parse_bytes

        if v is None or v == "auto":
            return v
        if not isinstance(v, str):
            raise ValueError("must be a size such as '16GB'")
        try:
            parse_bytes(v)
        except (ValueError, TypeError):
            raise ValueError(f"{v!r} is not a size such as '16GB'") from None
        return v

    class _Profile(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class LocalProfile(_Profile):
        """``kind: local``: a process-based ``distributed.LocalCluster``."""

        kind: Literal["local"]
        n_workers: int | None = Field(None, ge=1)
        threads_per_worker: int | None = Field(None, ge=1)
        memory_limit: str | None = None  # per worker; None = machine memory / n_workers
        local_directory: str | None = None

        _check_memory = field_validator("memory_limit")(_size)

    class LocalCUDAProfile(_Profile):
        """``kind: local-cuda``: ``dask_cuda.LocalCUDACluster``, one worker per GPU."""

        kind: Literal["local-cuda"]
        n_workers: int | None = Field(None, ge=1)  # None = one per visible GPU
        threads_per_worker: int = Field(1, ge=1)
        visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES, e.g. "0,1"
        memory_limit: str | None = None  # host memory per worker; None = "auto"
        device_memory_limit: str | float | None = None  # spill device->host above this
        rmm_pool_size: str | None = None
        local_directory: str | None = None

        _check_memory = field_validator("memory_limit", "rmm_pool_size")(_size)

        @field_validator("device_memory_limit")
        @classmethod
        def _check_device_memory(cls, v):
            return v if isinstance(v, float) else _size(v)

    class AdaptSpec(_Profile):
        minimum_jobs: int = Field(0, ge=0)
        maximum_jobs: int = Field(..., ge=1)

    class SlurmProfile(_Profile):
        """``kind: slurm``: ``dask_jobqueue.SLURMCluster`` (keys are its keyword arguments)."""

        kind: Literal["slurm"]
        queue: str | None = None
        account: str | None = None
        cores: int = Field(..., ge=1)
        processes: int | None = Field(None, ge=1)
        memory: str
        walltime: str = "01:00:00"
        job_name: str | None = None
        job_extra_directives: list[str] = []
        job_script_prologue: list[str] = []
        worker_command: str | None = None
        worker_extra_args: list[str] = []
        interface: str | None = None
        local_directory: str | None = None
        log_directory: str | None = None
        python: str | None = None
        scheduler_options: dict[str, Any] = {}
        jobs: int = Field(1, ge=0)
        adapt: AdaptSpec | None = None
        wait_for_workers: int = Field(0, ge=0)
        wait_timeout: str | None = None

        _check_memory = field_validator("memory")(_size)

        @field_validator("walltime", "wait_timeout", mode="before")
        @classmethod
        def _quoted_time(cls, v):
            if v is not None and not isinstance(v, str):
                raise ValueError(
                    f"must be a quoted string such as '04:00:00' (unquoted, YAML reads {v!r} as a number)"
                )
            return v

        @field_validator("wait_timeout")
        @classmethod
        def _duration(cls, v):
            from dask.utils import parse_timedelta

            try:
                v is None or parse_timedelta(v)
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{v!r} is not a duration such as '30 minutes'") from None
            return v

    return {"local": LocalProfile, "local-cuda": LocalCUDAProfile, "slurm": SlurmProfile}


def default_profile_dirs() -> tuple[Path, ...]:
    """Where ``NAME.yaml`` is looked up: the current directory, then ``configs/cluster``."""
    return (Path.cwd(), REPO_PROFILE_DIR)


def find_profile(name: str, profile_dirs: Sequence[str | os.PathLike] | None = None) -> Path | None:
    """The first ``NAME.yaml`` (or ``.yml``) in ``profile_dirs``, or None."""
    dirs = default_profile_dirs() if profile_dirs is None else profile_dirs
    for d in dirs:
        for suffix in (".yaml", ".yml"):
            p = Path(d) / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _format_validation_error(err) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"]) or "profile"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}")
        elif e["type"] == "missing":
            parts.append(f"missing required key {key!r}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{key}: {msg} (got {e['input']!r})")
    return "; ".join(parts)


def load_profile(path: str | os.PathLike, *, kind: str | None = None):
    """Read and validate a cluster profile.

    Parameters
    ----------
    path
        The YAML file.
    kind
        The kind the caller expects (``slurm`` for ``--cluster slurm:NAME``);
        used as the default when the file has no ``kind:`` key, and an error
        when the file says otherwise.  Without either, the kind is ``slurm``.

    Returns
    -------
    A ``LocalProfile``, ``LocalCUDAProfile`` or ``SlurmProfile`` (pydantic models).

    Raises
    ------
    PopgenError
        Naming the file: missing, not YAML, not a mapping, unknown or missing
        keys, wrong types.
    """
    import yaml
    from pydantic import ValidationError

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PopgenError("cluster profile not found", path) from None
    except OSError as e:
        raise PopgenError(f"cannot read cluster profile ({e.strerror})", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PopgenError(f"invalid YAML{where}: {problem}", path) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise PopgenError(f"a cluster profile is a mapping of key: value, not a {type(data).__name__}", path)
    file_kind = data.setdefault("kind", kind or "slurm")
    models = _profile_models()
    if file_kind not in models:
        raise PopgenError(f"kind: {file_kind!r} is not one of {', '.join(KINDS)}", path)
    if kind is not None and file_kind != kind:
        raise PopgenError(f"profile is of kind {file_kind!r}, but a {kind!r} profile was asked for", path)
    try:
        return models[file_kind].model_validate(data)
    except ValidationError as e:
        raise PopgenError(_format_validation_error(e), path) from None


# --------------------------------------------------------------------------- clusters


def local_sizing(
    n_workers: int | None = None, threads_per_worker: int | None = None, cores: int | None = None
) -> tuple[int, int]:
    """``(n_workers, threads_per_worker)`` for a LocalCluster on ``cores`` cores.

    About :data:`THREADS_PER_LOCAL_WORKER` threads per process, using every
    core; either number given is kept and the other derived from it.
    """
    if cores is None:
        from dask.system import cpu_count

        cores = cpu_count()
    cores = max(1, cores)
    if n_workers is None and threads_per_worker is None:
        n_workers = max(1, round(cores / THREADS_PER_LOCAL_WORKER))
    if threads_per_worker is None:
        threads_per_worker = max(1, cores // n_workers)
    if n_workers is None:
        n_workers = max(1, cores // threads_per_worker)
    return n_workers, threads_per_worker


def make_cluster(profile, *, n_workers: int | None = None, threads_per_worker: int | None = None):
    """Start the cluster a profile describes (a SLURM cluster is not scaled yet).

    ``n_workers`` and ``threads_per_worker`` override the profile for the
    local kinds.  A ``SLURMCluster`` starts its scheduler here but submits no
    job until :func:`scale_cluster`; ``cluster.job_script()`` shows what would
    be submitted.
    """
    if profile.kind == "local":
        from distributed import LocalCluster
        from distributed.system import memory_limit

        n, t = local_sizing(
            n_workers if n_workers is not None else profile.n_workers,
            threads_per_worker if threads_per_worker is not None else profile.threads_per_worker,
        )
        return LocalCluster(
            n_workers=n,
            threads_per_worker=t,
            processes=True,
            memory_limit=profile.memory_limit or memory_limit() // n,
            local_directory=profile.local_directory,
            dashboard_address=":0",  # any free port: never fails, never takes 8787
            silence_logs=logging.WARNING,
        )
    if profile.kind == "local-cuda":
        return _make_local_cuda(profile, n_workers, threads_per_worker)
    if profile.kind == "slurm":
        if threads_per_worker is not None:
            raise PopgenError("threads per worker of a SLURM cluster come from the profile's cores and processes")
        from dask_jobqueue import SLURMCluster

        keys = set(type(profile).model_fields) - {"kind", "jobs", "adapt", "wait_for_workers", "wait_timeout"}
        kwargs = {k: v for k in keys if (v := getattr(profile, k)) not in (None, [], {})}
        return SLURMCluster(silence_logs=logging.WARNING, **kwargs)
    raise PopgenError(f"unknown cluster kind {profile.kind!r}")  # pragma: no cover


def _make_local_cuda(profile, n_workers, threads_per_worker):
    from popgen.backend import gpu_status

    ok, why = gpu_status()
    if not ok:
        raise PopgenError(f"--cluster local-cuda needs a GPU, but {why}")
    try:
        from dask_cuda import LocalCUDACluster
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
        raise PopgenError(f"--cluster local-cuda needs dask-cuda ({why}); install popgen[gpu]") from None
    kwargs = dict(
        n_workers=n_workers if n_workers is not None else profile.n_workers,
        threads_per_worker=threads_per_worker or profile.threads_per_worker,
        CUDA_VISIBLE_DEVICES=profile.visible_devices,
        memory_limit=profile.memory_limit or "auto",
        rmm_pool_size=profile.rmm_pool_size,
        local_directory=profile.local_directory,
        dashboard_address=":0",  # any free port: never fails, never takes 8787
        silence_logs=logging.WARNING,
    )
    if profile.device_memory_limit is not None:
        kwargs["device_memory_limit"] = profile.device_memory_limit
    try:
        return LocalCUDACluster(**kwargs)
    except Exception as e:  # pynvml.NVMLError*, CUDA runtime errors, RMM pool too large...
        first = (str(e).splitlines() or [""])[0]
        raise PopgenError(f"could not start LocalCUDACluster: {type(e).__name__}: {first}") from e


def scale_cluster(cluster, profile, *, n_workers: int | None = None) -> None:
    """Ask a SLURM cluster for its workers: ``n_workers`` if given, else the
    profile's ``adapt`` range or ``jobs``.  This submits jobs with sbatch."""
    if n_workers is not None:
        cluster.scale(n_workers)
    elif profile.adapt is not None:
        cluster.adapt(minimum_jobs=profile.adapt.minimum_jobs, maximum_jobs=profile.adapt.maximum_jobs)
    else:
        cluster.scale(jobs=profile.jobs)


def _resolve(spec: str, profile_dirs) -> tuple[str, Any]:
    """Turn a spec into ``("none", None)``, ``("address", str)`` or ``("profile", (profile, path))``."""
    s = spec.strip()
    low = s.lower()
    if low == "none":
        return "none", None
    if low.startswith(ADDRESS_SCHEMES):
        return "address", s
    if low.endswith((".yaml", ".yml")) or os.sep in s or "/" in s:
        path = Path(s).expanduser()
        return "profile", (load_profile(path), path)
    kind, _, name = low.partition(":")
    if kind in KINDS and (name or ":" not in low):
        name = s.partition(":")[2] or kind
        path = find_profile(name, profile_dirs)
        if path is not None:
            return "profile", (load_profile(path, kind=kind), path)
        if name == kind and kind != "slurm":
            return "profile", (_profile_models()[kind](kind=kind), None)
        dirs = default_profile_dirs() if profile_dirs is None else profile_dirs
        raise PopgenError(
            f"--cluster {spec}: no {name}.yaml in {', '.join(str(d) for d in dirs)}; "
            "pass a path to a profile file or copy configs/cluster/slurm.yaml"
        )
    raise PopgenError(f"unknown cluster {spec!r}; use one of: {VALID_SPECS}")


@contextlib.contextmanager
def cluster_client(
    spec: str = "local",
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    profile_dirs: Sequence[str | os.PathLike] | None = None,
    timeout: float = 10.0,
) -> Iterator[distributed.Client | None]:
    """Open the Dask client ``spec`` names (see the module docstring), close it on exit.

    Parameters
    ----------
    spec
        ``none``, ``local``, ``local-cuda``, ``slurm``, ``KIND:NAME``, a
        profile path, or a scheduler address.
    n_workers, threads_per_worker
        Override the profile (local kinds); ``n_workers`` is the number of
        workers to scale a SLURM cluster to.  Not allowed with ``none`` or an
        address.
    profile_dirs
        Where ``NAME.yaml`` is looked up; default :func:`default_profile_dirs`.
    timeout
        Seconds to wait when connecting to a scheduler address.

    Yields
    ------
    distributed.Client or None
        The client, set as Dask's default scheduler while the block runs; None
        for ``none`` and a one-worker ``local`` (Dask's threaded scheduler).

    Raises
    ------
    PopgenError
        Unknown spec, invalid profile, no GPU for ``local-cuda``, scheduler
        unreachable, or no SLURM worker within the profile's ``wait_timeout``.
    """
    what, arg = _resolve(spec, profile_dirs)
    overrides = n_workers is not None or threads_per_worker is not None
    if what == "none":
        if overrides:
            raise PopgenError("--cluster none runs in this process; worker counts apply to a cluster")
        with _in_process():
            yield None
        return
    if what == "profile" and (threads := _single_local_worker(arg[0], n_workers, threads_per_worker)):
        with _in_process(threads):
            yield None
        return

    from distributed import Client
    from distributed import TimeoutError as DaskTimeoutError  # asyncio's: not builtin before 3.11

    if what == "address":
        if overrides:
            raise PopgenError(f"{arg}: worker counts of a running scheduler are set where it was started")
        try:
            client = Client(arg, timeout=timeout, set_as_default=True)
        except (OSError, TimeoutError, DaskTimeoutError) as e:
            raise PopgenError(f"cannot connect to a Dask scheduler at {arg} within {timeout:g} s ({e})") from None
        _SOURCES[client] = arg
        try:
            yield client
        finally:
            client.close()
        return

    profile, path = arg
    if profile.kind == "slurm" and shutil.which("sbatch") is None:
        # Without this check the cluster starts and sbatch failures are only logged.
        raise PopgenError("--cluster slurm submits jobs with sbatch, which is not on PATH here", path)
    with contextlib.ExitStack() as stack:
        cluster = make_cluster(profile, n_workers=n_workers, threads_per_worker=threads_per_worker)
        stack.callback(cluster.close)
        client = Client(cluster, set_as_default=True)
        stack.callback(client.close)  # runs before cluster.close
        from popgen._worker import HeapTuning

        client.register_plugin(HeapTuning())  # also on workers that join later
        if path is not None:
            _SOURCES[client] = os.fspath(path)
        if profile.kind == "slurm":
            scale_cluster(cluster, profile, n_workers=n_workers)
            if profile.wait_for_workers:
                from dask.utils import parse_timedelta

                wait = parse_timedelta(profile.wait_timeout) if profile.wait_timeout else None
                try:
                    client.wait_for_workers(profile.wait_for_workers, timeout=wait)
                except (TimeoutError, DaskTimeoutError):
                    logs = f" in {profile.log_directory}" if profile.log_directory else ""
                    raise PopgenError(
                        f"no {profile.wait_for_workers} SLURM worker(s) within {profile.wait_timeout} "
                        f"(check squeue and the job logs{logs})",
                        path,
                    ) from None
        yield client


@contextlib.contextmanager
def _in_process(threads: int | None = None):
    """Dask's threaded scheduler in this process, on ``threads`` threads (default: the
    configured ``num_workers``, else one per core)."""
    import dask
    import dask.threaded
    from dask.system import cpu_count

    # threads even if a client exists outside; as many threads as cores from any thread
    # (Dask gives threads other than the main one pools of cores + 4 when unset).  The
    # scheduler as a function, not "threads": Dask resolves a name by importing distributed
    # to look for a client (0.2 s and 14 MB in every command)
    with dask.config.set(scheduler=dask.threaded.get,
                         num_workers=threads or dask.config.get("num_workers", None) or cpu_count()):
        yield


def _single_local_worker(profile, n_workers, threads_per_worker) -> int | None:
    """Threads of the one worker a ``local`` profile sizes to this machine, or None.

    A LocalCluster of one worker process runs the same threads as the in-process
    scheduler plus a scheduler, a worker event loop and a copy of every result between
    processes: on two cores QC of 10,000 x 100,000 took 10.9 s instead of 5.9 s and the
    randomized PCA 58 s instead of 18 s.  So when the sizing gives one worker, the tasks
    run here; a profile or caller setting ``n_workers``, or a profile setting what only a
    worker process has (``memory_limit``, ``local_directory`` for spilling), still gets it.
    """
    if profile.kind != "local" or n_workers is not None or profile.n_workers is not None:
        return None
    if profile.memory_limit is not None or profile.local_directory is not None:
        return None
    n, t = local_sizing(None, threads_per_worker if threads_per_worker is not None else profile.threads_per_worker)
    return t if n == 1 else None


def in_process(spec: str) -> str:
    """The log line's text for a ``spec`` that runs on the in-process scheduler."""
    import dask

    return f"{spec}: in-process scheduler, {_plural(dask.config.get('num_workers', None) or 1, 'thread')}"


def describe(client: distributed.Client | None) -> str:
    """One line for the run log: kind, address, workers, threads, memory, GPUs."""
    if client is None:
        from dask.system import cpu_count

        return f"no Dask cluster: in-process threaded scheduler, {cpu_count()} threads"
    from dask.utils import format_bytes

    cluster = getattr(client, "cluster", None)
    kind = type(cluster).__name__ if cluster is not None else "scheduler"
    try:
        info = client.scheduler_info()
    except Exception as e:  # closed client, lost connection
        return f"{kind}: scheduler unavailable ({type(e).__name__})"
    workers = info.get("workers", {}).values()
    n = len(workers)
    threads = sum(w.get("nthreads", 0) for w in workers)
    memory = sum(w.get("memory_limit") or 0 for w in workers)
    gpus = sum(1 for w in workers if w.get("gpu"))
    requested = len(getattr(cluster, "requested", ()) or ())
    n_text = f"{n} of {requested} workers" if requested > n else _plural(n, "worker")
    source = _SOURCES.get(client)
    source = f" (profile {source})" if source and source != info.get("address") else ""
    return (
        f"{kind} at {info.get('address', '?')}{source}: {n_text}, {_plural(threads, 'thread')}, "
        f"{format_bytes(memory)} memory, {_plural(gpus, 'GPU')}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_MODEL_NAMES = {"LocalProfile": "local", "LocalCUDAProfile": "local-cuda", "SlurmProfile": "slurm"}


def __getattr__(name: str):
    # The profile models, without importing pydantic when the module is imported.
    if name in _MODEL_NAMES:
        return _profile_models()[_MODEL_NAMES[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
