"""numba code of the ``linear_sums`` CPU twin (imported on first use: numba loads lazily).

Module-level functions (not closures), so that numba's on-disk cache finds them again in the
next process.
"""

import numba
import numpy as np


_SIGN_BITS = np.uint64(0x8080808080808080)


@numba.njit(nogil=True, cache=True, fastmath=True)
def decode_values(row, gv):
    """``gv = max(row, 0)`` (float64); returns the number of missing calls (``row < 0``).
    Branch-free, so that it vectorizes."""
    n_missing = 0
    for s in range(row.shape[0]):
        x = row[s]
        gv[s] = np.float64(max(x, np.int8(0)))
        n_missing += np.int64(x < 0)
    return n_missing


@numba.njit(nogil=True, cache=True)
def missing_calls(row, idx):
    """The sample indices of the missing calls (``row < 0``) in ``idx[:m]``; returns ``m``.

    8 calls at a time from the sign bits of 64-bit words: the missing calls are about 1%,
    and a branch per call cost 2.4x the time of the whole decoding (9.4 vs 4.0 us per
    10,000 calls).  ``row`` is contiguous.
    """
    n = row.shape[0]
    n8 = n // 8 * 8
    words = row[:n8].view(np.uint64)  # little-endian: byte k of word w is call 8 w + k
    m = 0
    for w in range(words.shape[0]):
        bits = words[w] & _SIGN_BITS
        while bits:
            low = bits & (~bits + np.uint64(1))
            k = 0
            while low > np.uint64(0x80):
                low >>= np.uint64(8)
                k += 1
            idx[m] = 8 * w + k
            m += 1
            bits &= bits - np.uint64(1)
    for s in range(n8, n):
        idx[m] = s
        m += np.int64(row[s] < 0)
    return m


@numba.njit(nogil=True, cache=True, fastmath=True)
def decode_row(row, gv, g2v, idx):
    """``gv = max(row, 0)``, ``g2v = gv^2`` (float64) and the missing calls' sample indices
    in ``idx[:m]`` (:func:`missing_calls`); returns ``m``."""
    n_missing = decode_values(row, gv)
    for s in range(row.shape[0]):
        g2v[s] = gv[s] * gv[s]
    return missing_calls(row, idx) if n_missing else 0


@numba.njit(nogil=True, cache=True, fastmath=True)
def decode_and_missing_sums(alt, wo, g, g2, out, idx):
    """One pass over a block of calls: ``g`` (float64, missing as 0) and ``g2 = g^2`` for the
    GEMMs, and ``out[v] = sum of wo[s] over the samples s missing at v`` (alt < 0).

    Missing calls are rare (about 1%): they are listed first, then each adds its row of
    ``wo`` into a local accumulator (fastmath: the additions are vectorized).
    """
    n_variants, n_samples = alt.shape
    c = wo.shape[1]
    acc = np.empty(c)
    for v in range(n_variants):
        m = decode_row(alt[v], g[v], g2[v], idx)
        for j in range(c):
            acc[j] = 0.0
        for t in range(m):
            r = wo[idx[t]]
            for j in range(c):
                acc[j] += r[j]
        o = out[v]
        for j in range(c):
            o[j] = acc[j]


@numba.njit(nogil=True, cache=True, fastmath=True)
def decode_and_missing_products(alt, c, y, starts, founder, w2t, g, sq, out, idx):
    """:func:`decode_and_missing_sums` of the grouped layout without its ``wo`` matrix: each
    missing call adds its products computed from ``c`` (s, G, K), ``y`` (s, P) and ``founder``
    (s,) -- per group ``c_a c_b`` (a <= b), per phenotype of the group (``starts[g]`` to
    ``starts[g + 1]``) ``y c_a``, then ``y^2``; ``founder`` last.

    The same sums as ``decode_and_missing_sums(alt, wo, ...)`` with ``wo`` from
    ``popgen.association._grouped_columns``, but read from arrays of ``K + P``
    columns (cache-resident) instead of ``wo``'s ``K(K+1)/2 + P(K+1)``: for 100
    phenotypes ``wo`` is ~120 MB at 10,000 samples, and each missing call's row
    came from memory.  Per variant and group the missing calls' rows of ``c`` and ``y`` are
    gathered and their products formed as two small GEMMs (BLAS).

    ``sq = G^2 @ w2t.T`` (``w2t`` (b, s): e.g. the groups' sample masks) is summed as each
    row is decoded, instead of a GEMM over a float64 copy of ``G^2``.
    """
    n_variants, n_samples = alt.shape
    n_groups, k = c.shape[1], c.shape[2]
    acc = np.empty(out.shape[1])
    p_max = 0
    for gi in range(n_groups):
        p_max = max(p_max, starts[gi + 1] - starts[gi])
    cbuf = np.empty((n_samples, k))
    ybuf = np.empty(n_samples * p_max)
    y2buf = np.empty(p_max)
    for v in range(n_variants):
        row, gv = alt[v], g[v]
        n_missing = decode_values(row, gv)
        for j in range(w2t.shape[0]):
            w2 = w2t[j]
            ss = 0.0
            for s in range(n_samples):
                ss += gv[s] * gv[s] * w2[s]
            sq[v, j] = ss
        m = missing_calls(row, idx) if n_missing else 0
        acc[:] = 0.0
        o = 0
        for gi in range(n_groups):
            p0, p1 = starts[gi], starts[gi + 1]
            cm = cbuf[:m]
            ym = ybuf[:m * (p1 - p0)].reshape((m, p1 - p0))
            y2 = y2buf[:p1 - p0]
            y2[:] = 0.0
            for t in range(m):  # the missing calls' rows (and their y^2), then their products as GEMMs
                s = idx[t]
                cs, ct = c[s, gi], cm[t]
                for a in range(k):
                    ct[a] = cs[a]
                ys, yt = y[s], ym[t]
                for p in range(p1 - p0):
                    x = ys[p0 + p]
                    yt[p] = x
                    y2[p] += x * x
            cc = np.dot(cm.T, cm)
            yc = np.dot(ym.T, cm)
            for a in range(k):
                for b in range(a, k):
                    acc[o] = cc[a, b]
                    o += 1
            for p in range(p1 - p0):
                for a in range(k):
                    acc[o + a] = yc[p, a]
                o += k
            for p in range(p1 - p0):
                acc[o] = y2[p]
                o += 1
        f = 0.0
        for t in range(m):
            f += founder[idx[t]]
        acc[o] = f
        out[v, :] = acc
