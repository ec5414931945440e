"""The CPU twin's numba function of :mod:`popgen.kernels.qc` (imported on first use)."""

import numba
import numpy as np


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


@numba.njit(nogil=True, cache=True)
def sample_counts(alt, out):
    """Per-sample (called, heterozygous, homozygous ALT) counts, added into ``out`` (s, 3)
    int64; int32 row accumulators so that the sample loop vectorizes."""
    n_variants, n_samples = alt.shape
    c = np.zeros(n_samples, dtype=np.int32)
    h = np.zeros(n_samples, dtype=np.int32)
    a = np.zeros(n_samples, dtype=np.int32)
    for v in range(n_variants):
        row = alt[v]
        for s in range(n_samples):
            g = row[s]
            c[s] += g >= 0
            h[s] += g == 1
            a[s] += g == 2
    for s in range(n_samples):
        out[s, 0] += c[s]
        out[s, 1] += h[s]
        out[s, 2] += a[s]


@numba.njit(nogil=True, cache=True)
def inbreeding_sums(alt, expected_hom, polymorphic, out):
    """Per-sample (calls counted, observed homozygous, expected homozygous) over the
    ``polymorphic`` variants, added into ``out`` (s, 3) float64: the expected sum adds the
    variant's ``expected_hom`` for each called sample."""
    n_variants, n_samples = alt.shape
    obs = np.zeros(n_samples, dtype=np.int32)
    hom = np.zeros(n_samples, dtype=np.int32)
    exp = np.zeros(n_samples)
    for v in range(n_variants):
        if not polymorphic[v]:
            continue
        row = alt[v]
        w = expected_hom[v]
        for s in range(n_samples):
            g = row[s]
            c = g >= 0
            obs[s] += c
            hom[s] += (g == 0) | (g == 2)
            exp[s] += w * c
    for s in range(n_samples):
        out[s, 0] += obs[s]
        out[s, 1] += hom[s]
        out[s, 2] += exp[s]
