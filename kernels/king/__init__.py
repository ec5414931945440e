"""KING-robust pair counts by AND + popcount on bit-packed genotype planes.

Genotypes of a variant chunk are packed per sample into four bit planes
(:func:`pack_king_planes`), 64 variants per ``uint64`` word::

    plane 0  called          (ALT count >= 0)
    plane 1  heterozygous    (ALT count == 1)
    plane 2  homozygous REF  (ALT count == 0)
    plane 3  homozygous ALT  (ALT count == 2)

and the kernel ``king_counts`` counts, for every pair (i, j) of two sample
sets, over the variants called in both (Manichaikul et al. 2010)::

    0 NSNP    popcount(called_i & called_j)
    1 HETHET  popcount(het_i & het_j)
    2 IBS0    popcount(homref_i & homalt_j | homalt_i & homref_j)
    3 HET1    popcount(het_i & called_j)
    4 HET2    popcount(called_i & het_j)

These are the same counts as the indicator GEMMs of
:func:`popgen.relatedness.king_gemm_tile`, at 4 bits per genotype and one
``popcnt`` per 64 variants instead of one multiply-add per variant.
"""

from __future__ import annotations

import numpy as np

from popgen.kernels import register

#: rows of the counts the kernel returns
KING_COUNTS = ("NSNP", "HETHET", "IBS0", "HET1", "HET2")

# j-samples per cache block of the CPU twin: 128 samples x 4 planes x n_words x 8 bytes stay in L2
_J_BLOCK = 128


def pack_king_planes(alt):
    """Bit-pack one block of ALT allele counts into KING planes.

    Parameters
    ----------
    alt : ndarray or cupy.ndarray, int8, shape (v, s)
        ALT allele counts, -1 missing.

    Returns
    -------
    array, uint64, shape (s, 4, ceil(v / 64))
        Planes called, het, hom REF, hom ALT per sample; bit ``k`` of word
        ``w`` is variant ``64 w + k``; padding bits are 0.  Same array type
        (NumPy or CuPy) as ``alt``.
    """
    xp = _module(alt)
    n_variants, n_samples = alt.shape
    n_words = max(1, -(-n_variants // 64))
    a = xp.ascontiguousarray(xp.asarray(alt, dtype=xp.int8).T)  # (s, v)
    pad = n_words * 64 - n_variants
    if pad:  # padding as missing calls: 0 in every plane
        a = xp.concatenate([a, xp.full((n_samples, pad), -1, dtype=xp.int8)], axis=1)
    out = xp.empty((n_samples, 4, n_words * 8), dtype=xp.uint8)
    for k, (op, value) in enumerate(((xp.greater_equal, 0), (xp.equal, 1), (xp.equal, 0), (xp.equal, 2))):
        # rows are whole bytes, so packing the flat plane packs each row (CuPy's packbits has no axis)
        bits = xp.packbits(op(a, value).ravel(), bitorder="little")  # one bool plane at a time
        out[:, k, :] = bits.reshape(n_samples, n_words * 8)
    return out.view(xp.uint64)  # little-endian: byte b of a word holds variants 8b .. 8b+7


def _module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def _jit():
    import numba
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def popcount(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return types.uint64(types.uint64), codegen

    @numba.njit(nogil=True, cache=True)
    def counts(pi, pj, out, j_block):
        s_i, n_words = pi.shape[0], pi.shape[2]
        s_j = pj.shape[0]
        # j in cache blocks (j_block samples' planes stay in L2 while i sweeps)
        for jb in range(0, s_j, j_block):
            je = min(jb + j_block, s_j)
            for i in range(s_i):
                ci, hi, ri, ai = pi[i, 0], pi[i, 1], pi[i, 2], pi[i, 3]
                for j in range(jb, je):
                    cj, hj, rj, aj = pj[j, 0], pj[j, 1], pj[j, 2], pj[j, 3]
                    nsnp = numba.uint64(0)
                    hethet = numba.uint64(0)
                    ibs0 = numba.uint64(0)
                    het1 = numba.uint64(0)
                    het2 = numba.uint64(0)
                    for w in range(n_words):  # contiguous per plane: LLVM vectorizes this loop
                        nsnp += popcount(ci[w] & cj[w])
                        hethet += popcount(hi[w] & hj[w])
                        ibs0 += popcount((ri[w] & aj[w]) | (ai[w] & rj[w]))
                        het1 += popcount(hi[w] & cj[w])
                        het2 += popcount(ci[w] & hj[w])
                    out[0, i, j] = nsnp
                    out[1, i, j] = hethet
                    out[2, i, j] = ibs0
                    out[3, i, j] = het1
                    out[4, i, j] = het2

    return counts


_counts_numba = None


def king_counts_cpu(planes_i: np.ndarray, planes_j: np.ndarray) -> np.ndarray:
    """KING pair counts of two packed sample sets (CPU twin, numba).

    Parameters
    ----------
    planes_i : ndarray, uint64, shape (s_i, 4, n_words)
    planes_j : ndarray, uint64, shape (s_j, 4, n_words)
        From :func:`pack_king_planes` of the same variants.

    Returns
    -------
    ndarray, int32, shape (5, s_i, s_j)
        NSNP, HETHET, IBS0, HET1, HET2 (see the module docstring).
    """
    global _counts_numba
    if _counts_numba is None:
        _counts_numba = _jit()
    planes_i = np.ascontiguousarray(planes_i, dtype=np.uint64)
    planes_j = np.ascontiguousarray(planes_j, dtype=np.uint64)
    _check(planes_i.shape, planes_j.shape)
    out = np.empty((5, planes_i.shape[0], planes_j.shape[0]), dtype=np.int32)
    _counts_numba(planes_i, planes_j, out, _J_BLOCK)
    return out


def king_counts_gpu(fn, planes_i, planes_j):
    """Launch the CUDA ``king_counts`` on CuPy arrays (same contract as the CPU twin)."""
    import cupy

    planes_i = cupy.ascontiguousarray(planes_i, dtype=cupy.uint64)
    planes_j = cupy.ascontiguousarray(planes_j, dtype=cupy.uint64)
    _check(planes_i.shape, planes_j.shape)
    s_i, n_words = planes_i.shape[0], planes_i.shape[2]
    s_j = planes_j.shape[0]
    out = cupy.empty((5, s_i, s_j), dtype=cupy.int32)
    if s_i and s_j:
        tile = 16  # TILE in king_counts.cu
        grid = ((s_j + tile - 1) // tile, (s_i + tile - 1) // tile)
        fn(grid, (tile, tile), (planes_i, planes_j, out, np.int64(s_i), np.int64(s_j), np.int64(n_words)))
    return out


def _check(shape_i, shape_j):
    if len(shape_i) != 3 or len(shape_j) != 3 or shape_i[1] != 4 or shape_j[1] != 4 or shape_i[2] != shape_j[2]:
        raise ValueError(f"planes shapes {shape_i} and {shape_j}: expected (s_i, 4, n_words) and (s_j, 4, n_words)")
    if shape_i[2] * 64 >= 2**31:
        raise ValueError(f"{shape_i[2]} words: counts would overflow int32; use smaller variant chunks")


king_counts = register(
    "king_counts",
    cpu=king_counts_cpu,
    cuda_file="king/king_counts.cu",
    cuda_function="king_counts",
    launch=king_counts_gpu,
)
