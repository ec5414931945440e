"""Genome-wide association: linear and logistic/Firth regression per variant, as ``plink2 --glm``.

For each variant ``v`` and phenotype ``y``::

    y ~ 1 + g_v + covariates        linear (OLS, t test) or logistic (Wald z test)

with ``g_v`` the count of the **A1** allele.  As PLINK 2 does without
``omit-ref``, A1 is the minor allele of the founders (REF when the ALT
frequency among founders is above 0.5), so BETA / OR are per copy of the minor
allele and REF/ALT in the output say which one it was.

Samples and missing calls (``missing="drop"``, the default: PLINK 2's handling)
    A phenotype's sample set ``S`` holds the samples with that phenotype and
    every covariate.  A sample whose call is missing at variant ``v`` is left
    out of ``v``'s regression only: ``OBS_CT = |S| - missing calls in S``.
    This is the default because it is what PLINK 2 computes, so results match
    it to printing precision.

Exact linear scan (``missing="drop"``)
    Per phenotype the sufficient statistics over ``S`` (``C'C``, ``C'y``,
    ``y'y``, ``C = [1, covariates]``, covariates and ``y`` centred on ``S``)
    are summed once on the host.  Per variant, the missing samples'
    contributions are subtracted -- one GEMM of the missing-call indicator
    block with the per-sample products ``c_a c_b``, ``c y``, ``y^2`` -- and
    the genotype terms ``g'C``, ``g'y``, ``g'g`` (missing ``g = 0``) come from
    two more GEMMs.  The ``(p+1) x (p+1)`` systems are then solved batched
    over the block, in float64.  Every term is a sum over samples, so sample
    chunks are reduced with Dask and no rechunking is needed.  Products are
    float64 here (not float32): this path exists to equal PLINK 2, and a
    float32 ``g'y`` loses the digits of small effects.

    The three products are the ``linear_sums`` kernel: on the CPU it sums the
    missing-call products over the missing calls only (about 1% of calls;
    as a dense GEMM with ``K(K+1)/2 + K + 1`` columns per phenotype they were
    most of the work) and runs the genotype GEMMs with BLAS.  Phenotypes with
    the same sample set (the common case of many traits measured on one
    cohort) share ``C'C`` and ``g'C``: the genotype GEMM has ``K + P``
    columns instead of ``P (K + 1)`` and ``X'X`` is inverted once per variant
    and sample set (:func:`_grouped_solve`).

Fast linear scan (``missing="mean"``)
    tensorQTL's scheme (Taylor-Weiner et al. 2019): missing calls are
    mean-imputed (cohort mean of the variant) so every variant uses all of
    ``S``; covariates are QR-factored once per phenotype and each block is one
    float32 GEMM against ``[y_res, Q]``.  Equal to the exact scan where a
    variant has no missing call in ``S`` (to about 1e-4 of the standard error:
    float32 sums), otherwise slightly different (OBS_CT is always ``|S|``).

Logistic regression
    Newton/IRLS in float64, vectorized over a block of variants (each
    iteration is a handful of GEMMs with per-variant sample weights that drop
    missing calls), to PLINK 2's estimates: every variant starts at the
    covariates-only (null) model and takes chord steps with the null model's
    Hessian (its covariate block is shared, so a step costs a gradient), then
    Newton steps until one is below PLINK 2's ``sum |delta| < 1e-4``
    (:func:`_logistic_chord`); variants that do not converge so run PLINK 2's
    own iteration from zero, with its failure rules (the step grows or
    stalls; ``UNFINISHED`` after 15 iterations), so error classes stay
    PLINK 2's.  Standard errors come from the Hessian of the last iteration.
    Small ``(p+1) x (p+1)`` systems are solved with a batched Cholesky written
    against the namespace (LAPACK's per-matrix overhead dominates at this size).

Firth fallback (``firth="fallback"``, PLINK 2's default, ``--glm firth-fallback``)
    Firth's penalized likelihood (Firth 1993; Heinze & Schemper 2002; PLINK 2
    ports R's ``logistf``) replaces the standard fit when

    * an allele is absent from cases or from controls among the samples used
      (a zero cell of the 2x2 allele table: the standard fit would separate), or
    * the standard fit fails to converge.

    The Firth iteration is PLINK 2's: scoring steps ``I^-1 U*`` with the
    modified score ``U* = X'(y - p + h (1/2 - p))``, steps capped at 5, up to
    5 half-steps on the penalized log-likelihood, convergence when the step
    and the score are below 1e-4 and the log-likelihood changes by at most
    1e-4, at most 25 iterations (else ``UNFINISHED``); SEs from the inverse
    Fisher information at the estimate.  Two additions make it converge in
    double precision where the scoring map oscillates (very rare variants): a
    step is accepted only if it improves the penalized log-likelihood, and a
    secant step length damps oscillating steps.  And where PLINK 2 starts at
    zero, each variant starts at the null model with the genotype coefficient
    of a 1-D penalized fit over its carriers (:func:`_firth_start`; 3 instead
    of 8 scoring iterations on most rare variants).  The estimate -- the
    penalized MLE -- is unchanged; PLINK 2 a3.5 fits in single precision and
    stops these cases early, which leaves its Firth estimates up to ~1e-3 off
    the penalized MLE (popgen's agree with an exact solver to ~3e-6).
    ``firth="always"`` fits Firth for every variant (``--glm firth``),
    ``firth="never"`` reports ``SEPARATION,REF|ALT1`` /
    ``LOGISTIC_CONVERGE_FAIL`` instead (``no-firth``).

ERRCODE (PLINK 2's strings; the regression is skipped and BETA..P are NA)
    ``SAMPLE_CT<=PREDICTOR_CT``, ``CONST_OMITTED_ALLELE`` (genotype constant
    among the samples used), ``CORR_TOO_HIGH`` (two predictors other than the
    intercept correlate beyond ``max_corr`` = 0.999), ``VIF_INFINITE`` /
    ``VIF_TOO_HIGH`` (a variance inflation factor above ``vif`` = 50),
    ``RANK_DEFICIENT``, ``SEPARATION,REF|ALT1`` and ``LOGISTIC_CONVERGE_FAIL``
    (without Firth), ``FIRTH_CONVERGE_FAIL``, ``INVALID_RESULT`` (a variance
    below 1e-20, or two estimates correlated above 0.99999).
    ``UNFINISHED`` rows keep their estimates.

Backends and chunking
    The block functions (:func:`linear_partial_block`,
    :func:`linear_finalize_block`, :func:`meanimpute_partial_block`,
    :func:`meanimpute_finalize_block`, :func:`logistic_block`) are written
    against the array namespace of their input (NumPy, CuPy, array-api-strict)
    and are GEMM-shaped.  The linear scans accept any chunking; the logistic
    scan needs all samples of a variant in one block and rechunks samples to
    one chunk itself (variant chunks are capped so a block stays small).
    Scans are lazy; :meth:`AssociationScan.iter_chunks` computes a few variant
    chunks at a time and yields them in order, and the writers stream rows
    from it, so no full result table is ever held.

Outputs (:func:`write_results`)
    ``PREFIX.PHENO.glm.linear`` / ``.glm.logistic.hybrid`` in PLINK 2's
    default column set (``#CHROM POS ID REF ALT A1 [FIRTH?] TEST OBS_CT
    BETA|OR SE|LOG(OR)_SE T_STAT|Z_STAT P ERRCODE``; one ``ADD`` row per
    variant, as with ``--glm hide-covar``), GWAS-SSF summary statistics
    ``PREFIX.PHENO.ssf.tsv`` (GWAS Catalog format v1.0), the genomic inflation
    factor and Manhattan / QQ plots (PNG).

Sex chromosomes and mitochondria (:func:`gwas`, as ``plink2 --glm`` by default)
    Each run of variants on chrX, chrY or MT is its own scan (:func:`model_runs`,
    :func:`sex_chromosome_inputs`), written in variant order into the same files: chrX
    with the .fam sex added as a covariate (samples of unknown sex left out; not added
    where the covariates hold it already, which PLINK 2 needs ``no-x-sex`` for), males'
    0/2 codes as they are and A1 chosen with each male call counted as one allele;
    chrY on males only and MT on everyone, both as haploid 0/1 dosages (the 0/2 fit with
    BETA and SE doubled).  XY (pseudo-autosomal) is diploid.  Checked against PLINK 2
    on a cohort with all of them (``tests/data/sexchrom``).  The scans of
    :func:`linear_scan` / :func:`logistic_scan` themselves, and the federated GWAS, treat
    every contig as an autosome.  GWAS-SSF's ``effect_allele_frequency`` on chrX counts a
    male's call as one allele, as ``popgen qc``'s ``.afreq`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError
from popgen.genotypes import model_runs, sample_sex

log = logging.getLogger("popgen")

#: ERRCODE strings; the index is the code stored in result blocks
ERRCODES = (".", "SAMPLE_CT<=PREDICTOR_CT", "CONST_OMITTED_ALLELE", "CONST_ALLELE", "CORR_TOO_HIGH",
            "VIF_INFINITE", "VIF_TOO_HIGH", "SEPARATION,ALT1", "RANK_DEFICIENT", "LOGISTIC_CONVERGE_FAIL",
            "FIRTH_CONVERGE_FAIL", "INVALID_RESULT", "UNFINISHED", "SEPARATION,REF")
(E_OK, E_SAMPLE_CT, E_CONST, E_CONST_ALLELE, E_CORR, E_VIF_INF, E_VIF, E_SEP_ALT, E_RANK, E_LOGISTIC,
 E_FIRTH, E_INVALID, E_UNFINISHED, E_SEP_REF) = range(14)

#: fields of a result block, last axis of (variants, phenotypes, fields)
FIELDS = ("beta", "se", "obs_ct", "a1_ct", "errcode", "firth", "a1_is_ref")
N_FIELDS = len(FIELDS)

MAX_CORR = 0.999   #: plink2 --max-corr default
VIF = 50.0         #: plink2 --vif default
MIN_SAMPLES = 10   #: fewer samples with phenotype and covariates: the phenotype is skipped

#: bytes of one float64 (variants x samples) temporary in the logistic blocks (below glibc's
#: mmap threshold, 32 MiB by default and 64 MiB in the popgen command: larger temporaries cost
#: page faults in every pass).  Measured at
#: 10,000 x 100,000 (2026-12-07): 16 MiB 47.7 s / 1.19 GB, 8 MiB 46.6 s / 0.92 GB, 4 MiB 47.5 s / 0.94 GB
_LOGISTIC_BYTES = 8 * 2**20
#: bytes of int8 genotypes per logistic block (all samples in one chunk; the block's float64
#: genotypes take 16x that)
_LOGISTIC_BLOCK_BYTES = 8 * 2**20

#: bytes of computed results (variants x phenotypes x fields, float64) one batch of chunks may hold
_RESULT_BYTES = 16 * 2**20

#: chi-square (1 df) median, the denominator of lambda_GC
CHI2_MEDIAN = 0.45493642311957283


# ------------------------------------------------------------------ small namespace helpers

def _f64(xp, x):
    return xp.astype(x, xp.float64)


def _c(xp, x):
    """``x[..., :, None]``."""
    return xp.expand_dims(x, axis=-1)


def _r(xp, x):
    """``x[..., None, :]``."""
    return xp.expand_dims(x, axis=-2)


@functools.lru_cache(maxsize=None)
def _pairs(k: int):
    """Upper-triangle pairs (a <= b) of a k x k symmetric matrix, the gather index rebuilding the
    full matrix from them, and each pair's weight in a quadratic form (1 diagonal, 2 off-diagonal)."""
    pairs = [(a, b) for a in range(k) for b in range(a, k)]
    pos = {pr: i for i, pr in enumerate(pairs)}
    full = np.array([pos[(min(a, b), max(a, b))] for a in range(k) for b in range(k)], dtype=np.int64)
    flat = np.array([a * k + b for a, b in pairs], dtype=np.int64)
    weight = np.array([1.0 if a == b else 2.0 for a, b in pairs])
    return pairs, full, flat, weight


def _unpack_sym(xp, packed, k):
    """(..., k(k+1)/2) upper-triangle sums -> (..., k, k) symmetric matrices."""
    _, full, _, _ = _pairs(k)
    out = xp.take(packed, xp.asarray(full), axis=-1)
    return xp.reshape(out, packed.shape[:-1] + (k, k))


def _pair_products(xp, c):
    """(n, k) columns -> (n, k(k+1)/2) products c_a c_b, a <= b."""
    k = c.shape[1]
    if k == 0:
        return xp.zeros((c.shape[0], 0), dtype=c.dtype)
    cols = [c[:, a] * c[:, b] for a, b in _pairs(k)[0]]
    return xp.stack(cols, axis=1)


def _cholesky_inverse(xp, a):
    """Inverse and log-determinant of symmetric matrices ``(..., p, p)`` by Cholesky factorization,
    vectorized over the batch and one matrix axis (2 p^2 array operations, no LAPACK call: batched
    LAPACK on small matrices costs ~0.1 ms per matrix).  ``ok`` is False where a squared pivot is
    below 1e-12 (not numerically positive definite; meant for unit-diagonal matrices)."""
    p = a.shape[-1]
    dt = a.dtype
    idx = xp.arange(p)
    ok = xp.ones(a.shape[:-2], dtype=xp.bool)
    logdet = xp.zeros(a.shape[:-2], dtype=dt)
    cols = []
    for j in range(p):
        v = a[..., :, j]
        for col in cols:
            v = v - col * col[..., j:j + 1]
        piv = v[..., j]
        bad = ~(piv > 1e-12)
        ok = ok & ~bad
        piv = xp.where(bad, xp.ones_like(piv), piv)
        logdet = logdet + xp.log(piv)
        cols.append(xp.where(idx >= j, v / _c(xp, xp.sqrt(piv)), xp.zeros_like(v)))
    chol = xp.stack(cols, axis=-1)                 # lower triangular L, A = L L'
    rows = []                                      # rows of L^-1, by forward substitution
    eye = xp.eye(p, dtype=dt)
    for i in range(p):
        r = eye[i, :] + xp.zeros_like(cols[0])
        for k, row in enumerate(rows):
            r = r - _c(xp, chol[..., i, k]) * row
        rows.append(r / _c(xp, chol[..., i, i]))
    linv = xp.stack(rows, axis=-2)
    return xp.matmul(xp.matrix_transpose(linv), linv), logdet, ok


def _sym_inverse(xp, a):
    """Inverse and log-determinant of symmetric positive definite matrices ``(..., p, p)``.

    Cholesky factorization of the Jacobi-scaled (unit-diagonal) matrices,
    batched; never raises.  ``ok`` is False where a matrix is not numerically
    positive definite (a squared pivot of the scaled matrix below 1e-12, a
    non-positive diagonal or a non-finite entry); those entries come back
    finite but meaningless.
    """
    if isinstance(a, np.ndarray):  # CPU: one numba loop over the batch (same contract)
        from popgen.kernels.assoc._cholesky_numba import sym_inverse

        p = a.shape[-1]
        flat = np.ascontiguousarray(a, dtype=np.float64).reshape((-1, p, p))
        inv, logdet, ok = np.empty_like(flat), np.empty(flat.shape[0]), np.empty(flat.shape[0], dtype=bool)
        sym_inverse(flat, inv, logdet, ok)
        return inv.reshape(a.shape), logdet.reshape(a.shape[:-2]), ok.reshape(a.shape[:-2])
    p = a.shape[-1]
    eye = xp.eye(p, dtype=a.dtype)
    finite = xp.all(xp.isfinite(a), axis=(-2, -1))
    d = xp.linalg.diagonal(a)
    good = finite & xp.all(d > 0, axis=-1)
    d = xp.where(_c(xp, good) & (d > 0), d, xp.ones_like(d))
    s = 1.0 / xp.sqrt(d)
    scaled = xp.where(_c(xp, _c(xp, good)), a * _c(xp, s) * _r(xp, s), eye)
    inv, logdet, pd = _cholesky_inverse(xp, scaled)
    return inv * _c(xp, s) * _r(xp, s), logdet + xp.sum(xp.log(d), axis=-1), good & pd


def _matvec(xp, m, v):
    return xp.matmul(m, _c(xp, v))[..., 0]


def _set_err(xp, err, cond, code):
    """Set ``code`` where ``cond`` holds and no earlier error is set."""
    return xp.where((err == 0) & cond, xp.asarray(float(code), dtype=err.dtype), err)


def _corr_vif_check(xp, s, n, err, max_corr, vif):
    """PLINK 2's multicollinearity check on the predictors other than the intercept.

    ``s`` : (..., p, p) ``X'X`` over the samples used, intercept first;
    ``n`` : (...) sample counts.  Sets CORR_TOO_HIGH (|r| > max_corr for a
    pair), then VIF_INFINITE (singular correlation matrix) and VIF_TOO_HIGH
    (a diagonal element of its inverse above ``vif``).
    """
    p = s.shape[-1]
    if p <= 2:  # intercept and genotype only: nothing to check (as PLINK 2)
        return err
    sub = s[..., 1:, 1:]
    s0 = s[..., 0, 1:]
    nn = xp.where(n > 1, n, xp.full_like(n, 2.0))
    cov = (sub - _c(xp, s0) * _r(xp, s0) / _c(xp, _c(xp, nn))) / _c(xp, _c(xp, nn - 1.0))
    d = xp.linalg.diagonal(cov)
    valid = (err == 0) & xp.all(d > 0, axis=-1)
    d = xp.where(d > 0, d, xp.ones_like(d))
    inv_sd = 1.0 / xp.sqrt(d)
    eye = xp.eye(p - 1, dtype=s.dtype)
    corr = xp.where(_c(xp, _c(xp, valid)), cov * _c(xp, inv_sd) * _r(xp, inv_sd), eye)
    too_high = xp.any((xp.abs(corr) > max_corr) & (eye == 0), axis=(-2, -1))
    err = _set_err(xp, err, valid & too_high, E_CORR)
    inv, _, ok = _sym_inverse(xp, xp.where(_c(xp, _c(xp, err == 0)), corr, eye))
    err = _set_err(xp, err, ~ok, E_VIF_INF)
    return _set_err(xp, err, xp.any(xp.linalg.diagonal(inv) > vif, axis=-1), E_VIF)


def _invalid_result(xp, cov, offdiag: bool):
    """PLINK 2's validParameters(): a non-intercept variance below 1e-20 (or not finite), or
    (``offdiag``) two estimates with covariance above 0.99999 sd_i sd_j."""
    d = xp.linalg.diagonal(cov)
    bad = xp.any((d[..., 1:] < 1e-20) | ~xp.isfinite(d[..., 1:]), axis=-1)
    if offdiag:
        sd = xp.sqrt(xp.where(d > 0, d, xp.zeros_like(d)))
        p = cov.shape[-1]
        eye = xp.eye(p, dtype=cov.dtype)
        bad = bad | xp.any((cov > 0.99999 * _c(xp, sd) * _r(xp, sd)) & (eye == 0), axis=(-2, -1))
    return bad


# ------------------------------------------------------------------ linear regression: block math

def _linear_columns(xp, c, y, founders):
    """Per-sample columns of the exact linear scan from centred, masked design arrays.

    ``c`` (s, P, K): ``[m, m c~_1 .. m c~_k]`` per phenotype; ``y`` (s, P): ``m y~``;
    ``founders`` (s,).  Returns ``(wg, wg2, wo)``: ``wg`` (s, 1 + P(K+1)) =
    [founder | per phenotype: c, y]; ``wg2`` (s, P) = masks; ``wo`` (s, P nq + 1)
    = [per phenotype: c_a c_b (a <= b), c y, y^2 | founder], nq = K(K+1)/2 + K + 1.
    (:func:`_grouped_columns` with every phenotype its own group.)
    """
    return _grouped_columns(xp, c, y, [1] * c.shape[1], founders)


def _grouped_columns(xp, c, y, sizes, founders, with_wo: bool = True):
    """Per-sample columns of the exact linear scan for groups of phenotypes sharing a sample set.

    ``c`` (s, G, K): ``[m, m c~]`` per group (covariates centred on the
    group's samples ``m``); ``y`` (s, P): centred phenotypes, the ``sizes[g]``
    phenotypes of group ``g`` after those of the groups before it;
    ``founders`` (s,).  Returns ``(wg, wg2, wo)``:

    ``wg`` (s, 1 + sum (K + P_g))
        [founder | per group: c (K), y (P_g)];
    ``wg2`` (s, G)
        the groups' masks;
    ``wo`` (s, sum (K(K+1)/2 + K P_g + P_g) + 1)
        [per group: c_a c_b (a <= b), per phenotype c y (K), y^2 (P_g) | founder].

    With one phenotype per group this is :func:`_linear_columns`' layout.
    ``with_wo=False``: ``wo`` is None (:func:`_grouped_sums_block` forms its sums
    without it on the CPU).
    A group's covariate products are shared by its phenotypes: 100
    phenotypes with one sample set cost ``K + 100`` genotype columns, not
    ``100 (K + 1)``.
    """
    s_, G, K = c.shape
    pairs = _pairs(K)[0]
    ia = xp.asarray(np.array([a for a, _ in pairs], dtype=np.int64))
    ib = xp.asarray(np.array([b for _, b in pairs], dtype=np.int64))
    f = xp.reshape(founders, (s_, 1))
    wg, wo = [f], []
    start = 0
    for g, size in enumerate(sizes):
        cg = c[:, g, :]
        yg = y[:, start:start + size]
        start += size
        wg += [cg, yg]
        if not with_wo:
            continue
        cy = xp.reshape(_c(xp, yg) * xp.expand_dims(cg, axis=1), (s_, size * K))  # (s, P_g, K)
        wo += [xp.take(cg, ia, axis=1) * xp.take(cg, ib, axis=1), cy, yg * yg]
    return xp.concat(wg, axis=1), c[:, :, 0], xp.concat(wo + [f], axis=1) if with_wo else None


def _grouped_totals(c, y, sizes, founders, rows: int = 1024) -> np.ndarray:
    """Column sums of :func:`_grouped_columns`' ``wo`` over all samples (NumPy), formed
    ``rows`` samples at a time (``wo`` itself can be hundreds of MB)."""
    import array_api_compat.numpy as xnp

    total = None
    for s0 in range(0, c.shape[0], rows):
        wo = np.asarray(_grouped_columns(xnp, c[s0:s0 + rows], y[s0:s0 + rows], sizes, founders[s0:s0 + rows])[2])
        part = wo.sum(axis=0)
        total = part if total is None else total + part
    return total


def _grouped_sums_block(alt, wg, wg2, c, y, founders, *, sizes):
    """:func:`_linear_sums_block` of the grouped layout from the design factors: on NumPy blocks
    the missing calls' products are formed on the fly (``kernels.assoc.linear_sums_grouped_cpu``),
    elsewhere ``wo`` is formed and the ``linear_sums`` kernel runs."""
    from popgen.backend import namespace

    xp = namespace(alt)
    if isinstance(alt, np.ndarray):
        from popgen.kernels.assoc import linear_sums_grouped_cpu

        return linear_sums_grouped_cpu(alt, wg, wg2, c, y, founders, list(sizes))[:, None, :]
    f64 = xp.float64
    c, y, founders, wg, wg2 = (xp.asarray(a, dtype=f64) for a in (c, y, founders, wg, wg2))
    wo = _grouped_columns(xp, c, y, list(sizes), founders)[2]
    return xp.expand_dims(_linear_sums(alt, wg, wg2, wo), axis=1)


def _linear_sums(alt, wg, wg2, wo):
    """``[G @ wg, G^2 @ wg2, Missing @ wo]`` in float64 (G: missing calls as 0), shape (v, q).

    NumPy and CuPy blocks run the ``linear_sums`` kernel (on the CPU it visits
    only the calls that contribute: the rarer homozygote's complement and the
    missing calls); other namespaces run the three GEMMs.
    """
    from popgen.backend import namespace

    if isinstance(alt, np.ndarray) or type(alt).__module__.startswith("cupy"):
        from popgen.kernels import get

        return get("linear_sums")(alt, wg, wg2, wo)
    xp = namespace(alt)
    called = alt >= 0
    g = _f64(xp, xp.where(called, alt, xp.zeros_like(alt)))
    return xp.concat([xp.matmul(g, wg), xp.matmul(g * g, wg2), xp.matmul(_f64(xp, ~called), wo)], axis=1)


def linear_partial_block(alt, c, y, founders):
    """One (variants, samples) block's share of the exact linear scan's sufficient statistics.

    Parameters
    ----------
    alt : array, int8, shape (v, s)
        ALT allele counts, -1 missing.
    c : array, float64, shape (s, P, K)
        Per phenotype ``[m, m c~]``: the sample mask and the covariates centred
        on the phenotype's samples (0 outside them), see :func:`linear_design`.
    y : array, float64, shape (s, P)
        Phenotypes centred on their samples (0 outside).
    founders : array, float64, shape (s,)
        1 for founders (they choose A1).

    Returns
    -------
    array, float64, shape (v, 1, q)
        ``[G @ wg, G^2 @ wg2, Missing @ wo]`` with the columns of
        :func:`_linear_columns` (missing calls count 0 in ``G``); sums over
        sample blocks add up.
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    f64 = xp.float64
    wg, wg2, wo = _linear_columns(xp, xp.asarray(c, dtype=f64), xp.asarray(y, dtype=f64),
                                  xp.asarray(founders, dtype=f64))
    return xp.expand_dims(_linear_sums(alt, wg, wg2, wo), axis=1)


def _linear_sums_block(alt, wg, wg2, wo):
    """:func:`_linear_sums` of one (variants, samples) block, as (v, 1, q) for a sum over sample blocks."""
    from popgen.backend import namespace

    xp = namespace(alt)
    return xp.expand_dims(_linear_sums(alt, wg, wg2, wo), axis=1)


def linear_finalize_block(sums, totals, *, n_pheno: int, n_cov: int, n_founders: int,
                          max_corr: float = MAX_CORR, vif: float = VIF):
    """Solve the per-variant regressions of a block from its sufficient statistics.

    Parameters
    ----------
    sums : array, float64, shape (v, q)
        :func:`linear_partial_block` output summed over sample blocks (column
        layout of :func:`_linear_columns`).
    totals : array, float64, shape (q_o,)
        Column sums of ``wo`` over all samples (:func:`linear_design`).
    n_pheno, n_cov : int
        Phenotypes and covariates (without the intercept).
    n_founders : int
        Founders counted in the first columns (A1 = minor allele among them).

    Returns
    -------
    array, float64, shape (v, n_pheno, 7)
        Fields :data:`FIELDS`: BETA (per A1 allele), SE, OBS_CT, A1 allele
        count, ERRCODE index, Firth flag (0), A1-is-REF flag.
    """
    st = linear_stats(sums, totals, n_pheno=n_pheno, n_cov=n_cov, n_founders=n_founders)
    return linear_solve(st["xtx"], st["xty"], st["yy"], st["flip"], max_corr=max_corr, vif=vif)


def _grouped_finalize_block(sums, totals, *, sizes, inverse, n_cov: int, n_founders: int,
                            max_corr: float = MAX_CORR, vif: float = VIF):
    """:func:`linear_finalize_block` for the grouped layout; phenotypes put back in the
    design's order by ``inverse`` (None: already in order)."""
    from popgen.backend import namespace

    if isinstance(sums, np.ndarray):
        out = _grouped_solve_numba(sums, totals, sizes, n_cov=n_cov, n_founders=n_founders, max_corr=max_corr,
                                   vif=vif)
    else:
        st = _grouped_stats(sums, totals, sizes, n_cov=n_cov, n_founders=n_founders)
        out = _grouped_solve(st["xtx"], st["xty"], st["yy"], st["flip"], sizes, max_corr=max_corr, vif=vif)
    if inverse is None:
        return out
    xp = namespace(out)
    return xp.take(out, xp.asarray(inverse), axis=1)


def _grouped_solve_numba(sums, totals, sizes, *, n_cov: int, n_founders: int, max_corr: float, vif: float):
    """:func:`_grouped_stats` then :func:`_grouped_solve` on NumPy blocks as two numba loops: the
    group terms (:func:`~popgen.kernels.assoc._linear_solve_numba.group_terms`: the array code's
    checks and inverses took ~9 us per variant in small-array overhead) and the per-phenotype
    part (``beta = (X'X)^-1 X'y``, the residual variance, the checks and fields:
    :func:`~popgen.kernels.assoc._linear_solve_numba.phenotype_fields`), which reads each
    phenotype's ``X'y`` from the sums where it is (with 100 phenotypes the array code's (v, P, p)
    temporaries were most of the finalization: 250 ns per variant and phenotype)."""
    from popgen.kernels.assoc._linear_solve_numba import group_terms, phenotype_fields

    st = _grouped_stats(sums, totals, sizes, n_cov=n_cov, n_founders=n_founders, phenotypes=False)
    xtx = np.ascontiguousarray(st["xtx"])
    nv, G, p = xtx.shape[0], xtx.shape[1], xtx.shape[-1]
    n, err, d_k, d_min, a1 = (np.empty((nv, G)) for _ in range(5))
    d_finite, corr_bad = np.empty((nv, G), dtype=bool), np.empty((nv, G), dtype=bool)
    inv = np.empty((nv, G, p, p))
    flip = np.ascontiguousarray(st["flip"])
    codes = np.array([E_SAMPLE_CT, E_CONST, E_CORR, E_VIF_INF, E_VIF, E_RANK], dtype=np.float64)
    group_terms(xtx, flip, float(max_corr), float(vif), codes, n, err, inv, d_k, d_min, d_finite, corr_bad, a1)
    out = np.empty((nv, int(sum(sizes)), N_FIELDS))
    f = np.ascontiguousarray
    phenotype_fields(f(st["a"]), f(st["stat"]), *_phenotype_columns(sizes, n_cov), inv, n, err, d_k, d_min,
                     d_finite, corr_bad, a1, flip, float(E_INVALID), out)
    return out


def linear_stats(sums, totals, *, n_pheno: int, n_cov: int, n_founders: int) -> dict:
    """Per-variant normal equations from a block's sufficient statistics.

    Returns a dict of float64 arrays (``v`` variants, ``P`` phenotypes,
    predictors ``[1, covariates, g]``, ``K = n_cov + 1``):

    ``xtx`` (v, P, K+1, K+1)
        ``X'X`` over the samples used for each variant and phenotype
        (covariates centred on the phenotype's full sample set).
    ``xty`` (v, P, K+1), ``yy`` (v, P)
        ``X'y`` and ``y'y`` (``y`` centred the same way).
    ``founder_alt``, ``founder_called`` (v,)
        ALT alleles and called genotypes among founders; ``flip`` (v,) bool:
        A1 is REF (ALT frequency among founders above 0.5).

    Every entry is a sum over samples, so the statistics of disjoint sample
    sets (sites of a federated analysis) add up.
    """
    return _grouped_stats(sums, totals, [1] * n_pheno, n_cov=n_cov, n_founders=n_founders)


def _grouped_stats(sums, totals, sizes, *, n_cov: int, n_founders: float, phenotypes: bool = True) -> dict:
    """:func:`linear_stats` for the layout of :func:`_grouped_columns`: ``xtx`` is (v, G, K+1, K+1),
    one per group of phenotypes sharing a sample set; ``xty`` (v, P, K+1), ``yy`` (v, P) per phenotype.
    Without ``phenotypes``: ``xtx`` and the founder counts only, plus ``a`` and ``stat``, the
    sums the per-phenotype terms are read from (:func:`_phenotype_columns`)."""
    from popgen.backend import namespace

    xp = namespace(sums)
    f64 = xp.float64
    nv = sums.shape[0]
    G, P, K = len(sizes), int(sum(sizes)), n_cov + 1
    npairs = K * (K + 1) // 2
    na = 1 + G * K + P
    a, b, c = sums[:, :na], sums[:, na:na + G], sums[:, na + G:]
    tot = xp.asarray(totals, dtype=f64)
    stat = xp.reshape(tot[:-1], (1, -1)) - c[:, :-1]   # full sample sets minus missing calls

    # A1 = minor allele among founders (ALT frequency above 0.5: A1 is REF)
    f_g = a[:, 0]
    f_called = float(n_founders) - c[:, -1]
    flip = (f_called > 0) & (f_g > f_called)

    xtx, xty, yy = [], [], []
    oa, oc = 1, 0
    for g, size in enumerate(sizes):
        g_c, g_y = a[:, oa:oa + K], a[:, oa + K:oa + K + size]         # sum g c~ (first: sum g), sum g y~
        oa += K + size
        cc = _unpack_sym(xp, stat[:, oc:oc + npairs], K)
        if phenotypes:
            c_y = xp.reshape(stat[:, oc + npairs:oc + npairs + size * K], (nv, size, K))
            xty.append(xp.concat([c_y, _c(xp, g_y)], axis=-1))
            yy.append(stat[:, oc + npairs + size * K:oc + npairs + size * (K + 1)])
        oc += npairs + size * (K + 1)
        g_g = b[:, g:g + 1]                                            # sum g^2
        top = xp.concat([cc, _c(xp, g_c)], axis=-1)
        bottom = _r(xp, xp.concat([g_c, g_g], axis=-1))
        xtx.append(xp.concat([top, bottom], axis=-2))
    out = {"xtx": xp.stack(xtx, axis=1), "founder_alt": f_g, "founder_called": f_called, "flip": flip}
    if phenotypes:
        out.update(xty=xp.concat(xty, axis=1), yy=xp.concat(yy, axis=1))
    else:
        out.update(a=a, stat=stat)
    return out


def _phenotype_columns(sizes, n_cov: int):
    """Where :func:`_grouped_stats`' ``a`` and ``stat`` hold each group's per-phenotype terms
    (int64 arrays of G + 1 / G): ``starts`` (its phenotypes are ``starts[g]`` to
    ``starts[g + 1]``), and for its first phenotype the column of ``sum g y~`` in ``a``, the first
    of its ``K`` columns ``sum c~ y~`` in ``stat`` and the column of its ``sum y~^2`` there (the
    next phenotypes' follow, ``1``, ``K`` and ``1`` columns on)."""
    K = n_cov + 1
    npairs = K * (K + 1) // 2
    gy, cy, yy = [], [], []
    oa, oc = 1, 0
    for size in sizes:
        gy.append(oa + K)
        cy.append(oc + npairs)
        yy.append(oc + npairs + size * K)
        oa += K + size
        oc += npairs + size * (K + 1)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return tuple(np.asarray(x, dtype=np.int64) for x in (starts, gy, cy, yy))


def linear_solve(xtx, xty, yy, flip, *, max_corr: float = MAX_CORR, vif: float = VIF):
    """Solve per-variant normal equations (predictors: intercept first, genotype last).

    ``xtx`` (v, P, p, p), ``xty`` (v, P, p), ``yy`` (v, P), ``flip`` (v,) bool
    (A1 is REF: the genotype counts ALT, BETA is reported per A1).  Returns
    the (v, P, 7) result fields of :func:`linear_finalize_block`, with PLINK
    2's checks and ERRCODEs.
    """
    return _grouped_solve(xtx, xty, yy, flip, [1] * xtx.shape[1], max_corr=max_corr, vif=vif)


def _group_terms(xp, xtx, flip, *, max_corr: float, vif: float):
    """What the linear solve takes from ``X'X`` (v, G, p, p) alone, per variant and group:
    ``n`` (sample count), ``err`` (PLINK 2's checks: sample count, constant genotype,
    correlation and VIF, rank), ``inv`` (``(X'X)^-1``, identity where ``err`` is set) and
    its diagonal ``d``, ``corr_bad`` (estimates correlated above 0.99999: PLINK 2's
    validParameters(), scale-free on the inverse), ``d_min`` and ``d_finite`` (the smallest
    and the finiteness of the non-intercept diagonal: the variance check is per phenotype)
    and ``a1`` (the A1 allele count; ``flip`` (v,): A1 is REF)."""
    f64 = xp.float64
    nv, G, npred = xtx.shape[0], xtx.shape[1], xtx.shape[-1]
    K = npred - 1
    n = xtx[..., 0, 0]
    g_sum = xtx[..., 0, K]
    g_g = xtx[..., K, K]
    err = xp.zeros((nv, G), dtype=f64)
    err = _set_err(xp, err, n <= npred, E_SAMPLE_CT)
    err = _set_err(xp, err, n * g_g - g_sum * g_sum <= 0, E_CONST)     # integer sums: exact
    err = _corr_vif_check(xp, xtx, n, err, max_corr, vif)
    eye = xp.eye(npred, dtype=f64)
    inv, _, ok = _sym_inverse(xp, xp.where(_c(xp, _c(xp, err == 0)), xtx, eye))
    err = _set_err(xp, err, ~ok, E_RANK)
    d = xp.linalg.diagonal(inv)
    sd = xp.sqrt(xp.where(d > 0, d, xp.zeros_like(d)))
    corr_bad = xp.any((inv > 0.99999 * _c(xp, sd) * _r(xp, sd)) & (eye == 0), axis=(-2, -1))
    d_min = xp.min(d[..., 1:], axis=-1)
    d_finite = xp.all(xp.isfinite(d[..., 1:]), axis=-1)
    a1 = xp.where(_c(xp, flip), 2.0 * n - g_sum, g_sum)
    return n, err, inv, d, corr_bad, d_min, d_finite, a1


def _grouped_solve(xtx, xty, yy, flip, sizes, *, max_corr: float = MAX_CORR, vif: float = VIF):
    """:func:`linear_solve` with ``xtx`` (v, G, p, p) shared by the ``sizes[g]`` consecutive
    phenotypes of each group (``xty`` (v, P, p), ``yy`` (v, P)).

    Everything that depends only on ``X'X`` -- sample counts, the constant-genotype,
    correlation and VIF checks, the inverse and its rank, the estimates' correlations --
    is computed once per group; per phenotype only ``beta = (X'X)^-1 X'y``, the
    residual variance and the variance check.
    """
    from popgen.backend import namespace

    xp = namespace(xtx)
    nv, G, npred = xtx.shape[0], xtx.shape[1], xtx.shape[-1]
    K = npred - 1
    n, err, inv, d, corr_bad, d_min, d_finite, a1 = _group_terms(xp, xtx, flip, max_corr=max_corr, vif=vif)
    flip2 = _c(xp, flip) & xp.ones((nv, G), dtype=xp.bool)

    if all(size == 1 for size in sizes):
        idx = None
        beta = _matvec(xp, inv, xty)                                   # (v, P, p)
    else:
        idx = xp.asarray(np.repeat(np.arange(G), sizes))
        beta, start = [], 0
        for g, size in enumerate(sizes):
            beta.append(xp.matmul(xty[:, start:start + size, :], inv[:, g]))   # inv symmetric
            start += size
        beta = xp.concat(beta, axis=1)

    def per_pheno(x):
        return x if idx is None else xp.take(x, idx, axis=1)

    n_p = per_pheno(n)
    df = xp.where(n_p > npred, n_p - npred, xp.ones_like(n_p))
    sigma2 = (yy - xp.sum(beta * xty, axis=-1)) / df
    err = per_pheno(err)
    var_min = sigma2 * per_pheno(d_min)
    invalid = per_pheno(corr_bad) | ~(var_min >= 1e-20) | ~per_pheno(d_finite) | ~xp.isfinite(sigma2)
    err = _set_err(xp, err, invalid, E_INVALID)

    good = err == 0
    nan = xp.full_like(n_p, math.nan)
    var_g = sigma2 * per_pheno(d[..., K])
    se = xp.where(good, xp.sqrt(xp.where(good, var_g, xp.ones_like(n_p))), nan)
    flip_p = per_pheno(flip2)
    beta_g = xp.where(good, xp.where(flip_p, -beta[..., K], beta[..., K]), nan)
    return xp.stack([beta_g, se, n_p, per_pheno(a1), err, xp.zeros_like(n_p), _f64(xp, flip_p)], axis=-1)


@dataclasses.dataclass
class _Design:
    """Phenotypes and covariates aligned to the cohort's samples."""

    names: list[str]
    y: np.ndarray             # (samples, P) float64, 0 outside each phenotype's sample set
    mask: np.ndarray          # (samples, P) bool: phenotype and every covariate present
    covariates: np.ndarray    # (samples, k) float64, 0 where missing
    covariate_names: list[str]
    founders: np.ndarray      # (samples,) bool
    skipped: dict

    @property
    def n_used(self) -> dict:
        return {name: int(self.mask[:, j].sum()) for j, name in enumerate(self.names)}


def linear_design(design: _Design, totals: bool = True):
    """Centred, masked design arrays of the exact linear scan, and the full-sample totals.

    Returns ``(c, y, founders, totals)``: ``c`` (s, P, K) = per phenotype
    ``[m, m (covariates - mean)]``, ``y`` (s, P) = ``m (y - mean)`` (means over
    the phenotype's samples ``m``), ``founders`` (s,) float64, and ``totals`` =
    the column sums over all samples of the missing-indicator columns ``wo``
    (the statistics of the full sample sets, from which missing calls are subtracted).
    """
    n, P = design.mask.shape
    k = design.covariates.shape[1]
    c = np.zeros((n, P, k + 1))
    y = np.zeros((n, P))
    for j in range(P):
        m = design.mask[:, j]
        c[m, j, 0] = 1.0
        if k:
            c[m, j, 1:] = design.covariates[m] - design.covariates[m].mean(axis=0)
        y[m, j] = design.y[m, j] - design.y[m, j].mean()
    founders = design.founders.astype(np.float64)
    if not totals:
        return c, y, founders, None
    import array_api_compat.numpy as xnp

    _, _, wo = _linear_columns(xnp, c, y, founders)
    return c, y, founders, np.asarray(wo).sum(axis=0)


def _sample_set_groups(mask) -> list[np.ndarray]:
    """Phenotype indices grouped by identical sample sets (columns of ``mask``), in order of first appearance."""
    groups: dict[bytes, list[int]] = {}
    packed = np.packbits(np.asarray(mask, dtype=bool), axis=0)
    for j in range(packed.shape[1]):
        groups.setdefault(packed[:, j].tobytes(), []).append(j)
    return [np.asarray(g, dtype=np.int64) for g in groups.values()]


def _grouped_design(design: _Design, groups):
    """Design arrays of the grouped exact scan: ``(c, y, sizes, founders)`` with ``c`` (s, G, K)
    per group of ``groups`` (phenotype indices sharing a sample set) and ``y`` (s, P') the groups'
    phenotypes in group order, centred as in :func:`linear_design`."""
    order = np.concatenate(groups)
    first = np.array([g[0] for g in groups], dtype=np.int64)  # one phenotype per sample set gives c
    sub = dataclasses.replace(design, names=[design.names[j] for j in first], y=design.y[:, first],
                              mask=design.mask[:, first])
    c, _, founders, _ = linear_design(sub, totals=False)
    y = np.zeros((design.y.shape[0], len(order)))
    for i, j in enumerate(order):  # m (y - mean), as linear_design
        m = design.mask[:, j]
        y[m, i] = design.y[m, j] - design.y[m, j].mean()
    return np.ascontiguousarray(c), y, [len(g) for g in groups], founders


# ------------------------------------------------------------------ linear regression, mean imputation: block math

def meanimpute_partial_block(alt, w, wsq, dtype="float32"):
    """One block's share of the mean-imputation linear scan (tensorQTL-style GEMMs).

    Parameters
    ----------
    alt : array, int8, shape (v, s)
    w : array, shape (s, a)
        ``[1, founder, per phenotype: m, m y_res, m Q]`` (``Q`` an orthonormal
        basis of ``[1, covariates]`` on the phenotype's samples).
    wsq : array, shape (s, P)
        Phenotype masks (for the squared genotypes).
    dtype : str
        GEMM precision (``"float32"``, the fast default, or ``"float64"``);
        the sums are returned as float64.

    Returns
    -------
    array, float64, shape (v, 1, 2a + P)
        ``[G0 @ w, Missing @ w, G0^2 @ wsq]`` (``G0``: missing calls as 0).
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    dt = getattr(xp, dtype)
    called = alt >= 0
    g = xp.astype(xp.where(called, alt, xp.zeros_like(alt)), dt)
    w = xp.asarray(w, dtype=dt)
    out = xp.concat([
        xp.matmul(g, w),
        xp.matmul(xp.astype(~called, dt), w),
        xp.matmul(g * g, xp.asarray(wsq, dtype=dt)),
    ], axis=1)
    return xp.expand_dims(_f64(xp, out), axis=1)


def meanimpute_finalize_block(sums, y_ss, n_used, *, n_pheno: int, n_cov: int, n_samples: int,
                              n_founders: int, vif: float = VIF):
    """Per-variant estimates of the mean-imputation scan: (v, n_pheno, 7) as :func:`linear_finalize_block`.

    ``y_ss`` (P,): residual sum of squares of each phenotype after the
    covariates; ``n_used`` (P,): its sample count.  OBS_CT is ``n_used`` (every
    sample of the phenotype is used, missing calls imputed with the variant's mean).
    """
    from popgen.backend import namespace

    xp = namespace(sums)
    f64 = xp.float64
    nv = sums.shape[0]
    P, K = n_pheno, n_cov + 1
    na = 2 + P * (K + 2)
    a, b, d = sums[:, :na], sums[:, na:2 * na], sums[:, 2 * na:]
    called = float(n_samples) - b[:, 0]
    mu = a[:, 0] / xp.where(called > 0, called, xp.ones_like(called))
    f_called = float(n_founders) - b[:, 1]
    flip = (f_called > 0) & (a[:, 1] > f_called)
    pa = xp.reshape(a[:, 2:], (nv, P, K + 2))
    pb = xp.reshape(b[:, 2:], (nv, P, K + 2))
    mu3 = _c(xp, _c(xp, mu))
    imp = pa + mu3 * pb                           # sums with missing calls imputed
    s1, sy, sq = imp[..., 0], imp[..., 1], imp[..., 2:]
    sgg = d + _c(xp, mu * mu) * pb[..., 0]
    n = xp.reshape(xp.asarray(n_used, dtype=f64), (1, P)) * xp.ones((nv, 1), dtype=f64)
    yss = xp.reshape(xp.asarray(y_ss, dtype=f64), (1, P))
    grr = sgg - xp.sum(sq * sq, axis=-1)           # genotype residual sum of squares
    gtot = sgg - s1 * s1 / n                       # ... after the intercept only
    npred = K + 1
    err = xp.zeros((nv, P), dtype=f64)
    err = _set_err(xp, err, n <= npred, E_SAMPLE_CT)
    err = _set_err(xp, err, gtot <= 1e-9 * xp.where(sgg > 1.0, sgg, xp.ones_like(sgg)), E_CONST)
    err = _set_err(xp, err, grr <= 1e-9 * gtot, E_VIF_INF)
    safe = xp.where(err == 0, grr, xp.ones_like(grr))
    err = _set_err(xp, err, gtot / safe > vif, E_VIF)
    good = err == 0
    beta = sy / safe
    sigma2 = (yss - beta * beta * safe) / (n - npred)
    nan = xp.full_like(n, math.nan)
    se = xp.where(good, xp.sqrt(xp.where(good, sigma2 / safe, xp.ones_like(n))), nan)
    flip2 = _c(xp, flip) & xp.ones((nv, P), dtype=xp.bool)
    beta = xp.where(good, xp.where(flip2, -beta, beta), nan)
    a1 = xp.where(flip2, 2.0 * n - s1, s1)
    return xp.stack([beta, se, n, a1, err, xp.zeros_like(n), _f64(xp, flip2)], axis=-1)


def meanimpute_weights(design: _Design):
    """``(w, wsq, y_ss)`` of the mean-imputation scan (see :func:`meanimpute_partial_block`)."""
    n, P = design.mask.shape
    cov = design.covariates
    cols = [np.ones((n, 1)), design.founders.astype(np.float64)[:, None]]
    y_ss = np.zeros(P)
    for j in range(P):
        m = design.mask[:, j]
        c = np.concatenate([np.ones((int(m.sum()), 1)), cov[m]], axis=1)
        q, _ = np.linalg.qr(c)
        y = design.y[m, j]
        res = y - q @ (q.T @ y)
        y_ss[j] = float(res @ res)
        block = np.zeros((n, 2 + q.shape[1]))
        block[m, 0] = 1.0
        block[m, 1] = res
        block[m, 2:] = q
        cols.append(block)
    return np.concatenate(cols, axis=1), design.mask.astype(np.float64), y_ss


# ------------------------------------------------------------------ logistic / Firth regression: block math

def _sigmoid_softplus(xp, x, softplus: bool = True):
    """``1 / (1 + exp(-x))`` and (optionally) ``log(1 + exp(x))``, stable, from one exp and one log1p."""
    if not softplus:
        if isinstance(x, np.ndarray):  # one pass, no overflow
            from scipy.special import expit

            return expit(x), None
        return 1.0 / (1.0 + xp.exp(-xp.clip(x, -700.0, 700.0))), None
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r), xp.where(x > 0, x, xp.zeros_like(x)) + xp.log1p(e)


class _Compactor:
    """Shrinks vectorized iterations to their unfinished rows.

    Rows that are done are ``emit``-ted with their results; ``keep`` gathers the
    others (and their original positions); ``result`` puts every row back in
    its original place.  Gathers only (``take``), so it works on any Array-API
    backend.
    """

    def __init__(self, xp, n):
        self.xp = xp
        self.orig = xp.arange(n)
        self.pieces = []

    def emit(self, rows, arrays):
        xp = self.xp
        idx = xp.nonzero(rows)[0]
        if idx.shape[0]:
            self.add(xp.take(self.orig, idx), [xp.take(a, idx, axis=0) for a in arrays])

    def add(self, orig, arrays):
        """Results ``arrays`` of the rows at original positions ``orig``."""
        self.pieces.append((orig, arrays))

    def keep(self, rows, arrays):
        xp = self.xp
        idx = xp.nonzero(rows)[0]
        self.orig = xp.take(self.orig, idx)
        return idx, [xp.take(a, idx, axis=0) for a in arrays]

    def result(self):
        xp = self.xp
        order = xp.argsort(xp.concat([o for o, _ in self.pieces]))
        n_fields = len(self.pieces[0][1])
        return [xp.take(xp.concat([v[i] for _, v in self.pieces], axis=0), order, axis=0) for i in range(n_fields)]



class _Model:
    """The predictors ``x = [1, g, c_1..c_k]`` of one phenotype for a batch of variants.

    ``g`` (V, s) A1 dosages (0 where missing), ``w`` (V, s) 0/1 sample weights
    (phenotype's samples with a call), ``y`` (s,), ``cov`` (s, k).
    """

    def __init__(self, xp, g, w, y, cov, cp, shared=None):
        self.xp, self.g, self.w, self.y, self.cov, self.cp = xp, g, w, y, cov, cp
        self.k = cov.shape[1]
        self.p = self.k + 2
        self._buffers = {}
        self._shared = {} if shared is None else shared  # per-phenotype arrays, kept by take()
        if isinstance(g, np.ndarray):  # the numba passes want C-contiguous float64 rows
            self.g, self.w = np.ascontiguousarray(g, dtype=np.float64), np.ascontiguousarray(w, dtype=np.float64)
            self.y = np.ascontiguousarray(y, dtype=np.float64)
        if self.k:
            _, _, flat, weight = _pairs(self.k)
            self.flat, self.weight = xp.asarray(flat), xp.asarray(weight, dtype=xp.float64)
            self.cov_t = xp.matrix_transpose(cov)
            self.cp_t = xp.matrix_transpose(cp)

    def eta(self, beta):
        xp = self.xp
        out = beta[:, 0:1] + beta[:, 1:2] * self.g
        if self.k:
            out = out + xp.matmul(beta[:, 2:], self.cov_t)
        return out

    def _assemble(self, s1, sg, sgg, wc=None, wgc=None, wcp=None):
        """(V, p, p) matrices ``X' diag(w) X`` from their parts: ``s1, sg, sgg`` (V,) sums of
        ``w, w g, w g^2``; ``wc, wgc`` (V, k) ``w @ cov``, ``(w g) @ cov``; ``wcp`` (V, k(k+1)/2)
        ``w @ cp``."""
        xp = self.xp
        a = xp.stack([xp.stack([s1, sg], axis=-1), xp.stack([sg, sgg], axis=-1)], axis=-2)
        if not self.k:
            return a
        b = xp.stack([wc, wgc], axis=-2)
        top = xp.concat([a, b], axis=-1)
        bottom = xp.concat([xp.matrix_transpose(b), _unpack_sym(xp, wcp, self.k)], axis=-1)
        return xp.concat([top, bottom], axis=-2)

    def gram(self, w):
        """``X' diag(w) X`` per variant: (V, p, p)."""
        xp, g = self.xp, self.g
        wg = w * g
        s1, sg, sgg = xp.sum(w, axis=1), xp.sum(wg, axis=1), xp.sum(wg * g, axis=1)
        if not self.k:
            return self._assemble(s1, sg, sgg)
        return self._assemble(s1, sg, sgg, xp.matmul(w, self.cov), xp.matmul(wg, self.cov),
                              xp.matmul(w, self.cp))

    def xt(self, r):
        """``X' r`` per variant: (V, p)."""
        xp = self.xp
        parts = [_c(xp, xp.sum(r, axis=1)), _c(xp, xp.sum(r * self.g, axis=1))]
        if self.k:
            parts.append(xp.matmul(r, self.cov))
        return xp.concat(parts, axis=-1)

    def firth_score(self, mu, hinv):
        """Firth's modified score ``X'(w (y - mu + h (1/2 - mu)))``, ``h_i = v_i x_i' H^-1 x_i``
        (the hat diagonal, ``v = mu (1 - mu)``): (V, p).  The gradient of the penalized
        log-likelihood (the opposite sign of :meth:`gradient`)."""
        if not isinstance(self.g, np.ndarray):
            v = mu * (1.0 - mu)
            return self.xt(self.w * ((self.y - mu) + (0.5 - mu) * v * self.quad(hinv)))
        from popgen.kernels.assoc._irls_numba import firth_score_pass

        nv, k = hinv.shape[0], self.k
        ww, sums = self._scratch("ww"), np.empty((nv, 2))
        if k:
            ac = np.concatenate([2.0 * hinv[:, 0, 2:], self._pair_coefs(hinv)], axis=1) @ self._covcp_t()
            b = hinv[:, 1, 2:] @ self.cov_t
        else:
            ac = b = np.zeros(self.g.shape)
        firth_score_pass(ac, b, *(np.ascontiguousarray(hinv[:, i, j]) for i, j in ((0, 0), (0, 1), (1, 1))),
                         self.g, self.w, self.y, np.ascontiguousarray(mu), ww, sums)
        return np.concatenate([sums, self._by_cov(ww).T], axis=1) if k else sums

    def quad(self, h):
        """``x_i' h x_i`` per variant and sample: (V, s)."""
        xp, g = self.xp, self.g
        q = _c(xp, h[:, 0, 0]) + 2.0 * _c(xp, h[:, 0, 1]) * g + _c(xp, h[:, 1, 1]) * g * g
        if self.k:
            q = q + 2.0 * xp.matmul(h[:, 0, 2:], self.cov_t) + 2.0 * g * xp.matmul(h[:, 1, 2:], self.cov_t)
            q = q + xp.matmul(self._pair_coefs(h), self.cp_t)
        return q

    def _pair_coefs(self, h):
        """Coefficients of the products ``c_a c_b`` (a <= b, :data:`cp`'s columns) in ``c' h_cc c``:
        (V, k(k+1)/2)."""
        xp = self.xp
        hcc = xp.reshape(h[:, 2:, 2:], (h.shape[0], self.k * self.k))
        return xp.take(hcc, self.flat, axis=1) * self.weight

    def _scratch(self, name, shape=None):
        """A reused float64 buffer (default (V, s)) of this model (CPU path): fresh pages cost as
        much as the pass."""
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = np.empty(self.g.shape if shape is None else shape)
        return buf

    def _covcp_t(self):
        """``[cov, cp]'`` (k + k(k+1)/2, s), contiguous: one GEMM for ``X'VX``'s covariate blocks."""
        covcp_t = self._shared.get("covcp_t")
        if covcp_t is None:
            covcp_t = self._shared["covcp_t"] = np.ascontiguousarray(np.concatenate([self.cov, self.cp], axis=1).T)
        return covcp_t

    def _by_cov(self, x, pairs: bool = False):
        """``x @ cov`` (``pairs``: ``x @ [cov, cp]``) of per-sample rows ``x`` (V, s) (CPU path), as
        ``(cov' x')'``: OpenBLAS runs these products with few columns faster that way round
        (12 columns, 200 rows x 10,000 samples: 25 against 17 GFLOP/s; 90 columns: 41 against 37)."""
        cols = self._covcp_t()
        return (cols if pairs else cols[:self.k]) @ x.T

    def _cov_eta(self, beta, out=None):
        """``beta_cov @ cov'`` into ``out`` (default: the first rows of a scratch buffer; CPU path)."""
        out = self._scratch("eta")[:beta.shape[0]] if out is None else out
        if self.k:
            np.matmul(beta[:, 2:], self.cov_t, out=out)
        else:
            out[...] = 0.0
        return out

    def newton_terms(self, beta, rows=None):
        """Hessian ``X'VX`` and gradient ``X'(w (mu - y))`` at ``beta``: (V, p, p), (V, p).

        ``rows`` (optional): ``beta`` and the results are of the model's variants
        ``rows`` (the CPU path reads them in place, others take them).
        NumPy: numba passes compute the per-sample weights and the sums over
        the intercept and genotype columns, and GEMMs the covariate blocks
        (instead of a dozen array passes); other namespaces: :meth:`evaluate`
        and :meth:`xt`.
        """
        if not isinstance(self.g, np.ndarray):
            if rows is not None:
                return self.take(rows).newton_terms(beta)
            mu, h, _ = self.evaluate(beta, loglik=False)
            return h, self.xt(self.w * (mu - self.y))
        from popgen.kernels.assoc._irls_numba import irls_pass

        nv, (V, ns), k = beta.shape[0], self.g.shape, self.k
        flat = self._scratch("vgrr", (2 * V * ns,))
        vg, rr = flat[:nv * ns].reshape(nv, ns), flat[nv * ns:2 * nv * ns].reshape(nv, ns)  # adjacent: one GEMM
        self._cov_eta(beta, out=rr)
        vv = self._scratch("vv")[:nv]
        sums = np.empty((nv, 5))
        irls_pass(rr, beta[:, 0], beta[:, 1], self.g, self.w, self.y, vv, vg, rr, sums, rows)
        s1, sg, sgg = sums[:, 0], sums[:, 1], sums[:, 2]
        if not k:
            return self._assemble(s1, sg, sgg), sums[:, 3:]
        vvc = self._by_cov(vv, pairs=True).T
        vgrr = self._by_cov(flat[:2 * nv * ns].reshape(2 * nv, ns)).T
        h = self._assemble(s1, sg, sgg, vvc[:, :k], vgrr[:nv], vvc[:, k:])
        return h, np.concatenate([sums[:, 3:], vgrr[nv:]], axis=1)

    def gradient(self, beta, rows=None):
        """Gradient ``X'(w (mu - y))`` of the negative log-likelihood at ``beta``: (V, p);
        ``rows`` as :meth:`newton_terms`."""
        xp = self.xp
        if not isinstance(self.g, np.ndarray):
            if rows is not None:
                return self.take(rows).gradient(beta)
            mu, _ = _sigmoid_softplus(xp, self.eta(beta), softplus=False)
            return self.xt(self.w * (mu - self.y))
        from popgen.kernels.assoc._irls_numba import residual_pass

        rr = self._cov_eta(beta)
        sums = np.empty((beta.shape[0], 2))
        residual_pass(rr, beta[:, 0], beta[:, 1], self.g, self.w, self.y, sums, rows)
        return np.concatenate([sums, self._by_cov(rr).T], axis=1) if self.k else sums

    def chord_hessian(self, v0, a0, parts=None):
        """``X' diag(v0) X`` per variant with the ``[1, cov]`` block ``a0`` shared: (V, p, p).

        ``v0`` (s,) null-model weights ``mu0 (1 - mu0)`` (0 outside the phenotype's
        samples), ``a0`` (k+1, k+1) ``[1, cov]' diag(v0) [1, cov]``.  Exact in the
        genotype's row (its missing calls are 0 in ``g``); the shared block counts the
        samples whose call is missing too, so this is the Hessian of the start point
        only up to them: the chord iterations' fixed matrix, not the SE's.  ``parts``
        (optional): its genotype terms ``(v0 g) @ [1, g, cov]``, computed elsewhere.
        """
        xp = self.xp
        if parts is None:
            vg = self.g * v0
            parts = (xp.sum(vg, axis=1), xp.sum(vg * self.g, axis=1), xp.matmul(vg, self.cov))
        sg, sgg, gc = parts
        nv = sg.shape[0]
        bg = xp.concat([_c(xp, sg), gc], axis=1) if self.k else _c(xp, sg)  # (V, k+1)
        a0b = xp.broadcast_to(a0, (nv,) + a0.shape)
        top = xp.concat([a0b[:, :1, :1], _c(xp, _c(xp, sg)), a0b[:, :1, 1:]], axis=-1)
        mid = xp.concat([_r(xp, bg[:, :1]), _c(xp, _c(xp, sgg)), _r(xp, bg[:, 1:])], axis=-1)
        bot = xp.concat([a0b[:, 1:, :1], _c(xp, bg[:, 1:]), a0b[:, 1:, 1:]], axis=-1)
        return xp.concat([top, mid, bot], axis=-2)

    def take(self, idx):
        """The model restricted to variants ``idx`` (in the order of ``idx``)."""
        xp = self.xp
        return _Model(xp, xp.take(self.g, idx, axis=0), xp.take(self.w, idx, axis=0), self.y, self.cov, self.cp,
                      self._shared)

    def evaluate(self, beta, loglik: bool = True):
        """Probabilities, Hessian ``X'VX`` and (optionally) log-likelihood at ``beta``."""
        xp = self.xp
        if isinstance(self.g, np.ndarray):  # numba passes around NumPy's SIMD exp and log1p
            from popgen.kernels.assoc._irls_numba import evaluate_pass

            mu, sums = np.empty(self.g.shape), np.empty((beta.shape[0], 4))
            vv, vg = self._scratch("vv"), self._scratch("vg")
            evaluate_pass(self._cov_eta(beta), beta[:, 0], beta[:, 1], self.g, self.w, self.y, self._scratch("ex"),
                          self._scratch("lu"), mu, vv, vg, sums)
            wc = ()
            if self.k:
                vvc = self._by_cov(vv, pairs=True).T
                wc = (vvc[:, :self.k], self._by_cov(vg).T, vvc[:, self.k:])
            return mu, self._assemble(sums[:, 0], sums[:, 1], sums[:, 2], *wc), sums[:, 3] if loglik else None
        eta = self.eta(beta)
        mu, softplus = _sigmoid_softplus(xp, eta, loglik)
        ll = xp.sum(self.w * (self.y * eta - softplus), axis=1) if loglik else None
        return mu, self.gram(self.w * mu * (1.0 - mu)), ll


def _null_logistic(xp, y, w, cov):
    """Coefficients ``[intercept, 0, covariates]`` of the covariates-only logistic model over the
    samples of weight 1 in ``w``: the IRLS start of every variant (None if it does not converge).

    Newton's method converges quadratically, so where PLINK 2 starts at zero the
    fit ends at the same estimates (within its 1e-4 step criterion squared),
    in one or two fewer iterations.
    """
    f64 = xp.float64
    x = xp.concat([xp.ones((cov.shape[0], 1), dtype=f64), cov], axis=1)
    xt = xp.matrix_transpose(x)
    b = xp.zeros((x.shape[1],), dtype=f64)
    for _ in range(30):
        mu, _ = _sigmoid_softplus(xp, _matvec(xp, x, b), softplus=False)
        h = xp.matmul(xt * _r(xp, w * mu * (1.0 - mu)), x)
        inv, _, ok = _sym_inverse(xp, xp.expand_dims(h, axis=0))
        if not bool(ok[0]):
            return None
        step = _matvec(xp, inv[0, ...], xp.matmul(xt, w * (y - mu)))
        b = b + step
        if not bool(xp.all(xp.isfinite(b))) or float(xp.max(xp.abs(b))) > 30.0:
            return None
        if float(xp.max(xp.abs(step))) < 1e-8:
            return xp.concat([b[:1], xp.zeros((1,), dtype=f64), b[1:]])
    return None


def _logistic_fit(model: _Model, start=None):
    """PLINK 2's LogisticRegression(), vectorized over variants (in float64).

    ``start`` (p,): coefficients to start from (zeros, as PLINK 2, when None).
    Returns ``(beta, hessian, failed, unfinished)``; the Hessian is the one of
    the last iteration (before its update), whose inverse gives PLINK 2's SEs.
    """
    xp = model.xp
    nv, p = model.g.shape[0], model.p
    comp = _Compactor(xp, nv)
    beta = xp.zeros((nv, p), dtype=xp.float64)
    if start is not None:
        beta = beta + _r(xp, start)
    h_last = xp.zeros((nv, p, p), dtype=xp.float64)
    min_delta = xp.full((nv,), 1e9, dtype=xp.float64)
    active = xp.ones((nv,), dtype=xp.bool)
    failed = xp.zeros((nv,), dtype=xp.bool)
    unfinished = xp.zeros((nv,), dtype=xp.bool)
    for it in range(15):
        n_active = int(xp.sum(xp.astype(active, xp.int64)))
        if not n_active:
            break
        if n_active < active.shape[0] // 2:
            comp.emit(~active, [beta, h_last, failed, unfinished])
            idx, (beta, h_last, failed, unfinished, min_delta, active) = comp.keep(
                active, [beta, h_last, failed, unfinished, min_delta, active])
            model = model.take(idx)
        h, grad = model.newton_terms(beta)
        inv, _, ok = _sym_inverse(xp, h)
        dcoef = _matvec(xp, inv, grad)
        delta = xp.where(ok, xp.sum(xp.abs(dcoef), axis=-1), xp.full_like(min_delta, math.nan))
        beta = xp.where(_c(xp, active), beta - dcoef, beta)
        h_last = xp.where(_c(xp, _c(xp, active)), h, h_last)
        min_delta = xp.where(active & (delta < min_delta), delta, min_delta)
        bad = active & xp.isnan(delta)
        failed, active = failed | bad, active & ~bad
        if it > 3:
            bad = active & (((delta > 20.0) & (delta > 2.0 * min_delta))
                            | ((it > 6) & (xp.abs(1.0 - delta) < 1e-3)))
            failed, active = failed | bad, active & ~bad
            if it > 13:
                big = xp.any(xp.abs(beta) > 8e3, axis=-1)
                failed = failed | (active & big)
                unfinished = unfinished | (active & ~big)
                active = active & False
                break
        conv = active & (delta < 1e-4)
        failed = failed | (conv & xp.any(xp.abs(beta) > 6e4, axis=-1))
        active = active & ~conv
    comp.emit(xp.ones_like(active), [beta, h_last, failed, unfinished])
    return tuple(comp.result())


#: chord iterations before a variant falls back to Newton's method (PLINK 2's iteration path)
_CHORD_ITER = 10
#: chord step (sum of |changes|) after which Newton steps finish a variant.  Newton converges
#: quadratically from here, so most variants still finish in one Newton step; on the benchmark
#: cohort 1e-2 took 106,000 gradient and 113,000 Newton evaluations against 151,000 and 100,000
#: at 1e-3 (CPU 40.8 -> 37.7 s), and the SEs moved closer to PLINK 2's (80 instead of 244
#: standard fits more than 2e-5 from its SE): the Hessian is taken where its Newton path takes it
_CHORD_TOL = 1e-2
#: most Newton steps after the chord iterations (one below 1e-4, PLINK 2's criterion, ends a
#: variant; strong associations need smaller, see :func:`_logistic_chord`)
_NEWTON_STEPS = 3


def _null_weights(xp, start, m, cov, y):
    """IRLS weights ``v0 = mu0 (1 - mu0)`` and residuals ``r0 = mu0 - y`` of the null model
    ``start`` over the samples of ``m`` (0 elsewhere), and ``a0 = [1, cov]' diag(v0) [1, cov]``."""
    x = xp.concat([xp.ones((cov.shape[0], 1), dtype=xp.float64), cov], axis=1)
    mu0, _ = _sigmoid_softplus(xp, _matvec(xp, x, xp.concat([start[:1], start[2:]])), softplus=False)
    zero = xp.zeros_like(mu0)
    v0 = xp.where(m, mu0 * (1.0 - mu0), zero)
    return v0, xp.matmul(xp.matrix_transpose(x) * _r(xp, v0), x), xp.where(m, mu0 - y, zero)


def _logistic_chord(model: _Model, start, v0, a0, rows=None, grad0=None, h0=None):
    """Logistic regression from the null model by chord iterations, each variant finished by
    Newton steps; the same estimates as PLINK 2's Newton iterations (:func:`_logistic_fit`) at a
    fraction of the cost.

    Each Newton iteration needs the Hessian ``X'VX``, whose covariate block is a
    GEMM with ``k(k+1)/2`` columns over all samples; its gradient needs ``k``.
    The chord method keeps the Hessian of the start point (:meth:`_Model.chord_hessian`,
    ``k`` columns) and iterates ``beta <- beta - H0^-1 grad``, converging linearly
    to the same maximum-likelihood estimates at a rate set by how far the weights
    move, small for all but strong or rare-allele effects.  Once a step is below
    :data:`_CHORD_TOL` the variant takes Newton steps (at most :data:`_NEWTON_STEPS`);
    one below PLINK 2's 1e-4 ends it, and its Hessian (before the update, as PLINK 2
    reports) gives the SEs; strong associations take one step more, as their
    -log10 P is the most sensitive to where that Hessian is taken.  Variants that do
    not converge so (rare alleles, near-separation, singular matrices) run
    :func:`_logistic_fit` from the start,
    so error classes stay PLINK 2's.  ``rows``: fit the model's variants ``rows`` only
    (default all).  ``grad0`` (optional, one row per model variant): the gradient at ``start``
    (the first iteration's, which needs no pass over the samples: :func:`_logistic_rows`);
    ``h0`` (optional): ``model.chord_hessian(v0, a0)``.
    Returns as :func:`_logistic_fit`, for ``rows``.
    """
    xp = model.xp
    rows = xp.arange(model.g.shape[0]) if rows is None else rows
    nv, p = rows.shape[0], model.p
    f64 = xp.float64
    hinv, _, ok = _sym_inverse(xp, model.chord_hessian(v0, a0) if h0 is None else h0)
    hinv, ok = xp.take(hinv, rows, axis=0), xp.take(ok, rows)
    act = xp.nonzero(ok)[0]  # the variants iterating (positions in rows)
    beta = xp.zeros((act.shape[0], p), dtype=f64) + _r(xp, start)
    hinv = xp.take(hinv, act, axis=0)
    to_newton, fallback = [], [xp.nonzero(~ok)[0]]
    for it in range(_CHORD_ITER):
        if not act.shape[0]:
            break
        grad = (model.gradient(beta, xp.take(rows, act)) if it or grad0 is None
                else xp.take(grad0, xp.take(rows, act), axis=0))
        step = _matvec(xp, hinv, grad)
        beta = beta - step
        delta = xp.sum(xp.abs(step), axis=-1)
        conv = delta < _CHORD_TOL
        go_on = ~conv & (delta < 1e3) if it + 1 < _CHORD_ITER else conv & False  # NaN: neither
        idx = xp.nonzero(conv)[0]
        to_newton.append((xp.take(act, idx), xp.take(beta, idx, axis=0)))
        fallback.append(xp.take(act, xp.nonzero(~conv & ~go_on)[0]))
        idx = xp.nonzero(go_on)[0]
        act, beta, hinv = xp.take(act, idx), xp.take(beta, idx, axis=0), xp.take(hinv, idx, axis=0)
    comp = _Compactor(xp, nv)
    done = xp.concat([o for o, _ in to_newton]) if to_newton else act[:0]
    beta = xp.concat([b for _, b in to_newton], axis=0) if to_newton else beta
    for newton_step in range(_NEWTON_STEPS):
        if not done.shape[0]:
            break
        h, grad = model.newton_terms(beta, xp.take(rows, done))
        inv, _, okh = _sym_inverse(xp, h)
        dcoef = _matvec(xp, inv, grad)
        beta = beta - dcoef
        delta = xp.sum(xp.abs(dcoef), axis=-1)
        last = newton_step + 1 == _NEWTON_STEPS
        good = okh & (delta < 1e-4) & xp.all(xp.abs(beta) <= 6e4, axis=-1)
        # the SE comes from the Hessian before this step, ~delta from the optimum: a relative
        # error ~delta in the SE moves -log10 P by ~delta z^2 / ln 10 (PLINK 2's last steps are
        # usually far below 1e-4); strong associations take another step (to ~1e-4 in -log10 P)
        z2 = beta[:, 1] * beta[:, 1] / xp.where(inv[:, 1, 1] > 0, inv[:, 1, 1], xp.ones_like(delta))
        sharp = delta * z2 < 2e-4
        finish = good if last else good & sharp
        idx = xp.nonzero(finish)[0]
        no = xp.zeros((idx.shape[0],), dtype=xp.bool)
        comp.add(xp.take(done, idx), [xp.take(beta, idx, axis=0), xp.take(h, idx, axis=0), no, no])
        # a step above 1e-4 from a nearby start, or a strong association: another Newton step
        # (PLINK 2's own iteration)
        again = (okh & ~finish & (delta < 1e-2)) if not last else finish & False
        fallback.append(xp.take(done, xp.nonzero(~finish & ~again)[0]))
        idx = xp.nonzero(again)[0]
        done, beta = xp.take(done, idx), xp.take(beta, idx, axis=0)
    rest = xp.concat(fallback)
    if rest.shape[0]:
        comp.add(rest, list(_logistic_fit(model.take(xp.take(rows, rest)), start)))
    return tuple(comp.result())


def _firth_start(model: _Model, start):
    """(V, p) starting points of Firth's iterations: the null model ``start`` (p,) with, per
    variant, the genotype coefficient of the 1-D penalized fit over its carriers
    (:func:`~popgen.kernels.assoc._irls_numba.firth_start`; :func:`_firth_start_dense` off
    NumPy).

    From the null model itself Firth's scoring took 7-9 iterations on every rare variant
    of the benchmark cohort (its genotype coefficient has far to go, and the scoring
    map converges linearly); from here 3 for most of them, to the same estimates
    within the 1e-4 criteria.
    """
    xp = model.xp
    eta0 = start[0] + (_matvec(xp, model.cov, start[2:]) if model.k
                       else xp.zeros((model.g.shape[1],), dtype=xp.float64))  # (s,) without covariates too
    if isinstance(model.g, np.ndarray):
        from popgen.kernels.assoc._irls_numba import firth_start

        b = np.empty(model.g.shape[0])
        firth_start(np.ascontiguousarray(eta0, dtype=np.float64), model.g, model.w, model.y, b)
    else:
        b = _firth_start_dense(xp, eta0, model.g, model.w, model.y)
    nv = b.shape[0]
    return xp.concat([xp.broadcast_to(start[:1], (nv, 1)), _c(xp, b),
                      xp.broadcast_to(_r(xp, start[2:]), (nv, start.shape[0] - 2))], axis=1)


def _firth_start_dense(xp, eta0, g, w, y):
    """:func:`~popgen.kernels.assoc._irls_numba.firth_start` as array operations over every
    sample (the carriers weighted 1, others 0): the same steps, vectorized over variants."""
    f64 = xp.float64
    c = _f64(xp, (g != 0.0) & (w != 0.0))
    cg, cg2 = c * g, c * g * g
    zero = xp.zeros((g.shape[0],), dtype=f64)
    one = xp.ones_like(zero)

    def penalized(b):
        eta = _r(xp, eta0) + _c(xp, b) * g
        e = xp.exp(-xp.abs(eta))
        ll = xp.sum(c * (y * eta - (xp.where(eta > 0, eta, xp.zeros_like(eta)) + xp.log1p(e))), axis=1)
        info = xp.sum(cg2 * (e / ((1.0 + e) * (1.0 + e))), axis=1)
        return ll + 0.5 * xp.log(xp.where(info > 0, info, xp.full_like(info, math.nan)))

    b = zero
    f = penalized(b)
    active = xp.isfinite(f) & (xp.sum(c, axis=1) > 0)
    for _ in range(25):
        if not bool(xp.any(active)):
            break
        mu, _ = _sigmoid_softplus(xp, _r(xp, eta0) + _c(xp, b) * g, softplus=False)
        v = mu * (1.0 - mu)
        info = xp.sum(v * cg2, axis=1)
        info1 = xp.sum(v * (1.0 - 2.0 * mu) * cg2 * g, axis=1)
        info2 = xp.sum(v * (1.0 - 6.0 * mu + 6.0 * mu * mu) * cg2 * g * g, axis=1)
        active = active & (info > 0)
        den = xp.where(info > 0, info, one)
        u = xp.sum(cg * (y - mu), axis=1) + 0.5 * info1 / den
        curv = -info + 0.5 * (info2 / den - (info1 / den) ** 2)
        step = xp.where(curv < 0, -u / xp.where(curv < 0, curv, -one), u / den)
        step = xp.clip(step, -5.0, 5.0)
        taken = xp.zeros_like(active)
        f_new = f
        for _ in range(10):
            trial = penalized(b + step)
            ok = active & ~taken & (trial >= f)
            f_new = xp.where(ok, trial, f_new)
            taken = taken | ok
            step = xp.where(taken, step, 0.5 * step)
        active = active & taken
        b = xp.where(active, b + step, b)
        f = xp.where(active, f_new, f)
        active = active & (xp.abs(step) >= 1e-6)
    return xp.where(xp.isfinite(b), b, zero)


def _firth_fit(model: _Model, start=None):
    """PLINK 2's FirthRegression() (a port of logistf), vectorized over variants (in float64).

    ``start`` (p,) or (V, p): coefficients to start from; PLINK 2 starts at zero,
    :func:`_logistic_rows` at the null model with a 1-D genotype coefficient
    (:func:`_firth_start`; the same penalized estimates within the 1e-4 convergence
    criteria, in less than half the iterations).

    Returns ``(beta, inverse_hessian, failed, unfinished)``.
    """
    xp = model.xp
    nv, p = model.g.shape[0], model.p
    lconv = 1e-4
    f64 = xp.float64
    coef = xp.zeros((nv, p), dtype=f64)
    if start is not None:
        coef = coef + (_r(xp, start) if start.ndim == 1 else start)
    mu, h, ll = model.evaluate(coef)
    hinv, logdet, ok = _sym_inverse(xp, h)
    loglik = ll + 0.5 * logdet
    failed = ~ok
    done = ~ok
    is_last = xp.zeros((nv,), dtype=xp.bool)
    unfinished = xp.zeros((nv,), dtype=xp.bool)
    hs_bail = xp.zeros((nv,), dtype=xp.bool)
    hinv_out = hinv
    prev_d = xp.zeros((nv, p), dtype=f64)     # previous scoring step (before damping)
    prev_s = xp.zeros((nv, p), dtype=f64)     # previous step actually taken
    comp = _Compactor(xp, nv)
    for iter_idx in range(26):
        newly = ~done & is_last
        hinv_out = xp.where(_c(xp, _c(xp, newly)), hinv, hinv_out)
        done = done | newly
        act = ~done
        n_active = int(xp.sum(xp.astype(act, xp.int64)))
        if not n_active:
            break
        if n_active < act.shape[0] // 2:
            comp.emit(done, [coef, hinv_out, failed, unfinished])
            idx, (coef, mu, hinv, loglik, failed, done, is_last, unfinished, hs_bail, hinv_out, prev_d,
                  prev_s) = comp.keep(act, [coef, mu, hinv, loglik, failed, done, is_last, unfinished, hs_bail,
                                            hinv_out, prev_d, prev_s])
            model = model.take(idx)
            act = ~done
        nv = coef.shape[0]
        # modified score U* = X'(y - mu + h (1/2 - mu)), h_i = v_i x_i' H^-1 x_i
        grad = model.firth_score(mu, hinv)
        grad_max = xp.max(xp.abs(grad), axis=-1)
        dcoef = _matvec(xp, hinv, grad)
        dcoef_max = xp.max(xp.abs(dcoef), axis=-1)
        big = dcoef_max > 5.0
        dcoef = dcoef * _c(xp, xp.where(big, 5.0 / xp.where(big, dcoef_max, xp.ones_like(dcoef_max)),
                                        xp.ones_like(dcoef_max)))
        dcoef_max = xp.where(big, xp.full_like(dcoef_max, 5.0), dcoef_max)
        # Secant step length (popgen's addition to logistf): for rare variants the scoring map
        # x -> x + I^-1 U* overshoots (its Jacobian has an eigenvalue r in (-1, 0)) and converges
        # linearly, often not within 25 iterations; the secant estimate of 1 / (1 - r) along the
        # last step damps the step to the fixed point.  No change when steps do not oscillate.
        ss = xp.sum(prev_s * prev_s, axis=-1)
        curv = xp.sum((prev_d - dcoef) * prev_s, axis=-1)
        alpha = xp.where((ss > 0) & (curv > ss), ss / xp.where(curv > 0, curv, xp.ones_like(curv)),
                         xp.ones_like(ss))
        alpha = xp.where(alpha < 0.5, xp.full_like(alpha, 0.5), alpha)
        prev_d = dcoef
        dcoef = dcoef * _c(xp, alpha)
        coef_before = coef
        coef = xp.where(_c(xp, act), coef + dcoef, coef)
        converged = (dcoef_max <= 1e-4) & (grad_max < 1e-4)
        loglik_old = loglik
        thresh = loglik_old - xp.where(converged, xp.full_like(loglik, 0.999999 * lconv), xp.zeros_like(loglik))
        maxhs = xp.full((nv,), 5.0, dtype=f64)
        hs = xp.ones((nv,), dtype=f64)
        inner = act
        while bool(xp.any(inner)):
            idx = xp.nonzero(inner)[0]
            if 2 * idx.shape[0] <= nv:  # step halvings of a few variants: evaluate those only
                sub = model.take(idx).evaluate(xp.take(coef, idx, axis=0))
                mu_n, h_n, ll_n = (_scatter_rows(xp, inner, a) for a in sub)
            else:
                mu_n, h_n, ll_n = model.evaluate(coef)
            hinv_n, logdet_n, ok_n = _sym_inverse(xp, h_n)
            bad = inner & ~ok_n
            failed, done, inner = failed | bad, done | bad, inner & ~bad
            mu = xp.where(_c(xp, inner), mu_n, mu)
            hinv = xp.where(_c(xp, _c(xp, inner)), hinv_n, hinv)
            loglik = xp.where(inner, ll_n + 0.5 * logdet_n, loglik)
            stop = inner & (hs > maxhs)
            ge = loglik >= thresh
            # PLINK 2 accepts loglik >= loglik_old; strictly greater here: in double precision a
            # rare variant's scoring step can land on the mirror image of the optimum with an equal
            # penalized log-likelihood and oscillate forever, and the half step ends that.
            better = loglik > loglik_old
            accept = inner & ~stop & ge & better
            maxhs = xp.where(inner & ~stop & ge & ~better, hs, maxhs)
            bail = (inner & ~stop & ~ge & (hs == maxhs) & (dcoef_max < 1e-3) & (grad_max < 0.05)
                    & (loglik >= loglik_old - lconv))
            hs = xp.where(bail, hs - 1.0, hs)
            maxhs = xp.where(bail, maxhs - 1.0, maxhs)
            hs_bail = hs_bail | bail
            step = inner & ~stop & ~accept
            coef = xp.where(_c(xp, step), coef - dcoef * _c(xp, 2.0 ** (-hs)), coef)
            hs = xp.where(step, hs + 1.0, hs)
            inner = step
        prev_s = coef - coef_before
        change = loglik - loglik_old
        last = act & ~done & (xp.abs(change) <= lconv) & (converged | hs_bail)
        is_last = is_last | last
        if iter_idx == 24:
            unf = act & ~done & ~last
            is_last, unfinished = is_last | unf, unfinished | unf
    comp.emit(xp.ones_like(done), [coef, hinv_out, failed, unfinished])
    return tuple(comp.result())


def _on_rows(xp, rows, fn):
    """``fn(idx)`` for the indices ``idx`` of the True entries of ``rows``, its results (one row
    per index) scattered back to all rows (rows outside ``rows`` get arbitrary values).
    None when no row is selected."""
    idx = xp.nonzero(rows)[0]
    if idx.shape[0] == 0:
        return None
    out = fn(idx)
    if idx.shape[0] == rows.shape[0]:
        return tuple(out)
    return tuple(_scatter_rows(xp, rows, o) for o in out)


def _logistic_rows(xp, d, y, m, cov, cp, firth, max_corr, vif, null=None, defer_firth=False, shared=None):
    """Logistic/Firth results of one phenotype for a batch of variants: (V, 7).

    ``d``: the batch's genotypes and sums (:func:`_a1_design`).  ``null``:
    ``(start, v0, a0)`` of the null model (:func:`_null_logistic`,
    :func:`_null_weights`) for :func:`_logistic_chord`; None: PLINK 2's Newton
    iterations from zero.  ``defer_firth``: rows needing Firth regression are
    left with their FIRTH flag set and no estimate, for a later call with
    ``firth="always"`` on those rows only (Firth's iterations are many small
    array operations, cheaper over many variants at once).  ``shared``: per-phenotype arrays
    of :class:`_Model` (kept between calls).
    """
    f64 = xp.float64
    g, w, flip, wcc = d["g"], d["w"], d["flip"], d["wcc"]
    nv = g.shape[0]
    k = cov.shape[1]
    model = _Model(xp, g, w, y, cov, cp, shared)
    n, wc, wcp, n_case, wr = _split_design_sums(wcc, k, cp.shape[1])
    a1, g2, a1_case = d["gsum"][:, 0], d["gsum"][:, 1], d["gsum"][:, 2]
    # gradient at the null model: [w r0, w r0 g, w r0 cov]
    grad0 = xp.concat([wr[:, :1], d["gsum"][:, 3:4], wr[:, 1:]], axis=1) if wr.shape[1] else None
    err = xp.zeros((nv,), dtype=f64)
    err = _set_err(xp, err, n <= k + 2, E_SAMPLE_CT)
    err = _set_err(xp, err, n * g2 - a1 * a1 <= 0, E_CONST)
    # (w g) @ cov for the collinearity check and (v0 w g) @ cov for the chord iterations, one GEMM
    gc = xp.matmul(d["gw"], xp.concat([cov, cov * _c(xp, null[1])], axis=1) if null is not None else cov)
    if k:
        gram = model._assemble(n, a1, g2, wc, gc[:, :k], wcp)
        err = _corr_vif_check(xp, gram, n, err, max_corr, vif)
    h0 = model.chord_hessian(null[1], null[2], (d["gsum"][:, 4], d["gsum"][:, 5], gc[:, k:])) if null else None
    # a zero cell in the 2x2 allele table (either allele absent from cases or from controls)
    a1_zero = (a1_case == 0) | (a1_case == a1)
    other_zero = (a1_case == 2.0 * n_case) | (a1 - a1_case == 2.0 * (n - n_case))
    ok = err == 0
    beta = xp.full((nv,), math.nan, dtype=f64)
    se = xp.full((nv,), math.nan, dtype=f64)
    use_firth = xp.zeros((nv,), dtype=xp.bool)
    if firth == "always":
        use_firth, use_logistic = ok, ok & False
    else:
        need = a1_zero | other_zero
        if firth == "never":
            ref_zero = xp.where(flip, a1_zero, other_zero)
            err = xp.where(ok & need & ref_zero, xp.full_like(err, float(E_SEP_REF)), err)
            err = xp.where(ok & need & ~ref_zero, xp.full_like(err, float(E_SEP_ALT)), err)
        else:
            use_firth = ok & need
        use_logistic = ok & ~need

    def fit_logistic(idx):
        b, h, fail, unf = (_logistic_chord(model, *null, rows=idx, grad0=grad0, h0=h0) if null is not None
                           else _logistic_fit(model.take(idx)))
        hinv, _, okh = _sym_inverse(xp, h)
        return b, hinv, fail | ~okh, unf

    res = _on_rows(xp, use_logistic, fit_logistic)
    if res is not None:
        b, hinv, fail, unf = res
        fail = use_logistic & fail
        if firth == "fallback":
            use_firth = use_firth | fail
        else:
            err = _set_err(xp, err, fail, E_LOGISTIC)
        good = use_logistic & ~fail
        err = _set_err(xp, err, good & _invalid_result(xp, hinv, offdiag=False), E_INVALID)
        err = _set_err(xp, err, good & unf, E_UNFINISHED)
        beta = xp.where(good, b[:, 1], beta)
        se = xp.where(good, xp.sqrt(xp.abs(hinv[:, 1, 1])), se)

    def fit_firth(idx):
        sub = model.take(idx)
        return _firth_fit(sub, _firth_start(sub, null[0]) if null is not None else None)

    res = None if defer_firth else _on_rows(xp, use_firth, fit_firth)
    if res is not None:
        b, hinv, fail, unf = res
        err = _set_err(xp, err, use_firth & fail, E_FIRTH)
        good = use_firth & ~fail
        err = _set_err(xp, err, good & _invalid_result(xp, hinv, offdiag=True), E_INVALID)
        err = _set_err(xp, err, good & unf, E_UNFINISHED)
        beta = xp.where(good, b[:, 1], beta)
        se = xp.where(good, xp.sqrt(xp.abs(hinv[:, 1, 1])), se)
    shown = (err == 0) | (err == float(E_UNFINISHED))
    beta = xp.where(shown, beta, xp.full_like(beta, math.nan))
    se = xp.where(shown, se, xp.full_like(se, math.nan))
    return xp.stack([beta, se, n, a1, err, _f64(xp, use_firth), _f64(xp, flip)], axis=-1)


def logistic_block(alt, founders, y, mask, covariates, *, firth: str = "fallback",
                   max_corr: float = MAX_CORR, vif: float = VIF, rows: int | None = None):
    """Logistic (Firth-fallback) regression of every variant of a block on each binary phenotype.

    Parameters
    ----------
    alt : array, int8, shape (v, s)
        ALT allele counts, -1 missing; **all** samples of the cohort.
    founders : array, bool, shape (s,)
        Samples whose allele frequencies choose A1 (the minor allele).
    y : array, float, shape (s, P)
        Phenotypes coded 0 (control) / 1 (case); any value outside ``mask``.
    mask : array, bool, shape (s, P)
        Samples with the phenotype and every covariate.
    covariates : array, float64, shape (s, k)
        Any value outside the masks.
    firth : {"fallback", "always", "never"}
    rows : int, optional
        Variants per batch (bounds the (rows, s) float64 temporaries).

    Returns
    -------
    array, float64, shape (v, P, 7)
        Fields :data:`FIELDS` (BETA = log odds ratio per A1 allele).
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    f64 = xp.float64
    nv, ns = alt.shape
    fmask = _f64(xp, xp.asarray(founders))
    mask = xp.asarray(mask)
    y = xp.asarray(y, dtype=f64)
    cov = xp.asarray(covariates, dtype=f64)
    P = mask.shape[1]
    rows = rows or max(1, _LOGISTIC_BYTES // (8 * max(ns, 1)))
    out = []
    for j in range(P):
        m = mask[:, j]
        yj = xp.where(m, y[:, j], xp.zeros_like(y[:, j]))
        cj = xp.where(_c(xp, m), cov, xp.zeros_like(cov))
        cp = _pair_products(xp, cj)
        start = _null_logistic(xp, yj, _f64(xp, m), cj) if nv else None
        null, r0 = None, None
        v0 = xp.zeros_like(yj)
        if start is not None:
            v0, a0, r0 = _null_weights(xp, start, m, cj, yj)
            null = (start, v0, a0)
        cc = _design_columns(xp, m, cj, cp, yj, r0)
        mcc = xp.matmul(_f64(xp, m), cc)
        r0 = xp.zeros_like(yj) if r0 is None else r0
        shared = {}

        def fit(a, mode, defer):
            d = _a1_design(xp, a, fmask, m, yj, cc, mcc, r0, v0)
            return _logistic_rows(xp, d, yj, m, cj, cp, mode, max_corr, vif, null, defer, shared)

        # float64 genotypes of a few rows at a time (memory); Firth rows of the whole block together
        parts = [fit(alt[r0:min(nv, r0 + rows), :], firth, firth == "fallback") for r0 in range(0, nv, rows)]
        res = xp.concat(parts, axis=0) if parts else xp.zeros((0, N_FIELDS), dtype=f64)
        if firth == "fallback":
            later = (res[:, 5] == 1.0) & (res[:, 4] == 0.0)
            idx = xp.nonzero(later)[0]
            if idx.shape[0]:
                fr = [fit(xp.take(alt, idx[r0:min(r0 + rows, idx.shape[0])], axis=0), "always", False)
                      for r0 in range(0, idx.shape[0], rows)]
                res = xp.where(_c(xp, later), _scatter_rows(xp, later, xp.concat(fr, axis=0)), res)
        out.append(res)
    return xp.stack(out, axis=1)


def _design_columns(xp, m, cov, cp, y, r0=None):
    """Per-sample columns whose sums over each variant's samples (:func:`_a1_design`'s ``wcc``)
    the logistic block needs: ``[1, cov, cp, y]`` and, with the null model's residuals ``r0``,
    ``r0 [1, cov]`` (its gradient); all 0 outside ``m``.  :func:`_split_design_sums` splits them."""
    cols = [_c(xp, _f64(xp, m)), cov, cp, _c(xp, y)]
    if r0 is not None:
        cols += [_c(xp, r0), cov * _c(xp, r0)]
    return xp.concat(cols, axis=1)


def _split_design_sums(wcc, k, n_pairs):
    """:func:`_design_columns` sums ``wcc`` (V, q) as ``(n, w @ cov, w @ cp, w @ y, w r0 @ [1, cov])``
    (the last with no columns without the null model)."""
    e = k + 1 + n_pairs
    return wcc[:, 0], wcc[:, 1:k + 1], wcc[:, k + 1:e], wcc[:, e], wcc[:, e + 1:]


def _scatter_rows(xp, rows, values):
    """(n, ...) array holding ``values`` (one per True of ``rows``, in order) at the rows of
    ``rows``; other rows arbitrary."""
    pos = xp.cumulative_sum(xp.astype(rows, xp.int64)) - 1
    return xp.take(values, xp.where(pos < 0, xp.zeros_like(pos), pos), axis=0)


def _a1_design(xp, alt, fmask, m, y, cc, mcc, r, v) -> dict:
    """A1 dosages ``g`` and 0/1 weights ``w`` (samples of ``m`` with a call) of genotype rows
    ``alt``, as float64 (V, s); ``flip`` (V,) A1 is REF; ``gsum`` (V, 6) sums of ``w g``,
    ``w g^2``, ``w g y``, ``w g r``, ``w g v`` and ``w g^2 v``; ``wcc`` (V, q) ``w @ cc``
    (``mcc = m @ cc``); ``gw`` ``w g``.  ``y``, ``r``, ``v`` and ``cc`` are 0 outside ``m``.

    CPU: one numba pass (:func:`popgen.kernels.assoc._irls_numba.a1_design`; ``g``
    is 0 outside ``w`` too), ``w @ cc`` from ``mcc`` less the few missing calls.
    """
    if isinstance(alt, np.ndarray):
        from popgen.kernels.assoc._irls_numba import a1_design

        nv, ns = alt.shape
        g, w = np.empty((nv, ns)), np.empty((nv, ns))
        flip, gsum = np.empty(nv, dtype=bool), np.empty((nv, 6))
        wcc = np.repeat(np.asarray(mcc, dtype=np.float64)[None, :], nv, axis=0)
        weights = np.rint(2.0 * np.asarray(fmask, dtype=np.float64)).astype(np.int32)  # founder weights: 0, 1/2, 1
        a1_design(alt, weights, *(np.ascontiguousarray(a, dtype=np.float64)
                                                          for a in (m, y, r, v, cc)), g, w, flip, gsum, wcc)
        return dict(g=g, w=w, flip=flip, gsum=gsum, wcc=wcc, gw=g)  # g is 0 outside w
    g, called, flip = _a1_dosages(xp, alt, fmask)
    w = _f64(xp, called & _r(xp, m))
    gw = g * w
    g2w = gw * g
    gsum = xp.stack([xp.sum(gw, axis=1), xp.sum(g2w, axis=1), xp.matmul(gw, y), xp.matmul(gw, r), xp.matmul(gw, v),
                     xp.matmul(g2w, v)], axis=-1)
    return dict(g=g, w=w, flip=flip, gsum=gsum, wcc=xp.matmul(w, cc), gw=gw)


def _a1_dosages(xp, alt, fmask):
    """A1 allele dosages (float64, 0 where missing), called-mask and A1-is-REF flags of
    genotype rows: A1 is the minor allele among the samples of ``fmask`` (founders)."""
    called = alt >= 0
    g_alt = _f64(xp, xp.where(called, alt, xp.zeros_like(alt)))
    f_g = xp.matmul(g_alt, fmask)
    f_called = xp.matmul(_f64(xp, called), fmask)
    flip = (f_called > 0) & (f_g > f_called)
    return xp.where(_c(xp, flip) & called, 2.0 - g_alt, g_alt), called, flip


# ------------------------------------------------------------------ phenotypes and covariates

def _check_covariates(cov, names, pheno, max_corr=MAX_CORR, vif=VIF):
    """Constant or collinear covariates among a phenotype's samples: a PopgenError naming them."""
    n, k = cov.shape
    if not k:
        return
    const = [names[i] for i in range(k) if np.ptp(cov[:, i]) == 0]
    if const:
        raise PopgenError(f"covariate{'s' if len(const) > 1 else ''} {', '.join(const)} "
                          f"{'are' if len(const) > 1 else 'is'} constant among the {n} samples with phenotype {pheno}")
    if k < 2:
        return
    corr = np.corrcoef(cov, rowvar=False)
    for a in range(k):
        for b in range(a):
            if abs(corr[a, b]) > max_corr:
                raise PopgenError(f"covariates {names[b]} and {names[a]} are collinear (correlation "
                                  f"{corr[a, b]:.6g}) among the samples with phenotype {pheno}")
    lam, vec = np.linalg.eigh(corr)
    if lam[0] <= 1e-10:
        involved = [names[i] for i in np.flatnonzero(np.abs(vec[:, 0]) > 1e-6)]
        raise PopgenError(f"covariates {', '.join(involved)} are collinear (linearly dependent) among the "
                          f"samples with phenotype {pheno}")
    vifs = np.diag(np.linalg.inv(corr))
    high = [f"{names[i]} ({vifs[i]:.3g})" for i in np.flatnonzero(vifs > vif)]
    if high:
        raise PopgenError(f"covariates are collinear: variance inflation factor above {vif:g} for "
                          f"{', '.join(high)} among the samples with phenotype {pheno}")


def _case_control_values(name, y, m):
    """0/1 phenotype values (1/2 PLINK coding accepted) on ``m``; a PopgenError for other codes or one class."""
    vals = set(np.unique(y[m]).tolist())
    if vals <= {1.0, 2.0} and 2.0 in vals or vals == {1.0}:
        y = y - 1.0
    elif not vals <= {0.0, 1.0}:
        raise PopgenError(f"phenotype {name} is not case/control: expected 0/1 (or PLINK's 1/2) values, found "
                          f"{sorted(vals)[:5]}")
    n_case = int(y[m].sum())
    if n_case == 0 or n_case == int(m.sum()):
        which = "controls" if n_case == 0 else "cases"
        raise PopgenError(f"binary phenotype {name} has only {which} among its {int(m.sum())} samples "
                          "with covariates (0/1 or PLINK's 1/2 coding): nothing to compare")
    return y


def _design(ds, phenotypes: Mapping, covariates, covariate_names, *, binary: bool, min_samples: int,
            founders=None, max_corr=MAX_CORR, vif=VIF, check_covariates: bool = True) -> _Design:
    from popgen.genotypes import founder_mask

    n = ds.sizes["samples"]
    cov = np.zeros((n, 0)) if covariates is None else np.asarray(covariates, dtype=np.float64)
    if cov.ndim == 1:
        cov = cov[:, None]
    if cov.shape[0] != n:
        raise PopgenError(f"covariates have {cov.shape[0]} rows for {n} samples")
    k = cov.shape[1]
    names = list(covariate_names) if covariate_names is not None else [f"COVAR{i + 1}" for i in range(k)]
    if len(names) != k:
        raise PopgenError(f"{len(names)} covariate names for {k} covariate columns")
    cov_ok = np.all(np.isfinite(cov), axis=1)
    need = max(int(min_samples), k + 3)
    kept, ys, masks, skipped = [], [], [], {}
    if not phenotypes:
        raise PopgenError("no phenotype given")
    for name, values in phenotypes.items():
        y = np.asarray(values, dtype=np.float64).reshape(-1)
        if y.shape[0] != n:
            raise PopgenError(f"phenotype {name} has {y.shape[0]} values for {n} samples")
        m = np.isfinite(y) & cov_ok
        if int(m.sum()) < need:
            reason = (f"only {int(m.sum())} samples with the phenotype and every covariate "
                      f"(at least {need} needed)")
            log.warning("phenotype %s skipped: %s", name, reason)
            skipped[name] = reason
            continue
        if binary:
            y = _case_control_values(name, y, m)
        if check_covariates:
            _check_covariates(cov[m], names, name, max_corr, vif)
        kept.append(str(name))
        ys.append(np.where(m, y, 0.0))
        masks.append(m)
    if not kept:
        raise PopgenError("no phenotype has enough samples: " + "; ".join(f"{k_}: {v}" for k_, v in skipped.items()))
    if founders is None:
        founders = founder_mask(ds)
    founders = np.asarray(founders)  # bool, or float weights (chrX: males' alleles count once)
    founders = founders.astype(np.float64 if founders.dtype.kind == "f" else bool)
    if not founders.any():
        founders = np.ones(n, dtype=bool)
    return _Design(kept, np.stack(ys, axis=1), np.stack(masks, axis=1), np.where(np.isfinite(cov), cov, 0.0),
                   names, founders, skipped)


@dataclasses.dataclass
class PhenoData:
    """Phenotypes and covariates read from PLINK 2 style tables, aligned to a cohort's samples.

    Attributes
    ----------
    values : dict[str, ndarray]
        float64 (samples,) per phenotype, NaN missing; case/control phenotypes coded 0/1.
    binary : dict[str, bool]
        Case/control (True) or quantitative.
    covariates : ndarray or None
        float64 (samples, k), NaN missing; categorical covariates expanded to indicators.
    covariate_names : list[str]
    skipped : dict[str, str]
        Requested phenotypes left out, with the reason.
    """

    values: dict
    binary: dict
    covariates: np.ndarray | None
    covariate_names: list
    skipped: dict
    pheno_path: str | None = None
    covar_path: str | None = None

    def quantitative(self) -> dict:
        return {k: v for k, v in self.values.items() if not self.binary[k]}

    def case_control(self) -> dict:
        return {k: v for k, v in self.values.items() if self.binary[k]}


def column_list(names, columns, path=None) -> list[str]:
    """PLINK's column lists (``--pheno-name``, ``--covar-name``): names separated by commas or
    whitespace, ``FIRST-LAST`` for the columns from FIRST to LAST in ``columns``' order (e.g.
    ``SEX,PC1-PC10``).  A name that is itself a column is that column; names that are neither
    are kept (the caller's error names them); a range whose LAST comes before FIRST is an error."""
    names = [names] if isinstance(names, str) else list(names)
    out = []
    for name in (part for n in names for part in n.replace(",", " ").split()):
        if name in columns:
            out.append(name)
            continue
        ends = [(name[:i], name[i + 1:]) for i, c in enumerate(name) if c == "-"]
        ends = [(a, b) for a, b in ends if a in columns and b in columns]
        if len(ends) != 1:  # not a range of these columns (or ambiguous): the caller names it
            out.append(name)
            continue
        first, last = columns.index(ends[0][0]), columns.index(ends[0][1])
        if last < first:
            raise PopgenError(f"column range {name}: {ends[0][1]} comes before {ends[0][0]}", path)
        out.extend(columns[first:last + 1])
    return out


def _select_columns(table, names, path, what):
    cols = [c for c in table.columns if c not in ("FID", "IID")]
    if names is None:
        return cols
    names = column_list(names, cols, path)
    for name in names:
        if name not in cols:
            raise PopgenError(f"no {what} column {name!r} (columns: {', '.join(cols) or 'none'})", path)
    return names


def _first_other(y, case_control_01):
    """The first value of ``y`` that is not a case/control code (for the error message)."""
    codes = {0.0, 1.0} if case_control_01 else {0.0, 1.0, 2.0}
    return next(v for v in y[np.isfinite(y)].tolist() if v not in codes)


def load_phenotypes(ds, pheno_path, names=None, covar_path=None, covar_names=None, *,
                    case_control_01: bool = False, model: str = "auto",
                    min_samples: int = MIN_SAMPLES) -> PhenoData:
    """Read phenotypes and covariates as ``plink2 --pheno --pheno-name --covar --covar-name`` do.

    Parameters
    ----------
    ds : xarray.Dataset
        The cohort (``sample_id``, and ``sample_family_id`` to match FID too).
    pheno_path : path
        Phenotype table (``#FID IID ...``, ``#IID ...`` or headerless, see
        :func:`popgen.io.read_table`); ``NA``, ``nan``, ``-9``, ``.`` missing.
    names : str or list of str, optional
        Phenotype columns (default: all), as PLINK 2's ``--pheno-name``: separated by commas
        or spaces, ``FIRST-LAST`` ranges in file order (:func:`column_list`).
    covar_path : path or list of paths, optional
        Covariate table(s), e.g. ``popgen pca``'s ``OUT.eigenvec`` (``#FID IID
        PC1 ...``) as it is, or a table of SEX, AGE, ... and the eigenvec
        together (several files are joined by sample ID; PLINK 2 takes one).
    covar_names : str or list of str, optional
        Covariate columns (default: all columns of all covariate files), as PLINK 2's
        ``--covar-name`` (e.g. ``SEX,AGE,PC1-PC10``; ranges in the files' column order).
    case_control_01 : bool
        PLINK 2's ``--1``: case/control phenotypes coded 0 = control, 1 = case.
        Default: PLINK's 1 = control, 2 = case, 0 missing.  A phenotype is
        case/control when all its values are such codes; otherwise quantitative.
    model : {"auto", "linear", "logistic"}
        ``auto``: logistic regression for the case/control phenotypes, linear for the
        others (PLINK 2's ``--glm``).  ``logistic``: every phenotype must be
        case/control (an error names the first that is not).  ``linear``: case/control
        phenotypes too are scanned by linear regression, on their 0/1 codes.
    min_samples : int
        Phenotypes with fewer samples (with every covariate) are skipped with a warning.

    Categorical (non-numeric) covariates become indicator columns ``NAME=LEVEL``
    for every level but the most common one (PLINK 2's rule).  Errors (one line
    naming the file): a missing named column, a non-numeric phenotype, a
    case/control phenotype with one class, no sample ID in common with the
    cohort, an all-missing phenotype when it is the only one requested.
    """
    from popgen.io.pheno import match_samples, parse_numbers, read_table, sample_rows

    n = ds.sizes["samples"]
    table = read_table(pheno_path, numeric="auto")
    cols = _select_columns(table, names, pheno_path, "phenotype")
    if not cols:
        raise PopgenError("no phenotype column", pheno_path)
    rows = sample_rows(table, ds, pheno_path, what="phenotype")  # each column read in the table's order
    absent = rows < 0
    take = np.where(absent, 0, rows)
    values, binary, skipped = {}, {}, {}
    for col in cols:
        if table[col].dtype != np.float64:
            raise PopgenError(f"phenotype {col} is not numeric (value {parse_numbers(table[col].tolist())[1]!r})",
                              pheno_path)
        y = np.where(absent, np.nan, table[col].to_numpy()[take])
        present = np.isfinite(y)
        v = y[present]
        # the set of values only where it can be a case/control coding (a set of 10,000 floats per
        # column was a fifth of reading 100 phenotypes)
        vals = set(np.unique(v).tolist()) if ((v == 0.0) | (v == 1.0) | (v == 2.0)).all() else {math.nan}
        if case_control_01:
            is_cc = bool(vals) and vals <= {0.0, 1.0}
            yy = y
        else:
            is_cc = bool(vals) and vals <= {0.0, 1.0, 2.0} and bool(vals - {0.0})
            yy = np.where(y == 0.0, np.nan, y - 1.0)
        informative = vals - (set() if case_control_01 else {0.0})  # values other than missing codes
        if model == "logistic" and informative and not is_cc:  # (all missing: the error below)
            coding = "0/1 (--1)" if case_control_01 else "1/2, or 0/1 with --1"
            raise PopgenError(f"--logistic: phenotype {col} is not case/control (value "
                              f"{_first_other(y, case_control_01):g}; case/control codes are {coding})",
                              pheno_path)
        if not np.isfinite(yy if is_cc else y).any():
            if len(cols) == 1:
                raise PopgenError(f"phenotype {col} has no non-missing value", pheno_path)
            log.warning("%s: phenotype %s has no non-missing value; skipped", pheno_path, col)
            skipped[col] = "no non-missing value"
            continue
        if is_cc:
            y = yy
            n_case = int(np.nansum(y))
            n_obs = int(np.isfinite(y).sum())
            if n_case in (0, n_obs):
                hint = "" if case_control_01 else "; 0/1 coding needs case_control_01 (plink2 --1)"
                raise PopgenError(f"case/control phenotype {col} has only {'controls' if n_case == 0 else 'cases'} "
                                  f"({n_obs} samples){hint}", pheno_path)
        values[col] = y
        binary[col] = is_cc and model != "linear"
    cov, cov_names = None, []
    covar_paths = [] if covar_path is None else (
        [covar_path] if isinstance(covar_path, (str, os.PathLike)) else list(covar_path))
    if covar_paths:
        tables = []
        for path in covar_paths:
            ctable = read_table(path, numeric="auto")
            tables.append((path, ctable, match_samples(ctable, ds, path, what="covariate")))
        available = {}
        for path, ctable, _ in tables:
            for col in _select_columns(ctable, None, path, "covariate"):
                if col in available:
                    raise PopgenError(f"covariate column {col} is in both {available[col]} and {path}", path)
                available[col] = path
        wanted = list(available) if covar_names is None else column_list(covar_names, list(available), covar_paths[0])
        for col in wanted:
            if col not in available:
                where = covar_paths[0] if len(covar_paths) == 1 else ", ".join(map(str, covar_paths))
                raise PopgenError(f"no covariate column {col!r} (columns: {', '.join(available) or 'none'})", where)
        aligned_by_path = {str(path): caligned for path, _, caligned in tables}
        parts = []
        for col in wanted:
            column = aligned_by_path[str(available[col])][col]
            if column.dtype == np.float64:
                parts.append(column.to_numpy()[:, None])
                cov_names.append(col)
                continue
            tokens = [t if t.__class__ is str else None for t in column.tolist()]  # NaN: sample not in the file
            levels = [t for t in tokens if t is not None]
            uniq, counts = np.unique(np.array(levels, dtype=object).astype(str), return_counts=True)
            omitted = uniq[np.argmax(counts)]  # the most common level (first in sorted order on ties)
            present = np.array([t is not None for t in tokens])
            for level in uniq:
                if level == omitted:
                    continue
                ind = np.array([1.0 if t == level else 0.0 for t in tokens])
                ind[~present] = np.nan
                parts.append(ind[:, None])
                cov_names.append(f"{col}={level}")
        cov = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
        ok = np.all(np.isfinite(cov), axis=1)
        const = [cov_names[i] for i in range(cov.shape[1]) if ok.any() and np.ptp(cov[ok, i]) == 0]
        if const:
            raise PopgenError(f"covariate{'s' if len(const) > 1 else ''} {', '.join(const)} "
                              f"{'are' if len(const) > 1 else 'is'} constant", covar_paths[0])
    k = 0 if cov is None else cov.shape[1]
    cov_ok = np.ones(n, dtype=bool) if cov is None else np.all(np.isfinite(cov), axis=1)
    need = max(int(min_samples), k + 3)
    for col in list(values):
        n_used = int((np.isfinite(values[col]) & cov_ok).sum())
        if n_used < need:
            reason = f"only {n_used} samples with the phenotype and every covariate (at least {need} needed)"
            log.warning("phenotype %s skipped: %s", col, reason)
            skipped[col] = reason
            del values[col], binary[col]
    if not values:
        raise PopgenError("no phenotype left to analyse: " + "; ".join(f"{k_}: {v}" for k_, v in skipped.items()),
                          pheno_path)
    return PhenoData(values, binary, cov, cov_names, skipped, str(pheno_path),
                     ", ".join(map(str, covar_paths)) or None)


# ------------------------------------------------------------------ scans

@dataclasses.dataclass
class ChunkResult:
    """Results of one chunk of variants ``[start, stop)``: per phenotype a dict of numpy columns
    (``BETA``, ``SE``, ``STAT``, ``LNP``, ``P``, ``OBS_CT``, ``A1_CT``, ``A1_FREQ``,
    ``A1_IS_REF``, ``ERRCODE`` (int index into :data:`ERRCODES`), ``FIRTH``)."""

    start: int
    stop: int
    columns: dict


@dataclasses.dataclass
class AssociationScan:
    """A lazy association scan: per-variant results for several phenotypes.

    ``fields`` is a Dask array (variants, phenotypes, 7), chunked along
    variants; :meth:`iter_chunks` computes it a few chunks at a time, in order.
    """

    ds: object
    kind: str                 # "linear" or "logistic"
    phenotypes: list
    fields: object
    n_predictors: object      # intercept, genotype and covariates: int, or (variants, phenotypes) ints
    covariate_names: list
    n_samples: dict
    n_cases: dict
    skipped: dict
    missing: str = "drop"
    firth: str | None = None
    #: haploid contig (chrY, MT): genotypes coded 0/2 in the data are analysed as PLINK 2's
    #: haploid dosages 0/1 -- the same fit with BETA and SE doubled (Z/T and P unchanged)
    haploid: bool = False
    #: per phenotype, ALT allele frequencies (variants,) among its samples that replace
    #: ``A1_CT / (2 OBS_CT)`` as ``A1_FREQ`` (chrX: a male's call is one allele, :func:`gwas`)
    alt_freq: dict | None = None

    @property
    def extension(self) -> str:
        """PLINK 2's file extension: glm.linear, glm.logistic.hybrid, glm.logistic or glm.firth."""
        if self.kind == "linear":
            return "glm.linear"
        return {"fallback": "glm.logistic.hybrid", "never": "glm.logistic", "always": "glm.firth"}[self.firth]

    def iter_chunks(self, compute=None, batch: int | None = None) -> Iterator[ChunkResult]:
        """Compute ``batch`` variant chunks at a time (in parallel) and yield them in order.

        The next batch is computed (on a background thread) while the caller
        consumes the current one, so writing results overlaps the scan; at most
        two batches are held.  Default ``batch``: as many chunks as hold
        :data:`_RESULT_BYTES` of results, 4 to 32 (each batch ends with threads
        idle while its last chunks finish: 40.9 s at 8 chunks, 36-39 s at 32 for
        a logistic scan of 100,000 variants on 2 cores).
        """

        from popgen.backend import computed_ahead, to_cpu

        compute = compute or _backend.compute
        fields = self.fields
        bounds = np.concatenate([[0], np.cumsum(fields.chunks[0])]).astype(int)
        n_blocks = len(fields.chunks[0])
        if batch is None:
            per_chunk = 8 * max(fields.chunks[0], default=1) * int(np.prod(fields.shape[1:]))
            batch = min(32, max(4, _RESULT_BYTES // max(1, per_chunk)))
        step = max(1, int(batch))
        batches = [range(b0, min(n_blocks, b0 + step)) for b0 in range(0, n_blocks, step)]
        results = computed_ahead(compute, ([fields.blocks[i] for i in idx] for idx in batches))
        for idx, arrays in zip(batches, results):
            for i, arr in zip(idx, arrays):
                yield self._chunk(int(bounds[i]), int(bounds[i + 1]), np.asarray(to_cpu(arr)))

    def _chunk(self, start, stop, arr) -> ChunkResult:
        # every phenotype's columns at once ((variants, phenotypes) arrays, phenotype-major so that
        # each phenotype's column is contiguous), then one view per phenotype: with 100 phenotypes
        # a dozen array calls per chunk instead of a dozen per phenotype
        f = np.ascontiguousarray(np.moveaxis(arr, 1, 0))  # (phenotypes, variants, fields)
        beta, se, n, a1 = (np.ascontiguousarray(f[:, :, i]) for i in range(4))
        if self.haploid:
            beta, se = 2.0 * beta, 2.0 * se
        err = f[:, :, 4].astype(np.int64)
        npred = self.n_predictors
        if np.ndim(npred):  # per variant and phenotype (federated: sites absent at a variant; read by rows)
            npred = np.asarray(npred[start:stop]).T
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = beta / se
            lnp = _t_lnp(stat, n - npred) if self.kind == "linear" else _z_lnp(stat)
            freq = a1 / (2.0 * n)
        p, obs, a1_is_ref, firth = np.exp(lnp), n.astype(np.int64), f[:, :, 6] > 0.5, f[:, :, 5] > 0.5
        for j, name in enumerate(self.phenotypes if self.alt_freq else ()):
            if name in self.alt_freq:
                alt = self.alt_freq[name][start:stop]
                freq[j] = np.where(a1_is_ref[j], 1.0 - alt, alt)
        cols = {name: {"BETA": beta[j], "SE": se[j], "STAT": stat[j], "LNP": lnp[j], "P": p[j], "OBS_CT": obs[j],
                       "A1_CT": a1[j], "A1_FREQ": freq[j], "A1_IS_REF": a1_is_ref[j], "ERRCODE": err[j],
                       "FIRTH": firth[j]}
                for j, name in enumerate(self.phenotypes)}
        return ChunkResult(start, stop, cols)

    def collect(self, compute=None, batch: int | None = None) -> dict:
        """All results as one pandas DataFrame per phenotype (for small cohorts and tests).

        Columns: ``#CHROM POS ID REF ALT A1 [FIRTH?] OBS_CT BETA [OR] SE T_STAT|Z_STAT P
        LOG10_P ERRCODE A1_FREQ`` (BETA is the log odds ratio for logistic scans).
        """
        import pandas as pd

        parts = {name: [] for name in self.phenotypes}
        for chunk in self.iter_chunks(compute, batch):
            meta = _variant_meta(self.ds, chunk.start, chunk.stop)
            for name in self.phenotypes:
                parts[name].append(pd.DataFrame(_table(meta, chunk.columns[name], self.kind)))
        return {name: pd.concat(p, ignore_index=True) if p else pd.DataFrame() for name, p in parts.items()}


#: Hill's expansion of the t test's p-value (:func:`_hill_lnp`) is used from this many degrees of
#: freedom on, for ``t^2`` up to ``_HILL_T2 * df``: there its ln P is within 5e-12 of
#: ``scipy.special.stdtr``'s (and of :func:`_ln_betainc` beyond double's range), in a third of the time
_HILL_DF = 1000.0
_HILL_T2 = 0.16


def _t_lnp(t, df):
    """ln of the two-sided t-test p-value, accurate far into the tail."""
    from scipy import special

    t = np.abs(np.asarray(t, dtype=np.float64))
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        hill = (df >= _HILL_DF) & (t * t <= _HILL_T2 * df)  # False for NaN t
        if hill.all():
            return _hill_lnp(t, df)
        lnp = np.full(t.shape, np.nan)
        lnp[hill] = _hill_lnp(t[hill], df[hill])
        rest = ~hill & np.isfinite(t)
        t, df = t[rest], df[rest]
        p = 2.0 * special.stdtr(df, -t)
        ln_rest = np.log(p)
        tail = (p < 1e-300) & (df > 0)
        if tail.any():  # p = I_x(df/2, 1/2), x = df / (df + t^2), in logs
            d, tt = df[tail], t[tail]
            ln_rest[tail] = _ln_betainc(d / 2.0, 0.5, d / (d + tt * tt))
        lnp[rest] = ln_rest
    return lnp


def _hill_lnp(t, df):
    """ln of the two-sided t-test p-value by Hill's normal approximation with its 1/df
    expansion (G. W. Hill, Algorithm 395: Student's t-distribution, CACM 13, 617, 1970):
    ``P = 2 Phi(-z)``, ``z`` a polynomial in ``y = (df - 1/2) ln(1 + t^2/df)``.  Accurate
    for large ``df`` and moderate ``t^2 / df`` (see ``_HILL_DF``); 60 ns per value against
    200 for ``stdtr``, and in logs throughout (no underflow)."""
    from scipy import special

    a = df - 0.5
    b = 48.0 * a * a
    y = a * np.log1p(t * t / df)
    z = (((((-0.4 * y - 3.3) * y - 24.0) * y - 85.5) / (0.8 * y * y + 100.0 + b) + y + 3.0) / b + 1.0) * np.sqrt(y)
    return np.log(2.0) + special.log_ndtr(-z)


def _ln_betainc(a, b, x, max_iter: int = 10_000):
    """ln I_x(a, b) where it underflows: its prefactor in logs times Lentz's
    continued fraction (Numerical Recipes 6.4; converges for x < (a+1)/(a+b+2),
    where the t-test's tail lies).  The prefactor alone is off by the fraction,
    a factor of 7 at t = 39 with 9,700 degrees of freedom."""
    from scipy import special

    a, x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(x, np.float64))
    tiny, eps = 1e-300, 1e-15
    c = np.ones_like(x)
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    todo = np.ones(x.shape, dtype=bool)
    for m in range(1, max_iter + 1):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + num / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = np.where(todo, c * d, 1.0)
            h = h * step
        todo &= np.abs(step - 1.0) > eps
        if not todo.any():
            break
    return a * np.log(x) + b * np.log1p(-x) - np.log(a) - special.betaln(a, b) + np.log(h)


def _z_lnp(z):
    """ln of the two-sided normal p-value."""
    from scipy import special

    z = np.abs(np.asarray(z, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        out = math.log(2.0) + special.log_ndtr(-z)
    out[~np.isfinite(z)] = np.nan
    return out


def linear_scan(ds, phenotypes: Mapping, covariates=None, *, covariate_names=None, missing: str = "drop",
                founders=None, max_corr: float = MAX_CORR, vif: float = VIF, min_samples: int = MIN_SAMPLES,
                dtype: str = "float32") -> AssociationScan:
    """Linear regression of each quantitative phenotype on each variant (``plink2 --glm`` for
    quantitative traits), lazily.

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype`` (Dask, NumPy or CuPy blocks; any chunking).
    phenotypes : dict[str, array_like]
        float (samples,) per phenotype, NaN missing.
    covariates : array_like, float, shape (samples, k), optional
        NaN missing (the sample is dropped for every phenotype).
    covariate_names : list of str, optional
        Names for error messages.
    missing : {"drop", "mean"}
        ``"drop"`` (default): PLINK 2's per-variant exclusion of missing calls,
        exact; ``"mean"``: mean imputation, tensorQTL-style (see module docs).
    founders : array_like of bool, optional
        Samples whose allele frequencies choose A1 (default: founders, as PLINK 2).
    dtype : str
        GEMM precision of the ``"mean"`` path (the exact path is float64).

    Returns
    -------
    AssociationScan
    """
    import dask.array as da

    from popgen.genotypes import alt_allele_count

    if missing not in ("drop", "mean"):
        raise PopgenError(f"unknown missing-call handling {missing!r}: use drop or mean")
    design = _design(ds, phenotypes, covariates, covariate_names, binary=False, min_samples=min_samples,
                     founders=founders, max_corr=max_corr, vif=vif)
    alt = alt_allele_count(ds)
    P, k = design.mask.shape[1], design.covariates.shape[1]
    s_chunks = alt.chunks[1]
    xp_meta = alt._meta

    def samplewise(a):
        return da.from_array(a, chunks=(s_chunks, a.shape[1]))

    from popgen.backend import namespace

    xp = namespace(xp_meta)
    meta3 = xp.empty((0, 0, 0), dtype=xp.float64)
    if missing == "drop":
        fields = _exact_linear_fields(alt, design, max_corr=max_corr, vif=vif)
    else:
        w, wsq, y_ss = meanimpute_weights(design)
        q = 2 * w.shape[1] + wsq.shape[1]
        parts = da.blockwise(_meanimpute_partial, "vsq", alt, "vs", samplewise(w), "sa", samplewise(wsq), "sb",
                             new_axes={"q": q}, adjust_chunks={"s": 1}, dtype=np.float64, meta=meta3,
                             concatenate=True, gemm_dtype=dtype)
        sums = parts.sum(axis=1)
        fields = sums.map_blocks(meanimpute_finalize_block, y_ss, np.asarray(list(design.n_used.values()), float),
                                 n_pheno=P, n_cov=k, n_samples=ds.sizes["samples"],
                                 n_founders=float(design.founders.sum()), vif=vif,
                                 new_axis=2, chunks=(sums.chunks[0], (P,), (N_FIELDS,)), dtype=np.float64,
                                 meta=meta3)
    return AssociationScan(ds, "linear", design.names, fields, k + 2, design.covariate_names, design.n_used, {},
                           design.skipped, missing=missing)


def linear_sums(ds, design: _Design):
    """Lazy sufficient statistics of the exact linear scan: ``(sums, totals)``, ``sums`` a Dask
    array (variants, q) of :func:`linear_partial_block` summed over sample chunks (variant
    chunks as the cohort's), ``totals`` the full-sample column sums (:func:`linear_design`)."""
    import dask.array as da

    from popgen.backend import namespace
    from popgen.genotypes import alt_allele_count

    alt = alt_allele_count(ds)
    s_chunks = alt.chunks[1]
    P, k = design.mask.shape[1], design.covariates.shape[1]
    K = k + 1
    c, y, f, totals = linear_design(design)
    q = (1 + P * (K + 1)) + P + (P * (K * (K + 1) // 2 + K + 1) + 1)
    xp = namespace(alt._meta)
    parts = da.blockwise(linear_partial_block, "vsq", alt, "vs", da.from_array(c, chunks=(s_chunks, P, K)), "sab",
                         da.from_array(y, chunks=(s_chunks, P)), "sa", da.from_array(f, chunks=(s_chunks,)), "s",
                         new_axes={"q": q}, adjust_chunks={"s": 1}, dtype=np.float64,
                         meta=xp.empty((0, 0, 0), dtype=xp.float64), concatenate=True)
    return parts.sum(axis=1), totals


#: bytes of the per-sample weight columns of one pass of the exact linear scan (more phenotypes
#: with distinct sample sets: several passes over the genotypes)
_LINEAR_WEIGHT_BYTES = 256 * 2**20
#: bytes of one block of sufficient statistics (variants x columns, float64)
_LINEAR_SUMS_BYTES = 16 * 2**20


def _exact_linear_fields(alt, design: _Design, *, max_corr: float = MAX_CORR, vif: float = VIF):
    """Lazy (variants, P, 7) fields of the exact linear scan.

    Phenotypes sharing a sample set are grouped (their covariate sums are
    computed once); one pass over the genotypes per batch of groups whose
    weight columns fit :data:`_LINEAR_WEIGHT_BYTES`; variant chunks are split
    so a block of sufficient statistics stays within :data:`_LINEAR_SUMS_BYTES`.
    """
    import array_api_compat.numpy as xnp
    import dask.array as da

    from popgen.backend import namespace

    n, P = design.mask.shape
    k = design.covariates.shape[1]
    K = k + 1
    xp = namespace(alt._meta)
    meta3 = xp.empty((0, 0, 0), dtype=xp.float64)
    s_chunks = alt.chunks[1]
    batches, cur, width = [], [], 0
    for g in _sample_set_groups(design.mask):
        w = K * (K + 1) // 2 + len(g) * (K + 1)
        if cur and 8 * n * (width + w) > _LINEAR_WEIGHT_BYTES:
            batches.append(cur)
            cur, width = [], 0
        cur.append(g)
        width += w
    batches.append(cur)
    parts = []
    for batch in batches:
        c, y, sizes, f = _grouped_design(design, batch)
        totals = _grouped_totals(c, y, sizes, f)
        wg, wg2 = (np.asarray(w) for w in _grouped_columns(xnp, c, y, sizes, f, with_wo=False)[:2])
        q = wg.shape[1] + wg2.shape[1] + totals.shape[0]
        rows = max(64, _LINEAR_SUMS_BYTES // (8 * q))
        a = alt.rechunk({0: rows}) if max(alt.chunks[0]) > rows else alt
        sw = [da.from_array(w, chunks=(s_chunks,) + w.shape[1:]) for w in (wg, wg2, c, y, f)]
        sums = da.blockwise(_grouped_sums_block, "vsq", a, "vs", sw[0], "sa", sw[1], "sb", sw[2], "sgk",
                            sw[3], "sp", sw[4], "s", new_axes={"q": q}, adjust_chunks={"s": 1}, dtype=np.float64,
                            meta=meta3, concatenate=True, sizes=tuple(sizes)).sum(axis=1)
        order = np.concatenate(batch)
        single = len(batches) == 1 and not np.array_equal(order, np.arange(P))
        inverse = np.argsort(order) if single else None  # several batches: put in order below
        fields = sums.map_blocks(_grouped_finalize_block, totals, sizes=sizes, inverse=inverse, n_cov=k,
                                 n_founders=float(design.founders.sum()), max_corr=max_corr, vif=vif,
                                 new_axis=2, chunks=(sums.chunks[0], (len(order),), (N_FIELDS,)),
                                 dtype=np.float64, meta=meta3)
        parts.append((order, fields))
    if len(parts) == 1:
        return parts[0][1]
    order = np.concatenate([o for o, _ in parts])
    fields = da.concatenate([fl.rechunk({0: parts[0][1].chunks[0]}) for _, fl in parts], axis=1)
    return fields[:, np.argsort(order), :]


def _meanimpute_partial(alt, w, wsq, gemm_dtype="float32"):
    return meanimpute_partial_block(alt, w, wsq, dtype=gemm_dtype)


def logistic_scan(ds, phenotypes: Mapping, covariates=None, *, covariate_names=None, firth: str = "fallback",
                  founders=None, max_corr: float = MAX_CORR, vif: float = VIF,
                  min_samples: int = MIN_SAMPLES) -> AssociationScan:
    """Logistic regression with Firth fallback of each case/control phenotype on each variant
    (``plink2 --glm firth-fallback``), lazily.

    Parameters
    ----------
    phenotypes : dict[str, array_like]
        Per phenotype (samples,) coded 0/1 (or PLINK's 1/2), NaN missing.
    firth : {"fallback", "always", "never"}
        PLINK 2's ``firth-fallback`` (default), ``firth``, ``no-firth``.

    Other parameters as :func:`linear_scan`.  Samples are rechunked to one
    chunk (a variant's regression needs all its samples); variant chunks are
    capped at about 8 MB of genotypes (:data:`_LOGISTIC_BLOCK_BYTES`).
    """
    import dask.array as da

    from popgen.backend import namespace
    from popgen.genotypes import alt_allele_count

    if firth not in ("fallback", "always", "never"):
        raise PopgenError(f"unknown Firth mode {firth!r}: use fallback, always or never")
    design = _design(ds, phenotypes, covariates, covariate_names, binary=True, min_samples=min_samples,
                     founders=founders, max_corr=max_corr, vif=vif)
    alt = alt_allele_count(ds)
    n = alt.shape[1]
    rows = max(16, min(alt.chunks[0][0] if alt.chunks[0] else 16, _LOGISTIC_BLOCK_BYTES // max(1, n)))
    alt = alt.rechunk({0: rows, 1: -1})
    P = design.mask.shape[1]
    xp = namespace(alt._meta)

    def one(a):
        return da.from_array(a, chunks=(n,) + a.shape[1:]) if a.ndim > 1 else da.from_array(a, chunks=(n,))

    fields = da.blockwise(_logistic_task, "vpf", alt, "vs", one(design.founders), "s", one(design.y), "sa",
                          one(design.mask), "sb", one(design.covariates), "sc",
                          new_axes={"p": P, "f": N_FIELDS}, dtype=np.float64, concatenate=True,
                          meta=xp.empty((0, 0, 0), dtype=xp.float64), firth=firth, max_corr=max_corr, vif=vif)
    n_cases = {name: int(design.y[:, j][design.mask[:, j]].sum()) for j, name in enumerate(design.names)}
    return AssociationScan(ds, "logistic", design.names, fields, design.covariates.shape[1] + 2,
                           design.covariate_names, design.n_used, n_cases, design.skipped, firth=firth)


def _logistic_task(alt, founders, y, mask, covariates, firth="fallback", max_corr=MAX_CORR, vif=VIF):
    with np.errstate(all="ignore"):
        return logistic_block(alt, founders, y, mask, covariates, firth=firth, max_corr=max_corr, vif=vif)


# ------------------------------------------------------------------ tables and writers

def _variant_meta(ds, start, stop) -> dict:
    from popgen.io.reports import variant_columns

    sub = ds.isel(variants=slice(start, stop))
    cols = variant_columns(sub)
    cols["POS"] = np.asarray(sub["variant_position"].values).astype(np.int64)
    return cols


def _table(meta, res, kind) -> dict:
    """Result columns of one phenotype for a chunk, as :meth:`AssociationScan.collect` returns them."""
    a1_ref = res["A1_IS_REF"]
    out = {"#CHROM": meta["#CHROM"], "POS": meta["POS"], "ID": meta["ID"], "REF": meta["REF"], "ALT": meta["ALT"],
           "A1": np.where(a1_ref, meta["REF"], meta["ALT"])}
    if kind == "logistic":
        out["FIRTH?"] = np.where(res["FIRTH"], "Y", "N")
    out["OBS_CT"] = res["OBS_CT"]
    out["BETA"] = res["BETA"]
    if kind == "logistic":
        with np.errstate(over="ignore"):
            out["OR"] = np.exp(res["BETA"])
    out["SE"] = res["SE"]
    out["T_STAT" if kind == "linear" else "Z_STAT"] = res["STAT"]
    out["P"] = res["P"]
    out["LOG10_P"] = -res["LNP"] / math.log(10.0)
    out["ERRCODE"] = np.asarray(ERRCODES, dtype=object)[res["ERRCODE"]]
    out["A1_FREQ"] = res["A1_FREQ"]
    return out


def _fmt_lnp(lnp) -> np.ndarray:
    """p-values from their logarithm with 6 significant digits, below 1e-308 too (NaN as NA)."""
    return _lnp_bytes(lnp).astype(str).astype(object)


def _lnp_bytes(lnp) -> np.ndarray:
    """:func:`_fmt_lnp` as an ``S`` array (:mod:`popgen.io.textfmt`)."""
    from popgen.io.textfmt import format_g6

    lnp = np.asarray(lnp, dtype=np.float64)
    out = format_g6(np.exp(lnp))
    for i, text in _tiny_p_text(lnp).items():
        out[i] = text
    return out


def _tiny_p_text(lnp) -> dict:
    """Row -> P text of the rows whose p-value is below double's range (ln P < -700)."""
    tiny = {}
    for i in np.flatnonzero(np.isfinite(lnp) & (lnp < -700.0)):
        e10 = lnp[i] / math.log(10.0)
        exp = math.floor(e10)
        mant = 10.0 ** (e10 - exp)
        if f"{mant:.6g}" == "10":
            mant, exp = 1.0, exp + 1
        tiny[int(i)] = f"{mant:.6g}e{exp:+03d}".encode()
    return tiny


def _meta_bytes(meta) -> dict:
    """The variant columns of a chunk as ``S`` arrays, computed once per chunk (cached in ``meta``)."""
    from popgen.io.textfmt import format_int, to_bytes

    mb = meta.get("_bytes")
    if mb is None:
        mb = {k: to_bytes(meta[k]) for k in ("#CHROM", "ID", "REF", "ALT")}
        mb["POS"] = format_int(meta["POS"])
        meta["_bytes"] = mb
    return mb


def glm_header(kind: str, firth: str | None = "fallback", ci: float | None = None) -> list[str]:
    """PLINK 2 a3.5's default .glm column set (hide-covar: one ADD row per variant); with ``ci``
    (``--ci 0.95``), its ``L95 U95`` (``L{100 ci}``) after the standard error."""
    cols = ["#CHROM", "POS", "ID", "REF", "ALT", "A1"]
    if kind == "logistic" and firth == "fallback":
        cols.append("FIRTH?")
    cols += ["TEST", "OBS_CT"]
    cols += ["BETA", "SE"] if kind == "linear" else ["OR", "LOG(OR)_SE"]
    if ci is not None:
        level = f"{100 * ci:g}"
        cols += [f"L{level}", f"U{level}"]
    cols.append("T_STAT" if kind == "linear" else "Z_STAT")
    return cols + ["P", "ERRCODE"]


def _ci_bounds(beta, se, kind, ci):
    """``plink2 --ci``: ``beta -/+ z se`` with ``z`` the normal quantile of ``(1 + ci) / 2`` (for
    linear regression too), exponentiated for odds ratios; empty arrays without ``ci``."""
    if ci is None:
        return np.zeros(0), np.zeros(0)
    from scipy import special

    z = float(special.ndtri(0.5 + ci / 2.0))
    lo, hi = beta - z * se, beta + z * se
    if kind == "logistic":
        with np.errstate(over="ignore"):
            lo, hi = np.exp(lo), np.exp(hi)
    return lo, hi


def _glm_lines(meta, res, kind, firth, ci: float | None = None) -> bytes:
    """A chunk's ``.glm`` rows of one phenotype (ASCII bytes); ``ci``: with ``L95 U95`` bounds."""
    from popgen.io.textfmt import byte_matrix, glm_rows, row_prefixes

    shown = (res["ERRCODE"] == E_OK) | (res["ERRCODE"] == E_UNFINISHED)
    n = len(shown)
    if not n:
        return b""
    beta = res["BETA"]
    if kind == "logistic":
        with np.errstate(over="ignore"):
            beta = np.exp(beta)
    mb = _meta_bytes(meta)
    if "glm_meta" not in mb:  # once per chunk, shared by its phenotypes
        fields = [mb[c] for c in ("#CHROM", "POS", "ID", "REF", "ALT")]
        mb["glm_meta"] = byte_matrix(fields) + (row_prefixes(fields),)
    mat, widths, prefix = mb["glm_meta"]
    flag = (res["FIRTH"].astype(np.int8) if kind == "logistic" and firth == "fallback"
            else np.full(n, -1, dtype=np.int8))
    lo, hi = _ci_bounds(res["BETA"], res["SE"], kind, ci)
    return glm_rows(prefix, mat, widths, ref_field=3, alt_field=4, a1_is_ref=res["A1_IS_REF"], firth=flag,
                    obs=res["OBS_CT"], beta=beta, se=res["SE"], stat=res["STAT"], shown=shown, p=res["P"],
                    p_text=_tiny_p_text(np.where(shown, res["LNP"], np.nan)), err=res["ERRCODE"],
                    err_text=_ERRCODE_BYTES, ci_lo=lo, ci_hi=hi)


_ERRCODE_BYTES = np.array([e.encode() for e in ERRCODES])


#: GWAS-SSF chromosome codes of the sex chromosomes and mitochondria
_SSF_CHROM = {"X": "23", "Y": "24", "XY": "23", "MT": "25", "M": "25", "23": "23", "24": "24", "25": "25",
              "26": "25"}


def ssf_header(kind: str, ci: float | None = None) -> list[str]:
    """GWAS-SSF v1.0 columns: the 8 mandatory ones in order, then encouraged ones (with ``ci``:
    ``ci_upper ci_lower``, of the odds ratio for logistic scans)."""
    return ["chromosome", "base_pair_location", "effect_allele", "other_allele",
            "beta" if kind == "linear" else "odds_ratio", "standard_error", "effect_allele_frequency", "p_value",
            "variant_id", "rsid", "n", "ref_allele"] + (["ci_upper", "ci_lower"] if ci is not None else [])


def _ssf_chrom(c):
    s = str(c)
    if s.lower().startswith("chr"):
        s = s[3:]
    return _SSF_CHROM.get(s.upper(), s)


def _ssf_lines(meta, res, kind, ci: float | None = None) -> bytes:
    """A chunk's GWAS-SSF rows of one phenotype (ASCII bytes); ``ci``: with its bounds."""
    from popgen.io.textfmt import byte_matrix, row_prefixes, ssf_rows, to_bytes

    keep = ((res["ERRCODE"] == E_OK) | (res["ERRCODE"] == E_UNFINISHED)) & np.isfinite(res["SE"])
    if not keep.any():
        return b""
    mb = _meta_bytes(meta)
    if "ssf" not in mb:  # once per chunk, shared by its phenotypes
        chrom = np.array([_ssf_chrom(c) for c in meta["#CHROM"]], dtype=object)
        rsid = to_bytes(np.array([i if (str(i).startswith("rs") and str(i)[2:].isdigit()) else "#NA"
                                  for i in meta["ID"]], dtype=object))
        vid = to_bytes(np.array([f"{c}_{p}_{r}_{a}" for c, p, r, a in
                                 zip(chrom, meta["POS"].tolist(), meta["REF"], meta["ALT"])], dtype=object))
        mb["ssf"] = (row_prefixes([to_bytes(chrom), mb["POS"]]), row_prefixes([vid, rsid]),
                     *byte_matrix([mb["REF"], mb["ALT"]]))
    head, tail, alleles, widths = mb["ssf"]
    idx = np.flatnonzero(keep)
    beta = res["BETA"][idx]
    if kind == "logistic":
        with np.errstate(over="ignore"):
            beta = np.exp(beta)
    lo, hi = _ci_bounds(res["BETA"][idx], res["SE"][idx], kind, ci)
    return ssf_rows(idx, head, tail, alleles, widths, ref_field=0, alt_field=1, a1_is_ref=res["A1_IS_REF"][idx],
                    beta=beta, se=res["SE"][idx], freq=res["A1_FREQ"][idx], p=res["P"][idx],
                    p_text=_tiny_p_text(res["LNP"][idx]), obs=res["OBS_CT"][idx], ci_hi=hi, ci_lo=lo)


def lambda_gc(p) -> float:
    """Genomic inflation factor: median of the 1-df chi-square quantiles of ``p`` over 0.4549 (its null median)."""
    from scipy import special  # chdtri(1, p) = chi2.isf(p, 1), without importing scipy.stats (~0.4 s)

    p = np.asarray(p, dtype=np.float64)
    p = p[np.isfinite(p) & (p >= 0) & (p <= 1)]
    if not p.size:
        return float("nan")
    # the quantile function is monotone: the median of the quantiles is that of p's middle order
    # statistics (one or two chdtri calls instead of one per variant, ~1 us each)
    k = p.size // 2
    mid = np.partition(p, [k - 1, k] if p.size % 2 == 0 else [k])
    middle = mid[[k - 1, k]] if p.size % 2 == 0 else mid[[k]]
    return float(np.mean(special.chdtri(1.0, middle)) / CHI2_MEDIAN)


def _thin(x, y, x_lim, y_lim, cells):
    """Indices of the points to draw: one per cell of a ``cells = (nx, ny)`` grid over the axes'
    limits (about a pixel at the PNG's resolution), in input order.  Markers span several pixels,
    so the picture is the same; the densely overlapping null bulk of 100,000 p-values drops to a
    few thousand markers (drawing them took most of a plot's 0.2-0.3 s)."""
    nx, ny = cells
    fx = np.clip((x - x_lim[0]) / max(x_lim[1] - x_lim[0], 1e-300), 0.0, 1.0)
    fy = np.clip((y - y_lim[0]) / max(y_lim[1] - y_lim[0], 1e-300), 0.0, 1.0)
    cell = np.floor(fx * (nx - 1)).astype(np.int64) * ny + np.floor(fy * (ny - 1)).astype(np.int64)
    _, first = np.unique(cell, return_index=True)
    return np.sort(first)


#: PNG resolution of the plots (dots per inch)
_DPI = 110
#: axis label in plain Unicode (minus, subscript digits): matplotlib's mathtext parser took a
#: quarter of each plot's time (its parse cache missed on every figure)
_NEG_LOG10_P = "\u2212log\u2081\u2080 p"


def _save_png(fig, path):
    from popgen.io.files import tmp_name

    tmp = tmp_name(path)
    try:
        fig.savefig(tmp, format="png", dpi=_DPI)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: the figures kept by this process: kind -> (key, canvas).  A Manhattan or QQ plot redraws the
#: figure of the previous one when it is of the same genome (and title presence): its axes,
#: contig ticks and labels exist already, only the points, limits and title change.  Making the
#: figure took half of each plot's time (100 phenotypes: 200 plots)
_CANVASES: dict = {}


def _canvas(kind: str, key, make):
    """The kept figure of ``kind`` for ``key`` (``make()`` builds it; another key's is closed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = _CANVASES.get(kind)
    if kept is not None and kept[0] == key:
        return kept[1]
    if kept is not None:
        plt.close(kept[1]["fig"])
    canvas = make()
    _CANVASES[kind] = (key, canvas)
    return canvas


def release_plot_figures() -> None:
    """Close the figures this process keeps for its next plots."""
    if not _CANVASES:  # none drawn: no pyplot import (0.2-0.3 s)
        return
    import matplotlib.pyplot as plt

    for _, canvas in _CANVASES.values():
        plt.close(canvas["fig"])
    _CANVASES.clear()


def _manhattan_canvas(chrom, pos, *, titled: bool, threshold: float):
    """A Manhattan figure for a genome: contigs in order of appearance, alternating colours,
    each variant's x position and colour, the threshold line, contig ticks and labels."""
    import matplotlib.pyplot as plt

    chrom_in, pos_in = chrom, pos
    chrom = np.asarray(chrom).astype(str)
    pos = np.asarray(pos, dtype=np.float64)
    names, first = np.unique(chrom, return_index=True)
    names = names[np.argsort(first)]
    x, shade = np.zeros(pos.shape[0]), np.zeros(pos.shape[0], dtype=np.int8)
    offset, ticks = 0.0, []
    for i, name in enumerate(names):
        sel = np.flatnonzero(chrom == name)
        x[sel] = pos[sel] + offset
        shade[sel] = i % 2
        ticks.append((offset + (pos[sel].min() + pos[sel].max()) / 2, name))
        offset += pos[sel].max() * 1.02 + 1
    width, height = 11.0, 4.2
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.13, top=0.92 if titled else 0.97)  # no tight_layout pass
    dots = [ax.scatter([], [], s=4, color=color, rasterized=True) for color in ("#1f4e79", "#7fa7d1")]
    if threshold:
        ax.axhline(-math.log10(threshold), color="#c0392b", lw=0.8, ls="--")
    ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks])
    x_lim = ((float(x.min()) - 0.01 * (offset or 1.0), float(x.max()) + 0.01 * (offset or 1.0)) if x.size
             else (0.0, 1.0))
    ax.set_xlim(*x_lim)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(_NEG_LOG10_P)
    title = ax.set_title("", y=1.0)  # a fixed position: no bounding boxes computed to place it
    return dict(fig=fig, ax=ax, x=x, shade=shade, dots=dots, title=title, x_lim=x_lim,
                cells=(int(width * _DPI), int(height * _DPI)),
                genome=(chrom_in, pos_in))  # held, so that their ids (the key) are not reused


def plot_manhattan(path, chrom, pos, p, *, title: str = "", threshold: float = 5e-8) -> None:
    """Manhattan plot (PNG): -log10 p along the genome, contigs in order of appearance.  The
    figure is kept for the next plot of the same ``chrom`` and ``pos`` arrays in this process
    (:func:`release_plot_figures` closes it)."""
    c = _canvas("manhattan", (id(chrom), id(pos), bool(title), threshold),
                lambda: _manhattan_canvas(chrom, pos, titled=bool(title), threshold=threshold))
    p = np.asarray(p, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(p) & (p > 0))
    x, y, shade = c["x"][ok], -np.log10(p[ok]), c["shade"][ok]
    y_top = max(float(y.max()) if y.size else 0.0, -math.log10(threshold) if threshold else 0.0) * 1.05 or 1.0
    keep = _thin(x, y, c["x_lim"], (0.0, y_top), c["cells"])
    for k, dots in enumerate(c["dots"]):  # alternate contigs
        on = keep[shade[keep] == k]
        dots.set_offsets(np.column_stack([x[on], y[on]]))
    c["ax"].set_ylim(0, y_top)
    c["title"].set_text(title)
    _save_png(c["fig"], path)


def _qq_canvas():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.11, top=0.92)  # no tight_layout pass
    dots = ax.scatter([], [], s=5, color="#1f4e79", rasterized=True)
    (diagonal,) = ax.plot([0, 1], [0, 1], color="#c0392b", lw=0.8)
    ax.set_xlabel("expected " + _NEG_LOG10_P)
    ax.set_ylabel("observed " + _NEG_LOG10_P)
    title = ax.set_title("", y=1.0)
    return dict(fig=fig, ax=ax, dots=dots, diagonal=diagonal, title=title)


def plot_qq(path, p, *, title: str = "", lambda_=None) -> None:
    """QQ plot (PNG) of observed against expected -log10 p under the null, with lambda_GC.  The
    figure is kept for the next QQ plot in this process (:func:`release_plot_figures`)."""
    c = _canvas("qq", None, _qq_canvas)
    p = np.asarray(p, dtype=np.float64)
    p = np.sort(p[np.isfinite(p) & (p > 0) & (p <= 1)])
    n = p.shape[0]
    lim = 1.0
    if n:
        obs = -np.log10(p)
        exp = -np.log10((np.arange(1, n + 1) - 0.5) / n)
        lim = max(exp.max(), obs.max()) * 1.05 or 1.0
        keep = _thin(exp, obs, (0.0, lim), (0.0, lim), (5 * _DPI, 5 * _DPI))
        c["dots"].set_offsets(np.column_stack([exp[keep], obs[keep]]))
    else:
        c["dots"].set_offsets(np.zeros((0, 2)))
    c["diagonal"].set_data([0, lim], [0, lim])
    c["ax"].set_xlim(0, lim)
    c["ax"].set_ylim(0, lim)
    lam = lambda_gc(p) if lambda_ is None else lambda_
    c["title"].set_text((title + "  " if title else "") + f"\u03bbGC = {lam:.3f}")
    _save_png(c["fig"], path)


#: phenotypes from which the plots are drawn by a pool of processes (one per core)
PLOT_POOL_FROM = 4


_plot_genome: tuple = (None, None)  # (chrom, pos) of the plots drawn in this process (_draw_plots)


def _set_plot_genome(chrom, pos) -> None:
    global _plot_genome
    _plot_genome = (chrom, pos)


def _plot_pair(job) -> None:
    man, qq, p, name, lam = job
    plot_manhattan(man, *_plot_genome, p, title=name)
    plot_qq(qq, p, title=name, lambda_=lam)


def _draw_plots(jobs, chrom, pos) -> None:
    """Each phenotype's Manhattan and QQ plots (``jobs``: Manhattan path, QQ path, p-values, name,
    lambda_GC; the variants' ``chrom`` and ``pos`` shared by all); from :data:`PLOT_POOL_FROM`
    phenotypes on, by a pool of processes, one per core, each given ``chrom`` and ``pos`` once:
    matplotlib holds the GIL, and after the scan the cores are free (100 phenotypes: 200 plots
    of ~0.05 s each, each process redrawing its two figures).  Started with ``spawn`` (no fork
    of a large process that has threads); where no process can be started, one after the other."""
    if not jobs:
        return
    from dask.system import cpu_count

    workers = min(cpu_count(), len(jobs))
    if len(jobs) >= PLOT_POOL_FROM and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from popgen.backend import release_host_memory

        release_host_memory()  # the scan's freed heap back to the OS before the workers add theirs
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_set_plot_genome, initargs=(chrom, pos)) as pool:
                for _ in pool.map(_plot_pair, jobs):
                    pass
            return
        except OSError as e:  # no process can be started here (limits, sandbox)
            log.info("plots: no process pool (%s); drawing them here", e)
    _set_plot_genome(chrom, pos)
    try:
        for job in jobs:
            _plot_pair(job)
    finally:
        _set_plot_genome(None, None)  # not kept alive by this module
        release_plot_figures()


def write_results(prefix, scan, *, compute=None, ssf: bool = True, plots: bool = True,
                  batch: int | None = None, genome_assembly: str | None = None, ci: float | None = None) -> dict:
    """Stream a scan's results to PLINK 2 .glm files, GWAS-SSF files and plots.

    ``scan`` is an :class:`AssociationScan` or a list of them (one model each, e.g. the
    autosomes and chrX of :func:`gwas`), of one kind, over consecutive runs of variants:
    written one after the other into the same files.

    Rows are written as chunks of variants finish (never the whole table in
    memory; only p-values and positions are kept, 20 bytes per variant and
    phenotype, for lambda_GC and the plots).  Every file is written to a
    temporary name and renamed when complete.

    Writes, per phenotype ``PHENO``: ``PREFIX.PHENO.glm.linear`` (or
    ``.glm.logistic.hybrid``), ``PREFIX.PHENO.ssf.tsv`` with its GWAS-SSF metadata
    ``PREFIX.PHENO.ssf.tsv-meta.yaml`` (:func:`ssf_metadata`; ``genome_assembly`` e.g.
    ``GRCh38``, else ``#NA``), ``PREFIX.PHENO.manhattan.png``, ``PREFIX.PHENO.qq.png``.
    ``ci`` (e.g. 0.95): the .glm files get PLINK 2's ``--ci`` columns ``L95 U95``, the GWAS-SSF
    files ``ci_upper ci_lower``.

    Returns
    -------
    dict
        Per phenotype: ``files`` (paths), ``n_variants``, ``n_tested`` (rows with
        estimates), ``n_firth``, ``n_samples``, ``n_cases``, ``lambda_gc``,
        ``min_p``, ``errcodes`` (counts).
    """
    import hashlib

    from popgen.io.files import atomic_write, ensure_parent

    prefix = str(prefix)
    ensure_parent(prefix)
    scans = [scan] if isinstance(scan, AssociationScan) else list(scan)
    kind, firth, extension = scans[0].kind, scans[0].firth, scans[0].extension
    phenotypes = list(dict.fromkeys(name for sc in scans for name in sc.phenotypes))
    report = {}
    p_parts = {name: [] for name in phenotypes}
    chroms, positions = [], []  # every variant written, in order (with NaN P where a phenotype has none)
    counts = {name: np.zeros(len(ERRCODES), dtype=np.int64) for name in phenotypes}
    n_firth = dict.fromkeys(phenotypes, 0)
    with contextlib.ExitStack() as stack:
        glm, ssf_f = {}, {}
        for name in phenotypes:
            path = f"{prefix}.{name}.{extension}"
            glm[name] = (path, stack.enter_context(atomic_write(path, "wb")))  # rows come as ASCII bytes
            glm[name][1].write(("\t".join(glm_header(kind, firth, ci)) + "\n").encode())
            if ssf:
                spath = f"{prefix}.{name}.ssf.tsv"
                ssf_f[name] = (spath, stack.enter_context(atomic_write(spath, "wb")), hashlib.md5())
                _write_hashed(ssf_f[name], ("\t".join(ssf_header(kind, ci)) + "\n").encode())
        for sc in scans:
            for chunk in sc.iter_chunks(compute, batch):
                meta = _variant_meta(sc.ds, chunk.start, chunk.stop)
                chroms.append(meta["#CHROM"])
                positions.append(meta["POS"])
                for name in phenotypes:
                    res = chunk.columns.get(name)
                    if res is None:  # not tested on this run of variants (e.g. too few males on chrY)
                        p_parts[name].append(np.full(chunk.stop - chunk.start, np.nan))
                        continue
                    glm[name][1].write(_glm_lines(meta, res, kind, firth, ci))
                    if ssf:
                        _write_hashed(ssf_f[name], _ssf_lines(meta, res, kind, ci))
                    p_parts[name].append(res["P"])
                    counts[name] += np.bincount(res["ERRCODE"], minlength=len(ERRCODES))
                    n_firth[name] += int(res["FIRTH"].sum())
    plot_jobs = []
    chrom = np.concatenate(chroms) if chroms else np.zeros(0, dtype=object)
    pos = np.concatenate(positions) if positions else np.zeros(0)
    sorted_ = _ssf_sorted(chrom, pos) if ssf else False  # the same variants for every phenotype
    del chroms, positions
    for name in phenotypes:
        first = next(sc for sc in scans if name in sc.phenotypes)  # the autosomes' scan, where there is one
        p = np.concatenate(p_parts[name]) if p_parts[name] else np.zeros(0)
        lam = lambda_gc(p)
        files = [glm[name][0]] + ([ssf_f[name][0]] if ssf else [])
        if plots:
            man, qq = f"{prefix}.{name}.manhattan.png", f"{prefix}.{name}.qq.png"
            plot_jobs.append((man, qq, p, name, lam))
            files += [man, qq]
        c = counts[name]
        finite = p[np.isfinite(p)]
        if ssf:
            meta_path = f"{ssf_f[name][0]}-meta.yaml"
            _write_ssf_metadata(meta_path, ssf_metadata(
                ssf_f[name][0], ssf_f[name][2].hexdigest(), name, n_samples=first.n_samples.get(name),
                n_cases=first.n_cases.get(name), covariates=first.covariate_names, genome_assembly=genome_assembly,
                is_sorted=sorted_))
            files.insert(2, meta_path)
        report[name] = {
            "kind": kind, "files": files, "n_variants": int(c.sum()),
            "n_tested": int(c[E_OK] + c[E_UNFINISHED]), "n_firth": n_firth[name],
            "n_samples": first.n_samples.get(name), "n_cases": first.n_cases.get(name),
            "lambda_gc": lam, "min_p": float(finite.min()) if finite.size else float("nan"),
            "errcodes": {ERRCODES[i]: int(v) for i, v in enumerate(c) if v},
        }
    _draw_plots(plot_jobs, chrom, pos)
    return report


def _write_hashed(entry, data: bytes) -> None:
    """Write ``data`` to an open GWAS-SSF file ``(path, file, md5)`` and add it to its md5sum."""
    entry[1].write(data)
    entry[2].update(data)


def _ssf_sorted(chrom, pos) -> bool:
    """Whether variants are in GWAS-SSF's genomic order (chromosome 1-25, then position)."""
    names, index = np.unique(np.asarray(chrom).astype(str), return_inverse=True)
    codes = [_ssf_chrom(c) for c in names]
    if not all(c.isdigit() for c in codes):
        return False
    key = np.array(codes, dtype=np.int64)[index]
    d_chrom, d_pos = np.diff(key), np.diff(np.asarray(pos, dtype=np.int64))
    return bool(np.all((d_chrom > 0) | ((d_chrom == 0) & (d_pos >= 0))))


def ssf_metadata(data_file, md5sum: str, trait: str, *, n_samples=None, n_cases=None, covariates=(),
                 genome_assembly: str | None = None, is_sorted: bool = True) -> dict:
    """The GWAS-SSF metadata (``<data file>-meta.yaml``, GWAS Catalog schema) of a popgen GWAS:
    the fields popgen knows -- data file name and md5sum, file type, trait (the phenotype's
    name), sample size and case/control counts, covariates, coordinate system (1-based, as
    PLINK), analysis software, sortedness, not harmonised -- and ``genome_assembly``, which
    the GWAS Catalog requires and only the user knows (``#NA`` when not given).  Ancestry
    and genotyping technology are the submitter's to add."""
    import datetime

    from popgen import __version__

    sample = {"sample_size": int(n_samples) if n_samples is not None else None}
    sample = {k: v for k, v in sample.items() if v is not None}
    if n_cases is not None:
        sample.update(case_control_study=True, case_count=int(n_cases),
                      control_count=int(n_samples) - int(n_cases) if n_samples is not None else None)
        sample = {k: v for k, v in sample.items() if v is not None}
    meta = {
        "trait_description": [str(trait)],
        "genome_assembly": genome_assembly or "#NA",
        "coordinate_system": "1-based",
        "samples": [sample],
        "sex": "combined",
        "data_file_name": Path(data_file).name,
        "file_type": "GWAS-SSF v1.0",
        "data_file_md5sum": md5sum,
        "analysis_software": f"popgen {__version__}",
        "is_harmonised": False,
        "is_sorted": bool(is_sorted),
        "date_metadata_last_modified": datetime.date.today(),
    }
    if covariates:
        meta["adjusted_covariates"] = [str(c) for c in covariates]
    return meta


def _write_ssf_metadata(path, meta: dict) -> None:
    import yaml

    from popgen.io.files import atomic_write

    with atomic_write(path) as f:
        f.write("# GWAS-SSF metadata (https://github.com/EBISPOT/gwas-summary-statistics-standard), "
                "written by popgen gwas\n")
        yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=False)


def _columns_from_table(table, kind) -> tuple[dict, dict]:
    """(meta, res) column dicts from a :meth:`AssociationScan.collect` DataFrame."""
    t = {c: np.asarray(table[c]) for c in table.columns}
    meta = {c: t[c].astype(object) for c in ("#CHROM", "ID", "REF", "ALT")}
    meta["POS"] = t["POS"].astype(np.int64)
    code = {s: i for i, s in enumerate(ERRCODES)}
    se = t["SE"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lnp = np.log(t["P"].astype(np.float64))
        lnp = np.where(np.isfinite(t["LOG10_P"].astype(np.float64)),
                       -t["LOG10_P"].astype(np.float64) * math.log(10.0), lnp)
    res = {"BETA": t["BETA"].astype(np.float64), "SE": se,
           "STAT": t["T_STAT" if kind == "linear" else "Z_STAT"].astype(np.float64), "LNP": lnp, "P": np.exp(lnp),
           "OBS_CT": t["OBS_CT"].astype(np.int64), "A1_FREQ": t["A1_FREQ"].astype(np.float64),
           "A1_IS_REF": (t["A1"] == t["REF"]) & (t["A1"] != t["ALT"]),
           "ERRCODE": np.array([code[str(e)] for e in t["ERRCODE"]], dtype=np.int64),
           "FIRTH": (t["FIRTH?"] == "Y") if "FIRTH?" in t else np.zeros(len(se), dtype=bool)}
    return meta, res


def write_glm(prefix, pheno_name: str, table, kind: str, firth: str | None = "fallback") -> str:
    """Write one phenotype's :meth:`AssociationScan.collect` table as a PLINK 2 .glm file; returns its path.
    (:func:`write_results` streams a whole scan instead.)"""
    from popgen.io.files import atomic_write

    ext = "glm.linear" if kind == "linear" else {"fallback": "glm.logistic.hybrid", "never": "glm.logistic",
                                                 "always": "glm.firth"}[firth]
    path = f"{prefix}.{pheno_name}.{ext}"
    meta, res = _columns_from_table(table, kind)
    with atomic_write(path, "wb") as f:
        f.write(("\t".join(glm_header(kind, firth)) + "\n").encode())
        f.write(_glm_lines(meta, res, kind, firth))
    return path


def write_ssf(path, table, kind: str) -> str:
    """Write one phenotype's :meth:`AssociationScan.collect` table as GWAS-SSF (tab-separated)."""
    from popgen.io.files import atomic_write

    meta, res = _columns_from_table(table, kind)
    with atomic_write(path, "wb") as f:
        f.write(("\t".join(ssf_header(kind)) + "\n").encode())
        f.write(_ssf_lines(meta, res, kind))
    return str(path)


def _in_span(covariates, x) -> bool:
    """Whether ``x`` is an affine function of the covariates' columns (on the rows where all
    are known), e.g. a SEX covariate the table already holds."""
    if covariates is None or not covariates.shape[1]:
        return False
    ok = np.isfinite(x) & np.all(np.isfinite(covariates), axis=1)
    if not ok.any():
        return False
    a = np.column_stack([np.ones(int(ok.sum())), covariates[ok]])
    r = x[ok] - a @ np.linalg.lstsq(a, x[ok], rcond=None)[0]
    return bool(np.linalg.norm(r) <= 1e-8 * max(np.linalg.norm(x[ok] - x[ok].mean()), 1e-300))


def sex_chromosome_inputs(model, sex, phenotypes: Mapping, covariates, covariate_names):
    """A chrX / chrY / MT run's phenotypes, covariates and names as ``plink2 --glm`` sets them:
    ``(phenotypes, covariates, covariate_names, haploid)``, or a string (why the run is not
    tested).

    - ``x``: the genotypes as coded (males 0/2), the sex (1 male, 2 female; ``sex``, e.g.
      ``sample_sex`` of the .fam) added as a covariate, so samples of unknown sex are left
      out.  Where the covariates already hold the sex (a SEX column), it is not added twice
      (PLINK 2 stops with VIF_INFINITE there; its ``no-x-sex`` modifier gives these results);
      where no sample has a known sex (VCF input without ``--update-sex``) or all known
      sexes are the same, none is added.
    - ``y``: males only, haploid (0/1 dosages); covariates constant among the males dropped.
    - ``mt``: every sample, haploid.
    """
    if model == "mt":
        return phenotypes, covariates, covariate_names, True
    known = None if sex is None else np.isin(sex, (1, 2))
    if model == "x":
        s = None if known is None else np.where(known, np.asarray(sex, dtype=np.float64), np.nan)
        if s is None or np.unique(s[known]).size < 2 or _in_span(covariates, s):  # no sex to add (as PLINK 2)
            return phenotypes, covariates, covariate_names, False
        cov = s[:, None] if covariates is None else np.column_stack([covariates, s])
        return phenotypes, cov, list(covariate_names or [f"COV{i + 1}" for i in range(cov.shape[1] - 1)]) + ["SEX"], False
    male = np.asarray(sex) == 1 if sex is not None else None
    if male is None or not male.any():
        return "no male sample"
    values = {k: np.where(male, np.asarray(v, dtype=np.float64), np.nan) for k, v in phenotypes.items()}
    if covariates is None:
        return values, None, covariate_names, True
    rows = male & np.all(np.isfinite(covariates), axis=1)
    keep = [j for j in range(covariates.shape[1]) if np.unique(covariates[rows, j]).size > 1]
    names = None if covariate_names is None else [covariate_names[j] for j in keep]
    return values, covariates[:, keep] if keep else None, names, True


_MODEL_LABEL = {"autosome": "autosomes", "x": "chrX", "y": "chrY", "mt": "MT"}


def _founder_weights(model, ds, founders, sex):
    """Founders' weights in the allele frequencies that choose A1, as PLINK 2 counts alleles:
    on chrX a male's call is one allele (weight 1/2 of his 0/2 count; other samples diploid),
    on chrY only males count; MT counts every founder alike."""
    from popgen.genotypes import founder_mask

    f = np.asarray(founder_mask(ds) if founders is None else founders, dtype=np.float64)
    if sex is None or model == "mt":
        return f
    male = np.asarray(sex) == 1
    return f * np.where(male, 0.5, 1.0) if model == "x" else f * male


def run_inputs(model, ds, sex, phenotypes: Mapping, covariates, covariate_names, founders=None):
    """What a run of variants under ``model`` (:func:`popgen.genotypes.contig_model`) is scanned
    with, as :func:`gwas` scans it: ``(phenotypes, covariates, covariate_names, haploid,
    founder weights)`` (:func:`sex_chromosome_inputs`, :func:`_founder_weights`), or a string
    (why the run is not tested)."""
    if model == "autosome":
        return phenotypes, covariates, covariate_names, False, founders
    inputs = sex_chromosome_inputs(model, sex, phenotypes, covariates, covariate_names)
    if isinstance(inputs, str):
        return inputs
    return (*inputs, _founder_weights(model, ds, founders, sex))


def _chrx_alt_freq(ds, scan, values, covariates, compute=None) -> dict:
    """chrX ALT allele frequencies among each phenotype's samples (with every covariate) as
    ``plink2 --freq`` counts them (a male's call one allele): for GWAS-SSF's
    ``effect_allele_frequency``.  One pass over the run's variants per distinct sample set."""
    from popgen.qc import variant_stats

    compute = compute or _backend.compute
    ok = np.ones(ds.sizes["samples"], dtype=bool) if covariates is None else np.all(np.isfinite(covariates), axis=1)
    masks = {name: np.isfinite(np.asarray(values[name], dtype=np.float64)) & ok for name in scan.phenotypes}
    by_mask, out = {}, {}
    for name, mask in masks.items():
        key = mask.tobytes()
        if key not in by_mask:
            stats = variant_stats(ds, samples=mask, merge=False, sex_chromosomes=True)
            (by_mask[key],) = compute(stats["variant_allele_frequency"].data[:, 1])
        out[name] = np.asarray(by_mask[key], dtype=np.float64)
    return out


def gwas(ds, pheno: PhenoData, prefix, *, compute=None, missing: str = "drop", firth: str = "fallback",
         ssf: bool = True, plots: bool = True, batch: int | None = None, founders=None,
         genome_assembly: str | None = None, ci: float | None = None) -> dict:
    """Run and write a whole GWAS: linear scans of the quantitative phenotypes, logistic
    (Firth-fallback) scans of the case/control ones, as ``plink2 --glm hide-covar``.

    Variants on chrX, chrY and MT are scanned as PLINK 2 scans them
    (:func:`sex_chromosome_inputs`), each run of them in its own scan, written in variant order
    into the same files.  Returns the per-phenotype report of :func:`write_results` (plus
    ``skipped``).
    """
    report = {}
    runs = model_runs(ds)
    sex = sample_sex(ds) if any(m != "autosome" for *_, m in runs) else None
    for phenotypes, scan_fn, kw in (
            (pheno.quantitative(), linear_scan, dict(missing=missing)),
            (pheno.case_control(), logistic_scan, dict(firth=firth))):
        if not phenotypes:
            continue
        scans = []
        for start, stop, model in runs:
            part = ds if len(runs) == 1 else ds.isel(variants=slice(start, stop))
            inputs = run_inputs(model, ds, sex, phenotypes, pheno.covariates, pheno.covariate_names, founders)
            where = f"{stop - start} variants on {_MODEL_LABEL[model]}"
            if isinstance(inputs, str):
                log.warning("%s not tested: %s", where, inputs)
                continue
            values, cov, names, haploid, weights = inputs
            try:
                scan = scan_fn(part, values, cov, covariate_names=names, founders=weights, **kw)
            except PopgenError as e:
                if model == "autosome":
                    raise
                log.warning("%s not tested: %s", where, e)
                continue
            scan.haploid = haploid
            if model == "x":
                scan.alt_freq = _chrx_alt_freq(part, scan, values, cov, compute)
            if model != "autosome":
                for name, why in scan.skipped.items():
                    log.warning("phenotype %s: %s not tested: %s", name, where, why)
            scans.append(scan)
        if scans:
            report.update(write_results(prefix, scans, compute=compute, ssf=ssf, plots=plots, batch=batch,
                                        genome_assembly=genome_assembly, ci=ci))
        for name in phenotypes:
            why = next((sc.skipped[name] for sc in scans if name in sc.skipped and name not in sc.phenotypes), None)
            if name not in report and why is not None:
                report[name] = {"skipped": why}
    for k_, v in pheno.skipped.items():
        report.setdefault(k_, {"skipped": v})
    return report
