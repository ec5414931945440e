"""What a site computes on its own data: aggregate statistics only, written as bundles.

Every function takes the site's cohort (any device, any chunking; Dask as
usual), aligns it to the plan's variants, and returns the path of the bundle
it wrote.  Nothing indexed by samples is returned or written.
"""

from __future__ import annotations

import dataclasses
import logging
import types

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError
from popgen.federated.bundle import read_bundle, write_bundle
from popgen.federated.plan import LoadedPlan

log = logging.getLogger("popgen")


@dataclasses.dataclass
class Site:
    """A site's cohort aligned to a plan.

    ``ds`` holds the site's variants that are in the plan (by ID and alleles,
    in the site's order, alleles as the plan states them: swapped ones are
    flipped); ``plan_index`` is each of them's position in the plan.
    """

    name: str
    plan: LoadedPlan
    ds: object
    plan_index: np.ndarray
    report: dict

    @property
    def n_samples(self) -> int:
        return int(self.ds.sizes["samples"])

    def scatter(self, values, fill=0):
        """Per-site-variant values (first axis) -> per-plan-variant values (absent: ``fill``)."""
        values = np.asarray(values)
        out = np.full((self.plan.n_variants,) + values.shape[1:], fill, dtype=values.dtype)
        out[self.plan_index] = values
        return out

    def founders(self):
        from popgen.genotypes import founder_mask

        if self.plan.plan.frequencies == "all":
            return np.ones(self.n_samples, dtype=bool)
        return founder_mask(self.ds)


def align(ds, plan: LoadedPlan, name: str) -> Site:
    """Match a site's variants to the plan's (ID and alleles; swapped alleles flipped)
    and check the site is large enough to share anything."""
    import dask.array as da

    from popgen.genotypes import alt_allele_count
    from popgen.pca import flip_alleles_block, match_variants

    if not name or any(c in name for c in "/\\ \t"):
        raise PopgenError(f"site name {name!r} must be a non-empty word (it names the site in bundles)")
    mind = plan.plan.filters.mind
    ref = types.SimpleNamespace(variant_id=plan.variant_id, ref=plan.ref, alt=plan.alt)
    di, pi, flip, report = match_variants(ds, ref)
    if len(di) == 0:
        raise PopgenError(f"site {name}: none of its variants are in the plan (matched by ID and alleles)")
    if mind is not None:   # sample missingness over the plan's variants, as the pooled --mind
        from popgen import qc

        kept, rep = qc.apply_filters(ds.isel(variants=di), plan.plan.filters.qc(samples=True))
        log.info("site %s: --mind %g removed %d samples", name, mind, rep.removed.get("mind", 0))
        ds = ds.isel(samples=np.flatnonzero(np.isin(np.asarray(ds["sample_id"].values),
                                                     np.asarray(kept["sample_id"].values))))
    n = int(ds.sizes["samples"])
    if n < plan.plan.privacy.min_samples:
        raise PopgenError(f"site {name} has {n} samples, fewer than the plan's minimum of "
                          f"{plan.plan.privacy.min_samples}: refusing to export")
    sub = ds.isel(variants=di)
    alt = alt_allele_count(sub)
    if flip.any():
        f = da.from_array(flip, chunks=(alt.chunks[0],))
        alt = da.blockwise(flip_alleles_block, "vs", alt, "vs", f, "v", dtype=alt.dtype, meta=alt._meta)
    alleles = np.stack([plan.ref[pi], plan.alt[pi]], axis=1).astype(str)
    drop = [v for v in ("call_genotype", "call_genotype_mask", "call_alt_count") if v in sub]
    sub = sub.drop_vars(drop).assign(call_alt_count=(("variants", "samples"), alt),
                                     variant_allele=(("variants", "alleles"), alleles))
    log.info("site %s: %d samples; %d of the plan's %d variants present (%d with swapped alleles, flipped); "
             "%d site variants not in the plan", name, n, len(di), plan.n_variants, report["flipped"],
             report["not_in_reference"] + report["allele_mismatch"])
    return Site(name, plan, sub, pi, report)


def _disclosure(site: Site, what: str) -> str:
    return (f"Site {site.name} shares {what}, for the plan's {site.plan.n_variants} variants "
            f"({len(site.plan_index)} present at the site), computed over its {site.n_samples} samples. "
            "No array has a samples dimension: every value is a sum over samples.")


# ------------------------------------------------------------------ counts


def _minor_count(n_called, n_alt):
    return np.minimum(n_alt, 2 * n_called - n_alt)


def counts(site: Site, *, compute=None) -> dict:
    """Per plan variant: genotype counts over all samples and over the plan's frequency samples.

    Variants with a minor allele count in ``[1, privacy.min_allele_count)``
    are suppressed (all counts 0, ``suppressed`` = 1).
    """

    from popgen import qc

    compute = compute or _backend.compute
    a = qc.variant_stats(site.ds, merge=False, sex_chromosomes=True)
    f = qc.variant_stats(site.ds, samples=site.founders(), merge=False, sex_chromosomes=True)
    vals = compute(a["variant_n_called"].data, a["variant_n_het"].data, a["variant_n_hom_alt"].data,
                   a["variant_n_samples"].data, f["variant_n_called"].data, f["variant_n_het"].data,
                   f["variant_n_hom_alt"].data, 2 * f["variant_allele_count"].data[:, 1],
                   2 * f["variant_allele_total"].data, f["variant_hwe_x_counts"].data,
                   a["variant_genotype_counts"].data)
    called, het, hom, counted, f_called, f_het, f_hom, alt2, total2, x, gc = (
        np.rint(np.asarray(v)).astype(np.int64) for v in vals)
    mac = _minor_count(called, het + 2 * hom)
    sup = (mac > 0) & (mac < site.plan.plan.privacy.min_allele_count)
    out = {}
    for key, v in (("n_called", called), ("n_het", het), ("n_hom_alt", hom), ("n_counted", counted),
                   ("freq_n_called", f_called), ("freq_n_het", f_het), ("freq_n_hom_alt", f_hom),
                   ("freq_alt_x2", alt2), ("freq_alleles_x2", total2),
                   *((k, x[:, i]) for i, k in enumerate(X_COUNTS)),
                   *((k, gc[:, i]) for i, k in enumerate(GENO_COUNTS))):
        out[key] = site.scatter(np.where(sup, 0, v))
    out["suppressed"] = site.scatter(sup.astype(np.uint8))
    out["present"] = site.scatter(np.ones(len(site.plan_index), dtype=np.uint8))
    return out


#: the chrX Hardy-Weinberg test's counts among the frequency samples (0 off chrX)
X_COUNTS = ("freq_x_female_hom_ref", "freq_x_female_het", "freq_x_female_hom_alt", "freq_x_male_ref",
            "freq_x_male_alt")

#: plink2 --geno-counts' columns over all samples (haploid calls apart; a heterozygous one is missing)
GENO_COUNTS = ("gc_hom_ref", "gc_het", "gc_two_alt", "gc_hap_ref", "gc_hap_alt", "gc_missing")

COUNT_MEANINGS = {
    "n_called": "called genotypes (all samples; chrY: males)",
    "n_het": "heterozygous genotypes (all samples; chrY: males)",
    "n_hom_alt": "homozygous ALT genotypes (all samples; chrY: males)",
    "n_counted": "samples counted (all samples; chrY: males), the call rate's denominator",
    "freq_n_called": "called genotypes among the plan's frequency samples (founders or all)",
    "freq_n_het": "heterozygous genotypes among the frequency samples",
    "freq_n_hom_alt": "homozygous ALT genotypes among the frequency samples",
    "freq_alt_x2": "twice the ALT alleles among the frequency samples (chrX males and chrY/MT calls haploid: "
                   "a heterozygous haploid call is half an allele)",
    "freq_alleles_x2": "twice the alleles among the frequency samples (haploid calls one allele)",
    "freq_x_female_hom_ref": "chrX: females' REF/REF calls among the frequency samples",
    "freq_x_female_het": "chrX: females' REF/ALT calls among the frequency samples",
    "freq_x_female_hom_alt": "chrX: females' ALT/ALT calls among the frequency samples",
    "freq_x_male_ref": "chrX: males' REF calls among the frequency samples",
    "freq_x_male_alt": "chrX: males' ALT calls among the frequency samples",
    "gc_hom_ref": "diploid REF/REF calls (all samples)",
    "gc_het": "diploid REF/ALT calls (all samples)",
    "gc_two_alt": "diploid ALT/ALT calls (all samples)",
    "gc_hap_ref": "haploid REF calls (all samples: males on chrX/chrY, everyone on MT)",
    "gc_hap_alt": "haploid ALT calls (all samples)",
    "gc_missing": "missing calls (all samples; a heterozygous haploid call counts as missing)",
    "suppressed": "1 where the site's minor allele count is below the plan's minimum (counts withheld, 0)",
    "present": "1 where the variant is in the site's data",
}


def export_counts(site: Site, path, *, compute=None):
    """Write the site's ``counts`` bundle (allele and call counts per plan variant)."""
    c = counts(site, compute=compute)
    arrays = {k: (v, ("variants",), COUNT_MEANINGS[k]) for k, v in c.items()}
    n_sup = int(c["suppressed"].sum())
    return write_bundle(path, site.plan, kind="counts", site=site.name, arrays=arrays,
                        dims={"variants": site.plan.n_variants},
                        attrs={"n_samples": site.n_samples, "n_present": len(site.plan_index),
                               "n_suppressed": n_sup},
                        disclosure=_disclosure(site, "genotype counts per variant"))


# ------------------------------------------------------------------ linear GWAS sufficient statistics


def _site_phenotypes(site: Site, pheno, *, binary: bool):
    """The plan's phenotypes and covariates at a site, checked against the plan."""
    g = site.plan.plan.gwas
    if g is None:
        raise PopgenError("the plan has no gwas section", site.plan.path)
    if list(pheno.covariate_names) != list(g.covariates):
        raise PopgenError(f"covariates at site {site.name} are {pheno.covariate_names}, the plan names "
                          f"{g.covariates}: federated covariates must be numeric columns (code categories "
                          "as indicator columns and name them in the plan)")
    values = {}
    for name in g.phenotypes:
        if name not in pheno.values:
            continue
        if bool(pheno.binary[name]) != binary:
            kind = "case/control" if pheno.binary[name] else "quantitative"
            raise PopgenError(f"phenotype {name} is {kind} at site {site.name}; the plan's analysis needs "
                              f"{'case/control' if binary else 'quantitative'} phenotypes")
        values[name] = pheno.values[name]
    return values


def _pack_index(p: int):
    iu = np.triu_indices(p)
    return iu


def pack_sym(a):
    """(..., p, p) symmetric -> (..., p(p+1)/2) upper triangle, row by row."""
    iu = _pack_index(a.shape[-1])
    return a[..., iu[0], iu[1]]


def unpack_sym(packed, p: int):
    """Inverse of :func:`pack_sym`."""
    iu = _pack_index(p)
    out = np.zeros(packed.shape[:-1] + (p, p), dtype=packed.dtype)
    out[..., iu[0], iu[1]] = packed
    out[..., iu[1], iu[0]] = packed
    return out


def _linear_pass(site: Site, ds, values, covariates, covariate_names, founders, *, compute, out: dict, rows,
                 batch: int = 8, keep_sup: bool = False) -> dict:
    """One pass of the exact linear statistics over ``ds`` (the site's variants, or a run of
    them), written a block of variants at a time into ``out``'s row targets (``xtx`` packed
    (., P, (K+1)(K+2)/2), ``xty``, ``yy``, ``suppressed``; arrays or
    :class:`~popgen.federated.arrays.DiskArray`) at rows ``rows`` (one per variant of ``ds``).

    Returns the founder frequency columns ``f_alt``, ``f_called`` (v,), per phenotype
    ``centre`` (P, K+1), ``used`` (P,) and ``masks`` (its samples), ``n_suppressed``, and
    with ``keep_sup`` the suppression ``sup`` (v, P).  Raises PopgenError where no phenotype
    has enough samples."""
    from popgen import association as assoc
    from popgen.backend import to_cpu

    g = site.plan.plan.gwas
    pr = site.plan.plan.privacy
    P = len(g.phenotypes)
    design = assoc._design(ds, values, covariates, covariate_names, binary=False,
                           min_samples=max(g.min_samples, pr.min_samples), founders=founders,
                           check_covariates=False)
    k = design.covariates.shape[1]
    K = k + 1
    kept = [g.phenotypes.index(n) for n in design.names]
    used = np.zeros(P, dtype=bool)
    used[kept] = True
    n_used = np.array([design.n_used.get(name, 0) for name in g.phenotypes], dtype=np.float64)
    sums, totals = assoc.linear_sums(ds, design)
    nv = ds.sizes["variants"]
    f_alt = np.zeros(nv)
    f_called = np.zeros(nv)
    sup_all = np.zeros((nv, P), dtype=bool) if keep_sup else None
    n_sup = 0
    for a, b, blk in _computed_blocks(sums, compute, batch):
        st = assoc.linear_stats(np.asarray(to_cpu(blk)), totals, n_pheno=len(kept), n_cov=k,
                                n_founders=int(design.founders.sum()))
        xtx = np.zeros((b - a, P, K + 1, K + 1))
        xty = np.zeros((b - a, P, K + 1))
        yy = np.zeros((b - a, P))
        xtx[:, kept], xty[:, kept], yy[:, kept] = st["xtx"], st["xty"], st["yy"]
        f_alt[a:b], f_called[a:b] = st["founder_alt"], st["founder_called"]
        # suppression: small minor allele counts and small missing-call cells
        n, g_sum = xtx[..., 0, 0], xtx[..., 0, K]
        mac = np.minimum(g_sum, 2 * n - g_sum)
        missing = n_used[None, :] - n
        sup = ((mac > 0) & (mac < pr.min_allele_count)) | ((missing > 0) & (missing < pr.min_missing_count))
        sup &= used[None, :]
        xtx[sup], xty[sup], yy[sup] = 0, 0, 0
        r = rows[a:b]
        out["xtx"][r] = pack_sym(xtx)
        out["xty"][r] = xty
        out["yy"][r] = yy
        out["suppressed"][r] = sup
        n_sup += int(sup.sum())
        if keep_sup:
            sup_all[a:b] = sup
    _withhold_rare(f_alt, f_called, pr)
    centre = np.zeros((P, K + 1))
    masks = {}
    for j in kept:
        name = g.phenotypes[j]
        m = design.mask[:, design.names.index(name)]
        masks[name] = m
        centre[j, 0] = m.sum()
        if k:
            centre[j, 1:K] = design.covariates[m].mean(axis=0)
        centre[j, K] = design.y[m, design.names.index(name)].mean()
    return {"f_alt": f_alt, "f_called": f_called, "centre": centre, "used": used, "masks": masks,
            "skipped": dict(design.skipped), "n_suppressed": n_sup, "sup": sup_all}


def _computed_blocks(arr, compute, batch: int):
    """The blocks of the Dask array ``arr`` along its first axis, in order, ``batch`` computed at a
    time: ``(start, stop, block)`` (memory: one batch of results, not the whole array)."""
    bounds = np.concatenate([[0], np.cumsum(arr.chunks[0])]).astype(int)
    n_blocks = len(arr.chunks[0])
    for b0 in range(0, n_blocks, batch):
        idx = range(b0, min(n_blocks, b0 + batch))
        for i, block in zip(idx, compute(*[arr.blocks[i] for i in idx])):
            yield int(bounds[i]), int(bounds[i + 1]), block


def _withhold_rare(f_alt, f_called, privacy) -> None:
    """Zero, in place, the frequency columns of variants whose minor allele count is in
    ``[1, min_allele_count)``."""
    f_mac = np.minimum(f_alt, 2 * f_called - f_alt)
    rare = (f_mac > 0) & (f_mac < privacy.min_allele_count)
    f_alt[rare] = 0
    f_called[rare] = 0


def _linear_targets(scratch, n: int, P: int, k: int) -> dict:
    """Row targets of one set of linear statistics (``k`` covariates) for ``n`` variants."""
    K = k + 1
    return {"xtx": scratch.zeros((n, P, (K + 1) * (K + 2) // 2)), "xty": scratch.zeros((n, P, K + 1)),
            "yy": scratch.zeros((n, P)), "suppressed": scratch.zeros((n, P), np.uint8)}


#: ``x_status`` per phenotype: why a site's chrX statistics with the sex covariate are (not) there
X_ABSENT, X_SENT, X_IN_COVARIATES, X_WITHHELD = 0, 1, 2, 3


def _chrx_allele_counts(ds, masks, names, compute) -> tuple[np.ndarray, np.ndarray]:
    """ALT alleles and alleles per variant (v, P) among each of ``names``' samples (``masks``),
    as ``plink2 --freq`` counts them on chrX (a male's call one allele): GWAS-SSF's effect allele
    frequency, and (over the founders) the A1 choice."""
    from popgen import backend
    from popgen.qc import variant_stats

    nv = ds.sizes["variants"]
    alt, tot = np.zeros((nv, len(names))), np.zeros((nv, len(names)))
    done = {}
    for j, name in enumerate(names):
        m = masks.get(name)
        if m is None:
            continue
        key = m.tobytes()
        if key not in done:
            st = variant_stats(ds, samples=m, merge=False, sex_chromosomes=True)
            done[key] = compute(st["variant_allele_count"].data[:, 1], st["variant_allele_total"].data)
        alt[:, j], tot[:, j] = (np.asarray(backend.to_cpu(a), dtype=np.float64) for a in done[key])
    return alt, tot


def _moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean (p,) and centred cross-products (p, p) of the rows of ``x`` (n, p)."""
    if not len(x):
        return np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
    mean = x.mean(axis=0)
    d = x - mean
    return mean, d.T @ d


def linear_statistics(site: Site, pheno, *, compute=None, batch: int = 8, scratch=None) -> dict:
    """Per plan variant and phenotype, the normal equations of ``y ~ 1 + covariates + g``
    over the site's samples with the phenotype, every covariate and a call at the variant
    (:func:`popgen.association.linear_stats`), plus the centring of each phenotype's sample set.

    chrX, chrY and MT as ``popgen gwas`` (:func:`popgen.association.run_inputs`) models them,
    so that the coordinator can fit the pooled cohort's model:

    - chrX: A1 from allele counts with a male's call counted once; also the statistics with
      the .fam sex as a further covariate over the samples of known sex (``x_*``), and the
      moments of ``[covariates, sex]`` from which the coordinator decides, as on the pooled
      cohort, whether the sex is added (both sexes present, the sex not already a function
      of the covariates).  A site whose sex is a function of its covariates sends none
      (``x_status`` 2); one whose few samples of unknown sex could be told apart by
      differencing the two sets withholds them (``x_status`` 3): the coordinator then tests
      chrX only if the pooled model needs no sex covariate.
    - chrY: over the males only (``y_*``; the all-sample rows are not shared), with the
      moments of the males' covariates (the coordinator drops those constant among them).
    - MT: as autosomes (haploid only in how results are written).

    Suppressed (all statistics 0, ``suppressed`` = 1) per variant and phenotype: a
    minor allele count in ``[1, min_allele_count)`` or a number of missing calls in
    ``[1, min_missing_count)`` among the phenotype's samples.

    The per-variant statistics are written a block at a time into arrays from ``scratch``
    (:class:`~popgen.federated.arrays.Scratch`: on disk for :func:`export_linear`; default
    in memory), in plan order.
    """
    from popgen import association as assoc
    from popgen.federated.arrays import Scratch
    from popgen.genotypes import model_runs, sample_sex

    compute = compute or _backend.compute
    plan = site.plan
    g = plan.plan.gwas
    values = _site_phenotypes(site, pheno, binary=False)
    P, k = len(g.phenotypes), len(g.covariates)
    if not any(name in values for name in g.phenotypes):
        raise PopgenError(f"site {site.name} has none of the plan's phenotypes {g.phenotypes}")
    scratch = scratch or Scratch()
    cov, names = pheno.covariates, pheno.covariate_names
    main_out = _linear_targets(scratch, plan.n_variants, P, k)
    try:
        main = _linear_pass(site, site.ds, values, cov, names, site.founders(), compute=compute, batch=batch,
                            out=main_out, rows=site.plan_index)
    except PopgenError as e:
        raise PopgenError(f"site {site.name}: {e}") from None
    out = {"centre": main["centre"], "phenotype_used": main["used"].astype(np.uint8), "skipped": main["skipped"],
           "n_suppressed": main["n_suppressed"], **main_out}
    x_idx, y_idx = plan.model_index("x"), plan.model_index("y")
    for model, kk, idx in (("x", k + 1, x_idx), ("y", k, y_idx)):
        for key, arr in _linear_targets(scratch, len(idx), P, kk).items():
            out[f"{model}_{key}"] = arr
        out[f"{model}_centre"] = np.zeros((P, kk + 2))
    for key in ("xa_alt", "xa_alleles", "x_alt", "x_alleles"):
        out[key] = np.zeros((len(x_idx), P))
    out["x_status"] = np.zeros(P, dtype=np.uint8)
    out["y_used"] = np.zeros(P, dtype=np.uint8)
    sex = sample_sex(site.ds)
    known = np.isin(sex, (1, 2))
    male = sex == 1
    ok = np.ones(site.n_samples, dtype=bool) if cov is None else np.all(np.isfinite(cov), axis=1)
    c = np.zeros((site.n_samples, 0)) if cov is None else np.asarray(cov, dtype=np.float64)
    out["sex_counts"] = np.array([int((known & ok).sum()), int(male.sum()), int((sex == 2).sum()),
                                  int((male & ok).sum())], dtype=np.int64)
    out["sex_mean"], out["sex_gram"] = _moments(np.column_stack([c, sex.astype(np.float64)])[known & ok])
    out["male_mean"], out["male_gram"] = _moments(c[male & ok])
    pr = plan.plan.privacy
    if out["sex_counts"][0] < pr.min_samples:  # moments of a small set are not shared
        out["sex_mean"][:], out["sex_gram"][:] = 0, 0
    if out["sex_counts"][3] < pr.min_samples:
        out["male_mean"][:], out["male_gram"][:] = 0, 0
    s_cov = np.where(known, sex.astype(np.float64), np.nan)
    x_spanned = bool(known.any()) and assoc._in_span(cov, s_cov)
    # phenotypes whose few samples of unknown sex the two sets of chrX statistics would tell apart
    unknown = {n: int((m & ~known).sum()) for n, m in main["masks"].items()}
    withheld = [n for n, u in unknown.items() if 0 < u < pr.min_missing_count] if known.any() else []
    for start, stop, model in model_runs(site.ds):
        if model not in ("x", "y"):
            continue
        part = site.ds.isel(variants=slice(start, stop))
        weights = assoc._founder_weights(model, site.ds, site.founders(), sex)
        idx = x_idx if model == "x" else y_idx
        pos = np.minimum(np.searchsorted(idx, site.plan_index[start:stop]), max(len(idx) - 1, 0))
        where = f"site {site.name}: {stop - start} variants on {assoc._MODEL_LABEL[model]}"
        if not len(idx) or (idx[pos] != site.plan_index[start:stop]).any():
            raise PopgenError(f"{where}, but the plan has some of them on another contig (the site's contig "
                              "names must say what the plan's do)")
        x_out = {key: out[f"{model}_{key}"] for key in main_out}
        if model == "x":  # the main pass's statistics stand; A1 from founders' alleles, a male's call once
            f_alt, f_alleles = _chrx_allele_counts(part, {"": site.founders()}, [""], compute)
            f_alt, f_called = f_alt[:, 0], f_alleles[:, 0] / 2  # as the weighted columns of a linear pass
            _withhold_rare(f_alt, f_called, pr)
            main["f_alt"][start:stop], main["f_called"][start:stop] = f_alt, f_called
            sup = np.asarray(main_out["suppressed"][site.plan_index[start:stop]], dtype=bool)
            counts = _chrx_allele_counts(part, main["masks"], g.phenotypes, compute)
            out["xa_alt"][pos], out["xa_alleles"][pos] = (np.where(sup, 0.0, x) for x in counts)
            if x_spanned:
                out["x_status"][main["used"]] = X_IN_COVARIATES
                continue
            if not known.any():
                continue
            for name in withheld:
                log.warning("%s: phenotype %s's statistics with the sex covariate withheld (%d samples of "
                            "unknown sex would be told apart from the statistics without it)",
                            where, name, unknown[name])
                out["x_status"][g.phenotypes.index(name)] = X_WITHHELD
            shared = {n: v for n, v in values.items() if n not in withheld}
            try:
                if not shared:
                    raise PopgenError("every phenotype withheld")
                b = _linear_pass(site, part, shared, np.column_stack([c, s_cov]), list(names or []) + ["SEX"],
                                 weights, compute=compute, batch=batch, out=x_out, rows=pos, keep_sup=True)
            except PopgenError as e:
                log.warning("%s: no statistics with the sex covariate: %s", where, e)
                continue
            out["x_status"][b["used"]] = X_SENT
            out["x_centre"] = b["centre"]
            counts = _chrx_allele_counts(part, b["masks"], g.phenotypes, compute)
            out["x_alt"][pos], out["x_alleles"][pos] = (np.where(b["sup"], 0.0, x) for x in counts)
        else:
            for arr in main_out.values():  # chrY rows over every sample are not shared
                arr[site.plan_index[start:stop]] = 0
            main["f_alt"][start:stop] = main["f_called"][start:stop] = 0
            males = {n: np.where(male, np.asarray(v, dtype=np.float64), np.nan) for n, v in values.items()}
            try:
                b = _linear_pass(site, part, males, cov, names, weights, compute=compute, batch=batch,
                                 out=x_out, rows=pos)
            except PopgenError as e:
                log.warning("%s not shared: %s", where, e)
                continue
            main["f_alt"][start:stop], main["f_called"][start:stop] = b["f_alt"], b["f_called"]
            out["y_centre"] = b["centre"]
            out["y_used"] = b["used"].astype(np.uint8)
    out["freq_alt"] = site.scatter(main["f_alt"])
    out["freq_called"] = site.scatter(main["f_called"])
    return out


def export_linear(site: Site, pheno, path, *, compute=None):
    """Write the site's ``linear`` bundle: sufficient statistics of the pooled linear GWAS
    (:func:`linear_statistics`), the per-variant statistics through files beside it (memory
    stays at a block of variants)."""
    from popgen.federated.arrays import Scratch

    with Scratch.beside(path) as scratch:
        return _write_linear_bundle(site, linear_statistics(site, pheno, compute=compute, scratch=scratch), path)


def _write_linear_bundle(site: Site, st: dict, path):
    plan = site.plan
    g = plan.plan.gwas
    k = len(g.covariates)
    K = k + 1
    dims = {"variants": plan.n_variants, "phenotypes": len(g.phenotypes), "predictors": K + 1,
            "predictors2": (K + 1) * (K + 2) // 2, "variants_x": len(plan.model_index("x")),
            "variants_y": len(plan.model_index("y")), "predictors_x": K + 2, "predictors2_x": (K + 2) * (K + 3) // 2,
            "covariates": k, "covariates_sex": k + 1, "sex_counts": 4}
    pred = "predictors [1, covariates centred on the phenotype's samples at the site, ALT count]"
    pred_x = ("predictors [1, covariates, sex (1 male, 2 female), centred on the phenotype's samples of known sex, "
              "ALT count]")
    arrays = {
        "xtx": (st["xtx"], ("variants", "phenotypes", "predictors2"),
                f"X'X upper triangle (row by row) over samples called at the variant; {pred} (chrY: 0)"),
        "xty": (st["xty"], ("variants", "phenotypes", "predictors"),
                "X'y (y centred on the phenotype's samples at the site)"),
        "yy": (st["yy"], ("variants", "phenotypes"), "y'y over samples called at the variant"),
        "freq_alt": (st["freq_alt"], ("variants",), "ALT alleles among the frequency samples (A1 choice; chrX: "
                                                   "a male's call one allele, chrY: males)"),
        "freq_called": (st["freq_called"], ("variants",), "called genotypes among the frequency samples"),
        "suppressed": (st["suppressed"], ("variants", "phenotypes"),
                       "1 where statistics are withheld (small allele count or missing-call cell)"),
        "centre": (st["centre"], ("phenotypes", "predictors"),
                   "per phenotype: sample count, covariate means, phenotype mean at the site"),
        "phenotype_used": (st["phenotype_used"], ("phenotypes",), "1 where the site has the phenotype"),
        "xa_alt": (st["xa_alt"], ("variants_x", "phenotypes"),
                   "chrX: ALT alleles among the phenotype's samples (a male's call one allele)"),
        "xa_alleles": (st["xa_alleles"], ("variants_x", "phenotypes"), "chrX: alleles counted likewise"),
        "x_xtx": (st["x_xtx"], ("variants_x", "phenotypes", "predictors2_x"), f"chrX: X'X with the sex; {pred_x}"),
        "x_xty": (st["x_xty"], ("variants_x", "phenotypes", "predictors_x"), "chrX: X'y with the sex"),
        "x_yy": (st["x_yy"], ("variants_x", "phenotypes"), "chrX: y'y, samples of known sex"),
        "x_suppressed": (st["x_suppressed"], ("variants_x", "phenotypes"), "chrX with the sex: withheld"),
        "x_centre": (st["x_centre"], ("phenotypes", "predictors_x"), "chrX with the sex: centring"),
        "x_alt": (st["x_alt"], ("variants_x", "phenotypes"), "chrX: ALT alleles among the samples of known sex"),
        "x_alleles": (st["x_alleles"], ("variants_x", "phenotypes"), "chrX: alleles counted likewise"),
        "x_status": (st["x_status"], ("phenotypes",), "chrX with the sex: 0 no samples, 1 sent, 2 the sex is a "
                                                      "function of the covariates, 3 withheld"),
        "y_xtx": (st["y_xtx"], ("variants_y", "phenotypes", "predictors2"),
                  "chrY: X'X over males; predictors [1, covariates centred on the phenotype's males at the site, "
                  "ALT count]"),
        "y_xty": (st["y_xty"], ("variants_y", "phenotypes", "predictors"), "chrY: X'y over males"),
        "y_yy": (st["y_yy"], ("variants_y", "phenotypes"), "chrY: y'y over males"),
        "y_suppressed": (st["y_suppressed"], ("variants_y", "phenotypes"), "chrY: withheld"),
        "y_centre": (st["y_centre"], ("phenotypes", "predictors"), "chrY: centring over the males"),
        "y_used": (st["y_used"], ("phenotypes",), "1 where the site's males have the phenotype"),
        "sex_counts": (st["sex_counts"], ("sex_counts",), "samples of known sex with every covariate, males, "
                                                         "females, males with every covariate"),
        "sex_mean": (st["sex_mean"], ("covariates_sex",), "mean of [covariates, sex] over the samples of known "
                                                          "sex with every covariate (0 if fewer than min_samples)"),
        "sex_gram": (st["sex_gram"], ("covariates_sex", "covariates_sex"), "their centred cross-products"),
        "male_mean": (st["male_mean"], ("covariates",), "mean of the covariates over the males with every covariate"),
        "male_gram": (st["male_gram"], ("covariates", "covariates"), "their centred cross-products"),
    }
    return write_bundle(path, plan, kind="linear", site=site.name, arrays=arrays, dims=dims,
                        attrs={"n_samples": site.n_samples, "phenotypes": list(g.phenotypes),
                               "covariates": list(g.covariates), "skipped": st["skipped"],
                               "n_suppressed": st["n_suppressed"]},
                        disclosure=_disclosure(site, "per-variant sums of squares and cross-products of "
                                                     "phenotypes, covariates and genotypes (chrX also with the "
                                                     "sex as a covariate over the samples of known sex, chrY "
                                                     "over the males), counts of males and females and the "
                                                     "means and cross-products of the covariates and sex"))


# ------------------------------------------------------------------ summary statistics (meta-analysis)


def summary_statistics(site: Site, pheno, *, compute=None, firth: str = "fallback", scratch=None) -> dict:
    """The site's own GWAS (linear, or logistic with Firth fallback when the plan says ``binary``),
    chrX, chrY and MT scanned as ``popgen gwas`` scans them (:func:`popgen.association.run_inputs`):
    per plan variant and phenotype, BETA and SE per ALT allele (haploid contigs: per haploid
    allele, as the .glm files) and OBS_CT, written a chunk of variants at a time into arrays from
    ``scratch`` (:class:`~popgen.federated.arrays.Scratch`; default in memory)."""
    from popgen import association as assoc
    from popgen.federated.arrays import Scratch
    from popgen.genotypes import model_runs, sample_sex

    g = site.plan.plan.gwas
    values = _site_phenotypes(site, pheno, binary=g.binary)
    if not values:
        raise PopgenError(f"site {site.name} has none of the plan's phenotypes {g.phenotypes}")
    scratch = scratch or Scratch()
    M, P = site.plan.n_variants, len(g.phenotypes)
    out = {"beta": scratch.full((M, P), np.nan), "se": scratch.full((M, P), np.nan),
           "obs_ct": scratch.zeros((M, P)), "suppressed": scratch.zeros((M, P), np.uint8)}
    used = np.zeros(P, dtype=np.uint8)
    skipped, kind = {}, "logistic" if g.binary else "linear"
    runs = model_runs(site.ds)
    sex = sample_sex(site.ds) if any(m != "autosome" for *_, m in runs) else None
    min_samples = max(g.min_samples, site.plan.plan.privacy.min_samples)
    min_ac = site.plan.plan.privacy.min_allele_count
    for start, stop, model in runs:
        part = site.ds if len(runs) == 1 else site.ds.isel(variants=slice(start, stop))
        inputs = assoc.run_inputs(model, site.ds, sex, values, pheno.covariates, pheno.covariate_names,
                                  site.founders())
        if isinstance(inputs, str):
            log.warning("site %s: %d variants on %s not tested: %s", site.name, stop - start,
                        assoc._MODEL_LABEL[model], inputs)
            continue
        run_values, cov, names, haploid, weights = inputs
        kw = dict(covariate_names=names, founders=weights, min_samples=min_samples)
        try:
            if g.binary:
                scan = assoc.logistic_scan(part, run_values, cov, firth=firth, **kw)
            else:
                scan = assoc.linear_scan(part, run_values, cov, **kw)
        except PopgenError as e:
            if model == "autosome":
                raise PopgenError(f"site {site.name}: {e}") from None
            log.warning("site %s: %d variants on %s not tested: %s", site.name, stop - start,
                        assoc._MODEL_LABEL[model], e)
            continue
        scan.haploid = haploid
        for chunk in scan.iter_chunks(compute):
            n = chunk.stop - chunk.start
            beta, se = np.full((n, P), np.nan), np.full((n, P), np.nan)
            obs, a1 = np.zeros((n, P)), np.zeros((n, P))
            for name, cols in chunk.columns.items():
                j = g.phenotypes.index(name)
                ok = cols["ERRCODE"] == 0
                if scan.kind == "logistic":
                    ok |= cols["ERRCODE"] == assoc.E_UNFINISHED
                bj = np.where(cols["A1_IS_REF"], -cols["BETA"], cols["BETA"])
                beta[:, j] = np.where(ok, bj, np.nan)
                se[:, j] = np.where(ok, cols["SE"], np.nan)
                obs[:, j] = cols["OBS_CT"]
                a1[:, j] = cols["A1_CT"]
            mac = np.minimum(a1, 2 * obs - a1)
            sup = (mac > 0) & (mac < min_ac)
            beta[sup], se[sup], obs[sup] = np.nan, np.nan, 0
            rows = site.plan_index[start + chunk.start:start + chunk.stop]
            out["beta"][rows], out["se"][rows], out["obs_ct"][rows], out["suppressed"][rows] = beta, se, obs, sup
        for name in scan.phenotypes:
            used[g.phenotypes.index(name)] = 1
        if model == "autosome":
            skipped.update(scan.skipped)
    return {**out, "phenotype_used": used, "kind": kind, "skipped": skipped}


def export_sumstats(site: Site, pheno, path, *, compute=None):
    """Write the site's ``sumstats`` bundle (its own GWAS results, for meta-analysis), the
    results through files beside it (memory stays at a chunk of variants)."""
    from popgen.federated.arrays import Scratch

    with Scratch.beside(path) as scratch:
        st = summary_statistics(site, pheno, compute=compute, scratch=scratch)
        return _write_sumstats_bundle(site, st, path)


def _write_sumstats_bundle(site: Site, st: dict, path):
    g = site.plan.plan.gwas
    effect = "log odds ratio" if st["kind"] == "logistic" else "regression coefficient"
    arrays = {
        "beta": (st["beta"], ("variants", "phenotypes"), f"{effect} per ALT allele (NaN: no valid result)"),
        "se": (st["se"], ("variants", "phenotypes"), "standard error of beta"),
        "obs_ct": (st["obs_ct"], ("variants", "phenotypes"), "samples in the regression"),
        "suppressed": (st["suppressed"], ("variants", "phenotypes"),
                       "1 where the result is withheld (small minor allele count)"),
        "phenotype_used": (st["phenotype_used"], ("phenotypes",), "1 where the site has the phenotype"),
    }
    return write_bundle(path, site.plan, kind="sumstats", site=site.name, arrays=arrays,
                        dims={"variants": site.plan.n_variants, "phenotypes": len(g.phenotypes)},
                        attrs={"n_samples": site.n_samples, "model": st["kind"], "phenotypes": list(g.phenotypes),
                               "covariates": list(g.covariates), "skipped": st["skipped"]},
                        disclosure=_disclosure(site, f"per-variant GWAS estimates ({st['kind']} regression)"))


# ------------------------------------------------------------------ PCA products


def _ztv_block(alt, alt_freq, v):
    """``Z_c' V_c`` for one variant chunk: (1, s, l) float64 (``alt`` holds all samples)."""
    from popgen.backend import namespace
    from popgen.pca import standardize_block

    xp = namespace(alt)
    z = standardize_block(alt, alt_freq)
    return xp.astype(xp.matmul(xp.matrix_transpose(z), xp.asarray(v, dtype=xp.float32)), xp.float64)[None, ...]


def _zw_block(alt, alt_freq, w):
    """``Z_c W``: (v_chunk, l) float64."""
    from popgen.backend import namespace
    from popgen.pca import standardize_block

    xp = namespace(alt)
    z = standardize_block(alt, alt_freq)
    return xp.astype(xp.matmul(z, xp.asarray(w, dtype=xp.float32)), xp.float64)


def pca_product(site: Site, alt_freq, basis, *, use=None, final: bool = False, compute=None, scratch=None,
                batch: int = 8):
    """``Z_s (Z_s' V)`` over the plan's PCA variants present at the site: (plan variants, l).

    ``Z_s`` is the site's standardized genotypes (variants x samples, pooled
    frequencies ``alt_freq``, missing calls 0) over the variants ``use`` (default: the
    plan's PCA variants); ``Z_s' V`` (samples x l) stays
    at the site.  Two streaming passes over the genotypes; with ``final`` (the
    Rayleigh-Ritz round) one, returning ``(Z_s' V)'(Z_s' V)`` (l x l) instead.
    ``basis`` may be a :class:`~popgen.federated.arrays.DiskArray` (read a chunk of rows at a
    time); the product is written ``batch`` chunks at a time into an array from ``scratch``
    (:class:`~popgen.federated.arrays.Scratch`; default in memory).
    """
    import dask.array as da

    from popgen.backend import namespace, to_cpu
    from popgen.federated.arrays import RowView, Scratch
    from popgen.genotypes import alt_allele_count
    from popgen.pca import _pass_chunks

    compute = compute or _backend.compute
    scratch = scratch or Scratch()
    use = site.plan.pca_mask if use is None else np.asarray(use, dtype=bool)
    sel = np.flatnonzero(use[site.plan_index])
    l = basis.shape[1]  # noqa: E741
    if len(sel) == 0:
        return np.zeros((l, l)) if final else scratch.zeros((site.plan.n_variants, l))
    pidx = site.plan_index[sel]
    alt = _pass_chunks(alt_allele_count(site.ds.isel(variants=sel)), site.n_samples)
    xp = namespace(alt)
    chunks = (alt.chunks[0],)
    p = da.from_array(np.asarray(alt_freq, dtype=np.float64)[pidx], chunks=chunks)
    # name=False: no token (Dask would pickle the view, and the basis with it, to hash it)
    v = da.from_array(RowView(basis, pidx), chunks=chunks + ((l,),), meta=np.empty((0, 0)), name=False)
    parts = da.blockwise(_ztv_block, "cjl", alt, "cj", p, "c", v, "cl", dtype=np.float64,
                         adjust_chunks={"c": 1}, meta=xp.empty((0, 0, 0), dtype=xp.float64), concatenate=True)
    # Z' V summed in chunk order, ``batch`` chunks at a time: a Dask reduction ran chunks' tasks
    # ahead of their sums, each holding (samples x l) (the final round's export at 5,000 samples
    # x 200,000 variants peaked at 572-598 MB that way, 538 MB this way)
    w = None
    for _, _, y in _computed_blocks(parts, compute, batch):
        w = y[0] if w is None else w + y[0]
    if final:
        w = np.asarray(to_cpu(w))
        return w.T @ w
    wd = xp.asarray(w)
    prod = da.blockwise(_zw_block, "cl", alt, "cj", p, "c", wd, None, dtype=np.float64,
                        new_axes={"l": l}, meta=xp.empty((0, 0), dtype=xp.float64), concatenate=True)
    out = scratch.zeros((site.plan.n_variants, l))
    for a, b, y in _computed_blocks(prod, compute, batch):  # each chunk written where its rows go
        out[pidx[a:b]] = np.asarray(to_cpu(y))
    return out


def export_pca_product(site: Site, basis_path, path, *, compute=None):
    """Write the site's ``pca-product`` bundle for the round of the coordinator's basis bundle
    (the basis read, and the product written, a chunk of variants at a time)."""
    from popgen.federated.arrays import Scratch

    b = read_bundle(basis_path, site.plan, kind="pca-basis", lazy={"basis"})
    with Scratch.beside(path) as scratch:
        prod = pca_product(site, b.arrays["alt_freq"], b.arrays["basis"], use=b.arrays["use"],
                           final=bool(b.attrs.get("final")), compute=compute, scratch=scratch)
        return _write_pca_product_bundle(site, b, prod, path)


def _write_pca_product_bundle(site: Site, b, prod, path):
    basis = b.arrays["basis"]
    final = bool(b.attrs.get("final"))
    if final:
        arrays = {"gram": (prod, ("basis", "basis"), "(Z' V)'(Z' V) for the coordinator's final basis V, Z the "
                                                     "site's standardized genotypes (variants x samples)")}
    else:
        arrays = {"product": (prod, ("variants", "basis"),
                              "Z (Z' V) for the coordinator's basis V, Z the site's standardized "
                              "genotypes (variants x samples): a variants x basis matrix")}
    return write_bundle(path, site.plan, kind="pca-product", site=site.name, round=b.round, arrays=arrays,
                        dims={"variants": site.plan.n_variants, "basis": basis.shape[1]},
                        attrs={"n_samples": site.n_samples, "final": final,
                               "basis_sha256": b.manifest["arrays"]["basis"]["sha256"]},
                        disclosure=_disclosure(site, f"the product of its genotype covariance with the "
                                                     f"coordinator's round-{b.round} basis"))
