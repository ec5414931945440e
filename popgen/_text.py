"""Text rows of the pair reports (``.kin0``, ``.rel``) written by numba.

A 10,000-sample ``.kin0`` has 5e7 rows and a square ``.rel`` 1e8 numbers:
formatting them with Python strings takes minutes, here seconds.  Numbers are
printed as :func:`popgen.relatedness.fmt_plink2` prints them (PLINK 2's 6
significant digits with near-ties to even, then ``%.6g``); the tests compare
the two on random and edge-case values.  Imported only when a report is
written (numba compiles once and caches on disk).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def put_g(buf, pos, x):
    """Write ``x`` at ``buf[pos:]`` as ``f"{round_plink2(x):.6g}"``; return the new position."""
    if math.isnan(x):
        buf[pos], buf[pos + 1], buf[pos + 2] = 110, 97, 110  # nan
        return pos + 3
    if x < 0 or (x == 0 and math.copysign(1.0, x) < 0):
        buf[pos] = 45  # '-'
        pos += 1
    a = abs(x)
    if math.isinf(a):
        buf[pos], buf[pos + 1], buf[pos + 2] = 105, 110, 102  # inf
        return pos + 3
    if a == 0:
        buf[pos] = 48
        return pos + 1
    # popgen.io.reports.round_plink2: 6 digits d (100000 .. 999999), exponent e
    e = math.floor(math.log10(a))
    scaled = a * 10.0 ** (5 - e)
    if scaled < 1e5:
        e -= 1
    elif scaled >= 1e6:
        e += 1
    scaled = a * 10.0 ** (5 - e)
    whole = math.floor(scaled)
    half = 0.4999995 if whole % 2 == 0 else 0.5000005
    d = np.int64(whole) + (1 if (scaled - whole) + half >= 1.0 else 0)
    e = np.int64(e)
    if d >= 1000000:
        d //= 10
        e += 1
    digits = np.empty(6, dtype=np.uint8)
    for k in range(5, -1, -1):
        digits[k] = 48 + d % 10
        d //= 10
    last = 5  # last significant digit (trailing zeros dropped, as %g)
    while last > 0 and digits[last] == 48:
        last -= 1
    if -4 <= e < 6:
        if e < 0:
            buf[pos], buf[pos + 1] = 48, 46  # "0."
            pos += 2
            for _ in range(-e - 1):
                buf[pos] = 48
                pos += 1
            for k in range(last + 1):
                buf[pos] = digits[k]
                pos += 1
        else:
            for k in range(e + 1):
                buf[pos] = digits[k]
                pos += 1
            if last > e:
                buf[pos] = 46
                pos += 1
                for k in range(e + 1, last + 1):
                    buf[pos] = digits[k]
                    pos += 1
        return pos
    buf[pos] = digits[0]
    pos += 1
    if last > 0:
        buf[pos] = 46
        pos += 1
        for k in range(1, last + 1):
            buf[pos] = digits[k]
            pos += 1
    buf[pos] = 101  # 'e'
    buf[pos + 1] = 45 if e < 0 else 43
    pos += 2
    ae = -e if e < 0 else e
    if ae >= 100:
        buf[pos] = 48 + ae // 100
        pos += 1
    buf[pos], buf[pos + 1] = 48 + (ae // 10) % 10, 48 + ae % 10
    return pos + 2


@numba.njit(nogil=True, cache=True)
def put_int(buf, pos, v):
    if v < 0:
        buf[pos] = 45
        pos += 1
        v = -v
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    for k in range(n - 1, -1, -1):
        buf[pos + k] = 48 + v % 10
        v //= 10
    return pos + n


@numba.njit(nogil=True, cache=True, error_model="numpy")
def kin0_rows(counts, row0, col0, filtered, threshold, ids, id_off, degree_column, bounds):
    """``.kin0`` rows of one tile of KING counts: pairs with ``col0 + j < row0 + i``.

    counts (5, s_i, s_j) int; ids: ``FID\\tIID`` (or ``IID``) bytes of all samples,
    sample k at ``ids[id_off[k]:id_off[k + 1]]``; a pair is kept unless
    ``filtered`` and ``KINSHIP < threshold``; ``bounds`` the degree bounds.
    Returns (text bytes, row offsets (s_i + 1,), pairs kept).
    """
    s_i, s_j = counts.shape[1], counts.shape[2]
    max_id = 0
    for k in range(id_off.shape[0] - 1):
        max_id = max(max_id, id_off[k + 1] - id_off[k])
    kin = np.empty((s_i, s_j))
    kept = 0
    for i in range(s_i):
        for j in range(min(s_j, row0 + i - col0)):
            hethet, ibs0, het1, het2 = (np.int64(counts[1, i, j]), np.int64(counts[2, i, j]),
                                        np.int64(counts[3, i, j]), np.int64(counts[4, i, j]))
            num = np.float64(4 * ibs0 + het1 + het2 - 2 * hethet)
            den = np.float64(4 * min(het1, het2))
            kin[i, j] = 0.5 - num / den
            if not (filtered and kin[i, j] < threshold):
                kept += 1
    buf = np.empty(kept * (2 * max_id + 80) + 1, dtype=np.uint8)
    offsets = np.zeros(s_i + 1, dtype=np.int64)
    pos = 0
    for i in range(s_i):
        gi = row0 + i
        for j in range(min(s_j, gi - col0)):
            k = kin[i, j]
            if filtered and k < threshold:
                continue
            gj = col0 + j
            for b in range(id_off[gi], id_off[gi + 1]):
                buf[pos] = ids[b]
                pos += 1
            buf[pos] = 9
            pos += 1
            for b in range(id_off[gj], id_off[gj + 1]):
                buf[pos] = ids[b]
                pos += 1
            buf[pos] = 9
            nsnp = np.int64(counts[0, i, j])
            pos = put_int(buf, pos + 1, nsnp)
            recip = 1.0 / np.float64(nsnp)  # PLINK 2 multiplies by the reciprocal
            buf[pos] = 9
            pos = put_g(buf, pos + 1, np.float64(counts[1, i, j]) * recip)
            buf[pos] = 9
            pos = put_g(buf, pos + 1, np.float64(counts[2, i, j]) * recip)
            buf[pos] = 9
            pos = put_g(buf, pos + 1, k)
            if degree_column:
                buf[pos] = 9
                pos += 1
                deg = -1
                for d in range(bounds.shape[0] - 1, -1, -1):
                    if k > bounds[d]:
                        deg = d
                if deg < 0:
                    buf[pos], buf[pos + 1] = 78, 65  # NA
                    pos += 2
                else:
                    buf[pos] = 48 + deg
                    pos += 1
            buf[pos] = 10
            pos += 1
        offsets[i + 1] = pos
    return buf[:pos], offsets, kept


@numba.njit(nogil=True, cache=True)
def g_rows(values, lengths, pad_zeros):
    """Tab-separated rows: row ``r`` holds ``values[r, :lengths[r]]`` and then
    ``pad_zeros[r]`` zeros (``square0``).  Returns the text bytes."""
    n_rows = values.shape[0]
    size = 0
    for r in range(n_rows):
        size += 14 * lengths[r] + 2 * pad_zeros[r] + 1
    buf = np.empty(size, dtype=np.uint8)
    pos = 0
    for r in range(n_rows):
        for c in range(lengths[r]):
            if c:
                buf[pos] = 9
                pos += 1
            pos = put_g(buf, pos, values[r, c])
        for _ in range(pad_zeros[r]):
            buf[pos], buf[pos + 1] = 9, 48
            pos += 2
        buf[pos] = 10
        pos += 1
    return buf[:pos]


def fmt_g(x) -> list[str]:
    """:func:`put_g` on each value (for tests): the strings."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    text = g_rows(x, np.ones(len(x), np.int64), np.zeros(len(x), np.int64)).tobytes().decode()
    return text.splitlines()
