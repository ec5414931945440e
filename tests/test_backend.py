"""Backend helpers and the array-namespace block math on NumPy and array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest

from popgen import backend
from popgen.errors import PopgenError


def test_namespace_and_device_of_numpy_and_dask():
    import dask.array as da

    x = np.zeros((3, 2), np.int8)
    assert backend.device_of(x) == "cpu"
    assert backend.device_of(da.from_array(x)) == "cpu"
    assert not backend.is_cupy(x)
    assert backend.namespace(x).__name__.endswith("numpy")
    assert backend.namespace(da.from_array(x)).__name__.endswith("numpy")
    assert backend.to_cpu(x) is x or np.array_equal(backend.to_cpu(x), x)


def test_resolve_device_without_gpu(monkeypatch):
    monkeypatch.setattr(backend, "gpu_status", lambda: (False, "no CUDA device found"))
    assert backend.resolve_device("cpu") == "cpu"
    assert backend.resolve_device("auto") == "cpu"
    with pytest.raises(PopgenError, match="--device gpu requested but no CUDA device found"):
        backend.resolve_device("gpu")
    with pytest.raises(PopgenError, match="unknown device"):
        backend.resolve_device("tpu")


def test_resolve_device_with_gpu(monkeypatch):
    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "1 CUDA device(s)"))
    assert backend.resolve_device("auto") == "gpu"
    assert backend.resolve_device("gpu") == "gpu"


def test_gpu_status_never_raises():
    ok, why = backend.gpu_status()
    assert isinstance(ok, bool) and why


# --------------------------------------------------------------- Array API conformance

def _strict():
    return pytest.importorskip("array_api_strict")


def _block_functions():
    from popgen.genotypes import alt_count_from_genotype
    from popgen.io.plink import genotype_from_alt_count
    from popgen.qc import sample_counts_block, variant_counts_block

    return alt_count_from_genotype, genotype_from_alt_count, variant_counts_block, sample_counts_block


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_inbreeding_block_matches_numpy_oracle(rng, backend_name):
    from conftest import random_alt

    from popgen.qc import inbreeding_block

    g = random_alt(rng, 23, 11, missing=0.1)
    p = rng.uniform(0, 1, 23)
    poly = rng.random(23) < 0.8
    w = np.where(poly, 1 - 2 * p * (1 - p), 0.0)
    xp = np if backend_name == "numpy" else _strict()
    got = np.asarray(inbreeding_block(xp.asarray(g), xp.asarray(w), xp.asarray(poly), rows=5))
    called = (g >= 0) & poly[:, None]
    np.testing.assert_array_equal(got[:, 0], called.sum(0))
    np.testing.assert_array_equal(got[:, 1], (((g == 0) | (g == 2)) & poly[:, None]).sum(0))
    np.testing.assert_allclose(got[:, 2], (w[:, None] * called).sum(0), rtol=1e-13)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_block_math_matches_numpy_oracle(rng, backend_name):
    from conftest import random_alt

    alt_count_from_genotype, genotype_from_alt_count, variant_counts_block, sample_counts_block = _block_functions()
    g = random_alt(rng, 9, 14, missing=0.1)
    samples = rng.random(14) < 0.6
    if backend_name == "numpy":
        xp, to_np = np, np.asarray
    else:
        xp = _strict()
        to_np = lambda a: np.asarray(a)  # noqa: E731
    x = xp.asarray(g)

    gt = genotype_from_alt_count(x)
    assert gt.shape == (9, 14, 2)
    back = alt_count_from_genotype(gt)
    np.testing.assert_array_equal(to_np(back), g)

    vc = to_np(variant_counts_block(x))
    np.testing.assert_array_equal(vc[:, 0], (g >= 0).sum(1))
    np.testing.assert_array_equal(vc[:, 1], (g == 1).sum(1))
    np.testing.assert_array_equal(vc[:, 2], (g == 2).sum(1))
    vcm = to_np(variant_counts_block(x, xp.asarray(samples)))
    np.testing.assert_array_equal(vcm[:, 0], (g[:, samples] >= 0).sum(1))
    np.testing.assert_array_equal(vcm[:, 1], (g[:, samples] == 1).sum(1))
    np.testing.assert_array_equal(vcm[:, 2], (g[:, samples] == 2).sum(1))
    sc = to_np(sample_counts_block(x))
    np.testing.assert_array_equal(sc[:, 0], (g >= 0).sum(0))
    np.testing.assert_array_equal(sc[:, 1], (g == 1).sum(0))
    np.testing.assert_array_equal(sc[:, 2], (g == 2).sum(0))


def test_alt_count_multiallelic_counts_non_ref():
    from popgen.genotypes import alt_count_from_genotype

    gt = np.array([[[0, 2], [1, 2], [2, -1], [0, 0]]], dtype=np.int8)
    np.testing.assert_array_equal(alt_count_from_genotype(gt), [[1, 2, -1, 0]])


def test_release_host_memory_spawns_no_process(monkeypatch):
    """malloc_trim comes from the loaded symbols: no ldconfig child (a forked child of a
    large process doubles the resident memory a process-tree monitor sees)."""
    import subprocess

    from popgen import backend

    def no_fork(*a, **k):
        raise AssertionError("release_host_memory started a process")

    backend._libc_function.cache_clear()
    monkeypatch.setattr(subprocess, "Popen", no_fork)
    backend.release_host_memory()
    backend.release_host_memory(collect=False)
    assert backend._malloc_trim() is not None  # glibc Linux (the CI machine)


def test_helper_thread_computes_use_one_thread_per_core():
    """A compute started from a prefetching thread runs on as many threads as cores: Dask's
    threaded scheduler would give that thread a pool of cores + 4 threads of its own."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import dask
    from dask.system import cpu_count

    from popgen.backend import helper_thread_compute

    def task(i):
        time.sleep(0.02)
        return threading.get_ident()

    tasks = [dask.delayed(task)(i) for i in range(6 * (cpu_count() + 4))]
    with dask.config.set(scheduler="threads"), ThreadPoolExecutor(1) as pool:
        used = set(pool.submit(helper_thread_compute(dask.compute), *tasks).result())
        unbounded = set(pool.submit(dask.compute, *tasks).result())
    assert len(used) <= cpu_count() < len(unbounded)


def test_process_setup_tunes_heap_and_hides_cupy_without_driver():
    """What the popgen command does first (cli.entry), in a fresh process."""
    import subprocess
    import sys

    code = ("import os, sys; from popgen import backend;"
            "tuned = backend.tune_process_heap(); hidden = backend.hide_absent_gpu_stack();"
            "import dask.array;"
            "print(tuned, hidden, backend.gpu_status()[0], sys.modules.get('cupy') is not None)")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MALLOC_")}
    tuned, hidden, gpu, cupy_loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                     check=True, env=env).stdout.split()
    import platform

    assert tuned == str(platform.libc_ver()[0] == "glibc")
    assert hidden == str(gpu == "False")  # hidden exactly where no GPU can run
    if gpu == "False":
        assert cupy_loaded == "False"  # dask.array no longer imports CuPy
    env["MALLOC_TRIM_THRESHOLD_"] = "1000000"  # the user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split()[0] == "False"


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_tasks_of_the_threaded_scheduler_call_blas_single_threaded():
    """One task per core, each GEMM on its own thread: a BLAS with a thread per core as well
    put two threads on every core (PCA 2.7x slower).  The BLAS gets its threads back after,
    and the synchronous scheduler keeps them."""
    import dask
    from threadpoolctl import threadpool_limits

    from popgen import progress

    def threads_in_task(_):
        return _blas_threads()

    tasks = [dask.delayed(threads_in_task)(i) for i in range(4)]
    with threadpool_limits(2, user_api="blas"):
        assert _blas_threads() == {2}
        for compute in (backend.compute, progress.compute,
                        lambda *c, **k: progress.compute(*c, progress=False, **k)):
            assert all(t == {1} for t in compute(*tasks, scheduler="threads"))
            assert _blas_threads() == {2}
        assert all(t == {2} for t in backend.compute(*tasks, scheduler="sync"))
        import dask.local

        with dask.config.set(scheduler=dask.local.get_sync):
            assert all(t == {2} for t in backend.compute(*tasks))


def test_single_threaded_blas_is_shared_by_overlapping_users():
    """A prefetching thread's compute overlaps the main thread's: the first user sets the
    limit, the last one gives the threads back, whatever order they leave in."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        a, b = backend.single_threaded_blas(), backend.single_threaded_blas()
        a.__enter__()
        b.__enter__()
        assert _blas_threads() == {1}
        a.__exit__(None, None, None)
        assert _blas_threads() == {1}  # b is still inside
        b.__exit__(None, None, None)
        assert _blas_threads() == {2}


def test_all_cores_blas_unless_the_user_fixed_the_threads(monkeypatch):
    from dask.system import cpu_count
    from threadpoolctl import threadpool_limits

    for v in backend.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    with threadpool_limits(1, user_api="blas"):
        with backend.all_cores_blas():
            assert _blas_threads() == {cpu_count()}
        assert _blas_threads() == {1}
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the user's choice
        with backend.all_cores_blas():
            assert _blas_threads() == {1}
        monkeypatch.setattr(backend, "_blas_threads_set_here", True)  # popgen's own choice
        with backend.all_cores_blas():
            assert _blas_threads() == {cpu_count()}


def test_process_setup_loads_blas_single_threaded_unless_set():
    """What the popgen command does first (cli.entry), in a fresh process: BLAS loads with one
    thread (no pool spinning between tasks); a user's setting is kept."""
    import os
    import subprocess
    import sys

    code = ("from popgen import backend; done = backend.start_blas_single_threaded(); import numpy;"
            "from threadpoolctl import threadpool_info;"
            "print(done, sorted({i['num_threads'] for i in threadpool_info()}))")
    env = {k: v for k, v in os.environ.items() if k not in backend.BLAS_THREAD_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split(None, 1) == ["True", "[1]\n"]
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split(None, 1) == ["False", "[2]\n"]
