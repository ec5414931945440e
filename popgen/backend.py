"""NumPy / CuPy backend helpers: the one place that knows about devices.

Backend follows the data: the array type of a block (or of a Dask array's
``_meta``) decides whether NumPy or CuPy runs.  Library functions take the
namespace from their inputs with :func:`namespace`; only readers take an
explicit ``device`` (where decoding should happen), and only the CLI and the
pipeline runner turn ``--device cpu|gpu|auto`` into one with
:func:`resolve_device`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Literal

from popgen.errors import PopgenError

Device = Literal["cpu", "gpu"]


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.") and hasattr(x, "_meta")


def namespace(*arrays: Any):
    """Array-API namespace of ``arrays`` (of their chunks, for Dask arrays).

    NumPy arrays give the array-api-compat NumPy namespace, CuPy arrays its
    CuPy namespace, array-api-strict arrays array_api_strict itself.
    """
    import array_api_compat

    inner = [a._meta if _is_dask(a) else a for a in arrays]
    return array_api_compat.array_namespace(*inner)


def is_cupy(x: Any) -> bool:
    """True for a CuPy array, or a Dask array whose chunks are CuPy arrays."""
    x = x._meta if _is_dask(x) else x
    return type(x).__module__.startswith("cupy")


def device_of(x: Any) -> Device:
    """``"gpu"`` for CuPy-backed arrays, else ``"cpu"``."""
    return "gpu" if is_cupy(x) else "cpu"


def to_gpu(x: Any):
    """Copy a host array to the current GPU (no-op for CuPy arrays)."""
    import cupy

    return cupy.asarray(x)


def to_cpu(x: Any):
    """Copy a CuPy array to host memory (no-op for NumPy arrays)."""
    if is_cupy(x) and not _is_dask(x):
        return x.get()
    import numpy as np

    return np.asarray(x)


def to_device(x: Any, device: Device):
    """Move one in-memory block to ``device``."""
    return to_gpu(x) if device == "gpu" else to_cpu(x)


def empty_meta(device: Device, ndim: int, dtype):
    """A zero-size array on ``device``, for ``map_blocks(meta=...)``."""
    shape = (0,) * ndim
    if device == "gpu":
        import cupy

        return cupy.empty(shape, dtype=dtype)
    import numpy as np

    return np.empty(shape, dtype=dtype)


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """Whether CuPy can use a CUDA device here, and why not when it can't.

    CuPy may import fine on a machine without a driver and only fail on first
    use (``cudaErrorInsufficientDriver``, ``cudaErrorNoDevice``), so every
    failure mode is caught and turned into a reason.
    """
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:  # no driver, no device: answered in microseconds where importing CuPy takes ~0.4 s
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return False, "no CUDA driver (libcuda.so.1 not found)"
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA runtime
        return False, f"cupy is not importable ({type(e).__name__}: {e}); install popgen[gpu]"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError and friends
        return False, f"no usable CUDA device ({str(e).splitlines()[0]})"
    if n < 1:
        return False, "no CUDA device found"
    return True, f"{n} CUDA device(s)"


def resolve_device(device: str) -> Device:
    """Turn ``cpu|gpu|auto`` into ``cpu`` or ``gpu``.

    ``auto`` picks the GPU when CuPy and a device are present; ``gpu`` without
    one is an error, never a silent fallback.
    """
    device = device.lower()
    if device == "cpu":
        return "cpu"
    if device not in ("gpu", "auto"):
        raise PopgenError(f"unknown device {device!r}: use cpu, gpu or auto")
    ok, why = gpu_status()
    if ok:
        return "gpu"
    if device == "gpu":
        raise PopgenError(f"--device gpu requested but {why}")
    return "cpu"


def release_host_memory(collect: bool = True) -> None:
    """Return freed heap memory to the operating system (glibc ``malloc_trim``).

    Many small blocks freed by worker threads (e.g. the per-chunk pieces of a
    persisted array, once concatenated) stay in glibc's per-thread arenas and
    keep counting as resident memory; trimming after such a step keeps the
    peak at what is live (``collect``: run the garbage collector first).  A
    no-op where glibc is absent.
    """
    import gc

    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


#: glibc heap tuning of a popgen process (:func:`tune_process_heap`): blocks up to this size
#: come from (and return to) the heap, not fresh ``mmap`` pages
HEAP_MMAP_THRESHOLD = 64 * 2**20
#: free memory at the top of the heap kept for reuse before it is returned to the OS
HEAP_TRIM_THRESHOLD = 32 * 2**20


def tune_process_heap(force: bool = False) -> bool:
    """Keep freed blocks of up to 64 MiB in glibc's heap for reuse (``mallopt``).

    A streaming pass allocates and frees the same block sizes (decoded chunks,
    standardized sub-blocks) thousands of times.  With glibc's defaults many of
    them are fresh ``mmap`` pages, zeroed by the kernel on first touch: a PCA of
    10k x 100k took 1.1 M page faults and 6 s of system time (of 41 s CPU); with
    the heap keeping them, 0.3 M and ~1.3 s, 10% less wall time for PCA and
    logistic GWAS.  Free memory above 32 MiB at the heap's top still goes back
    (a 256 MiB threshold saved no more time and kept 35 MB more at the PCA's
    peak).  For the popgen command's process only (not on import); kept as is
    when ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` are set, and a
    no-op without glibc.  ``force``: whatever the environment says (Dask workers: their
    nanny starts them with ``MALLOC_TRIM_THRESHOLD_=65536``, see :mod:`popgen._worker`).
    Returns whether the settings were applied.
    """
    import os

    mallopt = _libc_function("mallopt")
    user_set = any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    if mallopt is None or (user_set and not force):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, HEAP_MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, HEAP_TRIM_THRESHOLD))


def hide_absent_gpu_stack() -> bool:
    """Make ``import cupy`` fail in a process on a machine without a CUDA driver.

    Dask imports CuPy when it is installed (to register its array type): 0.3 s
    and 24 MB in every command on a CPU machine with the ``gpu`` extra, for a
    library that cannot run there.  For the popgen command's process only
    (a test session must keep CuPy importable); a no-op where a driver is present
    or CuPy is already imported.  Returns whether CuPy was hidden.
    """
    import sys

    if "cupy" in sys.modules or gpu_status()[0]:
        return False
    sys.modules["cupy"] = None  # the import system's "not importable" marker
    return True


@functools.lru_cache(maxsize=None)
def _libc_function(name: str):
    """The C library's function ``name`` from the symbols already loaded (``dlopen(NULL)``), or
    None (no glibc).

    Not ``ctypes.util.find_library``: that runs ``ldconfig`` in a forked child,
    which for a moment doubles the resident memory a process-tree monitor sees.
    """
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def _malloc_trim():
    """glibc's ``malloc_trim``, or None."""
    return _libc_function("malloc_trim")


#: the environment variables that fix a BLAS's thread count when it loads
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_blas_threads_set_here = False


def start_blas_single_threaded() -> bool:
    """Load BLAS with one thread, in a process that has not imported NumPy yet.

    Dask's tasks run one per core, and each of their BLAS calls must stay on its thread
    (:func:`single_threaded_blas`); a BLAS loaded with a thread per core keeps that pool,
    whose threads spin after every call made outside the tasks (a randomized PCA of
    10,000 x 100,000 used ~2 s more CPU time, 20-35 MB more memory).  Large host linear
    algebra takes every core back with :func:`all_cores_blas`.  For the popgen command's
    process only; a no-op when the user set any of :data:`BLAS_THREAD_VARIABLES` (kept as
    given) or NumPy is imported.  Returns whether the variables were set.
    """
    import os
    import sys

    global _blas_threads_set_here
    if "numpy" in sys.modules or any(v in os.environ for v in BLAS_THREAD_VARIABLES):
        return False
    for v in BLAS_THREAD_VARIABLES:
        os.environ[v] = "1"  # inherited by processes started from here: Dask workers want the same
    _blas_threads_set_here = True
    return True


@contextlib.contextmanager
def all_cores_blas():
    """BLAS on every core Dask sees, for host linear algebra outside Dask's tasks (a dense
    eigendecomposition: 6.3 s on two threads vs 12.3 s on one at 5,000 samples).  Kept as
    the user set it with :data:`BLAS_THREAD_VARIABLES`."""
    import os

    if not _blas_threads_set_here and any(v in os.environ for v in BLAS_THREAD_VARIABLES):
        yield
        return
    from dask.system import cpu_count
    from threadpoolctl import threadpool_limits

    with threadpool_limits(cpu_count(), user_api="blas"):
        yield


_blas_lock = threading.Lock()
_blas_limit: dict = {"users": 0, "limits": None}


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS (OpenBLAS, MKL, BLIS) runs each call on the calling thread while inside.

    Dask's in-process scheduler runs one task per core; a task's GEMM in a BLAS that
    starts a thread per core too puts two threads on every core, spinning in
    ``sched_yield`` for each other (a linear GWAS of 10,000 x 100,000 took 6.7-7.1 s
    instead of 5.4-5.6 s on two cores).  Distributed workers need none of this: their
    nanny starts them with ``OPENBLAS_NUM_THREADS=1`` and the like.  Nested and
    concurrent uses (a prefetching thread's compute overlapping the main thread's)
    share one limit: the first sets it, the last gives the BLAS back its own threads.
    BLAS libraries first loaded inside are not limited.
    """
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_limit["users"] == 0:
            _blas_limit["limits"] = threadpool_limits(1, user_api="blas")
        _blas_limit["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_limit["users"] -= 1
            if _blas_limit["users"] == 0:
                _blas_limit["limits"].restore_original_limits()
                _blas_limit["limits"] = None


def blas_for(scheduler=None):
    """:func:`single_threaded_blas` where the local ``scheduler`` (None: Dask's configured
    one) runs tasks on threads; a no-op context for the synchronous and process schedulers."""
    import dask
    import dask.local

    name = scheduler if scheduler is not None else dask.config.get("scheduler", None)
    if name is dask.local.get_sync or name in ("sync", "synchronous", "single-threaded", "processes",
                                               "multiprocessing"):
        return contextlib.nullcontext()
    return single_threaded_blas()


def compute(*collections: Any, scheduler=None) -> tuple:
    """:func:`dask.compute` with :func:`blas_for` the scheduler: the library functions'
    default ``compute`` (the CLI passes :func:`popgen.progress.compute`, which does the same)."""
    import dask

    with blas_for(scheduler):
        return dask.compute(*collections, scheduler=scheduler)


def computed_ahead(compute, task_lists, *, trim: bool = False):
    """``compute(*tasks)`` of each list in order; the next list computes (on a
    thread, :func:`helper_thread_compute`) while the caller uses the current
    result, so at most two are held.  ``trim``: return freed heap to the OS once
    the caller is done with a result."""
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    compute = helper_thread_compute(compute)
    with ThreadPoolExecutor(1) as pool:
        ahead = None
        for tasks in itertools.chain(task_lists, [None]):  # None: no more, yield the last
            current, ahead = ahead, (pool.submit(compute, *tasks) if tasks is not None else None)
            if current is not None:
                result = current.result()
                del current
                yield result
                del result
                if trim:
                    release_host_memory(collect=False)


def helper_thread_compute(compute):
    """``compute`` for a thread other than the main one (a prefetching loop).

    Dask's threaded scheduler gives every other thread a pool of its own with
    ``min(32, cores + 4)`` threads unless ``num_workers`` is configured: six
    concurrent tasks on two cores, each holding its block's working memory
    (a logistic GWAS peaked at 1.0 GB instead of 0.6 GB).  The wrapper runs
    ``compute`` with ``num_workers`` set to the cores Dask sees (no change when
    it is configured, and none for a distributed client, which ignores it).
    """

    @functools.wraps(compute)
    def run(*args, **kwargs):
        import dask
        from dask.system import cpu_count

        if dask.config.get("num_workers", None):
            return compute(*args, **kwargs)
        with dask.config.set(num_workers=cpu_count()):
            return compute(*args, **kwargs)

    return run
