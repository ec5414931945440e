"""Association-scan kernels: CPU twins and CUDA launchers.

``linear_sums`` computes the sufficient statistics of the exact linear scan
(:func:`popgen.association.linear_partial_block`)::

    [G @ wg,  G^2 @ wg2,  Missing @ wo]

for a block of ALT allele counts ``G`` (missing calls count 0) and the
missing-call indicators.  As three GEMMs the missing-call product dominates
(``wo`` has ``K(K+1)/2 + K P + P + 1`` columns for ``K - 1`` covariates and
``P`` phenotypes) although only ~1% of calls are missing: the CPU twin runs
the genotype GEMMs with BLAS and sums ``wo`` over the missing calls only
(numba), the CUDA twin loops over samples per output element.
"""

from __future__ import annotations

import numpy as np

from popgen.kernels import launch_grid_stride, register


#: variants per sub-block of the CPU twin (bounds its float64 copy of the genotypes): see _rows
_ROWS = 256


def _rows(n_variants: int, n_columns: int) -> int:
    """Variants per sub-block for GEMMs with ``n_columns`` weight columns.

    Few columns (one phenotype: covariates + 2): 32 variants, so that the float64
    sub-block G (2.5 MB at 10,000 samples) stays in cache between the decoding pass and
    the GEMM; a chunk of 1,677 x 10,000 took 23.6 ms instead of 35.4 ms at 256 rows
    (two threads).  From 32 columns on (30+ phenotypes) the weights (samples x columns)
    dominate the GEMM's reads, once per sub-block: 256 rows (100 phenotypes, 116 columns:
    86 ms per chunk, against 101 ms at 128 rows and 116 ms at 32).
    """
    return max(1, min(n_variants, 32 if n_columns < 32 else _ROWS))


def _gemm_into(out, g, wt, tmp):
    """``out = g @ wt.T`` (``wt``: the weights transposed, (columns, samples) contiguous) computed
    as ``wt @ g.T`` into ``tmp`` (columns, rows) and copied: OpenBLAS runs the products of a
    sub-block of variants with few weight columns faster this way round (15 columns, 32
    variants x 10,000 samples: 29 against 22 GFLOP/s; 114 columns, 256 variants: 44 against 41)."""
    np.matmul(wt, g.T, out=tmp)
    out[...] = tmp.T


def linear_sums_cpu(alt: np.ndarray, wg: np.ndarray, wg2: np.ndarray, wo: np.ndarray) -> np.ndarray:
    """``[G @ wg, G^2 @ wg2, Missing @ wo]`` of a genotype block (CPU twin).

    One numba pass per sub-block of :func:`_rows` variants decodes the calls
    to float64 ``G`` and ``G^2`` and sums ``wo`` over the missing calls only;
    the genotype sums are float64 GEMMs (BLAS).

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
    from popgen.kernels.assoc._linear_sums_numba import decode_and_missing_sums
    alt = np.ascontiguousarray(alt, dtype=np.int8)
    wg, wg2, wo = (np.ascontiguousarray(w, dtype=np.float64) for w in (wg, wg2, wo))
    _check(alt.shape, wg.shape, wg2.shape, wo.shape)
    n_variants, n_samples = alt.shape
    a, b, c = wg.shape[1], wg2.shape[1], wo.shape[1]
    out = np.empty((n_variants, a + b + c), dtype=np.float64)
    rows = _rows(n_variants, a)
    g, g2 = np.empty((rows, n_samples)), np.empty((rows, n_samples))
    wgt, wg2t = np.ascontiguousarray(wg.T), np.ascontiguousarray(wg2.T)
    tmp, tmp2 = np.empty((a, rows)), np.empty((b, rows))
    idx = np.empty(n_samples, dtype=np.int64)
    for r0 in range(0, n_variants, rows):
        r1 = min(n_variants, r0 + rows)
        k = r1 - r0
        decode_and_missing_sums(alt[r0:r1], wo, g[:k], g2[:k], out[r0:r1, a + b:], idx)
        _gemm_into(out[r0:r1, :a], g[:k], wgt, tmp[:, :k])
        _gemm_into(out[r0:r1, a:a + b], g2[:k], wg2t, tmp2[:, :k])
    return out


def linear_sums_grouped_cpu(alt, wg, wg2, c, y, founder, sizes) -> np.ndarray:
    """:func:`linear_sums_cpu` with ``wo = popgen.association._grouped_columns(c, y, sizes,
    founder)[2]`` never formed: the missing calls' products are computed from ``c`` (s, G, K),
    ``y`` (s, P) and ``founder`` (s,), which stay in cache where ``wo`` (K(K+1)/2 + P(K+1)
    columns per group) does not.  Same result (up to the order of additions)."""
    from popgen.kernels.assoc._linear_sums_numba import decode_and_missing_products
    alt = np.ascontiguousarray(alt, dtype=np.int8)
    wg, wg2, c, y, founder = (np.ascontiguousarray(w, dtype=np.float64) for w in (wg, wg2, c, y, founder))
    n_variants, n_samples = alt.shape
    n_groups, k = c.shape[1], c.shape[2]
    if c.shape[0] != n_samples or y.shape[0] != n_samples or len(sizes) != n_groups or sum(sizes) != y.shape[1]:
        raise ValueError(f"design {c.shape}, {y.shape}, groups {list(sizes)} do not fit genotypes {alt.shape}")
    _check(alt.shape, wg.shape, wg2.shape)
    a, b = wg.shape[1], wg2.shape[1]
    n_o = n_groups * k * (k + 1) // 2 + y.shape[1] * (k + 1) + 1
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = np.empty((n_variants, a + b + n_o), dtype=np.float64)
    rows = _rows(n_variants, a)
    g = np.empty((rows, n_samples))
    w2t, wgt, tmp = np.ascontiguousarray(wg2.T), np.ascontiguousarray(wg.T), np.empty((a, rows))
    idx = np.empty(n_samples, dtype=np.int64)
    for r0 in range(0, n_variants, rows):
        r1 = min(n_variants, r0 + rows)
        n = r1 - r0
        decode_and_missing_products(alt[r0:r1], c, y, starts, founder, w2t, g[:n], out[r0:r1, a:a + b],
                                    out[r0:r1, a + b:], idx)
        _gemm_into(out[r0:r1, :a], g[:n], wgt, tmp[:, :n])
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
