"""numba code of the ``linear_sums`` CPU twin (imported on first use: numba loads lazily).

Module-level functions (not closures), so that numba's on-disk cache finds them again in the
next process.
"""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, fastmath=True)
def decode_and_missing_sums(alt, wo, g, g2, out, idx):
    """One pass over a block of calls: ``g`` (float64, missing as 0) and ``g2 = g^2`` for the
    GEMMs, and ``out[v] = sum of wo[s] over the samples s missing at v`` (alt < 0).

    Missing calls are rare (about 1%): they are listed first, then each adds its row of
    ``wo`` into a local accumulator (fastmath: the additions are vectorized).
    """
    n_variants, n_samples = alt.shape
    c = wo.shape[1]
    acc = np.empty(c)
    for v in range(n_variants):
        row = alt[v]
        gv = g[v]
        g2v = g2[v]
        m = 0
        for s in range(n_samples):
            x = row[s]
            if x < 0:
                idx[m] = s
                m += 1
                x = 0
            gv[s] = x
            g2v[s] = x * x
        for j in range(c):
            acc[j] = 0.0
        for t in range(m):
            r = wo[idx[t]]
            for j in range(c):
                acc[j] += r[j]
        o = out[v]
        for j in range(c):
            o[j] = acc[j]
