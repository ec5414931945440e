"""numba functions of :mod:`popgen.hwe` (imported on first use).

Module-level so that numba's on-disk cache finds them in the next process (a closure
over a dispatcher gets a new cache key, and a compile, in every process).
"""

import math

import numba
import numpy as np

# relative tolerance for "as or less likely than observed" (PLINK uses one too,
# so that configurations with mathematically equal probability are counted)
_TIE_EPS = 1e-9


#: the sums stop where a term is below this fraction of the tail sum (it cannot change it)
_NEGLIGIBLE = 2.0 ** -64
#: terms are rescaled by this factor when they grow past its inverse (no overflow walking
#: from an observation far in the tail towards the mode)
_RESCALE = 1e-250


@numba.njit(cache=True, nogil=True, inline="always")
def _add_term(term, obs, tail, high):
    """Add a term of :func:`p_value`'s walk to the tail (at most the observed term, ties
    included) or to the rest, rescaling everything before it could overflow.  Returns the
    (rescaled) ``term, obs, tail, high`` and whether the walk can stop (a tail term too small to
    change the tail's sum: the terms only fall from there)."""
    if term > obs * (1.0 + _TIE_EPS):
        high += term
        if term > 1.0 / _RESCALE:
            term *= _RESCALE
            high *= _RESCALE
            tail *= _RESCALE
            obs *= _RESCALE
        return term, obs, tail, high, False
    tail += term
    return term, obs, tail, high, term < tail * _NEGLIGIBLE


@numba.njit(cache=True, nogil=True)
def p_value(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """Exact two-sided Hardy-Weinberg p-value: the probability, given the allele counts, of
    heterozygote counts no more likely than the observed one (PLINK's tie tolerance).

    The terms are summed from the observed count outwards, relative to it (each from the
    last by its ratio), and each walk stops once its terms cannot change the tail's sum:
    O(sqrt(n)) terms for counts near equilibrium instead of all ``rare / 2`` (11x faster on
    a mix of 1 to 500,000 samples).  :func:`p_value_full` is the full enumeration (an
    independent implementation, kept apart) it is tested against."""
    if n_het < 0 or n_hom1 < 0 or n_hom2 < 0:
        return np.nan
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return np.nan
    homr = min(n_hom1, n_hom2)
    rare = 2 * homr + n_het
    obs = 1.0          # the observed term (rescaled with the others)
    tail = 1.0         # terms <= observed (ties included)
    high = 0.0         # terms above it
    # towards more heterozygotes: t(h + 2) / t(h) = 4 r c / ((h + 2)(h + 1)), r, c the homozygote counts
    term = 1.0
    h = n_het
    r = (rare - h) // 2
    c = n - h - r
    while h <= rare - 2:
        term *= 4.0 * r * c / ((h + 2.0) * (h + 1.0))
        h += 2
        r -= 1
        c -= 1
        term, obs, tail, high, done = _add_term(term, obs, tail, high)
        if done:
            break
    # towards fewer heterozygotes: t(h - 2) / t(h) = h (h - 1) / (4 (r + 1)(c + 1))
    term = obs
    h = n_het
    r = (rare - h) // 2
    c = n - h - r
    while h >= 2:
        term *= h * (h - 1.0) / (4.0 * (r + 1.0) * (c + 1.0))
        h -= 2
        r += 1
        c += 1
        term, obs, tail, high, done = _add_term(term, obs, tail, high)
        if done:
            break
    return min(1.0, tail / (tail + high))


@numba.njit(cache=True, nogil=True)
def p_value_full(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """:func:`p_value` by enumerating every heterozygote count (Wigginton et al.'s
    algorithm, terms relative to the mode): the reference it is tested against."""
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


@numba.njit(cache=True, nogil=True)
def p_values_full(het, hom1, hom2, out):
    for i in range(het.shape[0]):
        out[i] = p_value_full(het[i], hom1[i], hom2[i])


@numba.njit(cache=True, nogil=True)
def _log_choose(n, k):
    return math.lgamma(n + 1.0) - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0)


@numba.njit(cache=True, nogil=True)
def _log_row_term(n_f, a_f, h):
    """log of ``n_f! / (AA! h! BB!) 2^h`` (``a_f`` A alleles among ``n_f`` females, ``h`` of them
    heterozygous)."""
    aa = (a_f - h) // 2
    return (math.lgamma(n_f + 1.0) - math.lgamma(aa + 1.0) - math.lgamma(h + 1.0)
            - math.lgamma(n_f - aa - h + 1.0) + h * math.log(2.0))


@numba.njit(cache=True, nogil=True, inline="always")
def _step_up(n_f, a_f, h):
    """T(h + 2) / T(h) in a row of the X-chromosomal test: 4 AA BB / ((h + 1)(h + 2))."""
    aa = (a_f - h) // 2
    return 4.0 * aa * (n_f - aa - h) / ((h + 1.0) * (h + 2.0))


@numba.njit(cache=True, nogil=True)
def _row_tails(n_f, a_f, log_offset, log_row, log_target, log_floor):
    """One row (fixed male A count; ``a_f`` A alleles among ``n_f`` females) of the
    X-chromosomal test: the sum of its terms ``exp(log_offset + _log_row_term(...))`` at or
    below ``exp(log_target)`` (both tails of a log-concave row); ``log_row`` the row's log
    mass.  The mode and the tails' inner ends are found by bisection.  Where the observed
    term is near the mode, the few terms above it are summed and taken from the row's mass
    (when that leaves at least 1e-3 of it); otherwise the tails are summed outwards, by the
    terms' ratio, until they fall below ``exp(log_floor)``."""
    lo_h, hi_h = a_f % 2, min(a_f, 2 * n_f - a_f)
    k_max = (hi_h - lo_h) // 2
    a, b = 0, k_max  # the mode: the first step ratio at or below 1
    while a < b:
        k = (a + b) // 2
        if _step_up(n_f, a_f, lo_h + 2 * k) > 1.0:
            a = k + 1
        else:
            b = k
    k_mode = a
    log_mode = log_offset + _log_row_term(n_f, a_f, lo_h + 2 * k_mode)
    if log_mode <= log_target:
        return math.exp(log_row)  # no term of the row is likelier than observed
    a, b = -1, k_mode  # the left tail's inner end: the largest k with its term at or below the target
    while a < b:
        k = (a + b + 1) // 2
        if log_offset + _log_row_term(n_f, a_f, lo_h + 2 * k) <= log_target:
            a = k
        else:
            b = k - 1
    k_left = a
    a, b = k_mode, k_max + 1  # the right tail's: the smallest
    while a < b:
        k = (a + b) // 2
        if log_offset + _log_row_term(n_f, a_f, lo_h + 2 * k) <= log_target:
            b = k
        else:
            a = k + 1
    k_right = a
    if k_right - k_left - 1 <= 4096 and log_mode - log_target < 30.0:
        middle, t = 0.0, 1.0  # relative to the mode's term
        for k in range(k_mode, k_right):
            middle += t
            t *= _step_up(n_f, a_f, lo_h + 2 * k)
        t = 1.0
        for k in range(k_mode, k_left + 1, -1):
            t /= _step_up(n_f, a_f, lo_h + 2 * (k - 1))
            middle += t
        rest = math.exp(log_row) - middle * math.exp(log_mode)
        if rest >= 1e-3 * math.exp(log_row):
            return rest
    total = 0.0  # relative to the target, so that nothing underflows
    rel_floor = math.exp(max(log_floor - log_target, -700.0))
    if k_right <= k_max:
        t = math.exp(log_offset + _log_row_term(n_f, a_f, lo_h + 2 * k_right) - log_target)
        k = k_right
        while t >= rel_floor:
            total += t
            if k == k_max:
                break
            t *= _step_up(n_f, a_f, lo_h + 2 * k)
            k += 1
    if k_left >= 0:
        t = math.exp(log_offset + _log_row_term(n_f, a_f, lo_h + 2 * k_left) - log_target)
        k = k_left
        while t >= rel_floor:
            total += t
            if k == 0:
                break
            t /= _step_up(n_f, a_f, lo_h + 2 * (k - 1))
            k -= 1
    return total * math.exp(log_target)


@numba.njit(cache=True, nogil=True)
def x_p_value(f_hom1: int, f_het: int, f_hom2: int, m1: int, m2: int) -> float:
    """Graffelman and Weir's (2016) exact test of Hardy-Weinberg equilibrium on chrX (PLINK 2's
    ``.hardy.x`` P): female genotype counts and male allele counts, jointly, given the total
    allele count; two-sided, not mid-p.  Terms below 1e-30 of the observed one are left out."""
    if min(f_hom1, f_het, f_hom2, m1, m2) < 0:
        return np.nan
    n_f, n_m = f_hom1 + f_het + f_hom2, m1 + m2
    if n_f + n_m == 0:
        return np.nan
    n_a = 2 * f_hom1 + f_het + m1
    n_t = 2 * n_f + n_m
    log_norm = _log_choose(n_t, n_a)
    # P(m, h) = C(n_m, m) n_f! / (AA! h! BB!) 2^h / C(n_t, n_a)
    log_obs = _log_choose(n_m, m1) - log_norm + _log_row_term(n_f, n_a - m1, f_het)
    n_configs = (n_m + 1.0) * (n_f + 1.0)
    if log_obs + math.log(n_configs) < -745.0:  # every term at or below it sums beneath double's range
        return 0.0
    log_target = log_obs + math.log1p(_TIE_EPS)
    log_floor = log_obs + math.log(1e-30)
    m_lo, m_hi = max(0, n_a - 2 * n_f), min(n_m, n_a)
    # rows outward from the mode of the male A count (hypergeometric), until negligible
    m_mode = min(m_hi, max(m_lo, int((n_a + 1.0) * (n_m + 1.0) / (n_t + 2.0))))
    p = 0.0
    for direction in (1, -1):
        m = m_mode if direction == 1 else m_mode - 1
        while m_lo <= m <= m_hi:
            a_f = n_a - m
            log_row = _log_choose(n_m, m) + _log_choose(2 * n_f, a_f) - log_norm  # the row's mass
            if log_row < log_floor:
                break
            p += _row_tails(n_f, a_f, _log_choose(n_m, m) - log_norm, log_row, log_target, log_floor)
            m += direction
    return min(1.0, p)


@numba.njit(cache=True, nogil=True)
def x_p_values(f_hom1, f_het, f_hom2, m1, m2, out):
    for i in range(f_het.shape[0]):
        out[i] = x_p_value(f_hom1[i], f_het[i], f_hom2[i], m1[i], m2[i])
