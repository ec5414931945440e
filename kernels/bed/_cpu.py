"""The CPU twin's numba function of :mod:`popgen.kernels.bed` (imported on first use)."""

import numba


@numba.njit(nogil=True, cache=True)
def decode(packed, lut32, out32):
    n_variants, n_bytes = packed.shape
    for v in range(n_variants):
        row = packed[v]
        o = out32[v]
        for b in range(n_bytes):
            o[b] = lut32[row[b]]
