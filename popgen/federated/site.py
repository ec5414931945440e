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


def _warn_sex_chromosomes(site: Site) -> None:
    """The federated GWAS has no chrX/chrY/MT model yet (``popgen gwas`` has PLINK 2's; the
    federated counts do): say so."""
    from popgen.genotypes import model_runs

    other = sum(b - a for a, b, model in model_runs(site.ds) if model != "autosome")
    if other:
        log.warning("site %s: %d plan variants on chrX/chrY/MT are scanned as autosomes (the federated GWAS "
                    "has no sex-chromosome model; keep them out of the plan's GWAS)", site.name, other)


def linear_statistics(site: Site, pheno, *, compute=None, batch: int = 8) -> dict:
    """Per plan variant and phenotype, the normal equations of ``y ~ 1 + covariates + g``
    over the site's samples with the phenotype, every covariate and a call at the variant
    (:func:`popgen.association.linear_stats`), plus the centring of each phenotype's sample set.

    Suppressed (all statistics 0, ``suppressed`` = 1) per variant and phenotype: a
    minor allele count in ``[1, min_allele_count)`` or a number of missing calls in
    ``[1, min_missing_count)`` among the phenotype's samples.
    """

    from popgen import association as assoc
    from popgen.backend import to_cpu

    compute = compute or _backend.compute
    g = site.plan.plan.gwas
    _warn_sex_chromosomes(site)
    values = _site_phenotypes(site, pheno, binary=False)
    P, k = len(g.phenotypes), len(g.covariates)
    K = k + 1
    used = np.array([name in values for name in g.phenotypes])
    if not used.any():
        raise PopgenError(f"site {site.name} has none of the plan's phenotypes {g.phenotypes}")
    try:
        design = assoc._design(site.ds, values, pheno.covariates, pheno.covariate_names, binary=False,
                               min_samples=max(g.min_samples, site.plan.plan.privacy.min_samples),
                               founders=site.founders(), check_covariates=False)
    except PopgenError as e:
        raise PopgenError(f"site {site.name}: {e}") from None
    kept = [g.phenotypes.index(n) for n in design.names]
    used = np.zeros(P, dtype=bool)
    used[kept] = True
    sums, totals = assoc.linear_sums(site.ds, design)
    Pk = len(kept)
    nv = site.ds.sizes["variants"]
    xtx = np.zeros((nv, P, K + 1, K + 1))
    xty = np.zeros((nv, P, K + 1))
    yy = np.zeros((nv, P))
    f_alt = np.zeros(nv)
    f_called = np.zeros(nv)
    bounds = np.concatenate([[0], np.cumsum(sums.chunks[0])]).astype(int)
    n_blocks = len(sums.chunks[0])
    for b0 in range(0, n_blocks, batch):
        idx = range(b0, min(n_blocks, b0 + batch))
        blocks = compute(*[sums.blocks[i] for i in idx])
        for i, blk in zip(idx, blocks):
            st = assoc.linear_stats(np.asarray(to_cpu(blk)), totals, n_pheno=Pk, n_cov=k,
                                    n_founders=int(design.founders.sum()))
            s, e = bounds[i], bounds[i + 1]
            xtx[s:e, kept] = st["xtx"]
            xty[s:e, kept] = st["xty"]
            yy[s:e, kept] = st["yy"]
            f_alt[s:e] = st["founder_alt"]
            f_called[s:e] = st["founder_called"]
    # suppression: small minor allele counts and small missing-call cells
    pr = site.plan.plan.privacy
    n_used = np.array([design.n_used.get(name, 0) for name in g.phenotypes], dtype=np.float64)
    n = xtx[..., 0, 0]
    g_sum = xtx[..., 0, K]
    mac = np.minimum(g_sum, 2 * n - g_sum)
    missing = n_used[None, :] - n
    sup = ((mac > 0) & (mac < pr.min_allele_count)) | ((missing > 0) & (missing < pr.min_missing_count))
    sup &= used[None, :]
    f_mac = np.minimum(f_alt, 2 * f_called - f_alt)
    f_sup = (f_mac > 0) & (f_mac < pr.min_allele_count)
    xtx[sup] = 0
    xty[sup] = 0
    yy[sup] = 0
    f_alt[f_sup] = 0
    f_called[f_sup] = 0
    centre = np.zeros((P, K + 1))
    for j in kept:
        name = g.phenotypes[j]
        m = design.mask[:, design.names.index(name)]
        centre[j, 0] = m.sum()
        if k:
            centre[j, 1:K] = design.covariates[m].mean(axis=0)
        centre[j, K] = design.y[m, design.names.index(name)].mean()
    return {"xtx": site.scatter(pack_sym(xtx)), "xty": site.scatter(xty), "yy": site.scatter(yy),
            "freq_alt": site.scatter(f_alt), "freq_called": site.scatter(f_called),
            "suppressed": site.scatter(sup.astype(np.uint8)), "centre": centre,
            "phenotype_used": used.astype(np.uint8), "skipped": dict(design.skipped),
            "n_suppressed": int(sup.sum())}


def export_linear(site: Site, pheno, path, *, compute=None):
    """Write the site's ``linear`` bundle: sufficient statistics of the pooled linear GWAS."""
    st = linear_statistics(site, pheno, compute=compute)
    g = site.plan.plan.gwas
    K = len(g.covariates) + 1
    dims = {"variants": site.plan.n_variants, "phenotypes": len(g.phenotypes), "predictors": K + 1,
            "predictors2": (K + 1) * (K + 2) // 2}
    pred = "predictors [1, covariates centred on the phenotype's samples at the site, ALT count]"
    arrays = {
        "xtx": (st["xtx"], ("variants", "phenotypes", "predictors2"),
                f"X'X upper triangle (row by row) over samples called at the variant; {pred}"),
        "xty": (st["xty"], ("variants", "phenotypes", "predictors"),
                "X'y (y centred on the phenotype's samples at the site)"),
        "yy": (st["yy"], ("variants", "phenotypes"), "y'y over samples called at the variant"),
        "freq_alt": (st["freq_alt"], ("variants",), "ALT alleles among the frequency samples (A1 choice)"),
        "freq_called": (st["freq_called"], ("variants",), "called genotypes among the frequency samples"),
        "suppressed": (st["suppressed"], ("variants", "phenotypes"),
                       "1 where statistics are withheld (small allele count or missing-call cell)"),
        "centre": (st["centre"], ("phenotypes", "predictors"),
                   "per phenotype: sample count, covariate means, phenotype mean at the site"),
        "phenotype_used": (st["phenotype_used"], ("phenotypes",), "1 where the site has the phenotype"),
    }
    return write_bundle(path, site.plan, kind="linear", site=site.name, arrays=arrays, dims=dims,
                        attrs={"n_samples": site.n_samples, "phenotypes": list(g.phenotypes),
                               "covariates": list(g.covariates), "skipped": st["skipped"],
                               "n_suppressed": st["n_suppressed"]},
                        disclosure=_disclosure(site, "per-variant sums of squares and cross-products of "
                                                     "phenotypes, covariates and genotypes"))


# ------------------------------------------------------------------ summary statistics (meta-analysis)


def summary_statistics(site: Site, pheno, *, compute=None, firth: str = "fallback") -> dict:
    """The site's own GWAS (linear, or logistic with Firth fallback when the plan says ``binary``):
    per plan variant and phenotype, BETA and SE per ALT allele and OBS_CT."""
    from popgen import association as assoc

    g = site.plan.plan.gwas
    _warn_sex_chromosomes(site)
    values = _site_phenotypes(site, pheno, binary=g.binary)
    if not values:
        raise PopgenError(f"site {site.name} has none of the plan's phenotypes {g.phenotypes}")
    kw = dict(covariate_names=pheno.covariate_names, founders=site.founders(),
              min_samples=max(g.min_samples, site.plan.plan.privacy.min_samples))
    try:
        if g.binary:
            scan = assoc.logistic_scan(site.ds, values, pheno.covariates, firth=firth, **kw)
        else:
            scan = assoc.linear_scan(site.ds, values, pheno.covariates, **kw)
    except PopgenError as e:
        raise PopgenError(f"site {site.name}: {e}") from None
    nv, P = site.ds.sizes["variants"], len(g.phenotypes)
    beta = np.full((nv, P), np.nan)
    se = np.full((nv, P), np.nan)
    obs = np.zeros((nv, P))
    a1 = np.zeros((nv, P))
    for chunk in scan.iter_chunks(compute):
        for name, cols in chunk.columns.items():
            j = g.phenotypes.index(name)
            ok = cols["ERRCODE"] == 0
            if scan.kind == "logistic":
                ok |= cols["ERRCODE"] == assoc.E_UNFINISHED
            b = np.where(cols["A1_IS_REF"], -cols["BETA"], cols["BETA"])
            beta[chunk.start:chunk.stop, j] = np.where(ok, b, np.nan)
            se[chunk.start:chunk.stop, j] = np.where(ok, cols["SE"], np.nan)
            obs[chunk.start:chunk.stop, j] = cols["OBS_CT"]
            a1[chunk.start:chunk.stop, j] = cols["A1_CT"]
    n = obs
    mac = np.minimum(a1, 2 * n - a1)
    sup = (mac > 0) & (mac < site.plan.plan.privacy.min_allele_count)
    beta[sup] = np.nan
    se[sup] = np.nan
    obs[sup] = 0
    used = np.array([name in scan.phenotypes for name in g.phenotypes], dtype=np.uint8)
    return {"beta": site.scatter(beta, np.nan), "se": site.scatter(se, np.nan), "obs_ct": site.scatter(obs),
            "suppressed": site.scatter(sup.astype(np.uint8)), "phenotype_used": used,
            "kind": scan.kind, "skipped": dict(scan.skipped)}


def export_sumstats(site: Site, pheno, path, *, compute=None):
    """Write the site's ``sumstats`` bundle (its own GWAS results, for meta-analysis)."""
    st = summary_statistics(site, pheno, compute=compute)
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


def pca_product(site: Site, alt_freq, basis, *, use=None, final: bool = False, compute=None):
    """``Z_s (Z_s' V)`` over the plan's PCA variants present at the site: (plan variants, l).

    ``Z_s`` is the site's standardized genotypes (variants x samples, pooled
    frequencies ``alt_freq``, missing calls 0) over the variants ``use`` (default: the
    plan's PCA variants); ``Z_s' V`` (samples x l) stays
    at the site.  Two streaming passes over the genotypes; with ``final`` (the
    Rayleigh-Ritz round) one, returning ``(Z_s' V)'(Z_s' V)`` (l x l) instead.
    """
    import dask.array as da

    from popgen.backend import namespace, to_cpu
    from popgen.genotypes import alt_allele_count
    from popgen.pca import _pass_chunks

    compute = compute or _backend.compute
    use = site.plan.pca_mask if use is None else np.asarray(use, dtype=bool)
    sel = np.flatnonzero(use[site.plan_index])
    l = basis.shape[1]  # noqa: E741
    if len(sel) == 0:
        return np.zeros((l, l) if final else (site.plan.n_variants, l))
    pidx = site.plan_index[sel]
    alt = _pass_chunks(alt_allele_count(site.ds.isel(variants=sel)), site.n_samples)
    xp = namespace(alt)
    chunks = (alt.chunks[0],)
    p = da.from_array(np.asarray(alt_freq, dtype=np.float64)[pidx], chunks=chunks)
    v = da.from_array(np.asarray(basis, dtype=np.float64)[pidx], chunks=chunks + ((l,),))
    parts = da.blockwise(_ztv_block, "cjl", alt, "cj", p, "c", v, "cl", dtype=np.float64,
                         adjust_chunks={"c": 1}, meta=xp.empty((0, 0, 0), dtype=xp.float64), concatenate=True)
    (w,) = compute(parts.sum(axis=0))
    if final:
        w = np.asarray(to_cpu(w))
        return w.T @ w
    wd = xp.asarray(w)
    prod = da.blockwise(_zw_block, "cl", alt, "cj", p, "c", wd, None, dtype=np.float64,
                        new_axes={"l": l}, meta=xp.empty((0, 0), dtype=xp.float64), concatenate=True)
    (y,) = compute(prod)
    out = np.zeros((site.plan.n_variants, l))
    out[pidx] = np.asarray(to_cpu(y))
    return out


def export_pca_product(site: Site, basis_path, path, *, compute=None):
    """Write the site's ``pca-product`` bundle for the round of the coordinator's basis bundle."""
    b = read_bundle(basis_path, site.plan, kind="pca-basis")
    basis = b.arrays["basis"]
    final = bool(b.attrs.get("final"))
    prod = pca_product(site, b.arrays["alt_freq"], basis, use=b.arrays["use"], final=final, compute=compute)
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
