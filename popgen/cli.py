"""The ``popgen`` command line: a thin layer over the same functions a script calls.

Every error a user can cause (bad input, bad config, no GPU) is a
:class:`popgen.PopgenError`, printed as one line ``popgen: error: ...`` with
exit code 2 and no traceback.
"""

from __future__ import annotations

import sys

import click

from popgen import __version__
from popgen.errors import PopgenError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def input_options(f):
    """--bfile/--vcf/--vcz, --out, --keep/--remove, --chunks."""
    opts = [
        click.option("--bfile", metavar="PREFIX", help="PLINK 1 fileset PREFIX.bed/.bim/.fam"),
        click.option("--vcf", metavar="FILE", help="VCF/BCF (converted once to a VCF Zarr store FILE.vcz, cached)"),
        click.option("--vcz", metavar="DIR", help="VCF Zarr store"),
        click.option("--out", required=True, metavar="PREFIX", help="output prefix"),
        click.option("--keep", metavar="FILE", help="keep only samples listed (FID IID or IID per line)"),
        click.option("--remove", metavar="FILE", help="remove samples listed"),
        click.option("--chunk-variants", default=8192, show_default=True, help="Dask chunk size along variants"),
        click.option("--chunk-samples", default=8192, show_default=True, help="Dask chunk size along samples"),
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


def _open(run, bfile, vcf, vcz, keep, remove, chunk_variants, chunk_samples):
    from popgen.io import open_dataset
    from popgen.pipeline import subset_samples

    with run.step("open input"):
        ds = open_dataset(bfile=bfile, vcf=vcf, vcz=vcz, chunks=(chunk_variants, chunk_samples), device=run.device)
        return subset_samples(ds, keep, remove)


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
@run_options
def qc(bfile, vcf, vcz, out, keep, remove, chunk_variants, chunk_samples, maf, mac, geno, mind, hwe,
       nonfounders, make_bed, make_vcz, device, cluster, threads, progress):
    """Allele frequencies, Hardy-Weinberg, missingness; filters.

    Writes OUT.afreq, OUT.hardy, OUT.vmiss, OUT.smiss, OUT.het in PLINK 2's formats (for the
    input cohort), then applies the filters in PLINK 2's order and, with --make-bed
    / --make-vcz, writes the filtered cohort.
    """
    from popgen.pipeline import QCParams, qc_step
    from popgen.runner import start_run

    params = _params(QCParams, maf=maf, mac=mac, geno=geno, mind=mind, hwe=hwe, nonfounders=nonfounders,
                     make_bed=make_bed, make_vcz=make_vcz)
    with start_run(out, device=device, cluster=cluster, progress=progress, threads=threads) as run:
        ds = _open(run, bfile, vcf, vcz, keep, remove, chunk_variants, chunk_samples)
        qc_step(run, ds, out, params)


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


def _params(model, **values):
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
    """Console-script entry point."""
    sys.exit(main())
