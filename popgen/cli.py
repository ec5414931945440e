"""The ``popgen`` command line: a thin layer over the same functions a script calls.

Every error a user can cause (bad input, bad config, no GPU) is a
:class:`popgen.PopgenError`, printed as one line ``popgen: error: ...`` with
exit code 2 and no traceback.
"""

from __future__ import annotations

import os
import sys

import click

from popgen import __version__
from popgen.errors import PopgenError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def input_options(f):
    """--bfile/--vcf/--vcz, --out, --keep/--remove, --extract/--exclude, --update-sex, --chunks."""
    opts = [
        click.option("--bfile", metavar="PREFIX", help="PLINK 1 fileset PREFIX.bed/.bim/.fam"),
        click.option("--vcf", metavar="FILE", help="VCF/BCF (converted once to a VCF Zarr store FILE.vcz, cached)"),
        click.option("--vcz", metavar="DIR", help="VCF Zarr store"),
        click.option("--out", required=True, metavar="PREFIX", help="output prefix"),
        click.option("--keep", metavar="FILE", help="keep only samples listed (FID IID or IID per line)"),
        click.option("--remove", metavar="FILE", help="remove samples listed"),
        click.option("--extract", metavar="FILE", help="keep only variants whose IDs are listed (one per line)"),
        click.option("--exclude", metavar="FILE", help="remove variants whose IDs are listed"),
        click.option("--update-sex", "update_sex_file", metavar="FILE",
                     help="sample sexes from FILE ([#]FID IID SEX: 1/M, 2/F, 0/NA), e.g. for VCF input (chrX, chrY)"),
        click.option("--chunk-variants", type=int, default=None,
                     help="Dask chunk size along variants [default: blocks of 16 MB]"),
        click.option("--chunk-samples", type=int, default=None,
                     help="Dask chunk size along samples [default: all samples, up to 65536]"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_options(f):
    """--device, --cluster, --threads, --no-progress."""
    opts = [
        click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default="auto", show_default=True,
                     help="where to compute; auto = GPU when CuPy and a device are present"),
        click.option("--cluster", default="local", show_default=True, metavar="SPEC",
                     help="local | local-cuda | slurm[:PROFILE] | PROFILE.yaml | tcp://host:port | none"),
        click.option("--threads", type=int, default=None, help="threads per Dask worker"),
        click.option("--progress/--no-progress", default=True, help="show progress bars"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="popgen")
def cli():
    """popgen: GPU-accelerated population genomics (QC, LD pruning, PCA, relatedness, GWAS, federated).

    Inputs: --bfile PREFIX (PLINK 1), --vcf FILE, --vcz DIR.  Outputs use PLINK 2's
    file formats under --out PREFIX, with PREFIX.log recording the run.
    """


def _open(run, inputs: dict):
    from popgen.pipeline import State, open_cohort

    chunks = (inputs.pop("chunk_variants"), inputs.pop("chunk_samples"))
    return State(open_cohort(run, chunks=chunks, **inputs))


def _split(kwargs: dict):
    """Input options, run options and the command's own parameters."""
    inputs = {k: kwargs.pop(k) for k in ("bfile", "vcf", "vcz", "keep", "remove", "extract", "exclude",
                                         "update_sex_file", "chunk_variants", "chunk_samples")}
    run = {k: kwargs.pop(k) for k in ("device", "cluster", "threads", "progress")}
    out = kwargs.pop("out")
    return inputs, run, out, kwargs


def _run_step(step: str, kwargs: dict, before=()):
    """Open the input, run ``before`` steps (name, params), then ``step`` with the command's options."""
    from popgen.pipeline import STEPS
    from popgen.runner import start_run

    inputs, run_opts, out, params = _split(kwargs)
    model, fn = STEPS[step]
    parsed = _params(model, **params)
    with start_run(out, **run_opts) as run:
        state = _open(run, inputs)
        for name, p in before:
            STEPS[name][1](run, state, out, p)
        fn(run, state, out, parsed)


@cli.command(context_settings=CONTEXT)
@input_options
@click.option("--maf", type=float, help="remove variants with minor allele frequency < MAF (founders)")
@click.option("--mac", type=int, help="remove variants with minor allele count < MAC (founders)")
@click.option("--geno", type=float, help="remove variants with missing call rate > GENO")
@click.option("--mind", type=float, help="remove samples with missing call rate > MIND")
@click.option("--hwe", type=float, help="remove variants with Hardy-Weinberg exact p < HWE (founders)")
@click.option("--nonfounders", is_flag=True, help="use all samples, not only founders, for frequencies and HWE")
@click.option("--make-bed", is_flag=True, help="write the filtered cohort as OUT.bed/.bim/.fam")
@click.option("--make-vcz", is_flag=True, help="write the filtered cohort as OUT.vcz")
@click.option("--geno-counts", is_flag=True, help="also write OUT.gcount (plink2 --geno-counts; all samples)")
@run_options
def qc(**kwargs):
    """Allele frequencies, Hardy-Weinberg, missingness, heterozygosity; filters.

    Writes OUT.afreq, OUT.hardy (and OUT.hardy.x for chrX), OUT.vmiss, OUT.smiss, OUT.het
    (and with --geno-counts OUT.gcount) in PLINK 2's formats (for the input cohort), then
    applies the filters in PLINK 2's order and, with --make-bed / --make-vcz, writes the
    filtered cohort.
    """
    _run_step("qc", kwargs)


@cli.command("ld-prune", context_settings=CONTEXT)
@input_options
@click.option("--indep-pairwise", "indep", nargs=3, required=True, metavar="WINDOW STEP R2",
              help="as plink2: window in variants (or '200kb'), step in variants, r^2 threshold")
@click.option("--nonfounders", is_flag=True,
              help="tie-break allele frequencies from all samples (r^2 uses founders, as plink2)")
@run_options
def ld_prune(indep, **kwargs):
    """LD pruning (plink2 --indep-pairwise): writes OUT.prune.in and OUT.prune.out."""
    window, step, r2 = indep
    try:
        if window.lower().endswith("kb"):
            kwargs.update(window_kb=float(window[:-2]))
        else:
            kwargs.update(window=int(window))
        kwargs.update(step=int(step), r2=float(r2))
    except ValueError:
        raise PopgenError(f"--indep-pairwise {window} {step} {r2}: expected WINDOW[kb] STEP R2 numbers") from None
    _run_step("ld_prune", kwargs)


@cli.command(context_settings=CONTEXT)
@input_options
@click.option("--n-pcs", default=10, show_default=True, help="number of principal components")
@click.option("--approx", is_flag=True, help="randomized solver (plink2 --pca approx), for large cohorts")
@click.option("--missing", type=click.Choice(["pairwise", "meanimpute"]), default=None,
              help="missing calls: pairwise (exact default, as PLINK 2) or meanimpute (randomized)")
@click.option("--n-iter", default=8, show_default=True, help="randomized solver: power iterations")
@click.option("--seed", default=0, show_default=True, help="randomized solver: seed")
@click.option("--nonfounders", is_flag=True, help="frequencies from all samples, not only founders")
@click.option("--labels", metavar="FILE", help="IID + population table, to colour OUT.pca.png")
@click.option("--plot/--no-plot", default=True, help="write OUT.pca.png")
@click.option("--prune", "indep", nargs=3, default=None, metavar="WINDOW STEP R2",
              help="LD-prune first (as plink2 --indep-pairwise)")
@run_options
def pca(n_pcs, indep, **kwargs):
    """Principal components (plink2 --pca): OUT.eigenvec, .eigenval, .eigenvec.allele, .eigenvec.var.

    Exact by default (relationship matrix, as PLINK 2), randomized with --approx
    (block Krylov, one streaming pass per iteration).  OUT.eigenvec.var and
    OUT.pca.json are the reference that `popgen pca-project` projects onto.
    """
    from popgen.pipeline import LDPruneParams

    before = ()
    if indep:
        window, step, r2 = indep
        w = {"window_kb": float(window[:-2])} if window.lower().endswith("kb") else {"window": int(window)}
        before = (("ld_prune", _params(LDPruneParams, step=int(step), r2=float(r2), **w)),)
    _run_step("pca", dict(kwargs, n_pcs=n_pcs), before=before)


@cli.command(context_settings=CONTEXT)
@input_options
@click.option("--king-table-filter", type=float, default=None, metavar="T",
              help="write only pairs with KINSHIP >= T (as plink2)")
@click.option("--degree/--no-degree", default=True, help="trailing DEGREE column (0 duplicate .. 3, NA)")
@click.option("--king-cutoff", type=float, default=None, metavar="T",
              help="also write an unrelated set: OUT.king.cutoff.in.id / .out.id")
@click.option("--method", type=click.Choice(["auto", "gemm", "popcount"]), default="auto", show_default=True,
              help="pair-count kernel (auto: popcount on CPU, GEMM on GPU)")
@run_options
def king(**kwargs):
    """KING-robust kinship (plink2 --make-king-table): OUT.kin0, streamed tile by tile.

    Columns #FID1 IID1 FID2 IID2 NSNP HETHET IBS0 KINSHIP (as PLINK 2) and DEGREE.
    --king-cutoff T keeps as many samples as possible with no pair above T.
    """
    _run_step("king", kwargs)


@cli.command(context_settings=CONTEXT)
@input_options
@click.option("--shape", type=click.Choice(["square", "square0", "triangle"]), default="square", show_default=True)
@click.option("--bin", "binary", flag_value="bin", default=False, help="binary float64 OUT.rel.bin")
@click.option("--bin4", "binary", flag_value="bin4", help="binary float32 OUT.rel.bin")
@click.option("--nonfounders", is_flag=True, help="frequencies from all samples, not only founders")
@click.option("--zarr", is_flag=True, help="the full matrix as a chunked Zarr store OUT.rel.zarr instead of OUT.rel")
@run_options
def grm(**kwargs):
    """Genomic relationship matrix (plink2 --make-rel): OUT.rel, OUT.rel.bin or OUT.rel.zarr, and OUT.rel.id."""
    if kwargs.get("binary") in (None, "False"):  # click turns the shared flag's default False into "False"
        kwargs["binary"] = False
    _run_step("grm", kwargs)


class _ListOptions(click.Command):
    """A command whose list options take several values as PLINK 2's do:
    ``--covar-name SEX AGE PC1`` is read as ``--covar-name SEX --covar-name AGE ...``."""

    lists = ("--pheno-name", "--covar-name", "--covar")

    def parse_args(self, ctx, args):
        out, current, n_values = [], None, 0
        for a in args:
            if a.startswith("-") and len(a) > 1 and not (a[1].isdigit() or a[1] == "."):  # an option
                current, n_values = (a if a in self.lists else None), 0
            else:
                if current is not None and n_values:
                    out.append(current)  # a further value of the list option just given
                n_values += 1
            out.append(a)
        return super().parse_args(ctx, out)


@cli.command(context_settings=CONTEXT, cls=_ListOptions)
@input_options
@click.option("--pheno", required=True, metavar="FILE", help="phenotype table (#FID IID ... as PLINK 2)")
@click.option("--pheno-name", multiple=True, metavar="NAME", help="phenotype column(s): repeat, or separate by spaces or commas; FIRST-LAST ranges (as PLINK 2)")
@click.option("--covar", multiple=True, metavar="FILE", help="covariate table(s), e.g. also OUT.eigenvec of popgen pca")
@click.option("--covar-name", multiple=True, metavar="NAME",
              help="covariate column(s), as --pheno-name (e.g. SEX,AGE,PC1-PC10)")
@click.option("--1", "case_control_01", is_flag=True, help="binary phenotypes coded 0/1 (default 1/2, as PLINK 2)")
@click.option("--logistic", "model", flag_value="logistic",
              help="every phenotype is case/control: logistic regression (error naming any that is not)")
@click.option("--linear", "model", flag_value="linear", help="linear regression for case/control phenotypes too (0/1)")
@click.option("--missing", type=click.Choice(["drop", "mean"]), default="drop", show_default=True,
              help="missing calls: drop the sample for that variant (PLINK 2) or mean-impute (faster)")
@click.option("--firth", type=click.Choice(["fallback", "always", "never"]), default="fallback", show_default=True)
@click.option("--ssf/--no-ssf", default=True, help="GWAS-SSF summary statistics (with their -meta.yaml)")
@click.option("--ci", type=float, default=None, metavar="LEVEL",
              help="confidence intervals in the .glm files (plink2 --ci 0.95: L95 U95)")
@click.option("--genome-assembly", metavar="NAME", default=None,
              help="assembly of the positions (e.g. GRCh38), for the GWAS-SSF metadata")
@click.option("--plots/--no-plots", default=True, help="Manhattan and QQ plots")
@run_options
def gwas(pheno_name, covar, covar_name, **kwargs):
    """Association scan (plink2 --glm hide-covar firth-fallback), many phenotypes at once.

    Quantitative phenotypes: linear regression (OUT.<PHENO>.glm.linear); case/control:
    logistic with Firth fallback (OUT.<PHENO>.glm.logistic.hybrid), or as --linear /
    --logistic say; both also as
    GWAS-SSF (OUT.<PHENO>.ssf.tsv) with Manhattan and QQ plots; lambda_GC in OUT.log.
    """
    split = lambda values: [v for value in values for v in value.split()] or None  # noqa: E731
    _run_step("gwas", dict(kwargs, pheno_name=split(pheno_name), covar=list(covar) or None,
                           covar_name=split(covar_name), model=kwargs["model"] or "auto"))


@cli.command("pca-project", context_settings=CONTEXT)
@input_options
@click.option("--ref", required=True, metavar="PREFIX", help="reference PCA written by popgen pca --out PREFIX")
@click.option("--labels", metavar="FILE", help="IID + population table, to colour OUT.pca.png")
@click.option("--plot/--no-plot", default=True, help="write OUT.pca.png")
@run_options
def pca_project(**kwargs):
    """Project samples onto a reference PCA: OUT.eigenvec (same scale as the reference's).

    Variants are matched by ID and alleles; swapped REF/ALT are flipped, others
    dropped and counted in OUT.log.
    """
    _run_step("pca_project", kwargs)


@cli.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default=None, help="override the config's device")
@click.option("--cluster", default=None, metavar="SPEC", help="override the config's cluster")
@click.option("--out", default=None, metavar="PREFIX", help="override the config's output prefix")
@click.option("--progress/--no-progress", default=True, help="show progress bars")
def run(config, device, cluster, out, progress):
    """Run a pipeline of steps from a YAML CONFIG (see configs/example.yaml)."""
    from popgen.pipeline import load_config, run_pipeline
    from popgen.runner import start_run

    cfg = load_config(config)
    cfg.device = device or cfg.device
    cfg.cluster = cluster or cfg.cluster
    cfg.out = out or cfg.out
    with start_run(cfg.out, device=cfg.device, cluster=cfg.cluster, progress=progress) as r:
        run_pipeline(r, cfg)


@cli.command(context_settings=CONTEXT)
@click.option("--out", required=True, metavar="PREFIX", help="output prefix")
@click.option("--n-samples", default=600, show_default=True)
@click.option("--n-variants", default=5000, show_default=True)
@click.option("--n-populations", default=3, show_default=True)
@click.option("--n-contigs", default=2, show_default=True)
@click.option("--missing-rate", default=0.01, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--vcz/--no-vcz", "make_vcz", default=True, help="also write PREFIX.vcz")
def simulate(out, n_samples, n_variants, n_populations, n_contigs, missing_rate, seed, make_vcz):
    """Simulate a cohort with msprime: populations, relatives, phenotypes, covariates.

    Writes PREFIX.bed/.bim/.fam, PREFIX.vcz, PREFIX.pheno (QT, BT), PREFIX.covar
    (SEX, AGE) and PREFIX.truth.json (relatives, causal variants, populations).
    """
    from popgen.simulate_io import write_simulated

    write_simulated(out, n_samples=n_samples, n_variants=n_variants, n_populations=n_populations,
                    n_contigs=n_contigs, missing_rate=missing_rate, seed=seed, make_vcz=make_vcz)


@cli.group(context_settings=CONTEXT)
def federated():
    """Federated analysis: sites share aggregate bundles only; the coordinator combines them.

    \b
    At each site:     popgen federated export PLAN.yaml --site NAME --bfile P --kind counts ... --out PREFIX
    At the coordinator: popgen federated combine PLAN.yaml BUNDLE... --out PREFIX
    PCA rounds: combine writes PREFIX.pca-basis.rN.pgb; sites answer with --kind pca-product --basis it.
    All on one machine (worked example): popgen federated simulate configs/federated/sites.yaml
    """


@federated.command("plan", context_settings=CONTEXT)
@click.argument("plan_file", metavar="PLAN.yaml", type=click.Path(dir_okay=False))
def federated_plan(plan_file):
    """Validate a plan and print its hash (every party must see the same one)."""
    from popgen.federated.plan import load_plan

    lp = load_plan(plan_file)
    p = lp.plan
    click.echo(f"plan {p.name!r}  sha256 {lp.sha256}")
    click.echo(f"variants: {lp.n_variants} ({int(lp.pca_mask.sum())} for PCA); frequencies: {p.frequencies}")
    if p.gwas:
        click.echo(f"gwas: phenotypes {', '.join(p.gwas.phenotypes)}; covariates {', '.join(p.gwas.covariates) or '-'}"
                   f" + site; {'case/control' if p.gwas.binary else 'quantitative'}")
    if p.pca:
        click.echo(f"pca: {p.pca.n_pcs} PCs, {p.pca.n_rounds} + 1 rounds, seed {p.pca.seed}")
    pr = p.privacy
    click.echo(f"privacy: at least {pr.min_samples} samples per site; minor allele count >= {pr.min_allele_count}; "
               f"missing-call cells >= {pr.min_missing_count} (or 0)")


@federated.command("export", context_settings=CONTEXT)
@click.argument("plan_file", metavar="PLAN.yaml", type=click.Path(dir_okay=False))
@click.option("--site", "site_name", required=True, help="this site's name (as the coordinator knows it)")
@click.option("--kind", "kinds", multiple=True, required=True,
              type=click.Choice(["counts", "linear", "sumstats", "pca-product"]),
              help="bundle(s) to write: OUT.KIND.pgb (repeat for several)")
@click.option("--pheno", metavar="FILE", help="phenotype table (linear, sumstats)")
@click.option("--covar", multiple=True, metavar="FILE", help="covariate table(s) (linear, sumstats)")
@click.option("--basis", metavar="BUNDLE", help="the coordinator's pca-basis bundle for this round (pca-product)")
@click.option("--1", "case_control_01", is_flag=True, help="binary phenotypes coded 0/1 (default 1/2)")
@input_options
@run_options
def federated_export(plan_file, site_name, kinds, pheno, covar, basis, case_control_01, **kwargs):
    """Compute this site's aggregate statistics for a plan and write them as bundles."""
    from popgen.federated.plan import load_plan
    from popgen.federated.workflow import export
    from popgen.runner import start_run

    inputs, run_opts, out, _ = _split(kwargs)
    plan = load_plan(plan_file)
    with start_run(out, **run_opts) as run:
        state = _open(run, inputs)
        export(run, state.ds, plan, site_name, kinds, out, pheno=pheno, covar=covar, basis=basis,
               case_control_01=case_control_01)


@federated.command("combine", context_settings=CONTEXT)
@click.argument("plan_file", metavar="PLAN.yaml", type=click.Path(dir_okay=False))
@click.argument("bundles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, metavar="PREFIX", help="output prefix (keep it across PCA rounds)")
@click.option("--plots/--no-plots", default=True, help="Manhattan and QQ plots of the pooled GWAS")
def federated_combine(plan_file, bundles, out, plots):
    """Combine the sites' bundles: pooled frequencies (counts), pooled linear GWAS (linear),
    meta-analysis (sumstats), the next PCA round or the final PCA (pca-product)."""
    from popgen.federated.plan import load_plan
    from popgen.federated.workflow import combine
    from popgen.runner import start_run

    plan = load_plan(plan_file)
    with start_run(out, device="cpu", cluster="none", progress=False) as run:
        combine(run, plan, list(bundles), out, plots=plots)


@federated.command("inspect", context_settings=CONTEXT)
@click.argument("bundles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plan", "plan_file", metavar="PLAN.yaml", help="also check the bundles belong to this plan")
def federated_inspect(bundles, plan_file):
    """Verify bundles and describe exactly what they contain (for data access committees)."""
    from popgen.federated.bundle import describe, read_bundle
    from popgen.federated.plan import load_plan

    plan = load_plan(plan_file) if plan_file else None
    for i, b in enumerate(bundles):
        click.echo(("\n" if i else "") + describe(read_bundle(b, plan, lazy=True)))  # verified, not held


@federated.command("simulate", context_settings=CONTEXT)
@click.argument("sites_file", metavar="SITES.yaml", type=click.Path(dir_okay=False))
@click.option("--out", default=None, metavar="DIR", help="output directory (default: the file's out)")
@run_options
def federated_simulate(sites_file, out, device, cluster, threads, progress):
    """Run a whole federated analysis with every site on this machine, through the same
    bundle files: exports, combine, every PCA round, and each site's projection."""
    from pathlib import Path

    from popgen.federated.workflow import load_federation, simulate
    from popgen.runner import start_run

    fed = load_federation(sites_file)
    root = Path(out or fed.out)
    with start_run(str(root / "federated"), device=device, cluster=cluster, threads=threads,
                   progress=progress) as run:
        simulate(run, fed, str(root))


def _params(model, /, **values):
    import pydantic

    try:
        return model(**values)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        raise PopgenError(f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}") from None


def main(argv=None) -> int:
    """Entry point: run the CLI, turning PopgenError into one line and exit code 2."""
    from popgen import runner

    runner.COMMAND_LINE = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="popgen", standalone_mode=False)
    except PopgenError as e:
        click.echo(f"popgen: error: {e}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("popgen: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("popgen: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point: process-wide settings (:func:`popgen.backend.tune_process_heap`,
    :func:`popgen.backend.hide_absent_gpu_stack`, :func:`popgen.backend.start_blas_single_threaded`),
    then :func:`main`."""
    from popgen import backend

    backend.start_blas_single_threaded()
    backend.tune_process_heap()
    backend.hide_absent_gpu_stack()
    _exit(main())


def _exit(code: int) -> None:
    """End the process without the interpreter's teardown, which took 0.6 s after a PCA of
    10,000 x 100,000 (freeing every object of a large heap, module by module).  By now every
    output is closed (written to a temporary name and renamed) and any Dask cluster shut
    down; the log handlers are flushed and closed here.  Under a profiler or tracer (which
    write their results at exit) the normal exit runs."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader that went away
            pass
    os._exit(code)
