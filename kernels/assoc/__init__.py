"""Association-scan kernels: CPU twins (numba) and CUDA launchers.

``linear_sums`` computes the sufficient statistics of the exact linear scan
(:func:`popgen.association.linear_partial_block`)::

    [G @ wg,  G^2 @ wg2,  Missing @ wo]

for a block of ALT allele counts ``G`` (missing calls count 0) and the
missing-call indicators.  As GEMMs these touch every call; the CPU twin only
visits the calls that contribute: per variant it counts the rarer of the
0 and 2 genotypes and sums over the non-zero calls of ``G`` or of ``2 - G``
(then ``G @ w = 2 (T_w - Missing @ w) - (2 - G) @ w``, ``T_w`` the column sums
of ``w``), and over the missing calls (about 1% of calls).  Narrow weights are summed 8
columns at a time in registers, wide ones (many phenotypes) row by row.
"""

from __future__ import annotations

import numpy as np

from popgen.kernels import launch_grid_stride, register


def _jit():
    import numba

    @numba.njit(nogil=True, cache=True, inline="always")
    def rows_sum(w, idx, n, out):
        """out[:] = sum of the rows w[idx[:n]].  Narrow weights (cache-resident): 8 columns at a time
        summed in registers; wide ones: whole rows streamed into ``out``."""
        width = w.shape[1]
        if width > 64:
            for j in range(width):
                out[j] = 0.0
            for t in range(n):
                r = w[idx[t]]
                for j in range(width):
                    out[j] += r[j]
            return
        j = 0
        while j + 8 <= width:
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
            for t in range(n):
                r = idx[t]
                s0 += w[r, j]
                s1 += w[r, j + 1]
                s2 += w[r, j + 2]
                s3 += w[r, j + 3]
                s4 += w[r, j + 4]
                s5 += w[r, j + 5]
                s6 += w[r, j + 6]
                s7 += w[r, j + 7]
            out[j] = s0
            out[j + 1] = s1
            out[j + 2] = s2
            out[j + 3] = s3
            out[j + 4] = s4
            out[j + 5] = s5
            out[j + 6] = s6
            out[j + 7] = s7
            j += 8
        while j < width:
            s0 = 0.0
            for t in range(n):
                s0 += w[idx[t], j]
            out[j] = s0
            j += 1

    @numba.njit(nogil=True, cache=True)
    def run(alt, w, a, b, wo, c, out):
        n_variants, n_samples = alt.shape
        width = w.shape[1]
        total = np.zeros(width)
        for s in range(n_samples):
            for j in range(width):
                total[j] += w[s, j]
        lists = np.empty((3, n_samples), dtype=np.int32)  # samples by call: missing, 1, the rarer homozygote
        s1 = np.empty(width)
        s2 = np.empty(width)
        tmp = np.empty(width)
        so = np.empty(wo.shape[1])
        for v in range(n_variants):
            row = alt[v]
            n0 = 0
            n2 = 0
            for s in range(n_samples):
                x = row[s]
                n0 += x == 0
                n2 += x == 2
            common = 2 if n2 > n0 else 0   # the calls not visited
            cm = 0
            c1 = 0
            cr = 0
            for s in range(n_samples):
                x = row[s]
                if x == common:
                    continue
                if x < 0:
                    lists[0, cm] = s
                    cm += 1
                elif x == 1:
                    lists[1, c1] = s
                    c1 += 1
                else:
                    lists[2, cr] = s
                    cr += 1
            rows_sum(w, lists[1], c1, s1)
            if common == 0:
                rows_sum(w, lists[2], cr, s2)
            else:  # 2s are what the others leave: total - missing - 0s - 1s
                rows_sum(w, lists[0], cm, s2)
                rows_sum(w, lists[2], cr, tmp)
                for j in range(width):
                    s2[j] = total[j] - s2[j] - tmp[j] - s1[j]
            rows_sum(wo, lists[0], cm, so)
            o = out[v]
            for j in range(a):
                o[j] = s1[j] + 2.0 * s2[j]
            for j in range(b):
                o[a + j] = s1[a + j] + 4.0 * s2[a + j]
            for j in range(c):
                o[a + b + j] = so[j]

    return run


_run = None


def linear_sums_cpu(alt: np.ndarray, wg: np.ndarray, wg2: np.ndarray, wo: np.ndarray) -> np.ndarray:
    """``[G @ wg, G^2 @ wg2, Missing @ wo]`` of a genotype block (CPU twin, numba).

    Parameters
    ----------
    alt : ndarray, int8, shape (n_variants, n_samples)
        ALT allele counts 0, 1, 2; -1 missing (counts 0 in ``G``).
    wg, wg2, wo : ndarray, float64, shapes (n_samples, a), (n_samples, b), (n_samples, c)
        Per-sample columns.

    Returns
    -------
    ndarray, float64, shape (n_variants, a + b + c)
    """
    global _run
    if _run is None:
        _run = _jit()
    alt = np.ascontiguousarray(alt, dtype=np.int8)
    wg, wg2, wo = (np.ascontiguousarray(w, dtype=np.float64) for w in (wg, wg2, wo))
    _check(alt.shape, wg.shape, wg2.shape, wo.shape)
    a, b, c = wg.shape[1], wg2.shape[1], wo.shape[1]
    w = np.concatenate([wg, wg2], axis=1)
    out = np.empty((alt.shape[0], a + b + c), dtype=np.float64)
    _run(alt, w, a, b, wo, c, out)
    return out


def linear_sums_gpu(fn, alt, wg, wg2, wo):
    """Launch the CUDA ``linear_sums`` on CuPy arrays (same contract as the CPU twin)."""
    import cupy

    alt = cupy.ascontiguousarray(alt, dtype=cupy.int8)
    wg, wg2, wo = (cupy.ascontiguousarray(w, dtype=cupy.float64) for w in (wg, wg2, wo))
    _check(alt.shape, wg.shape, wg2.shape, wo.shape)
    n_variants, n_samples = alt.shape
    a, b, c = wg.shape[1], wg2.shape[1], wo.shape[1]
    out = cupy.empty((n_variants, a + b + c), dtype=cupy.float64)
    launch_grid_stride(fn, n_variants * (a + b + c),
                       (alt, wg, wg2, wo, out, np.int64(n_variants), np.int64(n_samples), np.int64(a),
                        np.int64(b), np.int64(c)))
    return out


def _check(alt_shape, *w_shapes):
    if len(alt_shape) != 2 or any(len(s) != 2 or s[0] != alt_shape[1] for s in w_shapes):
        raise ValueError(f"weights {[tuple(s) for s in w_shapes]} do not fit genotypes {tuple(alt_shape)}")


linear_sums = register(
    "linear_sums",
    cpu=linear_sums_cpu,
    cuda_file="assoc/linear_sums.cu",
    cuda_function="linear_sums",
    launch=linear_sums_gpu,
)
