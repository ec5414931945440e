"""Text rows of the pair reports (``.kin0``, ``.rel``) written by numba.

A 10,000-sample ``.kin0`` has 5e7 rows and a square ``.rel`` 1e8 numbers:
formatting them with Python strings takes minutes, here seconds.  Numbers are
printed as :func:`popgen.relatedness.fmt_plink2` prints them (PLINK 2's 6
significant digits with near-ties to even, then ``%.6g``); the tests compare
the two on random and edge-case values.  The number formatting itself is
:func:`popgen.io._textfmt_numba.put_g6`, shared with the association tables.  Imported only when a report is
written (numba compiles once and caches on disk).
"""

from __future__ import annotations

import numba
import numpy as np

from popgen.io._textfmt_numba import put_g6, put_int


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
            pos = put_g6(buf, pos + 1, np.float64(counts[1, i, j]) * recip, False)
            buf[pos] = 9
            pos = put_g6(buf, pos + 1, np.float64(counts[2, i, j]) * recip, False)
            buf[pos] = 9
            pos = put_g6(buf, pos + 1, k, False)
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
            pos = put_g6(buf, pos, values[r, c], False)
        for _ in range(pad_zeros[r]):
            buf[pos], buf[pos + 1] = 9, 48
            pos += 2
        buf[pos] = 10
        pos += 1
    return buf[:pos]


def fmt_g(x) -> list[str]:
    """:func:`put_g6` on each value (for tests): the strings."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    text = g_rows(x, np.ones(len(x), np.int64), np.zeros(len(x), np.int64)).tobytes().decode()
    return text.splitlines()
