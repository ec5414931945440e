"""Hardy-Weinberg exact test (Wigginton, Cutler & Abecasis 2005), numba CPU kernel.

The test runs on per-variant genotype counts, which are tiny aggregates: on a
GPU run the counts are reduced on the device and only ``(variants, 3)``
integers come back to the host for this step.
"""

from __future__ import annotations

import numpy as np

# relative tolerance for "as or less likely than observed" (PLINK uses one too,
# so that configurations with mathematically equal probability are counted)
_TIE_EPS = 1e-9


def _p_value_py(n_het: int, n_hom1: int, n_hom2: int) -> float:
    if n_het < 0 or n_hom1 < 0 or n_hom2 < 0:
        return np.nan
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return np.nan
    homr = min(n_hom1, n_hom2)
    homc = max(n_hom1, n_hom2)
    rare = 2 * homr + n_het
    probs = np.zeros(rare + 1)
    mid = rare * (2 * n - rare) // (2 * n)
    if (mid % 2) != (rare % 2):
        mid += 1
    probs[mid] = 1.0
    total = 1.0
    cur_homr = (rare - mid) // 2
    cur_homc = n - mid - cur_homr
    h = mid
    while h >= 2:
        probs[h - 2] = probs[h] * h * (h - 1.0) / (4.0 * (cur_homr + 1.0) * (cur_homc + 1.0))
        total += probs[h - 2]
        cur_homr += 1
        cur_homc += 1
        h -= 2
    cur_homr = (rare - mid) // 2
    cur_homc = n - mid - cur_homr
    h = mid
    while h <= rare - 2:
        probs[h + 2] = probs[h] * 4.0 * cur_homr * cur_homc / ((h + 2.0) * (h + 1.0))
        total += probs[h + 2]
        cur_homr -= 1
        cur_homc -= 1
        h += 2
    target = probs[n_het] * (1.0 + _TIE_EPS)
    p = 0.0
    for i in range(rare % 2, rare + 1, 2):
        if probs[i] <= target:
            p += probs[i]
    return min(1.0, p / total)


_jit_vec = None


def hwe_exact_p(n_het, n_hom_ref, n_hom_alt) -> np.ndarray:
    """Two-sided Hardy-Weinberg exact test p-values.

    Parameters
    ----------
    n_het, n_hom_ref, n_hom_alt : array_like, int, shape (variants,)
        Genotype counts (host arrays).

    Returns
    -------
    ndarray, float64, shape (variants,)
        Exact p-value (not mid-p), NaN where no calls.

    References
    ----------
    Wigginton JE, Cutler DJ, Abecasis GR (2005). A note on exact tests of
    Hardy-Weinberg equilibrium. Am J Hum Genet 76:887-893.
    """
    global _jit_vec
    if _jit_vec is None:
        import numba

        scalar = numba.njit(cache=True, nogil=True)(_p_value_py)

        @numba.njit(cache=True, nogil=True)
        def vec(het, hom1, hom2, out):
            for i in range(het.shape[0]):
                out[i] = scalar(het[i], hom1[i], hom2[i])

        _jit_vec = vec
    het = np.ascontiguousarray(n_het, dtype=np.int64)
    hom1 = np.ascontiguousarray(n_hom_ref, dtype=np.int64)
    hom2 = np.ascontiguousarray(n_hom_alt, dtype=np.int64)
    out = np.empty(het.shape[0], dtype=np.float64)
    _jit_vec(het, hom1, hom2, out)
    return out
