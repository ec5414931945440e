"""numba functions of :mod:`popgen.hwe` (imported on first use).

Module-level so that numba's on-disk cache finds them in the next process (a closure
over a dispatcher gets a new cache key, and a compile, in every process).
"""

import numba
import numpy as np

# relative tolerance for "as or less likely than observed" (PLINK uses one too,
# so that configurations with mathematically equal probability are counted)
_TIE_EPS = 1e-9


@numba.njit(cache=True, nogil=True)
def p_value(n_het: int, n_hom1: int, n_hom2: int) -> float:
    if n_het < 0 or n_hom1 < 0 or n_hom2 < 0:
        return np.nan
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return np.nan
    homr = min(n_hom1, n_hom2)
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


@numba.njit(cache=True, nogil=True)
def p_values(het, hom1, hom2, out):
    for i in range(het.shape[0]):
        out[i] = p_value(het[i], hom1[i], hom2[i])
