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


if __name__ == "__main__":
    sys.exit(main())
