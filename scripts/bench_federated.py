"""Benchmark the federated GWAS: a site's export and the coordinator's combine.

The simulated cohort is split into two sites (alternate samples); the plan holds
every variant, the phenotype QT and the covariates of ``bench_gwas.py`` (SEX, AGE and
10 PCs, z-scored; made and cached as there).  Measured, as wall
time and peak memory of the whole command line (never asserted):

``export``
    ``popgen federated export --kind linear`` (and ``sumstats``) at one site (half the samples);
``combine``
    ``popgen federated combine`` of the two sites' bundles (pooled .glm.linear, GWAS-SSF, no
    plots; or the meta-analysis).
``pca`` (``--kinds pca``)
    the federated PCA over every variant (10 PCs, 10 oversamples, ``--pca-rounds`` Krylov
    rounds and the final one): the coordinator's combine of the counts (which starts the PCA)
    and of each round's products (each run once: a round advances the PCA), and one site's
    export of the first and the last round's product.
``pca-coordinator`` (``--kinds pca-coordinator``, alone)
    the coordinator's side of the federated PCA at ``--n-variants`` without a cohort: a plan
    of synthetic variants, two sites' counts and, each round, products made up (random, of the
    right shape) instead of computed: the coordinator's memory and time at 10^6 variants and
    beyond, where simulating and exporting a cohort would take hours.

Memory should not grow with the number of variants (run with two ``--n-variants``
values to see).  There is no PLINK 2 counterpart; ``popgen gwas`` on the pooled
cohort is timed alongside for scale.  Run ``python scripts/bench_federated.py --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402
import bench_gwas  # noqa: E402


def _sites(prefix, workdir: Path) -> list[Path]:
    """Keep files of the two sites (alternate samples of the .fam)."""
    ids = [line.split()[:2] for line in Path(f"{prefix}.fam").read_text().splitlines()]
    paths = []
    for k in range(2):
        path = workdir / f"site{k}.keep"
        path.write_text("".join(f"{f} {i}\n" for f, i in ids[k::2]))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    p = _bench.common_parser(__doc__.split("\n\n")[0])
    p.set_defaults(cluster="none")
    p.add_argument("--kinds", default="linear,sumstats", help="bundle kinds to export and combine: linear "
                                                              "(pooled regression), sumstats (meta-analysis), "
                                                              "pca (the federated PCA's rounds)")
    p.add_argument("--pca-rounds", type=int, default=10, help="Krylov rounds of --kinds pca")
    args = p.parse_args(argv)
    cluster = _bench.clusters(args.cluster)[0]
    machine = _bench.machine_info()
    if args.kinds == "pca-coordinator":
        rows = _pca_coordinator(args)
        title = f"federated PCA coordinator ({args.n_variants} synthetic variants, two sites, made-up products)"
        cols = ["step", "n_variants", "round", "wall_s", "peak_rss_mb", "cpu_s", "other_cpu_s", "returncode"]
        _bench.print_report(title, {title: (rows, cols)}, json_path=args.json, machine=machine,
                            notes=["wall_s, peak_rss_mb: the coordinator's `popgen federated combine` alone."])
        return 1 if any(r["returncode"] != 0 for r in rows) else 0
    prefix, sim = _bench.ensure_cohort(args.workdir, args.n_samples, args.n_variants)
    work = Path(args.workdir) / "federated" / f"n{args.n_samples}_m{args.n_variants}"
    work.mkdir(parents=True, exist_ok=True)
    plan = work / "plan.yaml"
    inputs = bench_gwas.prepare(args, prefix)
    plan.write_text(f"name: bench\nvariants: {prefix}.bim\n"
                    f"gwas:\n  phenotypes: [QT]\n  covariates: [{', '.join(bench_gwas.COVARS)}]\n")
    keeps = _sites(prefix, work)
    env = _bench.tool_env()
    _bench.warm_cache(f"{prefix}.bed")
    common = ["--cluster", cluster, "--no-progress"]
    rows = []

    def run(step, cmd):
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.best_of(cmd, env, args.repeats, log_path=work / f"{step}.stdout", timeout=args.timeout)
        rows.append(dict(step=step, n_variants=args.n_variants, **r))
        if r["returncode"] != 0:
            print(f"warning: {step} exited with {r['returncode']}", file=sys.stderr)

    for kind in args.kinds.split(","):
        if kind == "pca":
            rows += _pca_rounds(args, prefix, work, keeps, common, env)
            continue
        bundles = []
        for k, keep in enumerate(keeps):
            out = work / f"site{k}"
            cmd = [_bench.popgen_exe(), "federated", "export", plan, "--site", f"site{k}", "--bfile", prefix,
                   "--keep", keep, "--kind", kind, "--pheno", f"{prefix}.pheno", "--covar", inputs["covar"],
                   "--out", out, *common]
            if k == 0:
                run(f"export {kind} (one site)", cmd)
            else:  # the second site's bundle, not timed
                _bench.run_measured(cmd, env, log_path=work / "site1.stdout", timeout=args.timeout)
            bundles.append(f"{out}.{kind}.pgb")
        run(f"combine {kind} (two sites)", [_bench.popgen_exe(), "federated", "combine", plan, *bundles,
                                            "--out", work / "pooled", "--no-plots"])
    run("popgen gwas (pooled cohort)", [_bench.popgen_exe(), "gwas", "--bfile", prefix, "--pheno", f"{prefix}.pheno",
                                        "--pheno-name", "QT", "--covar", inputs["covar"], "--covar-name",
                                        *bench_gwas.COVARS, "--out", work / "gwas", "--no-plots", *common])
    cols = ["step", "n_variants", "wall_s", "peak_rss_mb", "cpu_s", "other_cpu_s", "returncode"]
    if any(r["step"].startswith("pca") for r in rows):
        cols.insert(2, "round")
    title = f"federated {args.kinds.replace(',', ', ')}"
    tables = {f"{title} ({args.n_samples} samples x {args.n_variants} variants, two sites)": (rows, cols)}
    notes = ["wall_s: the whole command; peak_rss_mb: max over "
             f"{_bench.POLL_INTERVAL * 1000:.0f} ms polls of the summed RSS of the process tree (MiB).",
             f"popgen --cluster {cluster}; OPENBLAS_NUM_THREADS=1."]
    _bench.print_report(title, tables, json_path=args.json, machine=machine,
                        extra={"simulation": sim}, notes=notes)
    return 1 if any(r["returncode"] != 0 for r in rows) else 0


def _pca_rounds(args, prefix, work: Path, keeps, common, env) -> list[dict]:
    """The federated PCA's combine steps (and one site's exports), each measured once."""
    pca_dir = work / "pca"
    pca_dir.mkdir(exist_ok=True)
    plan = pca_dir / "plan.yaml"
    plan.write_text(f"name: bench-pca\nvariants: {prefix}.bim\n"
                    f"pca:\n  n_pcs: 10\n  n_oversamples: 10\n  n_rounds: {args.pca_rounds}\n  seed: 0\n")
    coord = pca_dir / "coord"
    rows = []

    def measured(step, rnd, cmd):
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.run_measured(cmd, env, log_path=pca_dir / f"{step.split()[0]}.stdout", timeout=args.timeout)
        if r["returncode"] != 0:
            raise SystemExit(f"{step} (round {rnd}) exited with {r['returncode']}: see {pca_dir}")
        rows.append(dict(step=step, n_variants=args.n_variants, round=rnd, **r))

    def export(k, kind, extra=(), rnd=None, timed=False):
        cmd = [_bench.popgen_exe(), "federated", "export", plan, "--site", f"site{k}", "--bfile", prefix,
               "--keep", keeps[k], "--kind", kind, "--out", pca_dir / f"site{k}", *extra, *common]
        if timed:
            measured("pca export product (one site)", rnd, cmd)
        else:
            _bench.run_measured(cmd, env, log_path=pca_dir / f"site{k}.stdout", timeout=args.timeout)
        return pca_dir / (f"site{k}.{kind}.pgb" if kind == "counts" else f"site{k}.{kind}.r{rnd}.pgb")

    counts = [export(k, "counts") for k in range(2)]
    measured("pca combine counts (starts the PCA)", 0, [_bench.popgen_exe(), "federated", "combine", plan, *counts,
                                                        "--out", coord])
    last = args.pca_rounds + 1
    for rnd in range(1, last + 1):
        basis = ["--basis", f"{coord}.pca-basis.r{rnd}.pgb"]
        products = [export(k, "pca-product", basis, rnd, timed=k == 0 and rnd in (1, last)) for k in range(2)]
        measured("pca combine products", rnd, [_bench.popgen_exe(), "federated", "combine", plan, *products,
                                               "--out", coord])
    return rows


def _pca_coordinator(args) -> list[dict]:
    """``popgen federated combine`` of every PCA round on synthetic bundles (see the module doc)."""
    import numpy as np

    from popgen.federated.bundle import read_manifest, write_bundle
    from popgen.federated.plan import load_plan
    from popgen.federated.site import COUNT_MEANINGS

    d = Path(args.workdir) / "federated" / f"coordinator_m{args.n_variants}"
    d.mkdir(parents=True, exist_ok=True)
    m, n_samples, rounds = args.n_variants, 5000, args.pca_rounds
    with open(d / "plan.bim", "w") as f:
        f.writelines(f"1\tv{i}\t0\t{i + 1}\tG\tA\n" for i in range(m))
    (d / "plan.yaml").write_text(f"name: bench-coordinator\nvariants: plan.bim\n"
                                 f"pca:\n  n_pcs: 10\n  n_oversamples: 10\n  n_rounds: {rounds}\n  seed: 0\n")
    plan = load_plan(d / "plan.yaml")
    rng = np.random.default_rng(0)
    env = _bench.tool_env()
    rows, sites = [], ("site0", "site1")
    for name in sites:  # Hardy-Weinberg counts of 5,000 samples at random frequencies
        p = rng.uniform(0.05, 0.5, m)
        het = np.rint(2 * p * (1 - p) * n_samples).astype(np.int32)
        alt = np.rint(p * p * n_samples).astype(np.int32)
        c = {k: np.zeros(m, dtype=np.int32) for k in COUNT_MEANINGS}
        c.update(n_called=np.full(m, n_samples, np.int32), n_counted=np.full(m, n_samples, np.int32), n_het=het,
                 n_hom_alt=alt, freq_n_called=np.full(m, n_samples, np.int32), freq_n_het=het, freq_n_hom_alt=alt,
                 freq_alt_x2=2 * (het + 2 * alt), freq_alleles_x2=np.full(m, 4 * n_samples, np.int32),
                 gc_hom_ref=n_samples - het - alt, gc_het=het, gc_two_alt=alt, present=np.ones(m, np.int32))
        write_bundle(d / f"{name}.counts.pgb", plan, kind="counts", site=name, dims={"variants": m},
                     arrays={k: (v, ("variants",), COUNT_MEANINGS[k]) for k, v in c.items()},
                     attrs={"n_samples": n_samples, "n_present": m, "n_suppressed": 0}, disclosure="synthetic")

    def combine(step, rnd, bundles):
        cmd = [_bench.popgen_exe(), "federated", "combine", d / "plan.yaml", *bundles, "--out", d / "coord"]
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        r = _bench.run_measured(cmd, env, log_path=d / "combine.stdout", timeout=args.timeout)
        if r["returncode"] != 0:
            raise SystemExit(f"{step} (round {rnd}) exited with {r['returncode']}: see {d}")
        rows.append(dict(step=step, n_variants=m, round=rnd, **r))

    combine("combine counts (starts the PCA)", 0, [d / f"{s}.counts.pgb" for s in sites])
    for rnd in range(1, rounds + 2):
        basis = read_manifest(d / f"coord.pca-basis.r{rnd}.pgb")
        final, width = bool(basis["attrs"]["final"]), basis["dims"]["basis"]
        products = []
        for name in sites:
            if final:
                g = rng.standard_normal((width, width))
                arrays = {"gram": (g @ g.T, ("basis", "basis"), "synthetic")}
            else:
                arrays = {"product": (rng.standard_normal((m, width)), ("variants", "basis"), "synthetic")}
            products.append(write_bundle(d / f"{name}.r{rnd}.pgb", plan, kind="pca-product", site=name, round=rnd,
                                         arrays=arrays, dims={"variants": m, "basis": width}, disclosure="synthetic",
                                         attrs={"n_samples": n_samples, "final": final,
                                                "basis_sha256": basis["arrays"]["basis"]["sha256"]}))
        combine("combine products", rnd, products)
        for path in products:
            Path(path).unlink()
    return rows


if __name__ == "__main__":
    sys.exit(main())
