"""Analysis steps shared by the CLI commands and ``popgen run CONFIG.yaml``.

A step is a function ``step(run, state, out, params)`` registered in
:data:`STEPS` together with the pydantic model of its parameters; the config
schema and the CLI both come from these.  Steps read and update a
:class:`State`: the cohort after QC, the LD-pruned variant set, the PCs.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from popgen.errors import PopgenError

log = logging.getLogger("popgen")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclasses.dataclass
class State:
    """What steps pass on: ``ds`` the cohort (after QC filters), ``ld_keep``
    the LD-pruned variants of ``ds`` (bool mask), ``unrelated`` the samples of
    an unrelated set (bool mask), ``pca`` the fitted PCA."""

    ds: Any
    ld_keep: Any = None
    pca: Any = None
    unrelated: Any = None

    @property
    def pruned(self):
        """The cohort restricted to LD-pruned variants (all variants when not pruned)."""
        import numpy as np

        return self.ds if self.ld_keep is None else self.ds.isel(variants=np.flatnonzero(self.ld_keep))


# ---------------------------------------------------------------- QC step

class QCParams(_Strict):
    """Parameters of the ``qc`` step (PLINK 2 flags of the same names)."""

    maf: Optional[float] = Field(None, ge=0, le=0.5, description="remove variants with minor allele frequency < MAF")
    mac: Optional[int] = Field(None, ge=0, description="remove variants with minor allele count < MAC")
    geno: Optional[float] = Field(None, ge=0, le=1, description="remove variants with missing call rate > GENO")
    mind: Optional[float] = Field(None, ge=0, le=1, description="remove samples with missing call rate > MIND")
    hwe: Optional[float] = Field(None, ge=0, le=1, description="remove variants with HWE exact p < HWE")
    nonfounders: bool = Field(False, description="use all samples (not only founders) for frequencies and HWE")
    make_bed: bool = Field(False, description="write the filtered cohort as OUT.bed/.bim/.fam")
    make_vcz: bool = Field(False, description="write the filtered cohort as OUT.vcz")
    geno_counts: bool = Field(False, description="also write OUT.gcount (plink2 --geno-counts; all samples)")


def qc_step(run, state: State, out: str, params: QCParams):
    """Write OUT.afreq/.hardy/.vmiss/.smiss/.het for ``ds``; apply filters; optionally write the filtered cohort.

    The reports describe the input cohort (as ``plink2 --freq --hardy
    --missing`` without filters); filters are then applied in PLINK 2's order
    and the filtered cohort is returned (and written with make_bed/make_vcz).
    """
    import numpy as np

    from popgen import qc
    from popgen.genotypes import founder_mask
    from popgen.io import reports

    ds = state.ds
    with run.step("qc statistics"):
        founders = None if params.nonfounders else founder_mask(ds)
        all_v = qc.variant_stats(ds, merge=False, sex_chromosomes=True)
        f_v = qc.variant_stats(ds, samples=founders, merge=False, sex_chromosomes=True)
        hwe = qc.hardy_weinberg_test(f_v, merge=False)
        s = qc.sample_stats(ds, merge=False, sex_chromosomes=True)
        (n_called, n_counted, ac, af, hom_ref, het, hom_alt, p, diploid, chrx, x_counts, s_called, s_counted,
         geno_counts) = run.compute(
            all_v["variant_n_called"].data, all_v["variant_n_samples"].data, f_v["variant_allele_count"].data,
            f_v["variant_allele_frequency"].data[:, 1],
            f_v["variant_n_hom_ref"].data, f_v["variant_n_het"].data, f_v["variant_n_hom_alt"].data,
            hwe["variant_hwe_p_value"].data, f_v["variant_autosomal"].data, f_v["variant_chrx"].data,
            f_v["variant_hwe_x_counts"].data, s["sample_n_called"].data, s["sample_n_variants"].data,
            all_v["variant_genotype_counts"].data, label="QC statistics",
        )
        if params.geno_counts:
            reports.write_gcount(f"{out}.gcount", ds, geno_counts)
            run.wrote(f"{out}.gcount")
        if chrx.any() and x_counts[chrx].any():  # PLINK 2's chrX test and report (needs known sexes)
            reports.write_hardy_x(f"{out}.hardy.x", ds, x_counts, p, chrx)
            run.wrote(f"{out}.hardy.x")
        # heterozygosity needs the frequencies first: a second pass (autosomes and XY, as plink2 --het)
        inb = qc.sample_inbreeding(ds, np.where((ac[:, 0] > 0) & (ac[:, 1] > 0), af, 0.0), variants=diploid,
                                   merge=False)
        hom_o, hom_e, n_poly, f_inb = run.compute(
            inb["sample_n_hom_observed"].data, inb["sample_n_hom_expected"].data,
            inb["sample_n_called_polymorphic"].data, inb["sample_inbreeding"].data,
            label="heterozygosity",
        )
        if founders is not None and founders.sum() < ds.sizes["samples"]:
            log.info("frequencies and HWE on %d founders of %d samples (--nonfounders to use all)",
                     founders.sum(), ds.sizes["samples"])
        for ext, write, args in (
            ("afreq", reports.write_afreq, (ac,)),
            ("hardy", reports.write_hardy, (hom_ref, het, hom_alt, p, diploid)),
            ("vmiss", reports.write_vmiss, (n_called, n_counted)),
            ("smiss", reports.write_smiss, (s_called, s_counted)),
            ("het", reports.write_het, (hom_o, hom_e, n_poly, f_inb)),
        ):
            write(f"{out}.{ext}", ds, *args)
            run.wrote(f"{out}.{ext}")
    filters = qc.Filters(params.maf, params.mac, params.geno, params.mind, params.hwe)
    if filters.any:
        with run.step("qc filters"):
            ds, report = qc.apply_filters(
                ds, filters, founders_only=not params.nonfounders,
                compute=lambda *c: run.compute(*c, label="QC filters"),
            )
            for line in report.lines():
                log.info("%s", line)
    if params.make_bed:
        from popgen.io.plink import write_plink

        with run.step("write bed"):
            write_plink(ds, out, compute=lambda *c: run.compute(*c, label="writing .bed"))
            run.wrote(f"{out}.bed")
    if params.make_vcz:
        from popgen.io import write_vcz

        with run.step("write vcz"):
            write_vcz(ds, f"{out}.vcz")
            run.wrote(f"{out}.vcz")
    state.ds = ds


# ---------------------------------------------------------------- LD pruning step

class LDPruneParams(_Strict):
    """``plink2 --indep-pairwise WINDOW STEP R2`` (window in variants, or ``window_kb``)."""

    window: Optional[int] = Field(None, ge=2, description="window size in variants")
    window_kb: Optional[float] = Field(None, gt=0, description="window size in kilobases")
    step: int = Field(1, ge=1, description="window step in variants")
    r2: float = Field(0.2, gt=0, lt=1, description="r^2 threshold")
    nonfounders: bool = Field(False, description="allele frequencies for tie-breaks from all samples "
                                                 "(r^2 always uses founders, as PLINK 2)")

    @model_validator(mode="after")
    def _window(self):
        if (self.window is None) == (self.window_kb is None):
            raise ValueError("give exactly one of window (variants) and window_kb")
        return self


def ld_prune_step(run, state: State, out: str, params: LDPruneParams):
    """Write OUT.prune.in / OUT.prune.out; later steps (PCA) use the kept variants."""
    from popgen.genotypes import founder_mask
    from popgen.ld import ld_prune, write_prune_lists

    with run.step("ld prune"):
        ds = state.ds
        allele_frequency = None
        if params.nonfounders:  # as plink2: r^2 on founders, tie-break frequencies from all samples
            from popgen.qc import variant_stats

            stats = variant_stats(ds, merge=False, sex_chromosomes=True)  # chrX: a male's call one allele
            (allele_frequency,) = run.compute(stats["variant_allele_frequency"].data[:, 1])
        keep = ld_prune(ds, window=params.window, window_kb=params.window_kb, step=params.step, r2=params.r2,
                        samples=founder_mask(ds), allele_frequency=allele_frequency,
                        compute=lambda *c: run.compute(*c, label="LD pruning"))
        write_prune_lists(out, ds, keep)
        run.wrote(f"{out}.prune.in")
        log.info("LD pruning kept %d of %d variants", int(keep.sum()), len(keep))
        state.ld_keep = keep


# ---------------------------------------------------------------- relatedness steps

class KingParams(_Strict):
    """``plink2 --make-king-table [--king-table-filter T] [--king-cutoff T]``."""

    king_table_filter: Optional[float] = Field(0.0442, le=0.5, description="write pairs with KINSHIP >= T only "
                                               "(default: 3rd degree); null writes every pair")
    degree: bool = Field(True, description="add a trailing DEGREE column (0 duplicate/MZ .. 3, NA unrelated)")
    king_cutoff: Optional[float] = Field(None, ge=0, lt=0.5, description="write an unrelated set with no pair "
                                         "above T (OUT.king.cutoff.in.id/.out.id); later steps (PCA) use it")
    method: Literal["auto", "gemm", "popcount"] = Field("auto", description="count kernel")


def king_step(run, state: State, out: str, params: KingParams):
    """Write OUT.kin0 (KING-robust kinship, degrees) and, with king_cutoff, the unrelated set."""
    import numpy as np

    from popgen import relatedness

    ds = state.ds
    compute = lambda *c: run.compute(*c, label="KING")  # noqa: E731
    with run.step("king"):
        if ds.sizes["samples"] < 2:
            raise PopgenError("KING needs at least 2 samples")
        info = relatedness.write_king_table(out, ds, king_table_filter=params.king_table_filter,
                                            degree_column=params.degree, method=params.method, compute=compute)
        run.wrote(info["path"])
        log.info("KING: %d pairs written (filter %s)", info["n_pairs"], params.king_table_filter)
        if params.king_cutoff is not None:
            # every pair of 3rd degree or closer: the degree report and the cutoff's constraints (those above it)
            report = min(relatedness.DEGREE_BOUNDS[-1], params.king_cutoff)
            pairs = relatedness.related_pairs(ds, report, method=params.method, compute=compute)
            degrees = relatedness.degree(pairs.kinship)
            for d, name in ((0, "duplicate/MZ"), (1, "1st degree"), (2, "2nd degree"), (3, "3rd degree")):
                log.info("  %s pairs: %d", name, int((degrees == d).sum()))
            keep = relatedness.king_cutoff(pairs, ds.sizes["samples"], params.king_cutoff)
            greedy = relatedness.plink2_king_cutoff(pairs, ds.sizes["samples"], params.king_cutoff)
            log.info("--king-cutoff %g: %d samples kept (PLINK 2's greedy keeps %d), %d removed",
                     params.king_cutoff, keep.sum(), greedy.sum(), (~keep).sum())
            for path in relatedness.write_king_cutoff(out, ds, keep):
                run.wrote(path)
            state.unrelated = np.asarray(keep, dtype=bool)


class GRMParams(_Strict):
    """``plink2 --make-rel [square|square0|triangle] [bin|bin4]``."""

    shape: Literal["square", "square0", "triangle"] = "square"
    binary: Literal[False, True, "bin", "bin4"] = False
    nonfounders: bool = Field(False, description="frequencies from all samples, not only founders")
    zarr: bool = Field(False, description="the full matrix as a chunked store OUT.rel.zarr instead of OUT.rel")


def grm_step(run, state: State, out: str, params: GRMParams):
    """Write OUT.rel (or OUT.rel.bin, or the store OUT.rel.zarr) and OUT.rel.id, one panel at a time."""
    from popgen import relatedness
    from popgen.genotypes import founder_mask

    ds = state.ds
    compute = lambda *c: run.compute(*c, label="GRM")  # noqa: E731
    with run.step("grm"):
        if ds.sizes["samples"] < 2:
            raise PopgenError("a GRM needs at least 2 samples")
        k = relatedness.grm(ds, samples=None if params.nonfounders else founder_mask(ds), compute=compute)
        if params.zarr:
            paths = relatedness.write_grm_zarr(out, ds, k, compute=compute)
        else:
            paths = relatedness.write_grm(out, ds, k, shape=params.shape, binary=params.binary, compute=compute)
        for path in paths:
            run.wrote(path)


# ---------------------------------------------------------------- PCA step

class PCAParams(_Strict):
    """``plink2 --pca``: exact by default, randomized with ``approx``."""

    n_pcs: int = Field(10, ge=1, description="number of principal components")
    approx: bool = Field(False, description="randomized solver (plink2 --pca approx)")
    missing: Optional[Literal["pairwise", "meanimpute"]] = Field(
        None, description="missing calls: pairwise (exact default, as PLINK 2) or meanimpute")
    n_iter: int = Field(8, ge=0, description="randomized solver: power iterations (streaming passes)")
    seed: int = Field(0, description="randomized solver: seed")
    nonfounders: bool = Field(False, description="frequencies from all samples, not only founders")
    labels: Optional[str] = Field(None, description="table with IID and a population column, to colour the plot")
    plot: bool = Field(True, description="write OUT.pca.png (PC1/PC2, PC3/PC4)")


def pca_step(run, state: State, out: str, params: PCAParams):
    """Fit PCA on the (pruned) cohort; write OUT.eigenvec, .eigenval, .eigenvec.allele,
    .eigenvec.var, .pca.json and the plot OUT.pca.png."""
    from popgen import pca
    from popgen.genotypes import founder_mask
    from popgen.relatedness import _autosomal_subset

    import numpy as np

    ds = _autosomal_subset(state.pruned, "PCA")   # X, Y, XY, MT excluded, as plink2 --pca
    fit_ds = ds if state.unrelated is None else ds.isel(samples=np.flatnonzero(state.unrelated))
    compute = lambda *c: run.compute(*c, label="PCA")  # noqa: E731
    with run.step("pca"):
        log.info("PCA: %d samples, %d variants, %d PCs, %s solver", fit_ds.sizes["samples"], ds.sizes["variants"],
                 params.n_pcs, "randomized" if params.approx else "exact")
        result = pca.pca(fit_ds, n_components=params.n_pcs, solver="randomized" if params.approx else "exact",
                         missing=params.missing, samples=None if params.nonfounders else founder_mask(fit_ds),
                         n_iter=params.n_iter, seed=params.seed, compute=compute)
        paths = pca.write_pca(out, fit_ds, result)
        if state.unrelated is not None and not state.unrelated.all():
            # PCs of every sample: the unrelated set's own, and the relatives projected onto them
            scores, _ = pca.project(ds, pca.reference_from_result(fit_ds, result), compute=compute)
            scores[state.unrelated] = result.eigenvectors
            pca.write_projection(out, ds, scores)
            log.info("PCA fitted on %d unrelated samples; %d relatives projected onto it",
                     state.unrelated.sum(), (~state.unrelated).sum())
            result = dataclasses.replace(result, eigenvectors=scores)
        for path in paths:
            run.wrote(path)
        log.info("eigenvalues: %s", " ".join(f"{v:.4g}" for v in result.eigenvalues))
        if params.plot:
            labels = sample_labels(ds, params.labels)
            pca.plot_pcs(f"{out}.pca.png", result.eigenvectors, labels, title=Path(out).name)
            run.wrote(f"{out}.pca.png")
        state.pca = result


class ProjectParams(_Strict):
    """Projection onto a reference PCA written by the ``pca`` step."""

    ref: str = Field(description="reference PCA prefix (OUT of popgen pca)")
    labels: Optional[str] = None
    plot: bool = True


def pca_project_step(run, state: State, out: str, params: ProjectParams):
    """Write OUT.eigenvec with the cohort's samples projected onto the reference PCs."""
    from popgen import pca

    with run.step("pca projection"):
        reference = pca.read_reference(params.ref)
        scores, report = pca.project(state.ds, reference, compute=lambda *c: run.compute(*c, label="projection"))
        log.info("projection: %d variants matched (%d flipped), %d with other alleles dropped, "
                 "%d not in the reference, %d reference variants absent",
                 report["matched"], report["flipped"], report["allele_mismatch"], report["not_in_reference"],
                 report["reference_missing"])
        pca.write_projection(out, state.ds, scores)
        run.wrote(f"{out}.eigenvec")
        if params.plot:
            pca.plot_pcs(f"{out}.pca.png", scores, sample_labels(state.ds, params.labels), title=Path(out).name)
            run.wrote(f"{out}.pca.png")


def sample_labels(ds, path=None):
    """Population labels per sample: from a table (IID + one label column) or ``sample_population``."""
    import numpy as np

    if path:
        from popgen.io.pheno import match_samples, read_table

        table = read_table(path, numeric=False)
        cols = [c for c in table.columns if c not in ("FID", "IID")]
        if not cols:
            raise PopgenError("needs a label column after the sample IDs", path)
        aligned = match_samples(table, ds, path, what="label")
        return np.asarray(aligned[cols[0]].fillna("unknown").astype(str))
    if "sample_population" in ds:
        return np.asarray(ds["sample_population"].values).astype(str)
    return None


# ---------------------------------------------------------------- association step

class GWASParams(_Strict):
    """``plink2 --glm hide-covar [firth-fallback]``: linear for quantitative, logistic for case/control."""

    pheno: str = Field(description="phenotype table (PLINK 2 format)")
    pheno_name: Optional[list[str]] = Field(None, description="phenotype columns (default: all)")
    covar: Optional[list[str]] = Field(None, description="covariate table(s), joined by sample ID")
    covar_name: Optional[list[str]] = Field(None, description="covariate columns (default: all)")
    pcs: int = Field(0, ge=0, description="add PC1..PCk of the pca step (OUT.eigenvec) as covariates")
    case_control_01: bool = Field(False, description="binary phenotypes coded 0/1 (plink2 --1)")
    model: Literal["auto", "linear", "logistic"] = Field(
        "auto", description="auto: logistic for case/control phenotypes, linear for the others (plink2 --glm); "
        "logistic: every phenotype must be case/control; linear: case/control ones too, on their 0/1 codes")
    missing: Literal["drop", "mean"] = Field("drop", description="missing calls: drop the sample for that "
                                             "variant (PLINK 2, default) or mean-impute (faster)")
    firth: Literal["fallback", "always", "never"] = "fallback"
    ssf: bool = Field(True, description="also write GWAS-SSF summary statistics (OUT.<PHENO>.ssf.tsv) and "
                                        "their metadata (.ssf.tsv-meta.yaml)")
    genome_assembly: Optional[str] = Field(None, description="genome assembly of the positions, e.g. GRCh38, "
                                                             "for the GWAS-SSF metadata")
    ci: Optional[float] = Field(None, gt=0, lt=1, description="confidence intervals in the .glm files "
                                                              "(plink2 --ci 0.95: L95 U95)")
    plots: bool = Field(True, description="Manhattan and QQ plots (PNG)")


def gwas_step(run, state: State, out: str, params: GWASParams):
    """Write OUT.<PHENO>.glm.linear / .glm.logistic.hybrid, GWAS-SSF, plots; lambda_GC in the log."""
    from popgen import association

    ds = state.ds
    covar = list(params.covar or [])
    names = list(params.covar_name) if params.covar_name else None
    if params.pcs:
        if state.pca is None and not Path(f"{out}.eigenvec").is_file():
            raise PopgenError("gwas pcs: needs a pca step before it (or OUT.eigenvec)")
        covar.append(f"{out}.eigenvec")
        if names is not None:
            names += [f"PC{i + 1}" for i in range(params.pcs)]
    if params.pcs and names is None:  # all covariates of the other files, and only k PCs
        from popgen.io.pheno import column_names

        names = [c for path in covar[:-1] for c in column_names(path) if c not in ("FID", "IID")]
        names += [f"PC{i + 1}" for i in range(params.pcs)]
    with run.step("gwas"):
        pheno = association.load_phenotypes(ds, params.pheno, params.pheno_name, covar or None, names,
                                            case_control_01=params.case_control_01, model=params.model)
        report = association.gwas(ds, pheno, out, compute=lambda *c: run.compute(*c, label="GWAS"),
                                  missing=params.missing, firth=params.firth, ssf=params.ssf, plots=params.plots,
                                  genome_assembly=params.genome_assembly, ci=params.ci)
        for name, r in report.items():
            if "skipped" in r:
                log.warning("phenotype %s skipped: %s", name, r["skipped"])
                continue
            cases = f", {r['n_cases']} cases" if r.get("n_cases") is not None else ""
            log.info("%s (%s): %s samples%s, %d variants tested, %d Firth, lambda_GC %.4f, min p %.3g, errors %s",
                     name, r["kind"], r["n_samples"], cases, r["n_tested"], r["n_firth"], r["lambda_gc"],
                     r["min_p"], r["errcodes"])
            for path in r["files"]:
                run.wrote(path)


#: step name -> (parameter model, function)
STEPS = {
    "qc": (QCParams, qc_step),
    "ld_prune": (LDPruneParams, ld_prune_step),
    "king": (KingParams, king_step),
    "grm": (GRMParams, grm_step),
    "pca": (PCAParams, pca_step),
    "pca_project": (ProjectParams, pca_project_step),
    "gwas": (GWASParams, gwas_step),
}


# ---------------------------------------------------------------- config

class InputSpec(_Strict):
    bfile: Optional[str] = None
    vcf: Optional[str] = None
    vcz: Optional[str] = None

    @model_validator(mode="after")
    def _one(self):
        if sum(v is not None for v in (self.bfile, self.vcf, self.vcz)) != 1:
            raise ValueError("give exactly one of bfile, vcf, vcz")
        return self


class Chunks(_Strict):
    """Dask chunk sizes; unset = automatic (PLINK: every sample in one chunk, 16 MB blocks)."""

    variants: Optional[int] = Field(None, gt=0)
    samples: Optional[int] = Field(None, gt=0)


class Pipeline(_Strict):
    """A pipeline config (``popgen run CONFIG.yaml``).

    Input paths are relative to the config file; ``out`` is relative to the
    working directory.
    """

    input: InputSpec
    out: str
    device: Literal["cpu", "gpu", "auto"] = "auto"
    cluster: str = "local"
    chunks: Chunks = Chunks()
    keep: Optional[str] = None
    remove: Optional[str] = None
    extract: Optional[str] = None
    exclude: Optional[str] = None
    update_sex: Optional[str] = Field(None, description="sample sexes (plink2 --update-sex): VCF input has none")
    steps: list[dict[str, dict]] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps(self):
        for i, step in enumerate(self.steps):
            if len(step) != 1:
                raise ValueError(f"steps[{i}] must have exactly one key (the step name)")
            (name, params), = step.items()
            if name not in STEPS:
                raise ValueError(f"steps[{i}]: unknown step {name!r}; known: {', '.join(STEPS)}")
        return self

    def parsed_steps(self):
        return [(name, STEPS[name][0].model_validate(params or {})) for step in self.steps for name, params in step.items()]


def load_config(path) -> Pipeline:
    """Read and validate a pipeline YAML; errors name the file and the key."""
    from popgen.yamlfile import load_model

    path = Path(path)
    cfg = load_model(path, Pipeline, kind="config", what="input, out, steps, ...", check=lambda c: c.parsed_steps())
    base = path.parent
    for key in ("bfile", "vcf", "vcz"):
        value = getattr(cfg.input, key)
        if value is not None and not Path(value).is_absolute():
            setattr(cfg.input, key, str(base / value))
    for key in ("keep", "remove", "extract", "exclude", "update_sex"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).is_absolute():
            setattr(cfg, key, str(base / value))
    for step in cfg.steps:  # file parameters of steps are relative to the config too
        for params in step.values():
            for key in _PATH_PARAMS:
                if not isinstance(params, dict) or key not in params:
                    continue
                value = params[key]
                rel = lambda v: str(base / v) if isinstance(v, str) and not Path(v).is_absolute() else v  # noqa: E731
                params[key] = [rel(v) for v in value] if isinstance(value, list) else rel(value)
    return cfg


#: step parameters that name files
_PATH_PARAMS = ("labels", "pheno", "covar", "ref")


def subset_samples(ds, keep=None, remove=None):
    """Apply PLINK-style ``--keep``/``--remove`` sample lists."""
    from popgen.io.pheno import read_sample_list

    import numpy as np

    mask = np.ones(ds.sizes["samples"], dtype=bool)
    if keep:
        mask &= read_sample_list(keep, ds)
    if remove:
        mask &= ~read_sample_list(remove, ds)
    if mask.all():
        return ds
    if not mask.any():
        raise PopgenError("--keep/--remove left no samples")
    log.info("--keep/--remove: %d of %d samples kept", mask.sum(), len(mask))
    return ds.isel(samples=np.flatnonzero(mask))


#: sex codes of ``--update-sex`` files (PLINK 2's): anything else is an error
_SEX_CODES = {"1": 1, "M": 1, "m": 1, "male": 1, "2": 2, "F": 2, "f": 2, "female": 2,
              "0": 0, "-9": 0, "NA": 0, "na": 0, "nan": 0, ".": 0}


def update_sex(ds, path):
    """``plink2 --update-sex FILE``: sample sexes (1/M male, 2/F female, 0/NA unknown) from a
    table of ``[#]FID IID SEX`` or ``[#]IID SEX`` (the column named SEX, else the first after
    the IDs), matched by sample ID; samples the file lacks keep theirs (unknown for VCF input,
    which has none).  chrX and chrY analyses need the sexes (:func:`popgen.qc.variant_stats`,
    :func:`popgen.association.gwas`)."""
    from popgen.genotypes import sample_sex
    from popgen.io.pheno import match_samples, read_table

    table = read_table(path, numeric=False)
    cols = [c for c in table.columns if c not in ("FID", "IID")]
    if not cols:
        raise PopgenError("needs a sex column after the sample IDs", path)
    col = "SEX" if "SEX" in cols else cols[0]
    codes = match_samples(table, ds, path, what="sex")[col]
    listed = codes.notna().to_numpy()
    bad = sorted({str(v) for v in codes[listed] if str(v) not in _SEX_CODES})
    if bad:
        raise PopgenError(f"column {col}: sex code {bad[0]!r} is not 1/M (male), 2/F (female) or 0/NA (unknown)",
                          path)
    sex = sample_sex(ds)  # a copy (astype)
    sex[listed] = [_SEX_CODES[str(v)] for v in codes[listed]]
    log.info("--update-sex: %d samples' sexes from %s (%d male, %d female, %d unknown in the cohort)",
             int(listed.sum()), path, int((sex == 1).sum()), int((sex == 2).sum()), int((sex == 0).sum()))
    return ds.assign(sample_sex=("samples", sex))


def subset_variants(ds, extract=None, exclude=None):
    """Apply PLINK-style ``--extract``/``--exclude`` variant ID lists (one ID per line)."""
    import numpy as np

    from popgen.io.pheno import read_id_list
    from popgen.io.reports import _str

    mask = np.ones(ds.sizes["variants"], dtype=bool)
    ids = _str(ds["variant_id"].values)
    for path, keep in ((extract, True), (exclude, False)):
        if not path:
            continue
        listed = np.isin(ids, list(read_id_list(path)))
        if keep and not listed.any():
            raise PopgenError("none of the listed variant IDs are in the cohort", path)
        mask &= listed if keep else ~listed
    if mask.all():
        return ds
    if not mask.any():
        raise PopgenError("--extract/--exclude left no variants")
    log.info("--extract/--exclude: %d of %d variants kept", mask.sum(), len(mask))
    return ds.isel(variants=np.flatnonzero(mask))


def open_cohort(run, *, bfile=None, vcf=None, vcz=None, chunks=(None, None), keep=None, remove=None,
                extract=None, exclude=None, update_sex_file=None):
    """Open the input on the run's device, apply sample and variant subsets and ``--update-sex``."""
    from popgen.io import open_dataset

    with run.step("open input"):
        ds = open_dataset(bfile=bfile, vcf=vcf, vcz=vcz, chunks=chunks, device=run.device)
        ds = subset_variants(subset_samples(ds, keep, remove), extract, exclude)
        if update_sex_file:
            ds = update_sex(ds, update_sex_file)
        log.info("input: %d samples, %d variants", ds.sizes["samples"], ds.sizes["variants"])
    return ds


def run_pipeline(run, cfg: Pipeline):
    """Open the config's input and run its steps in order."""
    ds = open_cohort(run, bfile=cfg.input.bfile, vcf=cfg.input.vcf, vcz=cfg.input.vcz,
                     chunks=(cfg.chunks.variants, cfg.chunks.samples), keep=cfg.keep, remove=cfg.remove,
                     extract=cfg.extract, exclude=cfg.exclude, update_sex_file=cfg.update_sex)
    state = State(ds)
    for name, params in cfg.parsed_steps():
        STEPS[name][1](run, state, cfg.out, params)
    return state
