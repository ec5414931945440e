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


@numba.njit(nogil=True, cache=True)
def encode(alt, code, out):
    """Pack ALT counts (v, s) int8 into .bed rows ``out`` (v, ceil(s / 4)): ``code[a + 1]`` the
    2-bit code of count ``a`` (missing: any negative count), four samples a byte, low bits first.
    The whole bytes and a last partial one are two loops: the fixed 4-sample loop unrolls (one
    loop with a per-byte bound ran 1.8x slower)."""
    n_variants, n_samples = alt.shape
    full = n_samples // 4
    for v in range(n_variants):
        a = alt[v]
        o = out[v]
        for b in range(full):
            x = 0
            for k in range(4):
                c = a[4 * b + k]
                x |= code[0 if c < 0 else c + 1] << (2 * k)
            o[b] = x
        if full * 4 < n_samples:
            x = 0
            for k in range(n_samples - 4 * full):
                c = a[4 * full + k]
                x |= code[0 if c < 0 else c + 1] << (2 * k)
            o[full] = x
