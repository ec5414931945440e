"""numba loop of the exact linear scan's per-phenotype solve on the CPU (the twin of the array code
in ``popgen.association._grouped_solve``; imported on first use: numba loads lazily).

Module-level, so that numba's on-disk cache finds it again in the next process.
"""

import math

import numba
import numpy as np


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
