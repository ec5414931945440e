"""QC counts: numba CPU kernels.

The CPU paths of :func:`popgen.qc.variant_counts_block` (per-variant called,
heterozygous, homozygous ALT), :func:`popgen.qc.sample_counts_block` (the same per
sample) and :func:`popgen.qc.inbreeding_block` (per-sample homozygosity sums): one
pass over the calls where the composed versions make several (comparisons,
reductions, a float64 product); CuPy blocks keep the composed versions, which are
fused passes there.
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


def sample_counts_cpu(alt: np.ndarray) -> np.ndarray:
    """Per-sample counts of called, heterozygous and homozygous-ALT calls, (n_samples, 3) int64
    (``alt`` as :func:`variant_counts_cpu`'s)."""
    from popgen.kernels.qc._cpu import sample_counts

    alt = np.ascontiguousarray(alt, dtype=np.int8)
    out = np.zeros((alt.shape[1], 3), dtype=np.int64)
    sample_counts(alt, out)
    return out


def inbreeding_cpu(alt: np.ndarray, expected_hom: np.ndarray, polymorphic: np.ndarray) -> np.ndarray:
    """Per-sample calls counted, observed and expected homozygous calls over the
    ``polymorphic`` variants, (n_samples, 3) float64 (:func:`popgen.qc.inbreeding_block`)."""
    from popgen.kernels.qc._cpu import inbreeding_sums

    alt = np.ascontiguousarray(alt, dtype=np.int8)
    w = np.ascontiguousarray(expected_hom, dtype=np.float64)
    poly = np.ascontiguousarray(polymorphic, dtype=np.bool_)
    if w.shape != (alt.shape[0],) or poly.shape != (alt.shape[0],):
        raise ValueError(f"weights {w.shape} / flags {poly.shape} do not fit genotypes {alt.shape}")
    out = np.zeros((alt.shape[1], 3), dtype=np.float64)
    inbreeding_sums(alt, w, poly, out)
    return out
