"""Benchmark ``popgen qc`` against PLINK 2 on the same simulated cohort.

Two comparisons, each as the wall time and peak memory of the whole command
line (never asserted):

``reports``
    ``popgen qc`` vs ``plink2 --freq --hardy --missing --het``;
``filters``
    the same plus ``--maf 0.01 --geno 0.05 --hwe 1e-6 --make-bed`` for both
    (the number of variants and samples kept is reported as a check).

popgen runs once per ``--cluster`` value; PLINK 2 with ``--threads 2``; both
with ``OPENBLAS_NUM_THREADS=1``.  Run ``python scripts/bench_qc.py --help``;
results go to stdout (markdown) and ``--json FILE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

REPORTS = ["--freq", "--hardy", "--missing", "--het"]
FILTERS = ["--maf", "0.01", "--geno", "0.05", "--hwe", "1e-6", "--make-bed"]


def _count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def run_case(args, prefix, case: str, clusters) -> list[dict]:
    out_dir = Path(args.workdir) / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _bench.tool_env()
    extra = FILTERS if case == "filters" else []
    _bench.warm_cache(f"{prefix}.bed")
    rows = []

    out = out_dir / f"plink2_qc_{case}_m{args.n_variants}"
    cmd = [_bench.plink2_exe(), "--bfile", prefix, *REPORTS, *extra, "--threads", str(_bench.THREADS), "--out", out]
    print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
    r = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout)
    plink = dict(tool="plink2", cluster="-", case=case, **r)
    if case == "filters":
        plink.update(variants_kept=_count_lines(f"{out}.bim"), samples_kept=_count_lines(f"{out}.fam"))
    rows.append(plink)

    for cluster in clusters:
        out = out_dir / f"popgen_qc_{case}_{cluster}_m{args.n_variants}"
        cmd = [_bench.popgen_exe(), "qc", "--bfile", prefix, "--out", out, *extra, "--cluster", cluster,
               "--no-progress"]
        print(f"running {' '.join(map(str, cmd))}", file=sys.stderr)
        best = _bench.best_of(cmd, env, args.repeats, log_path=f"{out}.stdout", timeout=args.timeout,
                              after=lambda: {"steps": _bench.step_timings(f"{out}.log")})
        row = dict(tool="popgen", cluster=cluster, case=case, **best)
        steps = row.pop("steps")
        row["stats_step_s"] = steps.get("qc statistics")
        row["filter_step_s"] = steps.get("qc filters")
        row["write_bed_s"] = steps.get("write bed")
        row["time_ratio"] = _bench.ratio(row["wall_s"], plink["wall_s"])
        row["mem_ratio"] = _bench.ratio(row["peak_rss_mb"], plink["peak_rss_mb"])
        if case == "filters":
            row.update(variants_kept=_count_lines(f"{out}.bim"), samples_kept=_count_lines(f"{out}.fam"))
        rows.append(row)
    for row in rows:
        if row["returncode"] != 0:
            print(f"warning: {row['tool']} ({row['cluster']}, {case}) exited with {row['returncode']}",
                  file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = _bench.common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--case", default="reports,filters", help="which comparisons, comma-separated")
    args = p.parse_args(argv)
    clusters = _bench.clusters(args.cluster)
    cases = [c.strip() for c in args.case.split(",") if c.strip()]
    unknown = set(cases) - {"reports", "filters"}
    if unknown or not cases:
        p.error(f"--case: use reports and/or filters, not {', '.join(sorted(unknown)) or 'nothing'}")
    machine = _bench.machine_info()
    prefix, sim = _bench.ensure_cohort(args.workdir, args.n_samples, args.n_variants)

    cols = ["tool", "cluster", "case", "wall_s", "peak_rss_mb", "stats_step_s", "filter_step_s", "write_bed_s",
            "time_ratio", "mem_ratio", "cpu_s", "other_cpu_s", "variants_kept", "samples_kept", "returncode"]
    rows = []
    for case in cases:
        rows += run_case(args, prefix, case, clusters)
    tables = {
        f"popgen qc vs plink2 ({args.n_samples} samples x {args.n_variants} variants)": (rows, cols),
        "Simulation (popgen simulate --no-vcz)": ([dict(sim, n_variants=args.n_variants)],
                                                   ["n_variants", "wall_s", "peak_rss_mb", "cached"]),
    }
    notes = [
        "reports: popgen qc vs plink2 --freq --hardy --missing --het; filters: both with "
        "--maf 0.01 --geno 0.05 --hwe 1e-6 --make-bed.",
        "wall_s: the whole command; peak_rss_mb: max over "
        f"{_bench.POLL_INTERVAL * 1000:.0f} ms polls of the summed RSS of the process tree (MiB); "
        "*_step_s: popgen's own step timings (OUT.log).",
        "cpu_s: CPU time of the command's process tree; other_cpu_s: CPU time used by the rest of the "
        "machine during the run (large values: the measurement was disturbed).",
        f"ratios are popgen / plink2; both with OPENBLAS_NUM_THREADS=1, plink2 with --threads {_bench.THREADS}.",
    ]
    _bench.print_report("popgen qc vs PLINK 2", tables, json_path=args.json, machine=machine,
                        extra={"simulation": sim}, notes=notes)
    return 1 if any(r["returncode"] != 0 for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
