"""numba loop of the exact linear scan's per-phenotype solve on the CPU (the twin of the array code
in ``popgen.association._grouped_solve``; imported on first use: numba loads lazily).

Module-level, so that numba's on-disk cache finds it again in the next process.
"""

import math

import numba
import numpy as np

from ._cholesky_numba import sym_inverse_one


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"}, error_model="numpy")
def phenotype_fields(a, stat, starts, gy, cy, yy, inv, n, err, d_k, d_min, d_finite, corr_bad, a1, flip,
                     e_invalid, out):
    """Result fields ``out[v, p] = [BETA, SE, OBS_CT, A1 count, ERRCODE, 0, A1 is REF]`` of each
    variant ``v`` and phenotype ``p`` of the grouped linear scan.

    Group ``g`` holds phenotypes ``starts[g]`` to ``starts[g + 1]``; the ``j``-th one's ``X'y`` is
    ``[stat[v, cy[g] + j K : cy[g] + (j + 1) K], a[v, gy[g] + j]]`` and its ``y'y``
    ``stat[v, yy[g] + j]`` (``popgen.association._phenotype_columns``).  Per variant and group:
    ``inv`` (v, G, K+1, K+1) ``(X'X)^-1``, ``n`` sample count, ``err`` ERRCODE so far, ``d_k`` the
    genotype's diagonal entry of ``inv``, ``d_min`` / ``d_finite`` the smallest / the finiteness of
    its non-intercept diagonal, ``corr_bad``, ``a1``; ``flip`` (v,).  Per phenotype, as the array
    code: ``beta = (X'X)^-1 X'y``, ``sigma2 = (y'y - beta'X'y) / (n - K - 1)``, INVALID_RESULT
    (``e_invalid``) where PLINK 2's validParameters() fails.  A group's phenotypes go together
    (``X'y`` as (K+1, phenotypes) rows: the products vectorize over the phenotypes).
    """
    n_variants = a.shape[0]
    n_groups = starts.shape[0] - 1
    npred = inv.shape[2]
    k = npred - 1
    p_max = 0
    for g in range(n_groups):
        p_max = max(p_max, starts[g + 1] - starts[g])
    xt = np.empty((npred, p_max))
    u = np.empty((npred, p_max))
    for v in range(n_variants):
        for g in range(n_groups):
            p0 = starts[g]
            size = starts[g + 1] - p0
            c0 = cy[g]
            for j in range(size):
                for i in range(k):
                    xt[i, j] = stat[v, c0 + j * k + i]
                xt[k, j] = a[v, gy[g] + j]
            iv = inv[v, g]
            for i in range(npred):
                ui = u[i]
                for j in range(size):
                    ui[j] = 0.0
                for m in range(npred):
                    c = iv[i, m]
                    xm = xt[m]
                    for j in range(size):
                        ui[j] += c * xm[j]
            nn = n[v, g]
            df = nn - npred if nn > npred else 1.0
            e0 = err[v, g]
            bad = corr_bad[v, g] or not d_finite[v, g]
            for j in range(size):
                q = 0.0
                for i in range(npred):
                    q += u[i, j] * xt[i, j]
                sigma2 = (stat[v, yy[g] + j] - q) / df
                e = e0
                if e == 0.0 and (bad or not (sigma2 * d_min[v, g] >= 1e-20) or not math.isfinite(sigma2)):
                    e = e_invalid
                o = out[v, p0 + j]
                if e == 0.0:
                    b_k = u[k, j]
                    o[0] = -b_k if flip[v] else b_k
                    o[1] = np.sqrt(sigma2 * d_k[v, g])
                else:
                    o[0] = np.nan
                    o[1] = np.nan
                o[2] = nn
                o[3] = a1[v, g]
                o[4] = e
                o[5] = 0.0
                o[6] = 1.0 if flip[v] else 0.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def group_terms(xtx, flip, max_corr, vif, codes, n, err, inv, d_k, d_min, d_finite, corr_bad, a1):
    """``popgen.association._group_terms`` (with its ``_corr_vif_check``) per variant ``v`` and group
    ``g`` of ``xtx`` (v, G, p, p), in the same operations and order (the same bits).

    ``codes``: the ERRCODE indices SAMPLE_CT, CONST, CORR, VIF_INF, VIF, RANK.  Outputs (v, G):
    ``n``, ``err``, ``inv`` (v, G, p, p), ``d_k`` (the genotype's diagonal entry of ``inv``),
    ``d_min``, ``d_finite``, ``corr_bad``, ``a1``.
    """
    e_sample, e_const, e_corr, e_vif_inf, e_vif, e_rank = codes[0], codes[1], codes[2], codes[3], codes[4], codes[5]
    n_variants, n_groups, p = xtx.shape[0], xtx.shape[1], xtx.shape[2]
    k = p - 1  # the genotype's index; also the predictors but the intercept
    a = np.empty((p, p))
    ai = np.empty((p, p))
    c = np.empty((k, k))
    ci = np.empty((k, k))
    sdv = np.empty(k)
    s_, scaled, L, M = np.empty(p), np.empty((p, p)), np.zeros((p, p)), np.zeros((p, p))
    for v in range(n_variants):
        for g in range(n_groups):
            s = xtx[v, g]
            nn = s[0, 0]
            g_sum = s[0, k]
            e = 0.0
            if nn <= p:
                e = e_sample
            elif nn * s[k, k] - g_sum * g_sum <= 0:
                e = e_const
            if p > 2:  # PLINK 2's correlation and VIF checks on the predictors but the intercept
                m = nn if nn > 1 else 2.0
                valid = e == 0.0
                for i in range(k):
                    for j in range(k):
                        c[i, j] = (s[i + 1, j + 1] - s[0, i + 1] * s[0, j + 1] / m) / (m - 1.0)
                    if not (c[i, i] > 0):
                        valid = False
                for i in range(k):
                    dd = c[i, i]
                    sdv[i] = 1.0 / np.sqrt(dd if dd > 0 else 1.0)
                too_high = False
                for i in range(k):
                    for j in range(k):
                        if valid:
                            c[i, j] = c[i, j] * sdv[i] * sdv[j]
                        else:
                            c[i, j] = 1.0 if i == j else 0.0
                        if i != j and abs(c[i, j]) > max_corr:
                            too_high = True
                if e == 0.0 and valid and too_high:
                    e = e_corr
                if e != 0.0:
                    for i in range(k):
                        for j in range(k):
                            c[i, j] = 1.0 if i == j else 0.0
                _, ok = sym_inverse_one(c, ci, s_[:k], scaled[:k, :k], L[:k, :k], M[:k, :k])
                if e == 0.0 and not ok:
                    e = e_vif_inf
                if e == 0.0:
                    for i in range(k):
                        if ci[i, i] > vif:
                            e = e_vif
                            break
            for i in range(p):
                for j in range(p):
                    a[i, j] = s[i, j] if e == 0.0 else (1.0 if i == j else 0.0)
            _, ok = sym_inverse_one(a, ai, s_, scaled, L, M)
            if e == 0.0 and not ok:
                e = e_rank
            out = inv[v, g]
            bad = False
            dmin = np.inf
            finite = True
            for i in range(p):
                di = ai[i, i]
                sdi = np.sqrt(di if di > 0 else 0.0)
                for j in range(p):
                    x = ai[i, j]
                    out[i, j] = x
                    if i != j:
                        dj = ai[j, j]
                        if x > 0.99999 * sdi * np.sqrt(dj if dj > 0 else 0.0):
                            bad = True
                if i > 0:
                    dmin = min(dmin, di)
                    if not np.isfinite(di):
                        finite = False
            n[v, g] = nn
            err[v, g] = e
            d_k[v, g] = ai[k, k]
            d_min[v, g] = dmin
            d_finite[v, g] = finite
            corr_bad[v, g] = bad
            a1[v, g] = 2.0 * nn - g_sum if flip[v] else g_sum
