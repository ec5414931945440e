"""popgen.cluster and popgen.progress: clusters give the in-process results, profiles fail loudly."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import dask
import dask.array as da
import numpy as np
import pytest

from popgen import cluster, progress
from popgen.backend import gpu_status
from popgen.cluster import cluster_client, describe, load_profile, local_sizing, make_cluster
from popgen.errors import PopgenError


def _expr():
    """A chunked matrix product and reduction: 4 x 3 chunks in, a tree reduction out."""
    x = da.random.RandomState(0).random_sample((200, 150), chunks=(50, 50))
    return (x @ x.T).sum(axis=0), x.mean()


@pytest.fixture(scope="module")
def expected():
    """The in-process result (module scope: computed before the cluster starts)."""
    with cluster_client("none") as none:
        assert none is None
        return dask.compute(*_expr())


def _relatedness():
    """GRM and KING pairs of a small cohort: 3 sample tiles, 3 variant chunks, missing calls."""
    from conftest import make_dataset, random_alt
    from popgen import relatedness as R

    g = random_alt(np.random.default_rng(7), 300, 40, missing=0.05)
    ds = make_dataset(g, chunks=(128, 16))
    pairs = R.KingPairs.concat(R.iter_king_pairs(ds, min_kinship=-1.0, tile=16))
    return R.grm(ds, tile=16).compute(), pairs.idx1, pairs.idx2, pairs.counts


@pytest.fixture(scope="module")
def relatedness_expected():
    with cluster_client("none"):
        return _relatedness()


@pytest.fixture(scope="class")
def local_client(tmp_path_factory):
    # profile_dirs without local.yaml: the built-in sizing, not whatever the repo or cwd holds
    empty = tmp_path_factory.mktemp("profiles")
    with cluster_client("local", n_workers=2, threads_per_worker=1, profile_dirs=[empty]) as client:
        yield client


# --------------------------------------------------------------------------- results


class TestOnLocalCluster:
    """One 2-process LocalCluster for these tests, closed before the others run."""

    def test_local_cluster_equals_in_process(self, expected, local_client):
        import distributed

        assert distributed.get_client() is local_client
        pids = local_client.run(os.getpid)
        assert len(pids) == 2 and os.getpid() not in pids.values()  # worker processes, not threads
        got = dask.compute(*_expr())
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)

        line = describe(local_client)
        assert line.startswith("LocalCluster at tcp://") and "2 workers, 2 threads" in line and "0 GPUs" in line

    def test_relatedness_equals_in_process(self, relatedness_expected, local_client):
        # in process the planes are packed in place; on the cluster by Dask tasks
        got = _relatedness()
        np.testing.assert_allclose(got[0], relatedness_expected[0], rtol=1e-12, atol=1e-14)
        for a, b in zip(got[1:], relatedness_expected[1:]):
            np.testing.assert_array_equal(a, b)

    def test_compute_matches_dask_compute_with_client(self, expected, local_client):
        total, mean = _expr()
        got = progress.compute(total, 7, mean, label="test")
        assert progress._active_client(None) is local_client
        assert len(got) == 3 and got[1] == 7
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[2], expected[1], rtol=1e-12)

    @pytest.mark.filterwarnings("ignore:Running on a single-machine scheduler:UserWarning")
    def test_none_inside_a_client_block_runs_in_process(self, expected, local_client):
        with cluster_client("none"):
            assert progress._active_client(None) is None
            got = progress.compute(*_expr())
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)

    def test_worker_processes_read_rows_of_disk_arrays(self, local_client, tmp_path):
        """A Dask array over rows of a DiskArray (a federated site's basis, a coordinator's
        statistics) computes on worker processes: the array reaches them pickled and each opens
        the file itself (the parent's open file descriptor meant nothing there: EBADF)."""
        from popgen.federated.arrays import DiskArray, RowView

        ref = np.arange(3000.0).reshape(1000, 3)
        arr = DiskArray.create(tmp_path / "a.npy", ref.shape, np.float64)
        arr[:] = ref
        np.testing.assert_array_equal(arr[5], ref[5])  # the file is open in this process
        rows = np.arange(0, 1000, 3)
        v = da.from_array(RowView(arr, rows), chunks=((100, 100, 100, 34), (3,)), meta=np.empty((0, 0)),
                          name=False)
        np.testing.assert_array_equal(progress.compute(v.sum(axis=0), label="test")[0], ref[rows].sum(axis=0))

    def test_compute_raises_task_errors_with_client(self, local_client):
        def boom(block):
            raise ZeroDivisionError("boom")

        with pytest.raises(ZeroDivisionError):
            progress.compute(da.ones(10, chunks=5).map_blocks(boom, dtype=float), label="fails")


    def test_workers_keep_freed_blocks_for_reuse(self, local_client):
        """The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (glibc then maps every
        block above 128 KiB afresh: page faults on each use); popgen's worker plugin sets
        the command's heap tuning, so a block freed and allocated again faults no page in."""

        def refill_faults():
            import resource

            import numpy as np

            np.ones(2**20, dtype=np.float32)  # 4 MiB, freed at once
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            np.ones(2**20, dtype=np.float32)
            return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

        faults = local_client.run(refill_faults)
        assert len(faults) == 2 and all(f < 64 for f in faults.values()), faults  # a fresh map: 1024


@pytest.mark.parametrize("scheduler", [None, "sync", "threads"])
def test_compute_matches_dask_compute_without_client(expected, scheduler):
    total, mean = _expr()
    assert progress._active_client(scheduler) is None
    got = progress.compute(total, mean, "x", scheduler=scheduler)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    assert got[2] == "x"


def test_progress_switch(monkeypatch):
    monkeypatch.delenv("POPGEN_PROGRESS", raising=False)
    assert progress.progress_enabled()
    monkeypatch.setenv("POPGEN_PROGRESS", "0")
    assert not progress.progress_enabled()
    assert progress.compute(da.arange(10, chunks=5).sum())[0] == 45


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()  # isatty() is False
    d = progress._Display("qc", delay=0, every=0, stream=out)
    d.update(3, 10)
    d.update(10, 10)
    d.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("qc: 30% (3/10 tasks)")
    assert lines[-1].startswith("qc: 100% (10/10 tasks)") and lines[-1].endswith("finished")
    quiet = io.StringIO()
    d = progress._Display("qc", stream=quiet)  # defaults: nothing for work under 30 s
    d.update(10, 10)
    d.close()
    assert quiet.getvalue() == ""


# --------------------------------------------------------------------------- sizing and specs


@pytest.mark.parametrize(
    "cores, n_workers, threads, expected",
    [(1, None, None, (1, 1)), (2, None, None, (1, 2)), (6, None, None, (2, 3)), (8, None, None, (2, 4)),
     (64, None, None, (16, 4)), (8, 8, None, (8, 1)), (8, None, 2, (4, 2)), (8, 3, 5, (3, 5))],
)
def test_local_sizing(cores, n_workers, threads, expected):
    assert local_sizing(n_workers, threads, cores=cores) == expected


@pytest.mark.parametrize("cores", [1, 2, 5, 6])
def test_local_of_one_worker_runs_in_process(tmp_path, monkeypatch, cores):
    """Where the sizing gives one worker, ``local`` runs Dask's threaded scheduler here with
    that worker's threads; n_workers set by a profile still starts the worker process."""
    import dask.system

    from popgen import cluster

    monkeypatch.setattr(dask.system, "cpu_count", lambda: cores)
    with cluster_client("local", profile_dirs=[tmp_path]) as client:
        if cores < 6:
            assert client is None
            assert dask.config.get("num_workers") == cores
            assert cluster.in_process("local") == f"local: in-process scheduler, {cores} thread{'s' * (cores > 1)}"
            assert progress.compute(da.arange(10, chunks=5).sum())[0] == 45
        else:
            assert len(client.run(os.getpid)) == 2
    for extra in ("n_workers: 1", "memory_limit: 2GB"):  # what only a worker process has
        (tmp_path / "local.yaml").write_text(f"kind: local\n{extra}\n")
        with cluster_client("local", profile_dirs=[tmp_path]) as client:
            n = 1 if extra.startswith("n_workers") else local_sizing(cores=cores)[0]
            assert client is not None and len(client.run(os.getpid)) == n


def test_import_is_light():
    heavy = "{'dask', 'distributed', 'pydantic', 'yaml'}"
    code = f"import sys, popgen.cluster, popgen.progress; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_local_cuda_without_gpu_is_an_error(tmp_path):
    if gpu_status()[0]:
        pytest.skip("a GPU is present")
    with pytest.raises(PopgenError, match="local-cuda needs a GPU"):
        with cluster_client("local-cuda", profile_dirs=[tmp_path]):
            pass


def test_unreachable_scheduler_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(PopgenError, match=r"tcp://127\.0\.0\.1:1\b"):
        with cluster_client("tcp://127.0.0.1:1", timeout=1):
            pass
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("spec", ["bogus", "pbs", "slurm:", "local-gpu"])
def test_unknown_spec(spec):
    with pytest.raises(PopgenError, match="use one of: none, local"):
        with cluster_client(spec):
            pass


def test_slurm_without_sbatch_is_an_error(tmp_path):
    import shutil

    if shutil.which("sbatch"):
        pytest.skip("sbatch is on PATH: this would submit jobs")
    (tmp_path / "slurm.yaml").write_text("cores: 2\nmemory: 4GiB\n")
    with pytest.raises(PopgenError, match="slurm.yaml: --cluster slurm submits jobs with sbatch"):
        with cluster_client("slurm", profile_dirs=[tmp_path]):
            pass


def test_slurm_scales_and_times_out_waiting(tmp_path, monkeypatch):
    """The whole `--cluster slurm` path against a fake sbatch that queues jobs that never start."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for cmd, out in (("sbatch", "Submitted batch job 4242"), ("scancel", "")):
        script = bin_dir / cmd
        script.write_text(f'#!/bin/sh\necho "{cmd} $*" >> {log}\ncat "$1" >> {log} 2>/dev/null\necho "{out}"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "fake.yaml").write_text(
        "cores: 2\nmemory: 4GiB\nqueue: short\njobs: 2\nwait_for_workers: 1\nwait_timeout: '1s'\n"
    )
    with pytest.raises(PopgenError, match="fake.yaml: no 1 SLURM worker"):
        with cluster_client("slurm:fake", profile_dirs=[tmp_path]):
            pass
    calls = log.read_text()
    assert calls.count("sbatch ") == 2 and "#SBATCH -p short" in calls
    assert "scancel 4242" in calls  # jobs cancelled on the way out


def test_missing_named_profile(tmp_path):
    with pytest.raises(PopgenError, match="no nosuch.yaml in"):
        with cluster_client("slurm:nosuch", profile_dirs=[tmp_path]):
            pass


def test_named_profile_lookup_prefers_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slurm.yaml").write_text("cores: 2\nmemory: 4GiB\n")
    assert cluster.find_profile("slurm") == tmp_path / "slurm.yaml"
    assert cluster.find_profile("local-cuda") == cluster.REPO_PROFILE_DIR / "local-cuda.yaml"
    assert cluster.find_profile("nosuch") is None


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("kind", ["local", "local-cuda", "slurm"])
def test_shipped_profiles_are_valid(kind):
    p = load_profile(cluster.REPO_PROFILE_DIR / f"{kind}.yaml")
    assert p.kind == kind


def test_slurm_profile_builds_job_script_without_submitting(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(
        "kind: slurm\n"
        "queue: short\n"
        "account: popgen-lab\n"
        "cores: 8\n"
        "processes: 2\n"
        "memory: 16GiB\n"
        "walltime: '00:30:00'\n"
        "job_extra_directives: ['--gres=gpu:1']\n"
        "job_script_prologue: ['module load cuda']\n"
        f"local_directory: {tmp_path}\n"
        "jobs: 3\n"
    )
    profile = load_profile(path)
    c = make_cluster(profile)
    try:
        script = c.job_script()
        assert not c.workers  # constructing submits nothing; scale_cluster would
    finally:
        c.close()
    for expected in ("#SBATCH -p short", "#SBATCH -A popgen-lab", "--cpus-per-task=8", "#SBATCH --mem=16G",
                     "#SBATCH -t 00:30:00", "#SBATCH --gres=gpu:1", "module load cuda", "--nworkers 2",
                     "--nthreads 4", f"--local-directory {tmp_path}"):
        assert expected in script, expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("cores: 4\nmemory: 8GB\npartition: short\n", "unknown key 'partition'"),
        ("cores: 4\n", "missing required key 'memory'"),
        ("cores: four\nmemory: 8GB\n", "cores: Input should be a valid integer"),
        ("cores: 4\nmemory: 8 parsecs\n", "memory: '8 parsecs' is not a size"),
        ("cores: 4\nmemory: 8GB\nwalltime: 1:00:00\n", "walltime: must be a quoted string"),
        ("cores: 4\nmemory: 8GB\nwait_timeout: soon\n", "wait_timeout: 'soon' is not a duration"),
        ("kind: pbs\n", "kind: 'pbs' is not one of"),
        ("kind: local\nthreads: 4\n", "unknown key 'threads'"),
        ("cores: [4\n", "invalid YAML at line"),
        ("- cores: 4\n", "a mapping of key: value"),
    ],
)
def test_invalid_profile_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(PopgenError, match="site.yaml") as err:
        with cluster_client(str(path)):
            pass
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_profile_kind_must_match_spec(tmp_path):
    (tmp_path / "gpu.yaml").write_text("kind: local-cuda\n")
    with pytest.raises(PopgenError, match="gpu.yaml: profile is of kind 'local-cuda', but a 'slurm'"):
        with cluster_client("slurm:gpu", profile_dirs=[tmp_path]):
            pass


def test_missing_profile_file(tmp_path):
    with pytest.raises(PopgenError, match="nope.yaml: cluster profile not found"):
        with cluster_client(str(tmp_path / "nope.yaml")):
            pass


def test_none_does_not_import_distributed():
    """Dask resolves a scheduler *name* by importing distributed (0.2 s, 14 MB per command)."""
    import subprocess
    import sys

    code = ("import sys, dask.array as da; from popgen.cluster import cluster_client\n"
            "with cluster_client('none'):\n"
            "    assert int(da.ones((4, 4), chunks=2).sum().compute()) == 16\n"
            "print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
