"""numba products of the randomized PCA's passes on CPU: ``X Q`` and ``(X Q)' X`` for a
sub-block ``X`` of standardized genotypes (float32, a few dozen variants x all samples) and a
basis ``Q`` of ~20 columns (imported on first use: numba loads lazily).

OpenBLAS runs these skinny shapes at 55-65 GFLOP/s per core here (it packs the 800 KB ``Q``
on every call and its micro-kernel is sized for wide matrices), against ~95 for square
products.  Blocks of 4 variants x 5 basis columns keep 20 accumulators in vector registers
over the samples: ~105 GFLOP/s for ``X Q`` and ~85 for ``(X Q)' X`` on the same core.  The
column count is padded to a multiple of 5 by the caller (:func:`popgen.pca.pass_block`);
variant counts need not be a multiple of 4.  Module-level functions, so that numba's disk
cache finds them again in the next process.
"""

import numba
import numpy as np


@numba.njit(fastmath=True, nogil=True, cache=True)
def xq(x, qt, y):
    """``y = x @ qt.T``: ``x`` (r, n), ``qt`` (l, n) with ``l % 5 == 0``, ``y`` (r, l); float32."""
    n_rows, n = x.shape
    n_cols = qt.shape[0]
    main = n_rows - n_rows % 4
    zero = np.float32(0.0)
    for r in range(0, main, 4):  # the 4 rows stay in cache across the column blocks
        x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
        for j in range(0, n_cols, 5):
            q0, q1, q2, q3, q4 = qt[j], qt[j + 1], qt[j + 2], qt[j + 3], qt[j + 4]
            a00 = a01 = a02 = a03 = a04 = zero
            a10 = a11 = a12 = a13 = a14 = zero
            a20 = a21 = a22 = a23 = a24 = zero
            a30 = a31 = a32 = a33 = a34 = zero
            for s in range(n):
                v0, v1, v2, v3 = x0[s], x1[s], x2[s], x3[s]
                w0, w1, w2, w3, w4 = q0[s], q1[s], q2[s], q3[s], q4[s]
                a00 += v0 * w0
                a01 += v0 * w1
                a02 += v0 * w2
                a03 += v0 * w3
                a04 += v0 * w4
                a10 += v1 * w0
                a11 += v1 * w1
                a12 += v1 * w2
                a13 += v1 * w3
                a14 += v1 * w4
                a20 += v2 * w0
                a21 += v2 * w1
                a22 += v2 * w2
                a23 += v2 * w3
                a24 += v2 * w4
                a30 += v3 * w0
                a31 += v3 * w1
                a32 += v3 * w2
                a33 += v3 * w3
                a34 += v3 * w4
            y[r, j], y[r, j + 1], y[r, j + 2], y[r, j + 3], y[r, j + 4] = a00, a01, a02, a03, a04
            y[r + 1, j], y[r + 1, j + 1], y[r + 1, j + 2], y[r + 1, j + 3], y[r + 1, j + 4] = a10, a11, a12, a13, a14
            y[r + 2, j], y[r + 2, j + 1], y[r + 2, j + 2], y[r + 2, j + 3], y[r + 2, j + 4] = a20, a21, a22, a23, a24
            y[r + 3, j], y[r + 3, j + 1], y[r + 3, j + 2], y[r + 3, j + 3], y[r + 3, j + 4] = a30, a31, a32, a33, a34
    for r in range(main, n_rows):
        x0 = x[r]
        for j in range(0, n_cols, 5):
            q0, q1, q2, q3, q4 = qt[j], qt[j + 1], qt[j + 2], qt[j + 3], qt[j + 4]
            a00 = a01 = a02 = a03 = a04 = zero
            for s in range(n):
                v0 = x0[s]
                a00 += v0 * q0[s]
                a01 += v0 * q1[s]
                a02 += v0 * q2[s]
                a03 += v0 * q3[s]
                a04 += v0 * q4[s]
            y[r, j], y[r, j + 1], y[r, j + 2], y[r, j + 3], y[r, j + 4] = a00, a01, a02, a03, a04


@numba.njit(fastmath=True, nogil=True, cache=True)
def ytx_add(y, x, out):
    """``out += y.T @ x``: ``y`` (r, l) with ``l % 5 == 0``, ``x`` (r, n), ``out`` (l, n); float32."""
    n_rows, n = x.shape
    n_cols = y.shape[1]
    main = n_rows - n_rows % 4
    for j in range(0, n_cols, 5):
        o0, o1, o2, o3, o4 = out[j], out[j + 1], out[j + 2], out[j + 3], out[j + 4]
        for r in range(0, main, 4):
            x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
            c00, c01, c02, c03, c04 = y[r, j], y[r, j + 1], y[r, j + 2], y[r, j + 3], y[r, j + 4]
            c10, c11, c12, c13, c14 = y[r + 1, j], y[r + 1, j + 1], y[r + 1, j + 2], y[r + 1, j + 3], y[r + 1, j + 4]
            c20, c21, c22, c23, c24 = y[r + 2, j], y[r + 2, j + 1], y[r + 2, j + 2], y[r + 2, j + 3], y[r + 2, j + 4]
            c30, c31, c32, c33, c34 = y[r + 3, j], y[r + 3, j + 1], y[r + 3, j + 2], y[r + 3, j + 3], y[r + 3, j + 4]
            for s in range(n):
                v0, v1, v2, v3 = x0[s], x1[s], x2[s], x3[s]
                o0[s] += c00 * v0 + c10 * v1 + c20 * v2 + c30 * v3
                o1[s] += c01 * v0 + c11 * v1 + c21 * v2 + c31 * v3
                o2[s] += c02 * v0 + c12 * v1 + c22 * v2 + c32 * v3
                o3[s] += c03 * v0 + c13 * v1 + c23 * v2 + c33 * v3
                o4[s] += c04 * v0 + c14 * v1 + c24 * v2 + c34 * v3
        for r in range(main, n_rows):
            x0 = x[r]
            c00, c01, c02, c03, c04 = y[r, j], y[r, j + 1], y[r, j + 2], y[r, j + 3], y[r, j + 4]
            for s in range(n):
                v0 = x0[s]
                o0[s] += c00 * v0
                o1[s] += c01 * v0
                o2[s] += c02 * v0
                o3[s] += c03 * v0
                o4[s] += c04 * v0
