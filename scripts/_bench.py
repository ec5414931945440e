"""Shared helpers of the benchmark scripts (``bench_pca.py``, ``bench_qc.py``).

Benchmarks compare popgen with PLINK 2 on the same data in the same run.  They
measure; they never assert (performance is not a test).

* :func:`run_measured` runs one whole command line as a subprocess and returns
  its wall time and the peak resident memory of its process tree (the command
  and all its children: a ``LocalCluster``'s workers are child processes).
* :func:`ensure_cohort` simulates a cohort with ``popgen simulate`` once and
  caches it under the work directory.
* :func:`gemm_rate` measures this machine's float32 GEMM rate with NumPy, on
  the thread settings popgen's workers use (one BLAS thread per Dask thread).
* :func:`print_report` prints a markdown table and writes the results as JSON.

Only NumPy and psutil are imported at module level.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

DEFAULT_WORKDIR = "/tmp/popgen-bench"
#: seconds between two samples of the process tree's memory
POLL_INTERVAL = 0.05
#: threads both tools get (the project's benchmark machine has two cores)
THREADS = 2
#: environment variables that change BLAS behaviour: recorded, never changed
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------- running commands

def _tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants (processes that vanish count 0)."""
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd, env=None, *, log_path=None, timeout=None) -> dict:
    """Run ``cmd`` to completion; measure wall time and peak RSS of its process tree.

    Parameters
    ----------
    cmd : list of str
        The command line (no shell).
    env : dict, optional
        Environment of the command (default: this process's).
    log_path : path, optional
        File that receives the command's stdout and stderr (default: discarded).
    timeout : float, optional
        Seconds after which the process tree is killed (returncode then -9).

    Returns
    -------
    dict
        ``wall_s`` (from start to exit, interpreter start-up and imports
        included), ``peak_rss_mb`` (maximum over polls every
        :data:`POLL_INTERVAL` s of the summed RSS of the process and all its
        children, MiB; pages shared by several processes count in each, and
        so do the resident pages of memory-mapped files such as popgen's
        ``.bed``), ``peak_at_s`` (when the peak was seen), ``returncode``, ``cpu_s`` (user + system CPU time of the process and
        its waited-for descendants, from ``wait4``) and ``other_cpu_s`` (CPU
        time the rest of the machine used meanwhile: near 0 on a quiet
        machine; large values mean the measurement was disturbed).
    """
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        busy0 = _busy_cpu_s()
        t0 = time.perf_counter()
        popen = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out, stderr=subprocess.STDOUT)
        proc = psutil.Process(popen.pid)
        peak, peak_at, killed = 0, 0.0, False
        while True:
            pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            if pid:
                break
            rss = _tree_rss(proc)
            if rss > peak:
                peak, peak_at = rss, time.perf_counter() - t0
            if not killed and timeout is not None and time.perf_counter() - t0 > timeout:
                _kill_tree(proc)
                killed = True
            time.sleep(POLL_INTERVAL)
        wall = time.perf_counter() - t0
        busy = _busy_cpu_s() - busy0
    finally:
        if log_path:
            out.close()
    popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by subprocess
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "peak_at_s": peak_at, "returncode": popen.returncode,
            "cpu_s": cpu, "other_cpu_s": max(0.0, busy - cpu)}


def _busy_cpu_s() -> float:
    """Machine-wide non-idle CPU seconds since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _kill_tree(proc: psutil.Process) -> None:
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    for p in [proc] + children:
        try:
            p.kill()
        except psutil.Error:
            pass


def tool_env(**extra) -> dict:
    """Environment for both tools: this process's, with ``OPENBLAS_NUM_THREADS=1``
    (PLINK 2 threads itself with ``--threads``; Dask's nannies pin BLAS to one
    thread per worker thread anyway).  OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
    left as they are."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def popgen_exe() -> str:
    """The ``popgen`` console script of this interpreter's environment."""
    here = Path(sys.executable).parent / "popgen"
    if here.is_file():
        return str(here)
    found = shutil.which("popgen")
    if found is None:
        sys.exit("bench: error: popgen is not installed (run ./run.sh example first, or pip install -e .)")
    return found


def plink2_exe() -> str:
    found = shutil.which("plink2")
    if found is None:
        sys.exit("bench: error: plink2 is not on PATH")
    return found


def plink2_blas() -> str:
    """The BLAS PLINK 2's binary loads: ``OpenBLAS``, ``reference`` (netlib) or what ``ldd`` shows.

    Debian's plink2 links ``libblas.so.3``, which is the slow reference BLAS
    unless ``libopenblas0-pthread`` (or another optimized BLAS) provides it:
    then ``--pca``, ``--make-rel`` and ``--glm`` run 5-15x slower, and ratios
    against PLINK 2 mean nothing.
    """
    exe = Path(plink2_exe()).resolve()
    candidates = [exe]
    if exe.stat().st_size < 100_000:  # Debian's /usr/bin/plink2 is a script choosing a binary per CPU
        candidates = sorted(Path("/usr/lib/plink2").glob("plink2*")) or candidates
    try:
        out = subprocess.run(["ldd", str(candidates[-1])], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for line in out.splitlines():
        if "libblas" in line or "openblas" in line:
            lib = Path(line.split("=>")[-1].split("(")[0].strip()).resolve()
            if "openblas" in str(lib).lower():
                return f"OpenBLAS ({lib})"
            if "/blas/" in str(lib):
                return f"reference ({lib})"
            return str(lib)
    return "none linked"


def check_plink2_blas() -> str:
    """:func:`plink2_blas`, with a warning on stderr when it is the reference BLAS."""
    blas = plink2_blas()
    if blas.startswith("reference"):
        print("bench: warning: plink2 uses the reference BLAS; install libopenblas0-pthread "
              "(apt-get install libopenblas0-pthread) for a fair comparison", file=sys.stderr)
    return blas


def warm_cache(path) -> None:
    """Read a file once so that every timed run starts with it in the page cache."""
    with open(path, "rb") as f:
        while f.read(64 * 2**20):
            pass


def step_timings(log_path) -> dict:
    """``{step: seconds}`` from a popgen ``OUT.log`` ("step NAME: done in X s"),
    plus ``"total"`` from its "timings: ...; total X s" line when present."""
    out = {}
    try:
        text = Path(log_path).read_text()
    except OSError:
        return out
    for name, secs in re.findall(r"step (.+?): done in ([0-9.]+) s", text):
        out[name] = float(secs)
    m = re.search(r"; total ([0-9.]+) s", text)
    if m:
        out["total"] = float(m.group(1))
    return out


# --------------------------------------------------------------------------- cohorts

def cohort_prefix(workdir, n_samples: int, n_variants: int) -> Path:
    return Path(workdir) / f"n{n_samples}_m{n_variants}" / "cohort"


def ensure_cohort(workdir, n_samples: int, n_variants: int, *, seed: int = 1) -> tuple[Path, dict]:
    """Simulate ``DIR/cohort`` with ``popgen simulate ... --no-vcz`` unless it exists.

    The simulation's own measurement (wall time, peak memory) is kept in
    ``DIR/simulate.json`` and returned with ``"cached": True`` on later calls.

    Returns
    -------
    prefix : Path
        ``DIR/cohort`` (``.bed/.bim/.fam``).
    record : dict
        ``wall_s``, ``peak_rss_mb``, ``returncode``, ``cached``.
    """
    prefix = cohort_prefix(workdir, n_samples, n_variants)
    meta = prefix.parent / "simulate.json"
    files = [Path(f"{prefix}.{ext}") for ext in ("bed", "bim", "fam")]
    if all(f.is_file() for f in files):
        record = json.loads(meta.read_text()) if meta.is_file() else {"wall_s": None, "peak_rss_mb": None}
        return prefix, dict(record, cached=True)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = [popgen_exe(), "simulate", "--out", prefix, "--n-samples", n_samples, "--n-variants", n_variants,
           "--no-vcz", "--seed", seed]
    print(f"simulating {n_samples} samples x {n_variants} variants: {' '.join(map(str, cmd))}", file=sys.stderr)
    record = run_measured(cmd, tool_env(), log_path=prefix.parent / "simulate.out")
    if record["returncode"] != 0:
        sys.exit(f"bench: error: popgen simulate failed (exit {record['returncode']}); "
                 f"see {prefix.parent / 'simulate.out'}")
    record.update(n_samples=n_samples, n_variants=n_variants, seed=seed)
    meta.write_text(json.dumps(record, indent=2))
    print(f"  done in {record['wall_s']:.1f} s, peak {record['peak_rss_mb']:.0f} MiB", file=sys.stderr)
    return prefix, dict(record, cached=False)


# --------------------------------------------------------------------------- GEMM rate

_GEMM_CODE = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
n, threads, repeats = (int(a) for a in sys.argv[1:4])
dt = np.dtype(sys.argv[4] if len(sys.argv) > 4 else "float32")
rng = np.random.default_rng(0)
pairs = [(rng.standard_normal((n, n), dtype=dt), rng.standard_normal((n, n), dtype=dt))
         for _ in range(threads)]
outs = [np.empty((n, n), dt) for _ in range(threads)]
def one(i):
    np.matmul(pairs[i][0], pairs[i][1], out=outs[i])
best = float("inf")
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(one, range(threads)))  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(pool.map(one, range(threads)))
        best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "gflops": threads * 2.0 * n**3 / best / 1e9}))
"""


def gemm_rate(n: int = 4096, *, threads: int = THREADS, blas_threads: int = 1, repeats: int = 3,
              dtype: str = "float32") -> float:
    """This machine's GEMM rate in GFLOP/s (``dtype`` float32 or float64), best of ``repeats``.

    ``threads`` Python threads each multiply two ``n x n`` float32 matrices at
    once, NumPy's BLAS limited to ``blas_threads`` threads: the default (two
    threads of one BLAS thread each) is how popgen's Dask workers run their
    GEMMs (Dask's nannies set ``OPENBLAS_NUM_THREADS=1``).  Measured in a
    fresh interpreter, since BLAS reads its thread count once.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(blas_threads),
               MKL_NUM_THREADS=str(blas_threads))
    res = subprocess.run([sys.executable, "-c", _GEMM_CODE, str(n), str(threads), str(repeats), dtype], env=env,
                         capture_output=True, text=True, check=True)
    return float(json.loads(res.stdout)["gflops"])


# --------------------------------------------------------------------------- reporting

def _first_line(cmd) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (res.stdout or res.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _git_commit() -> str:
    """The popgen checkout's commit, with "+dirty" when tracked files differ from it."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "--", "popgen", "kernels"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def machine_info() -> dict:
    """Date, CPU, cores, memory, BLAS environment and tool versions, for the report."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        blas = "unknown"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": model,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "popgen": _first_line([popgen_exe(), "--version"]),
        "plink2": _first_line([plink2_exe(), "--version"]),
        "plink2_blas": check_plink2_blas(),
        "popgen_commit": _git_commit(),
        "blas_env": {k: os.environ.get(k, "unset") for k in BLAS_ENV},
        "load_average": os.getloadavg(),
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def print_report(title: str, tables: dict[str, tuple[list[dict], list[str]]], *, json_path=None,
                 machine: dict | None = None, extra: dict | None = None, notes: list[str] = ()) -> None:
    """Print ``tables`` (name -> (rows, columns)) as markdown; write everything to ``json_path``."""
    machine = machine if machine is not None else machine_info()
    print(f"## {title}\n")
    print(f"{machine['date']}, {machine['cpu']}, {machine['nproc']} cores, {machine['memory_gb']} GB; "
          f"{machine['plink2']} (BLAS: {machine.get('plink2_blas', '?')}); {machine['popgen']} (commit {machine.get('popgen_commit', '?')}); BLAS env: "
          + ", ".join(f"{k}={v}" for k, v in machine["blas_env"].items()) + "\n")
    for name, (rows, columns) in tables.items():
        print(f"### {name}\n")
        print(markdown_table(rows, columns) + "\n")
    for note in notes:
        print(f"- {note}")
    if notes:
        print()
    if json_path:
        doc = {"title": title, "machine": machine, "tables": {k: rows for k, (rows, _) in tables.items()},
               **(extra or {})}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(doc, indent=2, default=str))
        print(f"(results written to {json_path})")


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


# --------------------------------------------------------------------------- command line

def common_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark takes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-samples", type=int, default=10_000, help="samples of the simulated cohort")
    p.add_argument("--n-variants", type=int, default=100_000, help="variants of the simulated cohort")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="cohorts (cached) and outputs go here")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--cluster", default="local,none",
                   help="popgen --cluster values to measure, comma-separated (local: LocalCluster sized to "
                        "the machine; none: in-process threads)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each command; the fastest is reported")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before a command is killed")
    return p


def clusters(arg: str) -> list[str]:
    values = [c.strip() for c in arg.split(",") if c.strip()]
    if not values:
        raise SystemExit("bench: error: --cluster needs at least one value")
    return values


def best_of(cmd, env, repeats: int, *, log_path, timeout, after=None) -> dict:
    """Fastest of ``repeats`` runs (with that run's peak memory); stops at the first failure.

    ``after()``, if given, is called after each run and its dict merged into
    the run's result (e.g. step timings read from the run's log, which the
    next run overwrites).
    """
    best = None
    for _ in range(max(1, repeats)):
        r = run_measured(cmd, env, log_path=log_path, timeout=timeout)
        if after is not None:
            r.update(after())
        if r["returncode"] != 0:
            return r
        if best is None or r["wall_s"] < best["wall_s"]:
            best = r
    return best


def main(argv=None) -> int:
    """``python scripts/_bench.py``: this machine's description and float32 GEMM rates."""
    p = argparse.ArgumentParser(description="Print this machine's description and float32 GEMM rates (JSON).")
    p.add_argument("--gemm-size", type=int, default=4096, help="matrix size")
    args = p.parse_args(argv)
    info = machine_info()
    info["gemm_gflops"] = {
        f"{t} threads x {b} BLAS threads": gemm_rate(args.gemm_size, threads=t, blas_threads=b)
        for t, b in ((2, 1), (1, 2), (1, 1))
    }
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
