"""The CPU twin's numba function of :mod:`popgen.kernels.standardize` (imported on first use)."""

import numba


@numba.njit(nogil=True, cache=True)
def standardize(alt, table, out):
    n_variants, n_samples = alt.shape
    for v in range(n_variants):
        t0, t1, t2, t3 = table[v, 0], table[v, 1], table[v, 2], table[v, 3]
        for s in range(n_samples):
            g = alt[v, s]
            out[v, s] = t0 if g == 0 else (t1 if g == 1 else (t2 if g == 2 else t3))
