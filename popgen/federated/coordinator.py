"""What the coordinator computes from the sites' bundles: pooled-equivalent results.

* :func:`combine_counts` -- pooled genotype counts: a reference frequency panel
  (``.afreq``, ``.gcount``), exactly the pooled cohort's.
* :func:`combine_linear` -- pooled linear GWAS with site as a covariate.  For
  each variant the sites' normal equations (predictors ``[1, covariates, g]``,
  covariates centred at the site) are mapped into the pooled design
  ``[1, covariates centred on all samples, site indicators but the first, g]``
  by a linear change of basis and added; the pooled system is then solved
  exactly as :func:`popgen.association.linear_solve` solves ``popgen gwas``'s.
  The result equals ``popgen gwas`` on the pooled individual-level data with
  the site indicators as covariates (to float64 rounding), ERRCODEs included.
  A site that shares no statistics for a variant (absent or suppressed) drops
  out of that variant's model, its indicator with it.
* :func:`meta_analysis` -- inverse-variance-weighted fixed-effects
  meta-analysis of per-site results with Cochran's Q and I^2 (METAL's
  ``SCHEME STDERR``), for sites that share only summary statistics.
* :func:`start_pca` / :func:`pca_round` -- federated PCA: block Krylov
  subspace iteration in variant space.  The coordinator sends a basis ``V``
  (variants x l); each site returns ``Z_s Z_s' V`` (its standardized
  genotypes, pooled frequencies, missing calls 0); the sum is ``Z Z' V`` of the
  pooled cohort.  After ``n_rounds`` rounds the Krylov basis ``B`` is sent once
  more, each site returns ``(Z_s' B)'(Z_s' B)`` (basis x basis, one pass), and
  the Rayleigh-Ritz step gives the eigenvalues of the pooled GRM
  ``Z'Z / M`` and the unit-norm variant loadings.  This is
  :func:`popgen.pca.pca`'s randomized solver run across sites; sites then
  project their own samples with ``popgen pca-project`` onto the result.
  The Krylov blocks stay on disk between rounds, orthonormalized by TSQR a
  block of rows at a time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from popgen.errors import PopgenError
from popgen.federated.bundle import Bundle, read_bundle, read_manifest, write_bundle
from popgen.federated.plan import LoadedPlan, plan_dataset

log = logging.getLogger("popgen")


#: per kind, the (variants x phenotypes x ...) arrays read by rows from the bundles, not whole
#: (True: every array; counts are summed one array of one site at a time)
_LAZY = {"linear": frozenset(f"{m}{a}" for m in ("", "x_", "y_") for a in ("xtx", "xty", "yy", "suppressed")),
         "sumstats": frozenset({"beta", "se", "obs_ct", "suppressed"}),
         "pca-product": frozenset({"product"}),
         "counts": True}


def read_site_bundles(paths, plan: LoadedPlan, kind) -> list[Bundle]:
    """Read and verify one bundle per site (same kind and round), sorted by site name."""
    if not paths:
        raise PopgenError("no bundle given")
    from popgen.io.files import ensure_open_files

    specs = [_LAZY.get(k, frozenset()) for k in ((kind,) if isinstance(kind, str) else kind)]
    lazy = True if any(spec is True for spec in specs) else frozenset().union(*specs)
    ensure_open_files(256 + len(paths) * (len(lazy) if lazy is not True else 64))  # a file per lazy array
    bundles = [read_bundle(p, plan, kind=kind, lazy=lazy) for p in paths]
    kinds = {b.kind for b in bundles}
    if len(kinds) > 1:
        raise PopgenError(f"bundles of different kinds given together: {sorted(kinds)}")
    rounds = {b.round for b in bundles}
    if len(rounds) > 1:
        raise PopgenError(f"bundles of different rounds given together: {sorted(rounds, key=str)}")
    seen = {}
    for b in bundles:
        if b.site in seen:
            raise PopgenError(f"two bundles from site {b.site!r}: {seen[b.site]} and {b.path}")
        seen[b.site] = b.path
    return sorted(bundles, key=lambda b: b.site)


# ------------------------------------------------------------------ counts and frequencies


def _whole(arr) -> np.ndarray:
    """An array read whole; a :class:`~popgen.federated.arrays.DiskArray`'s file is closed after
    (it opens again if read again)."""
    out = np.asarray(arr)
    if hasattr(arr, "close"):
        arr.close()
    return out


def combine_counts(plan: LoadedPlan, bundles: list[Bundle]) -> dict:
    """Pooled genotype counts (sums over sites) and frequencies; chrX, chrY and MT counted as
    ``popgen qc`` counts them on the pooled cohort (the sites' haploid-aware allele counts,
    males only on chrY)."""
    from popgen.federated.site import GENO_COUNTS, X_COUNTS

    keys = ("n_called", "n_het", "n_hom_alt", "n_counted", "freq_n_called", "freq_n_het", "freq_n_hom_alt",
            "freq_alt_x2", "freq_alleles_x2", *X_COUNTS, *GENO_COUNTS)
    for b in bundles:
        lacking = [k for k in keys if k not in b.arrays]
        if lacking:
            raise PopgenError(f"counts bundle of site {b.site} lacks {', '.join(lacking)} (made by an older "
                              "popgen: export it again)", b.path)
    # one site's array at a time (read from its bundle when large): memory is the pooled sums,
    # not sites x arrays
    out = {k: sum(_whole(b.arrays[k]).astype(np.int64) for b in bundles) for k in keys}
    out["n_samples"] = out.pop("n_counted")  # per variant: the contributing sites' samples (chrY: males)
    out["n_sites"] = sum(((_whole(b.arrays["present"]) > 0) & (_whole(b.arrays["suppressed"]) == 0))
                         .astype(np.int64) for b in bundles)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["alt_freq"] = out["freq_alt_x2"] / out["freq_alleles_x2"]
        out["call_rate"] = out["n_called"] / out["n_samples"]
    out["sites"] = [b.site for b in bundles]
    out["site_samples"] = {b.site: int(b.attrs["n_samples"]) for b in bundles}
    out["keep"], out["removed"] = pooled_filters(plan, out)
    return out


def pooled_filters(plan: LoadedPlan, pooled: dict):
    """The plan's variant filters (``--geno --hwe --maf --mac``) on pooled counts: the same
    variants ``popgen qc`` keeps on the pooled cohort.  Returns ``(keep, removed)``."""
    from popgen.hwe import hwe_exact_p
    from popgen.qc import variant_filter_mask

    from popgen.federated.site import X_COUNTS
    from popgen.genotypes import contig_model
    from popgen.hwe import hwe_x_exact_p

    f = plan.plan.filters
    if not f.variant_filters:
        return np.ones(plan.n_variants, dtype=bool), {}
    ac = np.stack([pooled["freq_alleles_x2"] - pooled["freq_alt_x2"], pooled["freq_alt_x2"]], axis=1) / 2.0
    hom_ref = pooled["freq_n_called"] - pooled["freq_n_het"] - pooled["freq_n_hom_alt"]
    p = hwe_exact_p(pooled["freq_n_het"], hom_ref, pooled["freq_n_hom_alt"])
    names, index = np.unique(plan.chrom.astype(str), return_inverse=True)
    model = np.array([contig_model(c) for c in names])[index]
    if (model != "autosome").any():  # chrX: Graffelman and Weir's test; chrY and MT: none (as popgen qc)
        p = np.where(model == "x", hwe_x_exact_p(*(pooled[k] for k in X_COUNTS)), p)
        p = np.where(np.isin(model, ["y", "mt"]), np.nan, p)
    return variant_filter_mask(f.qc(samples=False), pooled["n_called"], pooled["n_samples"], ac, p)


def _filter_path(prefix) -> Path:
    return Path(f"{prefix}.filter.in")


def kept_variants(prefix, plan: LoadedPlan):
    """The variants passing the plan's filters, from ``PREFIX.filter.in`` (written when the
    counts were combined); all variants when the plan has no variant filter."""
    if not plan.plan.filters.variant_filters:
        return np.ones(plan.n_variants, dtype=bool)
    path = _filter_path(prefix)
    if not path.is_file():
        raise PopgenError("the plan's variant filters need the pooled counts: combine the sites' counts bundles "
                          "under the same --out first", path)
    ids = set(path.read_text().split())
    return np.isin(plan.variant_id, list(ids))


def write_frequency_panel(prefix, plan: LoadedPlan, pooled: dict) -> list[str]:
    """``PREFIX.afreq`` (frequency samples, as ``plink2 --freq``; chrX/chrY/MT as ``popgen qc``
    counts them), ``PREFIX.gcount`` (all samples, as ``plink2 --geno-counts``: haploid calls in
    HAP_REF_CT/HAP_ALT_CTS, a heterozygous haploid call missing) and ``PREFIX.sites.tsv`` (sites per
    variant)."""
    from popgen.io.reports import Formatted, _fmt_g_nan, variant_columns, write_table

    ds = plan_dataset(plan)
    v = variant_columns(ds)
    afreq = dict(v)
    afreq["ALT_FREQS"] = Formatted(pooled["alt_freq"], _fmt_g_nan)
    afreq["OBS_CT"] = pooled["freq_alleles_x2"] // 2
    write_table(f"{prefix}.afreq", afreq)
    from popgen.federated.site import GENO_COUNTS
    from popgen.io.reports import write_gcount

    write_gcount(f"{prefix}.gcount", ds, np.stack([pooled[k] for k in GENO_COUNTS], axis=1))
    write_table(f"{prefix}.sites.tsv", {"ID": v["ID"], "N_SITES": pooled["n_sites"], "N_SAMPLES": pooled["n_samples"]})
    from popgen.io.files import atomic_write

    with atomic_write(_filter_path(prefix)) as f:
        f.write("".join(f"{i}\n" for i in v["ID"][pooled["keep"]]))
    return [f"{prefix}.afreq", f"{prefix}.gcount", f"{prefix}.sites.tsv", str(_filter_path(prefix))]


# ------------------------------------------------------------------ pooled linear regression


def _basis_maps(centres, j, k: int):
    """Per site, the map T_s from its predictors [1, c~, g] to the pooled [1, c - mean, D_0..D_{S-1}, g]
    for phenotype ``j``, and the shifts of its phenotype centring."""
    S = len(centres)
    K = k + 1
    B = 1 + k + S + 1
    n = np.array([c[j, 0] for c in centres])
    tot = n.sum()
    w = n / tot if tot > 0 else np.zeros(S)
    mu_c = sum(w[s] * centres[s][j, 1:K] for s in range(S)) if k else np.zeros(0)
    mu_y = sum(w[s] * centres[s][j, K] for s in range(S))
    maps, dy = [], []
    for s in range(S):
        t = np.zeros((B, K + 1))
        t[0, 0] = 1.0
        for i in range(k):
            t[1 + i, 1 + i] = 1.0
            t[1 + i, 0] = centres[s][j, 1 + i] - mu_c[i]
        t[1 + k + s, 0] = 1.0
        t[B - 1, K] = 1.0
        maps.append(t)
        dy.append(centres[s][j, K] - mu_y if n[s] > 0 else 0.0)
    return maps, dy


def _pooled_fit(bundles, prefix: str, k: int, flip_all, *, P: int, fields, npred, rows, covariates=None,
                block: int = 4096):
    """Pooled fields (N_FIELDS) and predictor counts of the regressions whose sufficient
    statistics the sites' ``{prefix}xtx``, ``{prefix}xty``, ``{prefix}yy`` and ``{prefix}centre`` hold
    (``k`` covariates): ``[1, covariates (those of ``covariates``, default all), site indicators,
    g]`` over the sites with samples at each variant; written a block of variants at a time into
    rows ``rows`` of ``fields`` and ``npred``."""
    from popgen import association as assoc
    from popgen.federated.site import unpack_sym

    K = k + 1
    S = len(bundles)
    B = 1 + k + S + 1
    cov_cols = [1 + i for i in (range(k) if covariates is None else covariates)]
    centres = [b.arrays[f"{prefix}centre"] for b in bundles]
    maps = [_basis_maps(centres, j, k) for j in range(P)]
    M = len(flip_all)
    for v0 in range(0, M, block):
        v1 = min(M, v0 + block)
        big = np.zeros((v1 - v0, P, B, B))
        xty = np.zeros((v1 - v0, P, B))
        yy = np.zeros((v1 - v0, P))
        active = np.zeros((v1 - v0, P, S), dtype=bool)
        for s, b in enumerate(bundles):
            xs = unpack_sym(b.arrays[f"{prefix}xtx"][v0:v1], K + 1)
            ys = b.arrays[f"{prefix}xty"][v0:v1]
            yb = b.arrays[f"{prefix}yy"][v0:v1]
            active[:, :, s] = xs[..., 0, 0] > 0
            for j in range(P):
                t, dy = maps[j][0][s], maps[j][1][s]
                x = xs[:, j]
                y = ys[:, j] + dy * x[:, :, 0]
                big[:, j] += np.einsum("ab,vbc,dc->vad", t, x, t, optimize=True)
                xty[:, j] += y @ t.T
                yy[:, j] += yb[:, j] + 2 * dy * ys[:, j, 0] + dy * dy * x[:, 0, 0]
        code = active.astype(np.int64) @ (1 << np.arange(S))
        flip = flip_all[v0:v1]
        f_blk = np.zeros((v1 - v0, P, assoc.N_FIELDS))
        n_blk = np.zeros((v1 - v0, P), dtype=np.int64)
        for c in np.unique(code):
            vi, ji = np.nonzero(code == c)
            sites = [s for s in range(S) if c >> s & 1]
            cols = [0] + cov_cols + [1 + k + s for s in sites[1:]] + [B - 1]
            ix = np.ix_(range(len(vi)), cols, cols)
            sub = big[vi, ji][ix][:, None]
            res = assoc.linear_solve(sub, xty[vi, ji][:, cols][:, None], yy[vi, ji][:, None], flip[vi])
            f_blk[vi, ji] = res[:, 0]
            n_blk[vi, ji] = len(cols)
        fields[rows[v0:v1]] = f_blk
        npred[rows[v0:v1]] = n_blk


#: the pooled sex is a function of the covariates (and site indicators) when the residual sum of
#: squares of its regression on them is at most this fraction of its total sum of squares (from
#: summed cross-products, whose rounding leaves ~1e-16 of the total: ``popgen gwas`` tests the
#: residual's norm at 1e-8 on the samples themselves)
_SPAN_RSS = 1e-10


def _pooled_moments(bundles, prefix: str, n_index: int):
    """Pooled mean and total (about it) and within-site centred cross-products of the sites'
    ``{prefix}_mean`` / ``{prefix}_gram`` moments (``sex_counts[n_index]`` samples each; sites
    that withheld them left out)."""
    ns = np.array([b.arrays["sex_counts"][n_index] if b.arrays[f"{prefix}_gram"].any() else 0 for b in bundles],
                  dtype=np.float64)
    p = bundles[0].arrays[f"{prefix}_mean"].shape[0]
    if ns.sum() == 0:
        return 0.0, np.zeros((p, p)), np.zeros((p, p))
    means = np.array([b.arrays[f"{prefix}_mean"] for b in bundles])
    mean = (ns[:, None] * means).sum(axis=0) / ns.sum()
    within = sum(b.arrays[f"{prefix}_gram"] for b, n in zip(bundles, ns) if n > 0)
    d = means - mean
    total = within + (ns[:, None, None] * d[:, :, None] * d[:, None, :]).sum(axis=0)
    return ns.sum(), within, total


def _chrx_sex_covariate(bundles, k: int):
    """Whether the pooled chrX model adds the sex covariate, as ``popgen gwas`` decides on the
    pooled cohort with site indicators (:func:`popgen.association.sex_chromosome_inputs`): both
    sexes present and the sex not a function of the covariates and the site indicators."""
    counts = np.array([b.arrays["sex_counts"] for b in bundles])
    if counts[:, 1].sum() == 0 or counts[:, 2].sum() == 0:
        return False
    n, within, total = _pooled_moments(bundles, "sex", 0)
    if n == 0 or total[k, k] <= 0:
        return False
    w_cc, w_cs = within[:k, :k], within[:k, k]
    rss = within[k, k] - (w_cs @ np.linalg.pinv(w_cc) @ w_cs if k else 0.0)
    return bool(rss > _SPAN_RSS * total[k, k])


def _chry_covariates(bundles, k: int) -> list[int]:
    """The covariates kept on chrY: those not constant among the pooled males with every
    covariate (``popgen gwas`` drops the others)."""
    n, _, total = _pooled_moments(bundles, "male", 3)
    if not k or n == 0:
        return list(range(k))
    means = np.array([b.arrays["male_mean"] for b in bundles])
    scale = np.maximum(np.abs(means).max(axis=0), 1.0)
    return [i for i in range(k) if total[i, i] > n * (1e-9 * scale[i]) ** 2]


def combine_linear(plan: LoadedPlan, bundles: list[Bundle], *, block: int = 4096, scratch=None) -> dict:
    """Pooled linear regression of each plan phenotype on each variant, from the sites'
    ``linear`` bundles.  Returns ``fields`` (variants, phenotypes, 7) as
    :func:`popgen.association.linear_finalize_block`, ``n_predictors`` (variants,
    phenotypes), per phenotype the pooled sample counts, and per sex-chromosome model the
    covariates it was fitted with (``models``) or why it was not tested (``untested``).

    chrX, chrY and MT are fitted as ``popgen gwas`` fits them on the pooled cohort: chrX with
    the sex as a further covariate where the pooled cohort needs it (from the sites' ``x_*``
    statistics), chrY over the males (``y_*``) without covariates constant among them.

    Sites' statistics are read, and ``fields`` and ``n_predictors`` written, ``block``
    variants at a time; those two are arrays from ``scratch``
    (:class:`~popgen.federated.arrays.Scratch`, on disk for the command line; default in memory).
    """
    from popgen import association as assoc
    from popgen.federated.arrays import Scratch

    g = plan.plan.gwas
    if g is None:
        raise PopgenError("the plan has no gwas section", plan.path)
    lacking = [b.site for b in bundles if "x_xtx" not in b.arrays]
    if lacking:
        raise PopgenError(f"linear bundle of site {lacking[0]} lacks the chrX/chrY statistics (made by an older "
                          "popgen: export it again)", next(b.path for b in bundles if b.site == lacking[0]))
    scratch = scratch or Scratch()
    P, k = len(g.phenotypes), len(g.covariates)
    M = plan.n_variants
    f_alt = sum(b.arrays["freq_alt"] for b in bundles)
    f_called = sum(b.arrays["freq_called"] for b in bundles)
    flip_all = (f_called > 0) & (f_alt > f_called)
    fields = scratch.zeros((M, P, assoc.N_FIELDS))
    npred = scratch.zeros((M, P), np.int64)
    _pooled_fit(bundles, "", k, flip_all, P=P, fields=fields, npred=npred, rows=np.arange(M), block=block)
    models = {"x": list(g.covariates), "y": list(g.covariates)}
    untested: dict = {"x": {}, "y": {}}
    alt_x = {"alt": sum(b.arrays["xa_alt"] for b in bundles), "alleles": sum(b.arrays["xa_alleles"] for b in bundles)}
    x_idx, y_idx = plan.model_index("x"), plan.model_index("y")
    if len(x_idx) and _chrx_sex_covariate(bundles, k):
        models["x"] = list(g.covariates) + ["SEX"]
        status = np.array([b.arrays["x_status"] for b in bundles])
        for j, name in enumerate(g.phenotypes):
            why = [f"site {b.site} {'has the sex among its covariates' if st == 2 else 'withheld them'}"
                   for b, st in zip(bundles, status[:, j]) if st in (2, 3)]
            if why:
                untested["x"][name] = "no statistics with the sex covariate: " + "; ".join(why)
        _pooled_fit(bundles, "x_", k + 1, flip_all[x_idx], P=P, fields=fields, npred=npred, rows=x_idx, block=block)
        alt_x = {"alt": sum(b.arrays["x_alt"] for b in bundles), "alleles": sum(b.arrays["x_alleles"] for b in bundles)}
    with np.errstate(divide="ignore", invalid="ignore"):
        x_freq = alt_x["alt"] / alt_x["alleles"]
    if len(y_idx):
        males = sum(int(b.arrays["sex_counts"][1]) for b in bundles)
        if males == 0:
            untested["y"] = dict.fromkeys(g.phenotypes, "no male sample")
        keep = _chry_covariates(bundles, k)
        models["y"] = [g.covariates[i] for i in keep]
        for j, name in enumerate(g.phenotypes):
            if males and not any(b.arrays["y_used"][j] for b in bundles):
                untested["y"][name] = "no site has enough males with the phenotype"
        _pooled_fit(bundles, "y_", k, flip_all[y_idx], P=P, fields=fields, npred=npred, rows=y_idx, covariates=keep,
                    block=block)
    centres = [b.arrays["centre"] for b in bundles]
    n_samples = {name: int(sum(c[j, 0] for c in centres)) for j, name in enumerate(g.phenotypes)}
    used = np.array([sum(int(b.arrays["phenotype_used"][j]) for b in bundles) for j in range(P)])
    return {"fields": fields, "n_predictors": npred, "n_samples": n_samples, "n_sites": used,
            "sites": [b.site for b in bundles], "models": models, "untested": untested, "x_alt_freq": x_freq}


def write_linear(prefix, plan: LoadedPlan, result: dict, *, ssf: bool = True, plots: bool = True) -> dict:
    """Write the pooled linear GWAS as ``popgen gwas`` does (``.glm.linear``, GWAS-SSF, plots):
    each run of chrX, chrY and MT variants with its model's covariates, chrY and MT haploid."""
    import dask.array as da

    from popgen import association as assoc
    from popgen.federated.arrays import RowView
    from popgen.genotypes import model_runs

    g = plan.plan.gwas
    names = [n for j, n in enumerate(g.phenotypes) if result["n_sites"][j] > 0]
    keep = kept_variants(prefix, plan)
    kept = np.flatnonzero(keep)
    ds = plan_dataset(plan, keep)
    sites = [f"SITE={s}" for s in result["sites"][1:]]
    x_pos = np.searchsorted(plan.model_index("x"), kept)
    scans = []
    for start, stop, model in model_runs(ds) or [(0, 0, "autosome")]:
        untested = result["untested"].get(model, {})
        run = [n for n in names if n not in untested]
        for n in names:
            if n in untested:
                log.warning("phenotype %s: %d variants on %s not tested: %s", n, stop - start,
                            assoc._MODEL_LABEL[model], untested[n])
        if not run:
            continue
        idx = [g.phenotypes.index(n) for n in run]
        rows = kept[start:stop]
        fields = RowView(result["fields"], rows, idx)
        scan = assoc.AssociationScan(
            ds.isel(variants=slice(start, stop)), "linear", run,
            da.from_array(fields, chunks=(65536, len(run), assoc.N_FIELDS), meta=np.empty((0, 0, 0)),
                          name=False),  # no token: Dask would pickle the view to hash it
            RowView(result["n_predictors"], rows, idx),
            result["models"].get(model, list(g.covariates)) + sites, {n: result["n_samples"][n] for n in run}, {}, {})
        scan.haploid = model in ("y", "mt")
        if model == "x":
            scan.alt_freq = {n: result["x_alt_freq"][x_pos[start:stop], j] for n, j in zip(run, idx)}
        scans.append(scan)
    return assoc.write_results(prefix, scans, ssf=ssf, plots=plots)


# ------------------------------------------------------------------ meta-analysis


def meta_analysis(beta, se) -> dict:
    """Fixed-effects inverse-variance-weighted meta-analysis (METAL's ``SCHEME STDERR``).

    ``beta``, ``se`` : (sites, ...) estimates; NaN where a site has none.
    Returns ``beta``, ``se``, ``z``, ``p``, ``q`` (Cochran's Q), ``df`` (sites
    with an estimate - 1), ``het_p`` (chi-square upper tail of Q), ``i2``
    (``max(0, (Q - df) / Q)``) and ``n_sites``.
    """
    from scipy import stats

    beta = np.asarray(beta, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    ok = np.isfinite(beta) & np.isfinite(se) & (se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ok, 1.0 / np.where(ok, se, 1.0) ** 2, 0.0)
        sw = w.sum(axis=0)
        b = np.where(sw > 0, (w * np.where(ok, beta, 0.0)).sum(axis=0) / sw, np.nan)
        s = np.where(sw > 0, 1.0 / np.sqrt(sw), np.nan)
        z = b / s
        q = (w * np.where(ok, beta - b, 0.0) ** 2).sum(axis=0)
        n = ok.sum(axis=0)
        df = np.maximum(n - 1, 0)
        i2 = np.where(q > 0, np.maximum(0.0, (q - df) / q), 0.0)
        het_p = np.where(df > 0, stats.chi2.sf(q, np.maximum(df, 1)), np.nan)
        p = 2.0 * stats.norm.sf(np.abs(z))
    q = np.where(n > 0, q, np.nan)
    return {"beta": b, "se": s, "z": z, "p": p, "q": q, "df": df, "het_p": het_p, "i2": i2, "n_sites": n}


def _meta_block(bundles: list[Bundle], v0: int, v1: int) -> dict:
    """:func:`meta_analysis` of variants ``[v0, v1)`` (every phenotype) from the sites' bundles,
    with the effect directions (sites, v, P) and the summed OBS_CT."""
    beta = np.stack([np.asarray(b.arrays["beta"][v0:v1]) for b in bundles])
    se = np.stack([np.asarray(b.arrays["se"][v0:v1]) for b in bundles])
    res = meta_analysis(beta, se)
    res["direction"] = np.where(np.isfinite(beta) & np.isfinite(se),
                                np.where(beta > 0, "+", np.where(beta < 0, "-", "0")), "?")
    res["obs_ct"] = sum(np.asarray(b.arrays["obs_ct"][v0:v1]) for b in bundles)
    return res


def combine_sumstats(plan: LoadedPlan, bundles: list[Bundle]) -> dict:
    """Meta-analysis of the sites' ``sumstats`` bundles, per plan phenotype, held whole
    (:func:`write_meta` streams it instead)."""
    res = _meta_block(bundles, 0, plan.n_variants)
    res["sites"] = [b.site for b in bundles]
    res["model"] = {b.attrs.get("model") for b in bundles}
    return res


def write_meta(prefix, plan: LoadedPlan, bundles: list[Bundle]) -> list[str]:
    """``PREFIX.PHENO.meta.tsv`` per phenotype, METAL's columns (MarkerName Allele1 Allele2
    Effect StdErr P-value Direction HetISq HetChiSq HetDf HetPVal; Allele1 = ALT, the
    effect allele) then Chromosome Position OBS_CT N_SITES: the meta-analysis of
    :data:`~popgen.io.reports.TABLE_BLOCK` plan variants at a time, written as it goes."""
    import contextlib

    from popgen.io.files import atomic_write
    from popgen.io.reports import TABLE_BLOCK, _fmt_g_fast
    from popgen.io.textfmt import join_rows

    header = ["MarkerName", "Allele1", "Allele2", "Effect", "StdErr", "P-value", "Direction", "HetISq", "HetChiSq",
              "HetDf", "HetPVal", "Chromosome", "Position", "OBS_CT", "N_SITES"]
    names = plan.plan.gwas.phenotypes
    kept = np.flatnonzero(kept_variants(prefix, plan))
    paths = [f"{prefix}.{name}.meta.tsv" for name in names]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(atomic_write(path)) for path in paths]
        for f in files:
            f.write("\t".join(header) + "\n")
        for i in range(0, len(kept), TABLE_BLOCK):
            rows = kept[i:i + TABLE_BLOCK]
            v0, v1 = int(rows[0]), int(rows[-1]) + 1
            res = _meta_block(bundles, v0, v1)
            r = rows - v0
            for j, f in enumerate(files):
                direction = np.array(["".join(d) for d in res["direction"][:, r, j].T.tolist()], dtype=object)
                f.write(join_rows([
                    plan.variant_id[rows], plan.alt[rows], plan.ref[rows], _fmt_g_fast(res["beta"][r, j]),
                    _fmt_g_fast(res["se"][r, j]), _fmt_g_fast(res["p"][r, j]), direction,
                    _fmt_g_fast(100.0 * res["i2"][r, j]), _fmt_g_fast(res["q"][r, j]), res["df"][r, j],
                    _fmt_g_fast(res["het_p"][r, j]), plan.chrom[rows], plan.pos[rows],
                    res["obs_ct"][r, j].astype(np.int64), res["n_sites"][r, j]]))
    return paths


# ------------------------------------------------------------------ federated PCA


def _state_path(prefix) -> Path:
    return Path(f"{prefix}.pca-state.npz")


def _krylov_path(prefix, j) -> Path:
    """The coordinator's ``j``-th Krylov block (``j`` = "basis": the final orthonormal basis):
    (PCA variants x l) beside the state, read and written a block of rows at a time."""
    return Path(f"{prefix}.pca-state.k{j}.npy")


def _basis_bundle_path(prefix, round_: int) -> Path:
    return Path(f"{prefix}.pca-basis.r{round_}.pgb")


def _save_state(prefix, state: dict) -> None:
    from popgen.io.files import atomic_write

    with atomic_write(_state_path(prefix), "wb") as f:
        np.savez(f, **{k: (np.asarray(json.dumps(v)) if k == "info" else v) for k, v in state.items()})


def _load_state(prefix, plan: LoadedPlan) -> dict:
    path = _state_path(prefix)
    if not path.is_file():
        raise PopgenError("no federated PCA in progress under this prefix (combine the counts bundles first)", path)
    with np.load(path) as z:
        state = {k: z[k] for k in z.files}
    if "blocks" in state:
        raise PopgenError("PCA state of an older popgen: restart the PCA (combine the counts bundles again)", path)
    state["info"] = json.loads(str(state["info"]))
    if state["info"]["plan_sha256"] != plan.sha256:
        raise PopgenError("the PCA in progress belongs to another plan", path)
    return state


def _krylov_block(prefix, j):
    from popgen.federated.arrays import DiskArray

    path = _krylov_path(prefix, j)
    if not path.is_file():
        raise PopgenError("the PCA state's Krylov block is missing (restart the PCA)", path)
    return DiskArray.open_npy(path)


def _qr_into(prefix, j, read, shape):
    """The orthonormal Q of the (PCA variants x columns) matrix ``read`` gives by rows
    (:func:`~popgen.federated.arrays.tall_qr`), written to the Krylov block ``j``'s file."""
    from popgen.federated.arrays import DiskArray, tall_qr
    from popgen.io.files import atomic_path

    path = _krylov_path(prefix, j)
    with atomic_path(path) as tmp:
        tall_qr(read, shape, DiskArray.create(tmp, (shape[0], min(shape)), np.float64)).close()
    return DiskArray.open_npy(path)


#: bytes per block of rows the coordinator's PCA copies or multiplies
_PCA_BLOCK_BYTES = 32 << 20


def _row_blocks(n: int, width: int):
    """(start, stop) blocks of rows of about :data:`_PCA_BLOCK_BYTES` at ``width`` float64 columns."""
    step = max(1, _PCA_BLOCK_BYTES // (8 * max(1, width)))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _send_basis(prefix, plan: LoadedPlan, state: dict, basis_rows) -> Path:
    """Write the next round's basis bundle (full-length rows: 0 outside the PCA variants);
    ``basis_rows`` (PCA variants x l) is copied a block of rows at a time."""
    from popgen.federated.arrays import Scratch

    mask = state["mask"]
    where = np.flatnonzero(mask)
    width = basis_rows.shape[1]
    freq = np.zeros(plan.n_variants)
    freq[mask] = state["alt_freq"]
    r = state["info"]["round"]
    final = r == plan.plan.pca.n_rounds + 1
    with Scratch.beside(prefix) as scratch:
        basis = scratch.zeros((plan.n_variants, width))
        for i, j in _row_blocks(len(where), width):
            basis[where[i:j]] = basis_rows[i:j]
        path = write_bundle(_basis_bundle_path(prefix, r), plan, kind="pca-basis", site="coordinator", round=r,
                            arrays={"basis": (basis, ("variants", "basis"),
                                              "orthonormal basis V over the PCA variants"),
                                    "alt_freq": (freq, ("variants",),
                                                 "pooled ALT frequencies that standardize genotypes"),
                                    "use": (mask.astype(np.uint8), ("variants",),
                                            "1 for the variants the PCA uses")},
                            dims={"variants": plan.n_variants, "basis": width},
                            attrs={"final": bool(final), "n_rounds": plan.plan.pca.n_rounds + 1},
                            disclosure="Coordinator to sites: a basis of variant vectors and pooled allele "
                                       "frequencies.")
    state["info"]["basis_sha256"] = read_manifest(path)["arrays"]["basis"]["sha256"]
    return path


def start_pca(prefix, plan: LoadedPlan, pooled: dict) -> Path:
    """Begin a federated PCA from pooled counts: write the round-1 basis bundle (to send to
    every site) and the coordinator's state ``PREFIX.pca-state.npz`` (with its Krylov
    blocks beside it, ``PREFIX.pca-state.k*.npy``)."""
    s = plan.plan.pca
    mask = plan.pca_mask & pooled["keep"]
    af = np.nan_to_num(pooled["alt_freq"][mask], nan=0.0)
    m = int(mask.sum())
    if not ((af > 0) & (af < 1)).any():
        raise PopgenError("every PCA variant is monomorphic in the pooled counts: nothing to compute PCs from")
    n_total = int(sum(pooled["site_samples"].values()))
    if s.n_pcs >= n_total:
        raise PopgenError(f"cannot compute {s.n_pcs} PCs from {n_total} samples")
    l = min(s.n_pcs + s.n_oversamples, m, n_total - 1)  # noqa: E741
    rng = np.random.default_rng(s.seed)
    # rows drawn in order, block by block: the same numbers as one (m, l) draw
    q = _qr_into(prefix, 0, lambda i, j: rng.standard_normal((j - i, l)), (m, l))
    state = {"alt_freq": af, "call_rate": np.nan_to_num(pooled["call_rate"][mask], nan=0.0), "mask": mask,
             "info": {"plan_sha256": plan.sha256, "round": 1, "sites": pooled["sites"],
                      "site_samples": pooled["site_samples"], "n_variants": m, "l": l}}
    path = _send_basis(prefix, plan, state, q)
    _save_state(prefix, state)
    return path


def pca_round(prefix, plan: LoadedPlan, bundles: list[Bundle]) -> dict:
    """Combine one round's ``pca-product`` bundles.  Returns ``{"basis": path}`` for the
    next round, or ``{"files": [...], "eigenvalues": ...}`` once the PCA is complete.

    Memory is bounded by a block of rows: the products are read by rows from their bundles,
    the Krylov blocks live on disk beside the state and are orthonormalized by TSQR
    (:func:`~popgen.federated.arrays.tall_qr`); only the loadings (PCA variants x PCs) are held.
    """
    state = _load_state(prefix, plan)
    info = state["info"]
    r = info["round"]
    sites = sorted(info["sites"])
    got = [b.site for b in bundles]
    if got != sites:
        raise PopgenError(f"round {r} needs one product from each site {sites}, got {got}")
    for b in bundles:
        if b.round != r:
            raise PopgenError(f"product bundle is for round {b.round}, the PCA is at round {r}", b.path)
        if b.attrs.get("basis_sha256") != info["basis_sha256"]:
            raise PopgenError(f"product bundle was computed from another basis than round {r}'s", b.path)
    mask = state["mask"]
    where = np.flatnonzero(mask)
    m = info["n_variants"]
    n_rounds = plan.plan.pca.n_rounds
    final = r > n_rounds
    key = "gram" if final else "product"
    for b in bundles:
        if key not in b.arrays:
            raise PopgenError(f"round {r} needs {'the final' if final else 'a'} product ({key})", b.path)
    l = info["l"]  # noqa: E741
    if not final:
        products = [b.arrays["product"] for b in bundles]
        q = _qr_into(prefix, r, lambda i, j: sum(p[where[i:j]] for p in products) / m,   # A V, A = Z Z' / M
                     (m, products[0].shape[1]))
        info["round"] = r + 1
        if r == n_rounds:      # the final round sends the whole Krylov basis
            blocks = [_krylov_block(prefix, j) for j in range(r + 1)]
            width = sum(k.shape[1] for k in blocks)
            q = _qr_into(prefix, "basis", lambda i, j: np.concatenate([k[i:j] for k in blocks], axis=1), (m, width))
        path = _send_basis(prefix, plan, state, q)
        _save_state(prefix, state)
        log.info("federated PCA: round %d of %d combined; next basis %s", r, n_rounds + 1, path)
        return {"basis": path, "round": r + 1}
    basis = _krylov_block(prefix, "basis")
    t = sum(b.arrays["gram"] for b in bundles) / m                     # V' A V
    t = (t + t.T) / 2
    values, u = np.linalg.eigh(t)
    k = plan.plan.pca.n_pcs
    order = np.argsort(values)[::-1][:k]
    vectors = np.empty((m, len(order)))
    for i, j in _row_blocks(m, basis.shape[1]):
        vectors[i:j] = basis[i:j] @ u[:, order]
    basis.close()
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(k)])
    signs[signs == 0] = 1
    vectors *= signs
    values = values[order]
    files = write_federated_pca(prefix, plan, mask, values, vectors, state["alt_freq"], state["call_rate"],
                                {"solver": "federated", "missing": "meanimpute", "rounds": n_rounds + 1,
                                 "n_oversamples": int(l - k), "seed": plan.plan.pca.seed,
                                 "n_samples": int(sum(info["site_samples"].values())), "sites": sites,
                                 "plan_sha256": plan.sha256})
    info["round"] = "done"
    _save_state(prefix, state)
    for j in [*range(n_rounds + 1), "basis"]:  # the Krylov blocks (one per round) are no longer needed
        _krylov_path(prefix, j).unlink(missing_ok=True)
    return {"files": files, "eigenvalues": values, "loadings": vectors}


def write_federated_pca(prefix, plan: LoadedPlan, mask, values, vectors, alt_freq, call_rate, meta) -> list[str]:
    """``.eigenval``, ``.eigenvec.var`` (pooled frequencies, unit loadings) and ``.pca.json``: a
    reference every site projects its own samples onto (``popgen pca-project --ref PREFIX``)."""
    from popgen.pca import write_reference

    return write_reference(prefix, plan_dataset(plan, mask), values, vectors, alt_freq, call_rate, int(mask.sum()),
                           meta)

