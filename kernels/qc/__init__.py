"""Per-variant call counts (called, heterozygous, homozygous ALT): numba CPU kernel.

The CPU path of :func:`popgen.qc.variant_counts_block`, one pass over the calls
where the composed version makes six (three comparisons, three reductions);
CuPy blocks keep the composed version, which is one fused pass per count there.
"""

from __future__ import annotations

import numpy as np


def variant_counts_cpu(alt: np.ndarray, samples: np.ndarray | None = None) -> np.ndarray:
    """Per-variant counts of called, heterozygous and homozygous-ALT calls.

    Parameters
    ----------
    alt : ndarray, int8, shape (n_variants, n_samples)
        ALT allele counts 0, 1, 2; -1 missing.
    samples : ndarray, bool, shape (n_samples,), optional
        Only these samples are counted.

    Returns
    -------
    ndarray, int64, shape (n_variants, 3)
    """
    from popgen.kernels.qc._cpu import variant_counts

    alt = np.ascontiguousarray(alt, dtype=np.int8)
    keep = np.ones(alt.shape[1], dtype=np.bool_) if samples is None else np.asarray(samples, dtype=np.bool_)
    if alt.ndim != 2 or keep.shape != (alt.shape[1],):
        raise ValueError(f"sample mask of shape {keep.shape} does not fit genotypes {alt.shape}")
    out = np.empty((alt.shape[0], 3), dtype=np.int64)
    variant_counts(alt, keep, out)
    return out
