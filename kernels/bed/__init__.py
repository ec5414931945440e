"""PLINK 1 .bed 2-bit genotype decoding: CPU twin (numba) and CUDA launcher.

Encoding (variant-major .bed, 4 samples per byte, low bits first), with .bim
column 5 (A1) as ALT and column 6 (A2) as REF, as PLINK 2 reads them::

    00 -> 2 (hom A1)   01 -> -1 (missing)   10 -> 1 (het)   11 -> 0 (hom A2)
"""

from __future__ import annotations

import numpy as np

from popgen.kernels import launch_grid_stride, register

#: code -> ALT allele count, -1 missing
BED_CODE_TO_ALT = np.array([2, -1, 1, 0], dtype=np.int8)

# byte -> the 4 decoded calls it holds
_BYTE_LUT = np.array(
    [[BED_CODE_TO_ALT[(b >> (2 * k)) & 3] for k in range(4)] for b in range(256)], dtype=np.int8
)


#: the same, each byte's 4 calls as one 32-bit word (its bytes in memory order): one load and
#: one store per .bed byte, 3x the per-call lookup
_BYTE_LUT32 = np.ascontiguousarray(_BYTE_LUT).view(np.uint32).reshape(-1)


def decode_bed_cpu(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Decode packed .bed rows to ALT allele counts (CPU twin, numba).

    Parameters
    ----------
    packed : ndarray, uint8, shape (n_variants, n_bytes)
        Rows of a variant-major .bed, ``n_bytes >= ceil(n_samples / 4)``.
    n_samples : int
        Number of samples encoded in each row (the last byte may be padded).

    Returns
    -------
    ndarray, int8, shape (n_variants, n_samples)
        ALT allele count (0, 1, 2) or -1 for a missing call.
    """
    from popgen.kernels.bed._cpu import decode

    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    _check(packed.shape, n_samples)
    n_variants, n_bytes = packed.shape
    n_bytes = min(n_bytes, -(-n_samples // 4))  # bytes beyond the samples' are not decoded
    out32 = np.empty((n_variants, n_bytes), dtype=np.uint32)
    decode(packed[:, :n_bytes], _BYTE_LUT32, out32)
    out = out32.view(np.int8).reshape(n_variants, 4 * n_bytes)
    return out if out.shape[1] == n_samples else np.ascontiguousarray(out[:, :n_samples])


def decode_bed_gpu(fn, packed, n_samples: int):
    """Launch the CUDA ``decode_bed`` on a CuPy array (same contract as the CPU twin)."""
    import cupy

    packed = cupy.ascontiguousarray(packed, dtype=cupy.uint8)
    _check(packed.shape, n_samples)
    n_variants, n_bytes = packed.shape
    out = cupy.empty((n_variants, n_samples), dtype=cupy.int8)
    launch_grid_stride(fn, n_variants * n_samples,
                       (packed, out, np.int64(n_variants), np.int64(n_bytes), np.int64(n_samples)))
    return out


def _check(shape, n_samples):
    if len(shape) != 2 or shape[1] * 4 < n_samples:
        raise ValueError(f"packed shape {shape} cannot hold {n_samples} samples")


decode_bed = register(
    "decode_bed",
    cpu=decode_bed_cpu,
    cuda_file="bed/decode_bed.cu",
    cuda_function="decode_bed",
    launch=decode_bed_gpu,
)
