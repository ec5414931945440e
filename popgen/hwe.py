"""Hardy-Weinberg exact test (Wigginton, Cutler & Abecasis 2005), numba CPU kernel.

The test runs on per-variant genotype counts, which are tiny aggregates: on a
GPU run the counts are reduced on the device and only ``(variants, 3)``
integers come back to the host for this step.
"""

from __future__ import annotations

import numpy as np


def hwe_exact_p(n_het, n_hom_ref, n_hom_alt) -> np.ndarray:
    """Two-sided Hardy-Weinberg exact test p-values.

    Parameters
    ----------
    n_het, n_hom_ref, n_hom_alt : array_like, int, shape (variants,)
        Genotype counts (host arrays).

    Returns
    -------
    ndarray, float64, shape (variants,)
        Exact p-value (not mid-p), NaN where no calls.

    References
    ----------
    Wigginton JE, Cutler DJ, Abecasis GR (2005). A note on exact tests of
    Hardy-Weinberg equilibrium. Am J Hum Genet 76:887-893.
    """
    from popgen._hwe_numba import p_values

    het = np.ascontiguousarray(n_het, dtype=np.int64)
    hom1 = np.ascontiguousarray(n_hom_ref, dtype=np.int64)
    hom2 = np.ascontiguousarray(n_hom_alt, dtype=np.int64)
    out = np.empty(het.shape[0], dtype=np.float64)
    p_values(het, hom1, hom2, out)
    return out
