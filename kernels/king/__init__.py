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


def pack_king_planes(alt, out=None):
    """Bit-pack one block of ALT allele counts into KING planes.

    Parameters
    ----------
    alt : ndarray or cupy.ndarray, int8, shape (v, s)
        ALT allele counts, -1 missing.
    out : ndarray, uint64, shape (s, 4, ceil(v / 64)), optional
        Written in place (NumPy only; may be a view, e.g. the words of one
        variant chunk in a tile's planes).

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
    if xp is np:
        if out is None:
            out = np.empty((n_samples, 4, n_words), dtype=np.uint64)
        elif out.shape != (n_samples, 4, n_words) or out.dtype != np.uint64:
            raise ValueError(f"out: expected a uint64 array of shape {(n_samples, 4, n_words)}")
        _numba().pack(np.ascontiguousarray(alt, dtype=np.int8), out)
        return out
    if out is not None:
        raise ValueError("out is only supported for NumPy arrays")
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


def _numba():
    """The numba functions (:mod:`._cpu`), compiled on first use and cached on disk."""
    from . import _cpu

    return _cpu


def king_counts_cpu(planes_i: np.ndarray, planes_j: np.ndarray, below=None) -> np.ndarray:
    """KING pair counts of two packed sample sets (CPU twin, numba).

    Parameters
    ----------
    planes_i : ndarray, uint64, shape (s_i, 4, n_words)
    planes_j : ndarray, uint64, shape (s_j, 4, n_words)
        From :func:`pack_king_planes` of the same variants.
    below : int, optional
        Only the pairs ``j < i + below`` are needed (e.g. ``below = row0 - col0``
        for the lower triangle of the whole matrix, ``j < i`` on a diagonal
        tile); the CPU twin skips the others, whose entries are then
        unspecified.  The GPU kernel computes every pair.

    Returns
    -------
    ndarray, int32, shape (5, s_i, s_j)
        NSNP, HETHET, IBS0, HET1, HET2 (see the module docstring).
    """
    planes_i = np.ascontiguousarray(planes_i, dtype=np.uint64)
    planes_j = np.ascontiguousarray(planes_j, dtype=np.uint64)
    _check(planes_i.shape, planes_j.shape)
    out = np.empty((5, planes_i.shape[0], planes_j.shape[0]), dtype=np.int32)
    _numba().counts(planes_i, planes_j, out, _J_BLOCK, -1 if below is None else int(below))
    return out


def king_counts_gpu(fn, planes_i, planes_j, below=None):
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


# ------------------------------------------------------------------ standardize from planes

def standardize_planes_cpu(planes: np.ndarray, w0: int, w1: int, table: np.ndarray, out=None) -> np.ndarray:
    """Standardized genotypes of words ``w0:w1`` of 2-bit code planes (CPU twin, numba).

    Parameters
    ----------
    planes : ndarray, uint64, shape (s, 2, n_words)
        Genotype codes (:func:`popgen.relatedness.genotype_codes` of
        :func:`pack_king_planes`): per variant bit, ``(lo, hi)`` = ``00`` hom REF,
        ``10`` het, ``01`` hom ALT, ``11`` missing.
    w0, w1 : int
        Word range: variant bits ``64 w0 .. 64 w1 - 1``.
    table : ndarray, float32 or float64, shape (64 n_words, 4)
        Value of each bit position (variant) for ALT count 0, 1, 2 and
        missing (column 3), as :func:`popgen.pca.standardize_block` tables;
        padding positions should be rows of zeros.
    out : ndarray, table's dtype, shape (s, 64 (w1 - w0)), optional
        Written in place (CPU only): reusing one buffer across calls saves
        faulting in fresh pages, which costs as much as the lookups.

    Returns
    -------
    ndarray, table's dtype, shape (s, 64 (w1 - w0))
        ``out[s, k] = table[64 w0 + k, g]``: sample-major, ready for
        ``out_i @ out_j.T``.
    """
    planes = np.ascontiguousarray(planes, dtype=np.uint64)
    table = np.asarray(table)
    _check_standardize(planes.shape, w0, w1, table.shape)
    shape = (planes.shape[0], 64 * (w1 - w0))
    if out is None:
        out = np.empty(shape, dtype=table.dtype)
    elif out.shape != shape or out.dtype != table.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out: expected a C-contiguous {table.dtype} array of shape {shape}")
    tt = np.ascontiguousarray(table[64 * w0:64 * w1].reshape(w1 - w0, 64, 4).transpose(0, 2, 1))
    _numba().standardize(planes, int(w0), tt, out)
    return out


def standardize_planes_gpu(fn, planes, w0, w1, table):
    """Launch the CUDA ``standardize_planes`` on CuPy arrays (same contract as the CPU twin)."""
    import cupy

    from popgen.kernels import launch_grid_stride

    planes = cupy.ascontiguousarray(planes, dtype=cupy.uint64)
    table = cupy.ascontiguousarray(table)
    if table.dtype not in (cupy.float32, cupy.float64):
        raise ValueError(f"table dtype {table.dtype}: float32 or float64")
    _check_standardize(planes.shape, w0, w1, table.shape)
    s, n_words = planes.shape[0], planes.shape[2]
    out = cupy.empty((s, 64 * (w1 - w0)), dtype=table.dtype)
    fn = fn if table.dtype == cupy.float64 else _compile_f32()
    launch_grid_stride(fn, out.size, (planes, table, out, np.int64(s), np.int64(n_words), np.int64(w0),
                                      np.int64(w1 - w0)))
    return out


def _compile_f32():
    from popgen.kernels import _compile

    return _compile("king/standardize_planes.cu", "standardize_planes_f32")


def _check_standardize(shape, w0, w1, table_shape):
    if len(shape) != 3 or shape[1] != 2:
        raise ValueError(f"code planes shape {shape}: expected (s, 2, n_words)")
    if not 0 <= w0 <= w1 <= shape[2]:
        raise ValueError(f"word range {w0}:{w1} outside 0:{shape[2]}")
    if tuple(table_shape) != (64 * shape[2], 4):
        raise ValueError(f"table shape {tuple(table_shape)}: expected ({64 * shape[2]}, 4)")


standardize_planes = register(
    "standardize_planes",
    cpu=standardize_planes_cpu,
    cuda_file="king/standardize_planes.cu",
    cuda_function="standardize_planes_f64",
    launch=standardize_planes_gpu,
)


# ------------------------------------------------------------------ called in both (host helper)


def called_in_both_sparse(planes_i, planes_j, valid, max_cost):
    """Variants called in both samples of each pair, from the missing calls (CPU).

    ``C_ij = M - miss_i - miss_j + miss_ij`` where ``miss_ij`` is counted variant by
    variant over the (few) samples missing it: ``sum_v m_i(v) m_j(v)`` increments,
    against ``s_i s_j n_words`` for a dense count.

    Parameters
    ----------
    planes_i, planes_j : ndarray, uint64, shape (s, 2, n_words)
        Genotype code planes (see :func:`standardize_planes_cpu`).
    valid : ndarray, uint64, shape (n_words,)
        Bits of real variants (padding bits 0).
    max_cost : int
        Give up (return None) when the sparse count needs more increments.

    Returns
    -------
    ndarray, int64, shape (s_i, s_j), or None
    """
    f = _numba()
    valid = np.ascontiguousarray(valid, dtype=np.uint64)
    ip_i, sm_i = f.lists(planes_i, valid)
    ip_j, sm_j = (ip_i, sm_i) if planes_j is planes_i else f.lists(planes_j, valid)
    if f.cost(ip_i, ip_j) > max_cost:
        return None
    n_valid = int(sum(bin(int(w)).count("1") for w in valid))
    miss_i = np.bincount(sm_i, minlength=planes_i.shape[0])
    miss_j = np.bincount(sm_j, minlength=planes_j.shape[0])
    out = np.zeros((planes_i.shape[0], planes_j.shape[0]), dtype=np.int64)
    f.both(ip_i, sm_i, ip_j, sm_j, out)
    out += n_valid - miss_i[:, None] - miss_j[None, :]
    return out
