"""Benchmark ``popgen gwas`` against PLINK 2's ``--glm`` on the same simulated cohort.

Measures (never asserts), each as the wall time and peak memory of the whole
command line, with covariates SEX, AGE and 10 PCs (computed once with
``popgen pca --approx`` and cached):

1. linear: ``plink2 --glm hide-covar`` on QT vs ``popgen gwas`` on QT;
2. logistic: ``plink2 --glm hide-covar firth-fallback`` on BT vs ``popgen gwas``
   on BT (logistic regression with Firth fallback);
3. many phenotypes: 100 quantitative phenotypes (QT plus noise, cached) vs
   the single QT, for both tools (goal: popgen's 100 in under 3x its 1);
4. agreement of the two tools' outputs (max relative difference of BETA/OR
   and SE, max absolute difference of -log10 P, ERRCODE classes);
5. the fraction of this machine's float64 / float32 GEMM rate the scan
   reaches (flops of the code path used / "step gwas" time of OUT.log).

Both tools run with ``OPENBLAS_NUM_THREADS=1``, PLINK 2 with ``--threads 2``
(with 2 BLAS threads its logistic run spins several times slower).  popgen
writes only the .glm files here (``--no-ssf --no-plots``), as PLINK 2 does;
``--with-extras`` adds a run with GWAS-SSF and plots.  Run
``python scripts/bench_gwas.py --help``; results go to stdout (markdown),
``--json FILE`` and ``--save`` (``WORKDIR/results/gwas.{md,json}``).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

N_PCS = 10
COVARS = ["SEX", "AGE"] + [f"PC{i}" for i in range(1, N_PCS + 1)]
N_PHENO = 100


# --------------------------------------------------------------------------- inputs

def prepare(args, prefix: Path) -> dict:
    """The covariate table (SEX, AGE, PC1..PC10) and the many-phenotype table, cached in WORKDIR/gwas."""
    import pandas as pd

    gdir = Path(args.workdir) / "gwas" / f"n{args.n_samples}_m{args.n_variants}"
    gdir.mkdir(parents=True, exist_ok=True)
    info = {}
    pcs = gdir / "pcs"
    if not Path(f"{pcs}.eigenvec").is_file():
        cmd = [_bench.popgen_exe(), "pca", "--bfile", prefix, "--out", pcs, "--approx", "--n-pcs", str(N_PCS),
               "--no-plot", "--cluster", "none", "--no-progress"]
        print(f"computing PCs: {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.run_measured(cmd, _bench.tool_env(), log_path=f"{pcs}.stdout", timeout=args.timeout)
        if r["returncode"] != 0:
            sys.exit(f"bench: error: popgen pca failed (exit {r['returncode']}); see {pcs}.stdout")
        Path(f"{pcs}.bench.json").write_text(json.dumps(r))
        info["pca"] = dict(r, cached=False)
    else:
        info["pca"] = dict(json.loads(Path(f"{pcs}.bench.json").read_text()) if Path(f"{pcs}.bench.json").is_file()
                           else {}, cached=True)
    covar = gdir / "covar.tsv"
    if not covar.is_file():
        base = pd.read_csv(f"{prefix}.covar", sep="\t")
        vec = pd.read_csv(f"{pcs}.eigenvec", sep="\t")
        table = base.merge(vec, on=["#FID", "IID"], how="left", validate="one_to_one")
        for col in COVARS:  # z-scores: PLINK 2 refuses raw AGE next to PCs (UNSTABLE_SCALE); same file for both
            x = table[col].astype(float)
            table[col] = ((x - x.mean()) / x.std()).round(7)
        table[["#FID", "IID"] + COVARS].to_csv(covar, sep="\t", index=False, na_rep="NA")
    pheno = gdir / f"pheno{N_PHENO}.tsv"
    if not pheno.is_file():
        base = pd.read_csv(f"{prefix}.pheno", sep="\t")
        qt = base["QT"].to_numpy(dtype=float)
        rng = np.random.default_rng(7)
        sd = np.nanstd(qt)
        cols = {"QT": qt}
        for i in range(2, N_PHENO + 1):
            cols[f"QT{i}"] = np.round(qt + rng.normal(scale=sd, size=qt.shape), 6)  # missing where QT is
        table = pd.concat([base[["#FID", "IID"]], pd.DataFrame(cols)], axis=1)
        table.to_csv(pheno, sep="\t", index=False, na_rep="NA")
    info.update(covar=covar, pheno=Path(f"{prefix}.pheno"), pheno_many=pheno)
    return info


# --------------------------------------------------------------------------- runs

def _plink_cmd(prefix, pheno, names, covar, out, modifiers):
    cmd = [_bench.plink2_exe(), "--bfile", prefix, "--pheno", pheno]
    if names:
        cmd += ["--pheno-name", *names]
    return cmd + ["--covar", covar, "--covar-name", *COVARS, "--glm", "hide-covar", *modifiers,
                  "--threads", str(_bench.THREADS), "--out", out]


def _popgen_cmd(prefix, pheno, names, covar, out, cluster, extra=()):
    cmd = [_bench.popgen_exe(), "gwas", "--bfile", prefix, "--pheno", pheno]
    if names:
        cmd += ["--pheno-name", " ".join(names)]
    return cmd + ["--covar", covar, "--covar-name", " ".join(COVARS), "--out", out, "--cluster", cluster,
                  "--no-progress", *extra]


def run_case(args, prefix, inputs, case: str, clusters, *, with_plink=True) -> list[dict]:
    """PLINK 2 and popgen (each cluster) on one case: linear, logistic or many."""
    out_dir = Path(args.workdir) / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _bench.tool_env()
    _bench.warm_cache(f"{prefix}.bed")
    pheno, names, modifiers = {
        "linear": (inputs["pheno"], ["QT"], []),
        "logistic": (inputs["pheno"], ["BT"], ["firth-fallback"]),
        "many": (inputs["pheno_many"], None, []),
    }[case]
    n_pheno = N_PHENO if case == "many" else 1
    rows = []
    plink = None
    if with_plink and case == "many":
        # PLINK 2 a3.5 fits the phenotypes one after the other (~100x one phenotype's time): on the
        # first --plink-many-variants variants only, 1 and 100 phenotypes, for its own ratio
        subset = Path(args.workdir) / "gwas" / f"first{args.plink_many_variants}.snplist"
        with open(f"{prefix}.bim") as f, open(subset, "w") as o:
            for i, line in zip(range(args.plink_many_variants), f):
                o.write(line.split()[1] + "\n")
        for k, nm in ((1, ["QT"]), (N_PHENO, None)):
            out = out_dir / f"plink2_gwas_many{k}_first{args.plink_many_variants}"
            cmd = _plink_cmd(prefix, pheno, nm, inputs["covar"], out, modifiers) + ["--extract", subset]
            print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
            r = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout)
            rows.append(dict(tool="plink2", cluster="-", case=f"many (first {args.plink_many_variants} variants)",
                             phenotypes=k, outputs="glm", **r))
    elif with_plink:
        out = out_dir / f"plink2_gwas_{case}_m{args.n_variants}"
        cmd = _plink_cmd(prefix, pheno, names, inputs["covar"], out, modifiers)
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout)
        plink = dict(tool="plink2", cluster="-", case=case, phenotypes=n_pheno, outputs="glm", **r)
        plink["_out"] = str(out)
        rows.append(plink)
    variants = [("glm", ["--no-ssf", "--no-plots"])]
    if args.with_extras and case != "many":
        variants.append(("glm+ssf+plots", []))
    for cluster in clusters:
        for label, extra in variants:
            out = out_dir / f"popgen_gwas_{case}_{cluster}_{label.replace('+', '_')}_m{args.n_variants}"
            cmd = _popgen_cmd(prefix, pheno, names, inputs["covar"], out, cluster, extra)
            print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
            best = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout,
                                  after=lambda o=out: {"gwas_step_s": _bench.step_timings(f"{o}.log").get("gwas")})
            row = dict(tool="popgen", cluster=cluster, case=case, phenotypes=n_pheno, outputs=label, **best)
            row["_out"] = str(out)
            if plink is not None:
                row["time_ratio"] = _bench.ratio(row["wall_s"], plink["wall_s"])
                row["mem_ratio"] = _bench.ratio(row["peak_rss_mb"], plink["peak_rss_mb"])
            rows.append(row)
    for row in rows:
        if row["returncode"] != 0:
            print(f"warning: {row['tool']} ({row['cluster']}, {case}) exited with {row['returncode']}",
                  file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- agreement

def _glm_path(out, case, name):
    ext = "glm.linear" if case != "logistic" else "glm.logistic.hybrid"
    return Path(f"{out}.{name}.{ext}")


def agreement(plink_row, popgen_row, case, names) -> dict:
    """Max differences between the two tools' .glm files over the phenotypes ``names``."""
    import pandas as pd

    est, se_col = ("BETA", "SE") if case != "logistic" else ("OR", "LOG(OR)_SE")
    worst = {"max_rel_beta": 0.0, "max_rel_se": 0.0, "max_abs_log10p": 0.0, "errcode_mismatch": 0, "rows": 0}
    for name in names:
        try:
            a = pd.read_csv(_glm_path(popgen_row["_out"], case, name), sep="\t")
            b = pd.read_csv(_glm_path(plink_row["_out"], case, name), sep="\t")
        except OSError:
            return {}
        shown = ("." , "UNFINISHED")
        ea = np.where(np.isin(a.ERRCODE, shown), "estimate", a.ERRCODE.astype(str))
        eb = np.where(np.isin(b.ERRCODE, shown), "estimate", b.ERRCODE.astype(str))
        ok = (ea == "estimate") & (eb == "estimate")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_b = np.abs(a[est][ok] - b[est][ok]) / np.abs(b[est][ok])
            rel_s = np.abs(a[se_col][ok] - b[se_col][ok]) / np.abs(b[se_col][ok])
            lp = np.abs(np.log10(a.P[ok].astype(float)) - np.log10(b.P[ok].astype(float)))
        worst["max_rel_beta"] = max(worst["max_rel_beta"], float(np.nanmax(rel_b)) if ok.any() else 0.0)
        worst["max_rel_se"] = max(worst["max_rel_se"], float(np.nanmax(rel_s)) if ok.any() else 0.0)
        worst["max_abs_log10p"] = max(worst["max_abs_log10p"], float(np.nanmax(lp)) if ok.any() else 0.0)
        worst["errcode_mismatch"] += int((ea != eb).sum())
        worst["rows"] += len(a)
        if case == "logistic":
            worst["firth_rows"] = int((a["FIRTH?"] == "Y").sum())
            worst["firth_mismatch"] = int((a["FIRTH?"] != b["FIRTH?"]).sum())
    return worst


# --------------------------------------------------------------------------- flops

def linear_flops(n, m, n_pheno, n_cov, *, missing) -> dict:
    """Flops of popgen's exact linear scan for ``n`` samples, ``m`` variants, ``n_pheno``
    phenotypes sharing one sample set and ``n_cov`` covariates (``K = n_cov + 1``).

    ``dense``: the three GEMMs of ``linear_partial_block``'s array-namespace path:
    ``G @ wg`` (``1 + K + P`` columns), ``G^2 @ masks`` (1) and the missing-call
    indicators ``M @ wo`` (``K(K+1)/2 + K P + P + 1`` columns): 2 n m columns.
    ``kernel``: what the CPU kernel computes -- the same two genotype GEMMs
    (BLAS) and the ``wo`` sums over the missing calls only (a fraction
    ``missing`` of the calls).
    """
    k = n_cov + 1
    wg = 1 + k + n_pheno
    wo = k * (k + 1) // 2 + k * n_pheno + n_pheno + 1
    gemm = 2.0 * n * m * (wg + 1)
    return {"dense": gemm + 2.0 * n * m * wo, "kernel": gemm + 2.0 * n * m * missing * wo}


def call_stats(prefix, max_variants=20000) -> dict:
    """Fractions of calls non-zero in the ALT count and in the rarer allele's count, and missing (a sample of variants)."""
    from popgen.io.plink import read_plink

    ds = read_plink(prefix)
    m = ds.sizes["variants"]
    idx = np.linspace(0, m - 1, min(m, max_variants)).astype(int)
    alt = np.asarray(ds["call_alt_count"].data[idx].compute())
    called = alt >= 0
    nz_alt = ((alt > 0) & called).sum(axis=1)
    nz_ref = ((alt < 2) & called).sum(axis=1)
    return {"density_alt": float(nz_alt.sum() / alt.size), "density_rarer": float(np.minimum(nz_alt, nz_ref).sum() / alt.size),
            "missing": float((~called).sum() / alt.size)}


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = _bench.common_parser(__doc__.split("\n\n")[0])
    p.set_defaults(cluster="none")
    p.add_argument("--cases", default="linear,logistic,many", help="comma-separated: linear, logistic, many")
    p.add_argument("--with-extras", action="store_true", help="also time popgen with GWAS-SSF and plots")
    p.add_argument("--no-plink", action="store_true", help="popgen only (no ratios)")
    p.add_argument("--plink-many-variants", type=int, default=2000,
                   help="PLINK 2's many-phenotype runs use the first N variants (it fits phenotypes one by one)")
    p.add_argument("--gemm-size", type=int, default=4096, help="matrix size of the GEMM rate measurement")
    p.add_argument("--save", action="store_true", help="also write WORKDIR/results/gwas.{md,json}")
    args = p.parse_args(argv)
    clusters = _bench.clusters(args.cluster)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    machine = _bench.machine_info()
    prefix, sim = _bench.ensure_cohort(args.workdir, args.n_samples, args.n_variants)
    inputs = prepare(args, prefix)
    tables, extra, notes = {}, {"simulation": sim, "pca": inputs["pca"]}, []

    print("measuring GEMM rates", file=sys.stderr)
    rates = {(dt, t, b): _bench.gemm_rate(args.gemm_size, threads=t, blas_threads=b, dtype=dt)
             for dt in ("float64", "float32") for t, b in ((2, 1), (1, 1))}
    tables[f"GEMM rate ({args.gemm_size} x {args.gemm_size}, best of 3)"] = (
        [{"dtype": dt, "setting": f"{t} threads x {b} BLAS thread", "GFLOP/s": v} for (dt, t, b), v in rates.items()],
        ["dtype", "setting", "GFLOP/s"])
    rate = {dt: max(v for (d, _, _), v in rates.items() if d == dt) for dt in ("float64", "float32")}

    cols = ["tool", "cluster", "case", "phenotypes", "outputs", "wall_s", "peak_rss_mb", "gwas_step_s", "time_ratio",
            "mem_ratio", "cpu_s", "other_cpu_s", "returncode"]
    results = {}
    for case in cases:
        results[case] = run_case(args, prefix, inputs, case, clusters, with_plink=not args.no_plink)
    all_rows = [r for rows in results.values() for r in rows]
    tables["popgen gwas vs plink2 --glm (SEX, AGE, PC1-10 as covariates)"] = (all_rows, cols)

    goals = []
    for case, limit in (("linear", 0.1), ("logistic", 0.5)):
        for r in results.get(case, []):
            if r["tool"] == "popgen" and r.get("time_ratio") is not None and r["outputs"] == "glm":
                goals.append({"goal": f"{case}: time <= {limit} x plink2", "cluster": r["cluster"],
                              "value": r["time_ratio"], "met": r["time_ratio"] <= limit})
                goals.append({"goal": f"{case}: memory <= plink2", "cluster": r["cluster"],
                              "value": r["mem_ratio"], "met": r["mem_ratio"] <= 1.0})
    many = []
    for r in results.get("many", []):
        if r["tool"] == "plink2":
            if r["phenotypes"] != N_PHENO:
                continue
            one = next(x for x in results["many"] if x["tool"] == "plink2" and x["phenotypes"] == 1)
        else:
            one = next((x for x in results.get("linear", []) if x["tool"] == r["tool"]
                        and x["cluster"] == r["cluster"] and x["outputs"] == r["outputs"]), None)
        if one is None:
            continue
        many.append({"tool": r["tool"], "cluster": r["cluster"], "case": r["case"], "wall_s (1)": one["wall_s"],
                     f"wall_s ({N_PHENO})": r["wall_s"], "time x": _bench.ratio(r["wall_s"], one["wall_s"]),
                     "step_s (1)": one.get("gwas_step_s"), f"step_s ({N_PHENO})": r.get("gwas_step_s"),
                     "step x": _bench.ratio(r.get("gwas_step_s"), one.get("gwas_step_s")),
                     "peak_mb (1)": one["peak_rss_mb"], f"peak_mb ({N_PHENO})": r["peak_rss_mb"]})
        if r["tool"] == "popgen":
            x = _bench.ratio(r["wall_s"], one["wall_s"])
            goals.append({"goal": f"{N_PHENO} phenotypes: time < 3 x one", "cluster": r["cluster"], "value": x,
                          "met": x is not None and x < 3.0})
    if many:
        tables[f"{N_PHENO} phenotypes vs 1 (linear)"] = (many, list(many[0]))

    agree = []
    for case, rows in results.items():
        plink = next((r for r in rows if r["tool"] == "plink2" and r["returncode"] == 0), None)
        if plink is None:
            continue
        if case == "many":
            continue  # PLINK 2 ran on a subset of the variants
        names = ["QT"] if case == "linear" else ["BT"]
        for r in rows:
            if r["tool"] == "popgen" and r["returncode"] == 0 and r["outputs"] == "glm":
                a = agreement(plink, r, case, names)
                if a:
                    agree.append(dict(case=case, cluster=r["cluster"], **a))
    if agree:
        tables["Agreement with plink2 (rows with estimates in both)"] = (
            agree, ["case", "cluster", "rows", "max_rel_beta", "max_rel_se", "max_abs_log10p", "errcode_mismatch",
                    "firth_rows", "firth_mismatch"])

    stats = call_stats(prefix)
    extra["calls"] = stats
    gemm_rows = []
    for r in all_rows:
        if r["tool"] != "popgen" or r["case"] == "logistic" or not r.get("gwas_step_s") or r["returncode"]:
            continue
        f = linear_flops(args.n_samples, args.n_variants, r["phenotypes"], len(COVARS), missing=stats["missing"])
        for kind in ("dense", "kernel"):
            achieved = f[kind] / r["gwas_step_s"] / 1e9
            gemm_rows.append({"case": r["case"], "cluster": r["cluster"], "flops counted": kind,
                              "GFLOP": f[kind] / 1e9, "gwas_step_s": r["gwas_step_s"], "GFLOP/s": achieved,
                              "fraction of fp64 rate": achieved / rate["float64"],
                              "fraction of fp32 rate": achieved / rate["float32"]})
    if gemm_rows:
        tables["popgen's linear scan vs the machine's GEMM rates"] = (gemm_rows, list(gemm_rows[0]))
        notes.append(f"calls: {stats['missing']:.4f} missing (sampled variants). GEMM flops of the exact linear "
                     "scan: 'dense' = the float64 GEMMs of linear_partial_block's array-namespace path (G @ [founder, "
                     "C, Y], G^2 @ masks, Missing @ [C C', C Y, Y^2]); 'kernel' = what the CPU kernel computes (the "
                     "genotype GEMMs with BLAS, the missing-call columns summed over missing calls only). The step "
                     "time includes decoding, solving, p-values and writing, so the fraction is a lower bound.")
    if goals:
        tables["Goals (issue 5)"] = (goals, ["goal", "cluster", "value", "met"])
    pca = inputs["pca"]
    notes.append(f"covariates: {', '.join(COVARS)}, standardized (z-scores, one file read by both tools: "
                 "PLINK 2 stops with UNSTABLE_SCALE on raw AGE next to PCs; estimates of the genotype "
                 f"term do not depend on covariate scaling); PCs from popgen pca --approx (wall "
                 f"{pca.get('wall_s') or 0:.1f} s, {'cached' if pca.get('cached') else 'computed in this run'}), "
                 "outside the timed runs.")
    notes.append(f"{N_PHENO} phenotypes: QT and {N_PHENO - 1} columns QT + N(0, sd(QT)) noise, missing where QT is "
                 "(one sample set, as in a multi-trait study). popgen runs on all variants; PLINK 2 a3.5 fits "
                 f"phenotypes one after the other, so its 1 and {N_PHENO} phenotype runs use the first "
                 f"{args.plink_many_variants} variants (its own ratio is the reference).")
    notes.append("wall_s: the whole command (start-up, reading, computing, writing); peak_rss_mb: max over "
                 f"{_bench.POLL_INTERVAL * 1000:.0f} ms polls of the summed RSS of the process tree (MiB); "
                 "gwas_step_s: popgen's 'step gwas' from OUT.log.")
    notes.append("cpu_s: CPU time of the command's process tree; other_cpu_s: CPU time used by the rest of "
                 "the machine during the run (large values: the measurement was disturbed).")
    notes.append("ratios are popgen / plink2 on the same cohort; both tools run with OPENBLAS_NUM_THREADS=1, "
                 f"plink2 with --threads {_bench.THREADS}.")
    for r in all_rows:
        r.pop("_out", None)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _bench.print_report("popgen gwas vs PLINK 2 --glm", tables, json_path=args.json, machine=machine,
                            extra=extra, notes=notes)
    text = buf.getvalue()
    print(text, end="")
    if args.save:
        res = Path(args.workdir) / "results"
        res.mkdir(parents=True, exist_ok=True)
        (res / "gwas.md").write_text(text)
        if args.json != str(res / "gwas.json"):
            with contextlib.redirect_stdout(io.StringIO()):
                _bench.print_report("popgen gwas vs PLINK 2 --glm", tables, json_path=res / "gwas.json",
                                    machine=machine, extra=extra, notes=notes)
    failed = [r for r in all_rows if r["returncode"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
