"""Genotype standardization by per-variant lookup: CPU twin (numba) and CUDA launcher.

``out[v, s] = table[v, g]`` for ``g = alt[v, s]`` (index 3 for a missing call):
one gather per call, no temporaries, instead of arithmetic on the block (or an
int64 index array for ``take_along_axis``).  PCA, GRM and projection use it to
turn ALT counts into ``(g - 2p) / sqrt(2p(1-p))`` with 0 for missing.
"""

from __future__ import annotations

import numpy as np

from popgen.kernels import launch_grid_stride, register


def standardize_alt_cpu(alt: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Look up each call's value in its variant's table (CPU twin, numba).

    Parameters
    ----------
    alt : ndarray, int8, shape (n_variants, n_samples)
        ALT allele counts 0, 1, 2; -1 missing.
    table : ndarray, float32, shape (n_variants, 4)
        Values for g = 0, 1, 2 and for a missing call.

    Returns
    -------
    ndarray, float32, shape (n_variants, n_samples)
    """
    from popgen.kernels.standardize._cpu import standardize

    alt = np.ascontiguousarray(alt, dtype=np.int8)
    table = np.ascontiguousarray(table, dtype=np.float32)
    _check(alt.shape, table.shape)
    out = np.empty(alt.shape, dtype=np.float32)
    standardize(alt, table, out)
    return out


def standardize_alt_gpu(fn, alt, table):
    """Launch the CUDA ``standardize_alt`` on CuPy arrays (same contract as the CPU twin)."""
    import cupy

    alt = cupy.ascontiguousarray(alt, dtype=cupy.int8)
    table = cupy.ascontiguousarray(table, dtype=cupy.float32)
    _check(alt.shape, table.shape)
    out = cupy.empty(alt.shape, dtype=cupy.float32)
    launch_grid_stride(fn, alt.shape[0] * alt.shape[1],
                       (alt, table, out, np.int64(alt.shape[0]), np.int64(alt.shape[1])))
    return out


def _check(alt_shape, table_shape):
    if len(alt_shape) != 2 or tuple(table_shape) != (alt_shape[0], 4):
        raise ValueError(f"table shape {tuple(table_shape)} does not fit genotypes {tuple(alt_shape)}")


standardize_alt = register(
    "standardize_alt",
    cpu=standardize_alt_cpu,
    cuda_file="standardize/standardize_alt.cu",
    cuda_function="standardize_alt",
    launch=standardize_alt_gpu,
)
