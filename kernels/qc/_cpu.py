"""The CPU twin's numba function of :mod:`popgen.kernels.qc` (imported on first use)."""

import numba


@numba.njit(nogil=True, cache=True)
def variant_counts(alt, keep, out):
    n_variants, n_samples = alt.shape
    for v in range(n_variants):
        row = alt[v]
        called = het = hom = 0
        for s in range(n_samples):
            g = row[s]
            k = keep[s]
            called += k & (g >= 0)
            het += k & (g == 1)
            hom += k & (g == 2)
        out[v, 0] = called
        out[v, 1] = het
        out[v, 2] = hom
