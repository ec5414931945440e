"""Benchmark ``popgen pca`` against PLINK 2's ``--pca`` on the same simulated cohort.

Measures (never asserts), each as the wall time and peak memory of the whole
command line:

1. ``popgen pca --approx --n-pcs 10 --no-plot`` (for each ``--cluster`` value)
   vs ``plink2 --pca approx 10 --threads 2``, and their ratios (popgen / plink2);
2. scaling: the same at twice the variants (a second simulated cohort): time
   should about double, memory stay flat;
3. the fraction of this machine's float32 GEMM rate that popgen's PCA step
   reaches (GEMM flops of the randomized solver / "step pca" time of OUT.log);
4. with ``--exact``: ``popgen pca`` (exact, pairwise) vs ``plink2 --pca 10``;
5. with ``--profile``: an in-process run of ``popgen.pca.pca(..., solver="randomized")``
   on Dask's synchronous scheduler, timing decoding, standardization, GEMMs
   and everything else, plus the top functions of a cProfile.

Run ``python scripts/bench_pca.py --help``; results go to stdout (markdown)
and ``--json FILE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

N_PCS = 10
#: popgen's defaults for the randomized solver (popgen pca --n-iter; pca.pca n_oversamples)
N_ITER = 8
N_OVERSAMPLES = 10


def randomized_gemm_flops(n_samples: int, n_variants: int, k: int = N_PCS, n_iter: int = N_ITER,
                          n_oversamples: int = N_OVERSAMPLES) -> dict:
    """Float32 GEMM flops of ``popgen.pca._randomized``.

    Each streaming pass computes ``X'(X Q)`` for Q of width w: ``X Q`` and
    ``X' (XQ)`` are 2 M N w flops each.  ``_randomized`` makes ``n_iter + 1``
    passes of width ``l = k + oversamples`` (block Lanczos: the Rayleigh-Ritz
    matrix comes from the passes' products; the allele frequencies from the first
    pass's chunks), then the loadings ``X V`` take one pass of width k (2 M N k).
    Host-side QRs and eigendecompositions are not counted.
    """
    m, n = n_variants, n_samples
    l = min(k + n_oversamples, n - 1)  # noqa: E741
    iterations = (n_iter + 1) * 4 * m * n * l
    loadings = 2 * m * n * k
    return {"iterations": iterations, "loadings": loadings, "total": iterations + loadings, "passes": n_iter + 2}


def _eigenvalues(path):
    try:
        return np.loadtxt(path, ndmin=1)
    except (OSError, ValueError):
        return None


def _max_rel_diff(a, b, k=3):
    if a is None or b is None or len(a) < k or len(b) < k:
        return None
    return float(np.max(np.abs(a[:k] - b[:k]) / np.abs(b[:k])))


def run_pair(args, prefix, tag, *, exact: bool, clusters, with_plink=True) -> list[dict]:
    """PLINK 2 and popgen (each cluster) on one cohort and solver: one row each."""
    out_dir = Path(args.workdir) / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    n, m = args.n_samples, int(tag)
    env = _bench.tool_env()
    _bench.warm_cache(f"{prefix}.bed")
    solver = "exact" if exact else "approx"
    rows = []
    plink = None
    if with_plink:
        out = out_dir / f"plink2_{solver}_m{m}"
        cmd = [_bench.plink2_exe(), "--bfile", prefix, "--pca"] + ([] if exact else ["approx"]) + [
            str(N_PCS), "--threads", str(_bench.THREADS), "--out", out] + args.freq_flags
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout)
        plink = dict(tool="plink2", cluster="-", solver=solver, samples=n, variants=m, **r)
        plink["eigenval"] = _eigenvalues(f"{out}.eigenval")
        rows.append(plink)
    for cluster in clusters:
        out = out_dir / f"popgen_{solver}_{cluster}_m{m}"
        cmd = [_bench.popgen_exe(), "pca", "--bfile", prefix, "--out", out, "--n-pcs", str(N_PCS), "--no-plot",
               "--cluster", cluster, "--no-progress"] + ([] if exact else ["--approx"]) + args.freq_flags
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        best = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout,
                              after=lambda: {"pca_step_s": _bench.step_timings(f"{out}.log").get("pca")})
        row = dict(tool="popgen", cluster=cluster, solver=solver, samples=n, variants=m, **best)
        row["eigenval"] = _eigenvalues(f"{out}.eigenval")
        if plink is not None:
            row["time_ratio"] = _bench.ratio(row["wall_s"], plink["wall_s"])
            row["mem_ratio"] = _bench.ratio(row["peak_rss_mb"], plink["peak_rss_mb"])
            row["eigval_rel_diff_top3"] = _max_rel_diff(row["eigenval"], plink["eigenval"])
        rows.append(row)
    for row in rows:
        if row["returncode"] != 0:
            print(f"warning: {row['tool']} ({row['cluster']}) exited with {row['returncode']}", file=sys.stderr)
        row["eigenval"] = None if row["eigenval"] is None else [float(v) for v in row["eigenval"][:N_PCS]]
    return rows


# --------------------------------------------------------------------------- profile

def profile(prefix, n_samples, n_variants, *, top: int = 25) -> dict:
    """Where popgen's randomized PCA spends its time, on one thread (Dask's synchronous scheduler).

    Wraps the per-block functions to time them (decoding, genotype stacking,
    ALT counts, standardization, the GEMM blocks), then runs the same call
    under cProfile.  Returns the breakdown and cProfile's top functions.
    """
    import cProfile
    import functools
    import io
    import pstats
    import time

    import dask

    import popgen.genotypes as genotypes
    import popgen.io.plink as plink
    from popgen import pca as pca_mod

    spent: dict[str, float] = {}

    def timed(name, fn):
        @functools.wraps(fn)  # keeps the signature: Dask passes block_info only to functions that take it
        def wrapper(*a, **kw):
            t0 = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - t0
        return wrapper

    originals = {
        (plink, "_decode_block"): plink._decode_block,
        (plink, "genotype_from_alt_count"): plink.genotype_from_alt_count,
        (genotypes, "alt_count_from_genotype"): genotypes.alt_count_from_genotype,
        (pca_mod, "_standardize_with"): pca_mod._standardize_with,
        (pca_mod, "pass_block"): pca_mod.pass_block,
        (pca_mod, "loadings_block"): pca_mod.loadings_block,
    }
    names = {"_decode_block": "decode .bed (2-bit -> int8)",
             "genotype_from_alt_count": "ALT count -> genotype (v, s, 2)",
             "alt_count_from_genotype": "genotype -> ALT count",
             "_standardize_with": "standardize",
             "pass_block": "pass_block (standardize + 2 GEMMs)",
             "loadings_block": "loadings_block (standardize + X V)"}

    def run():
        ds = plink.read_plink(prefix)
        return pca_mod.pca(ds, n_components=N_PCS, solver="randomized", samples=None, n_iter=N_ITER)

    try:
        from threadpoolctl import threadpool_limits  # BLAS on this thread only: thread_time sees all of it
    except ImportError:  # pragma: no cover
        import contextlib

        print("warning: threadpoolctl missing; run with OPENBLAS_NUM_THREADS=1 for exact GEMM times", file=sys.stderr)

        def threadpool_limits(_):
            return contextlib.nullcontext()

    prof = cProfile.Profile()
    with threadpool_limits(1), dask.config.set(scheduler="synchronous"):
        try:  # 1. per-block CPU times
            for (mod, attr), fn in originals.items():
                setattr(mod, attr, timed(names[attr], fn))
            t0, w0 = time.thread_time(), time.perf_counter()
            run()
            total, wall = time.thread_time() - t0, time.perf_counter() - w0
        finally:
            for (mod, attr), fn in originals.items():
                setattr(mod, attr, fn)
        prof.enable()  # 2. cProfile of the same call
        run()
        prof.disable()

    std = spent.get(names["_standardize_with"], 0.0)
    gemm_blocks = spent.get(names["pass_block"], 0.0) + spent.get(names["loadings_block"], 0.0)
    gemm = gemm_blocks - std  # every standardization happens inside the product blocks
    parts = [spent.get(names[a], 0.0) for a in ("_decode_block", "genotype_from_alt_count", "alt_count_from_genotype")]
    decode = sum(parts)
    flops = randomized_gemm_flops(n_samples, n_variants)["total"]
    breakdown = [
        {"phase": "decode: .bed -> int8 ALT counts", "seconds": decode},
        {"phase": "  of which decode_bed kernel (numba)", "seconds": parts[0]},
    ]
    if parts[1] or parts[2]:  # readers that expose only call_genotype: ALT counts via (v, s, 2) genotypes
        breakdown += [
            {"phase": "  of which ALT count -> genotype (v, s, 2) (genotype_from_alt_count)", "seconds": parts[1]},
            {"phase": "  of which genotype -> ALT count (alt_count_from_genotype)", "seconds": parts[2]},
        ]
    breakdown += [
        {"phase": "standardize (per-variant table + lookup)", "seconds": std},
        {"phase": "GEMMs (X Q, X' Y, X V)", "seconds": gemm,
         "note": f"{flops / 1e9 / gemm:.1f} GFLOP/s on 1 thread" if gemm > 0 else ""},
        {"phase": "everything else (frequency counts, rechunk/concatenate, sums, Dask, host QR/eigh, reading)",
         "seconds": total - decode - std - gemm},
        {"phase": "total CPU time of the thread (synchronous scheduler)", "seconds": total,
         "note": f"wall {wall:.1f} s"},
    ]
    for row in breakdown:
        row["share"] = row["seconds"] / total if total else None
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return {"breakdown": breakdown, "cprofile_top": buf.getvalue(), "total_s": total}


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = _bench.common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--exact", action="store_true", help="also compare the exact solver with plink2 --pca 10")
    p.add_argument("--no-scaling", action="store_true", help="skip the run at twice the variants")
    p.add_argument("--profile", action="store_true",
                   help="also profile popgen's randomized PCA in-process (synchronous scheduler, cProfile)")
    p.add_argument("--profile-only", action="store_true", help="only the in-process profile")
    p.add_argument("--gemm-size", type=int, default=4096, help="matrix size of the GEMM rate measurement")
    p.add_argument("--founders", action="store_true",
                   help="frequencies from founders (both tools' default) instead of --nonfounders for both; "
                        "PLINK 2 then stops on variants whose minor allele only nonfounders carry")
    args = p.parse_args(argv)
    args.freq_flags = [] if args.founders else ["--nonfounders"]
    clusters = _bench.clusters(args.cluster)
    machine = _bench.machine_info()

    prefix, sim = _bench.ensure_cohort(args.workdir, args.n_samples, args.n_variants)
    tables, extra, notes = {}, {"simulation": [dict(sim, n_variants=args.n_variants)]}, []

    if args.profile or args.profile_only:
        print("profiling popgen's randomized PCA in-process", file=sys.stderr)
        prof = profile(prefix, args.n_samples, args.n_variants)
        tables["Where popgen's randomized PCA spends its time (1 thread, synchronous scheduler)"] = (
            prof["breakdown"], ["phase", "seconds", "share", "note"])
        extra["cprofile_top"] = prof["cprofile_top"]
        print(prof["cprofile_top"], file=sys.stderr)
    if args.profile_only:
        _bench.print_report("popgen PCA profile", tables, json_path=args.json, machine=machine, extra=extra)
        return 0

    print("measuring the float32 GEMM rate", file=sys.stderr)
    rates = {
        "2 threads x 1 BLAS thread (popgen's workers)": _bench.gemm_rate(args.gemm_size, threads=2, blas_threads=1),
        "1 thread x 2 BLAS threads": _bench.gemm_rate(args.gemm_size, threads=1, blas_threads=2),
        "1 thread x 1 BLAS thread": _bench.gemm_rate(args.gemm_size, threads=1, blas_threads=1),
    }
    machine_rate = max(rates.values())
    tables[f"float32 GEMM rate ({args.gemm_size} x {args.gemm_size}, best of 3)"] = (
        [{"setting": k, "GFLOP/s": v} for k, v in rates.items()], ["setting", "GFLOP/s"])

    cols = ["tool", "cluster", "solver", "samples", "variants", "wall_s", "peak_rss_mb", "peak_at_s", "pca_step_s",
            "time_ratio", "mem_ratio", "cpu_s", "other_cpu_s", "eigval_rel_diff_top3", "returncode"]
    rows = run_pair(args, prefix, args.n_variants, exact=False, clusters=clusters)
    all_rows = list(rows)
    main_table = "popgen pca --approx vs plink2 --pca approx"
    tables[main_table] = (all_rows, cols)  # rows at 2M are appended below
    if not args.no_scaling:
        m2 = 2 * args.n_variants
        prefix2, sim2 = _bench.ensure_cohort(args.workdir, args.n_samples, m2)
        extra["simulation"].append(dict(sim2, n_variants=m2))
        rows2 = run_pair(args, prefix2, m2, exact=False, clusters=clusters)
        all_rows += rows2
        scaling = []
        for a in rows:
            b = next(r for r in rows2 if r["tool"] == a["tool"] and r["cluster"] == a["cluster"])
            scaling.append({"tool": a["tool"], "cluster": a["cluster"],
                            "wall_s (M)": a["wall_s"], "wall_s (2M)": b["wall_s"],
                            "time x": _bench.ratio(b["wall_s"], a["wall_s"]),
                            "pca_step_s (M)": a.get("pca_step_s"), "pca_step_s (2M)": b.get("pca_step_s"),
                            "step x": _bench.ratio(b.get("pca_step_s"), a.get("pca_step_s")),
                            "peak_mb (M)": a["peak_rss_mb"], "peak_mb (2M)": b["peak_rss_mb"],
                            "memory x": _bench.ratio(b["peak_rss_mb"], a["peak_rss_mb"])})
        tables[f"Scaling: {args.n_variants} -> {m2} variants ({args.n_samples} samples, approx)"] = (
            scaling, list(scaling[0]))

    gemm_rows = []
    for r in all_rows:
        if r["tool"] != "popgen" or not r.get("pca_step_s") or r["returncode"] != 0:
            continue
        flops = randomized_gemm_flops(r["samples"], r["variants"])
        achieved = flops["total"] / r["pca_step_s"] / 1e9
        gemm_rows.append({"cluster": r["cluster"], "variants": r["variants"], "GEMM GFLOP": flops["total"] / 1e9,
                          "pca_step_s": r["pca_step_s"], "GFLOP/s": achieved, "machine GFLOP/s": machine_rate,
                          "fraction": achieved / machine_rate,
                          "GEMM-bound time_s": flops["total"] / 1e9 / machine_rate})
    if gemm_rows:
        tables["popgen's PCA step vs the machine's float32 GEMM rate"] = (gemm_rows, list(gemm_rows[0]))
        f = randomized_gemm_flops(args.n_samples, args.n_variants)
        notes.append(f"GEMM flops counted from popgen.pca._randomized: {N_ITER + 1} passes of width "
                     f"{N_PCS + N_OVERSAMPLES} ({f['iterations'] / 1e9:.1f} GFLOP), 4 M N w per pass of width w, "
                     f"and the loadings pass X V of width {N_PCS} ({f['loadings'] / 1e9:.1f} GFLOP).")

    if args.exact:
        ex = run_pair(args, prefix, args.n_variants, exact=True, clusters=clusters)
        tables["popgen pca (exact, pairwise) vs plink2 --pca"] = (ex, cols)
    tables["Simulation (popgen simulate --no-vcz)"] = (
        extra["simulation"], ["n_variants", "wall_s", "peak_rss_mb", "cached"])
    notes.append("wall_s: the whole command (start-up, reading, computing, writing); peak_rss_mb: max over "
                 f"{_bench.POLL_INTERVAL * 1000:.0f} ms polls of the summed RSS of the process tree (MiB).")
    if not args.founders:
        notes.append("both tools run with --nonfounders (frequencies from all samples): with founders' "
                     "frequencies PLINK 2 refuses --pca when a variant's minor allele is only seen in "
                     "nonfounders (\"Zero-MAF variant is not actually monomorphic\"), as in the simulated "
                     "cohorts with relatives.")
    notes.append("cpu_s: CPU time of the command's process tree; other_cpu_s: CPU time used by the rest of "
                 "the machine during the run (large values: the measurement was disturbed).")
    notes.append("ratios are popgen / plink2 on the same cohort; both tools run with OPENBLAS_NUM_THREADS=1, "
                 f"plink2 with --threads {_bench.THREADS}.")
    _bench.print_report("popgen pca vs PLINK 2", tables, json_path=args.json, machine=machine, extra=extra,
                        notes=notes)
    failed = [r for r in all_rows if r["returncode"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
