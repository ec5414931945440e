"""Relatedness: genomic relationship matrix, KING-robust kinship, degrees and
unrelated sets, as PLINK 2 computes them, on CPU or GPU.

GRM (``plink2 --make-rel``)
    Variance-standardized relationship matrix, as for ``--pca``: with ALT
    allele frequencies ``p`` (PLINK 2 uses founders',
    :func:`popgen.genotypes.founder_mask`)::

        x_vi = (g_vi - 2 p_v) / sqrt(2 p_v (1 - p_v))     0 if missing or monomorphic
        K_ij = sum_v x_vi x_vj / C_ij                      C_ij = variants called in both

    ``C_ij`` counts every autosomal variant called in both samples
    (monomorphic ones included), the diagonal too (``K_ii = sum_v x_vi^2 / C_ii``).
    Equal to ``plink2 --make-rel square bin`` to 1e-13 on the bundled example.

KING-robust kinship (``plink2 --make-king-table``; Manichaikul et al. 2010)
    Over the autosomal variants called in both samples of a pair, with
    ``HET1``/``HET2`` the heterozygous calls of the first/second sample::

        KINSHIP = 1/2 - (4 IBS0 + HET1 + HET2 - 2 HETHET) / (4 min(HET1, HET2))

    KING's between-family estimator (PLINK 2 uses it for every pair; it is
    not ``(HETHET - 2 IBS0) / (HET1 + HET2)``, KING's within-family form).
    It needs no allele frequencies, so all samples and all autosomal
    variants are used (monomorphic ones add nothing but NSNP).  ``O.kin0``
    has ``#FID1 IID1 FID2 IID2 NSNP HETHET IBS0 KINSHIP`` with HETHET and IBS0
    as proportions of NSNP, one row per pair ``(i, j)`` with ``j < i`` in
    sample order, rows ordered by ``i`` then ``j`` (PLINK 2's lower-triangle
    order).  ``--king-table-filter T`` keeps rows with ``not KINSHIP < T``
    (``>= T``; PLINK 2 accepts ``T <= 0.5``).  A pair without heterozygous calls
    has KINSHIP ``-inf`` (or ``nan``), printed as PLINK 2 does.

    PLINK 2 (v2.00a3.5; the code is unchanged in its current source)
    over-counts NSNP: on "sparse" variants (at most ``floor(N/33)`` samples
    off the homozygous REF genotype, or else off homozygous ALT; ``N/30`` in
    non-AVX2 builds) a pair with one sample missing and the other carrying
    the rare homozygote is counted as called in both.  popgen reports the
    true count; KINSHIP, and the HETHET and IBS0 counts, are unaffected (on
    the example the difference is exactly that pair count: 1 variant on 109
    of the 179,700 pairs, so NSNP and the HETHET/IBS0 proportions of those
    rows differ slightly).

Degrees (KING's inference criteria)
    ``> 0.354`` duplicate/MZ twin (0), ``(0.177, 0.354]`` first (1),
    ``(0.0884, 0.177]`` second (2), ``(0.0442, 0.0884]`` third degree (3),
    else unrelated (-1; ``NA`` in files).  ``O.kin0`` gets them as an optional
    trailing ``DEGREE`` column, after PLINK 2's columns, so scripts reading
    PLINK 2's ``.kin0`` by column name or position keep working (KING's own
    ``.kin0`` likewise ends with its ``InfType`` column).

Unrelated set (``plink2 --king-cutoff T``)
    Remove samples until no remaining pair has KINSHIP ``> T``, keeping as
    many as possible: a maximum independent set of the graph of related
    pairs, solved per connected component: exactly (branch and bound) for
    small components, otherwise by iterated local search (Andrade, Resende &
    Werneck 2012) started from PLINK 2's own greedy (remove the partner of the
    first degree-1 sample, else the first sample of maximum degree), so the
    result never keeps fewer samples than PLINK 2.

Tiled computation and memory
    The N x N pair space is never in memory.  The autosomal genotypes are
    bit-packed once and persisted, one chunk per sample tile of ``T``
    samples holding every variant: for KING into four planes per sample
    (:func:`king_planes`: called, het, hom REF, hom ALT; ``N M / 2`` bytes),
    for the GRM into 2-bit genotype codes (:func:`genotype_codes`: two
    planes, ``N M / 4`` bytes).  In process (threads or synchronous
    scheduler, NumPy) each genotype chunk is packed straight into its tile's
    preallocated planes; on a cluster or GPU by Dask tasks and a rechunk.  A
    task is one tile pair ``(I, J <= I)``:

    KING
        AND + popcount over all variants (kernel ``king_counts``; on a
        diagonal tile only ``j < i``), reduced on the tile's device to its
        rows (filter applied there) and, for ``O.kin0``, formatted there
        (numba, :mod:`popgen._text`).  A panel (tile ``I`` against ``J <= I``)
        is written as soon as it is complete, while the next one computes.
        GPU: the ``gemm`` method (float32 indicator GEMMs over variant
        chunks, summed) is the default there.
    GRM
        float32 products of 1024 variants at a time standardized from the
        codes (kernel ``standardize_planes``, into reused buffers), SYRK on
        diagonal blocks, summed in float64; the counts of variants called in
        both samples from the missing calls, variant by variant, when they
        are sparse (float32 products of called indicators otherwise).  Only
        blocks on and below the diagonal are computed; a square matrix is
        written column by column, 128 rows at a time, the blocks of later
        rows waiting on disk (``T x T`` float64 files, read back by rows).

    Bytes (``T`` samples per tile, ``N`` samples, ``M`` autosomal variants)::

        KING planes          N M / 2                (persisted; 477 MiB at 10,000 x 100,000)
        GRM codes            N M / 4                (persisted; 238 MiB at 10,000 x 100,000)
        KING task            20 T^2 + text          (int32 counts, ~80 bytes per pair kept)
        KING panel (host)    text of T N pairs; T defaults to what keeps it under
                             128 MiB (T = 140 at N = 10,000), 2048 with a filter; two
                             panels live (one written while the next computes)
        GRM task             ~36 T^2                (float64 sums and called counts, float32
                                                    product, two float32 T x 1024 buffers;
                                                    T = 1024: ~40 MB)
        GRM column (host)    8 T N, two live        (80 MB each at N = 10,000, T = 1024)
        GRM rows written     128 N (8 + 14)         (values and text: ~28 MB at N = 10,000)
        GRM spill (disk)     up to 4 N^2 bytes      (square only)

    Measured (2 cores, ``scripts/README.md``): at 10,000 x 100,000 peak
    resident memory 0.98 GB for ``grm --shape square`` (PLINK 2 1.04 GB) and
    1.13 GB for an unfiltered ``king`` (PLINK 2 1.22 GB); at 20,000 x 100,000,
    1.28 GB for ``grm --zarr`` (model: 0.48 GB codes + 2 x 0.16 GB columns +
    ~0.08 GB tasks + ~0.35 GB for the Python stack itself: numpy, scipy, dask,
    numba and OpenBLAS loaded; 278 s, a 2.8 GB store) and 1.91 GB for
    ``king --king-table-filter 0.0442`` (0.95 GB planes; T = 2048 tasks hold
    84 MB of counts each until reduced; 149 s); at 50,000 x 100,000 (1.25e9
    pairs), 3.32 GB for the same filtered ``king`` (2.33 GiB planes, flat
    over the run; 853 s, 347,247 pairs kept) and 2.63 GB for ``grm --zarr``
    (model: 1.16 GiB codes + 2 x 0.41 GB columns + tasks + stack; 1,690 s).

    N = 50,000 samples are 1.25e9 pairs: an unfiltered ``.kin0`` of ~82
    bytes per row is ~100 GB, the GRM as text (``square``) 25 GB,
    ``triangle bin`` 10 GB; this machine (2 cores, 23 GiB RAM, ~75 GB free
    disk) holds the packed genotypes (2.5 GB at M = 100,000) and every
    task and panel, but not an unfiltered 50,000-sample table on disk:
    filter it (``king_table_filter``), as one does for kinship anyway.
    Time: ``scripts/bench_relatedness.py`` measures both against PLINK 2
    and as a function of N (pairs: N^2 / 2).

References
----------
Manichaikul A et al. (2010) Robust relationship inference in genome-wide
association studies. Bioinformatics 26:2867-2873.
Andrade DV, Resende MGC, Werneck RF (2012) Fast local search for the maximum
independent set problem. J Heuristics 18:525-547.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError

log = logging.getLogger("popgen")

#: rows of a KING counts array (also the kernel's output order)
KING_COUNTS = ("NSNP", "HETHET", "IBS0", "HET1", "HET2")
#: lower bounds (exclusive) of kinship for degree 0 (duplicate/MZ), 1, 2, 3 (KING)
DEGREE_BOUNDS = (0.354, 0.177, 0.0884, 0.0442)
DEGREE_NAMES = {0: "duplicate/MZ twin", 1: "1st degree", 2: "2nd degree", 3: "3rd degree", -1: "unrelated"}

#: variants per float32 indicator product in the GEMM tile
_GEMM_ROWS = 4096
#: default sample tile; smaller for unfiltered tables, see _table_tile
_TILE = 2048
#: host bytes a KING panel may hold when every pair is kept
_PANEL_BYTES = 2**30
#: bytes per pair in a panel on the host (indices, five counts, kinship)
_PAIR_BYTES = 64
#: host bytes of one panel of .kin0 text when every pair is written
_PANEL_TEXT_BYTES = 128 * 2**20
#: .kin0 bytes per row besides the two sample IDs
_ROW_TEXT_BYTES = 50
#: samples per GRM tile
_GRM_TILE = 1024
#: GRM rows formatted and written at a time
_GRM_WRITE_ROWS = 128
#: 64-variant words per float32 GRM product (float64 sums across products)
_GRM_STEP_WORDS = 16
#: components up to this size get an exact maximum independent set
_EXACT_MAX = 40


# ------------------------------------------------------------------ block math

def king_gemm_tile(alt_i, alt_j, rows: int = _GEMM_ROWS):
    """KING counts of one variant chunk and a pair of sample tiles, by GEMMs.

    Parameters
    ----------
    alt_i, alt_j : array, int8, shape (v, s_i) and (v, s_j)
        ALT allele counts, -1 missing (NumPy, CuPy or any Array-API array).
    rows : int
        Variants per product: bounds the float32 indicator temporaries.

    Returns
    -------
    array, int32, shape (1, 5, s_i, s_j)
        NSNP, HETHET, IBS0, HET1, HET2 (:data:`KING_COUNTS`):
        ``O_i'O_j``, ``H_i'H_j``, ``R_i'A_j + A_i'R_j``, ``H_i'O_j``, ``O_i'H_j``
        with O called, H heterozygous, R hom REF, A hom ALT 0/1 indicators.
        Float32 products of 0/1 are exact below 2^24 terms (``rows``).
    """
    from popgen.backend import namespace

    xp = namespace(alt_i)
    f32 = xp.float32

    def mm(a, b):
        return xp.matmul(xp.matrix_transpose(a), b)

    acc = None
    n = alt_i.shape[0]
    for start in range(0, max(n, 1), rows):
        stop = min(start + rows, n)
        a, b = alt_i[start:stop, :], alt_j[start:stop, :]
        oi, oj, hi, hj = (xp.astype(x, f32) for x in (a >= 0, b >= 0, a == 1, b == 1))
        nsnp, hethet, het1, het2 = mm(oi, oj), mm(hi, hj), mm(hi, oj), mm(oi, hj)
        del oi, oj, hi, hj
        ibs0 = mm(xp.astype(a == 0, f32), xp.astype(b == 2, f32)) + mm(xp.astype(a == 2, f32), xp.astype(b == 0, f32))
        part = xp.astype(xp.stack([nsnp, hethet, ibs0, het1, het2], axis=0), xp.int32)
        acc = part if acc is None else acc + part
    return acc[None, ...]


def king_popcount_tile(planes_i, planes_j, below=None):
    """KING counts of a tile pair from packed planes: (1, 5, s_i, s_j) int32.

    ``planes_*`` are :func:`popgen.kernels.king.pack_king_planes` blocks,
    shape (s, 4, words); runs the registered ``king_counts`` kernel (numba on
    NumPy arrays, CUDA on CuPy arrays).  With ``below``, only pairs
    ``j < i + below`` are needed (the CPU kernel skips the others).
    """
    from popgen import kernels

    if below is None:
        return kernels.get("king_counts")(planes_i, planes_j)[None, ...]
    return kernels.get("king_counts")(planes_i, planes_j, below=below)[None, ...]


def kinship_from_counts(hethet, ibs0, het1, het2):
    """KING-robust between-family kinship, as PLINK 2 computes it.

    ``1/2 - (4 IBS0 + HET1 + HET2 - 2 HETHET) / (4 min(HET1, HET2))`` in
    float64 from exact integer sums (bit-identical to PLINK 2); ``-inf`` or
    ``nan`` when a sample has no heterozygous call in the pair.

    Parameters
    ----------
    hethet, ibs0, het1, het2 : array, int, same shape
        Counts over the variants called in both samples (any namespace).

    Returns
    -------
    array, float64, same shape
    """
    from popgen.backend import namespace

    xp = namespace(hethet)
    i64, f64 = xp.int64, xp.float64
    hethet, ibs0, het1, het2 = (xp.astype(x, i64) for x in (hethet, ibs0, het1, het2))
    num = xp.astype(4 * ibs0 + het1 + het2 - 2 * hethet, f64)
    den = xp.astype(4 * xp.minimum(het1, het2), f64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 - num / den


def degree(kinship) -> np.ndarray:
    """Relationship degree from KING-robust kinship (KING's criteria).

    Parameters
    ----------
    kinship : array_like, float

    Returns
    -------
    ndarray, int8, same shape
        0 duplicate/MZ twin (``> 0.354``), 1 first (``> 0.177``), 2 second
        (``> 0.0884``), 3 third degree (``> 0.0442``), -1 unrelated (and NaN).
    """
    k = np.asarray(kinship, dtype=np.float64)
    out = np.full(k.shape, -1, dtype=np.int8)
    for d, bound in reversed(list(enumerate(DEGREE_BOUNDS))):
        out[k > bound] = d
    return out


def tile_pairs(counts, row0: int, col0: int, min_kinship=None):
    """Reduce one tile of KING counts to its pairs, on the tile's device.

    Parameters
    ----------
    counts : array, int, shape (5, s_i, s_j)
        Counts of samples ``row0 ..`` against samples ``col0 ..``.
    row0, col0 : int
        Sample index of the tile's first row and column.
    min_kinship : float, optional
        Keep pairs with ``not KINSHIP < min_kinship`` (PLINK 2's
        ``--king-table-filter``).

    Returns
    -------
    KingPairs
        Pairs ``(i, j)`` with ``j < i`` of the tile, in row-major order, on the host.
    """
    from popgen.backend import namespace, to_cpu

    xp = namespace(counts)
    s_i, s_j = counts.shape[1], counts.shape[2]
    kin = kinship_from_counts(counts[1, ...], counts[2, ...], counts[3, ...], counts[4, ...])
    rows = xp.reshape(xp.arange(row0, row0 + s_i, dtype=xp.int64), (s_i, 1))
    cols = xp.reshape(xp.arange(col0, col0 + s_j, dtype=xp.int64), (1, s_j))
    keep = cols < rows
    if min_kinship is not None:
        keep = keep & ~(kin < float(min_kinship))
    flat = xp.reshape(keep, (-1,))
    (idx,) = xp.nonzero(flat)
    kept = xp.take(xp.reshape(counts, (5, -1)), idx, axis=1)
    return KingPairs(
        idx1=np.asarray(to_cpu(idx // s_j + row0), dtype=np.int64),
        idx2=np.asarray(to_cpu(idx % s_j + col0), dtype=np.int64),
        counts=np.asarray(to_cpu(xp.matrix_transpose(xp.astype(kept, xp.int64)))).reshape(-1, 5),
        kinship=np.asarray(to_cpu(xp.take(xp.reshape(kin, (-1,)), idx)), dtype=np.float64),
    )


# ------------------------------------------------------------------ pairs

@dataclasses.dataclass
class KingPairs:
    """Sample pairs with KING counts, in PLINK 2's ``.kin0`` order.

    Attributes
    ----------
    idx1, idx2 : ndarray, int64, shape (pairs,)
        Sample indices, ``idx2 < idx1`` (PLINK 2's ID1 is the later sample).
    counts : ndarray, int64, shape (pairs, 5)
        NSNP, HETHET, IBS0, HET1 (of ``idx1``), HET2 (of ``idx2``).
    kinship : ndarray, float64, shape (pairs,)
    """

    idx1: np.ndarray
    idx2: np.ndarray
    counts: np.ndarray
    kinship: np.ndarray

    def __len__(self) -> int:
        return int(self.idx1.shape[0])

    @classmethod
    def concat(cls, parts) -> "KingPairs":
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 5), np.int64), np.zeros(0))
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))

    def select(self, mask) -> "KingPairs":
        return KingPairs(self.idx1[mask], self.idx2[mask], self.counts[mask], self.kinship[mask])

    @property
    def degree(self) -> np.ndarray:
        return degree(self.kinship)


# ------------------------------------------------------------------ variants and tiles

def autosomal_variants(ds) -> np.ndarray:
    """Variants on autosomes, as PLINK 2 restricts ``--make-rel`` and ``--make-king``.

    X, Y and MT (codes 23, 24, 26; ``M``), with or without a ``chr`` prefix,
    are left out, as PLINK 2 does (checked against plink2 v2.00a3.5:
    ``tests/test_relatedness.py::test_autosomes_as_plink2``); the
    pseudo-autosomal ``XY`` (25) stays in, as in PLINK 2, and so do other
    contigs (unplaced, non-human names).

    Returns
    -------
    ndarray, bool, shape (variants,)
    """
    from popgen.genotypes import contig_model
    from popgen.io.reports import _str

    contigs = _str(ds["contig_id"].values) if "contig_id" in ds else np.array(ds.attrs["contigs"], dtype=object)
    auto = np.array([contig_model(c) == "autosome" for c in contigs.tolist()], dtype=bool)
    return auto[np.asarray(ds["variant_contig"].values)] if len(auto) else np.zeros(ds.sizes["variants"], bool)


def _check_cohort(ds, what: str):
    n = ds.sizes["samples"]
    if n < 2:
        raise PopgenError(f"{what} needs at least 2 samples; the cohort has {n}")


def _autosomal_subset(ds, what: str):
    auto = autosomal_variants(ds)
    if not auto.any():
        raise PopgenError(f"{what}: no autosomal variants (X, Y and MT are excluded, as in PLINK 2)")
    if not auto.all():
        log.info("%s: excluding %d variants on non-autosomes", what, int((~auto).sum()))
        ds = ds.isel(variants=np.flatnonzero(auto))
    return ds


def _tile(tile, n_samples: int) -> int:
    tile = _TILE if tile is None else int(tile)
    if tile < 1:
        raise PopgenError(f"tile size must be at least 1, got {tile}")
    return min(tile, n_samples)


def _table_tile(tile, n_samples: int, filtered: bool) -> int:
    """Tile of a KING table: unfiltered panels (tile x N pairs on the host) stay under 1 GiB."""
    if tile is None and not filtered:
        tile = max(64, min(_TILE, _PANEL_BYTES // (_PAIR_BYTES * max(n_samples, 1))))
    return _tile(tile, n_samples)


def _pair_alt(ds, tile, what):
    """Autosomal ALT counts, chunked (variant chunks, sample tiles)."""
    from popgen.genotypes import alt_allele_count

    _check_cohort(ds, what)
    sub = _autosomal_subset(ds, what)
    alt = alt_allele_count(sub)
    return alt.rechunk({1: _tile(tile, alt.shape[1])}), sub


# ------------------------------------------------------------------ GRM

def grm_tile(alt_i, alt_j, alt_freq, dtype=None, rows: int = _GEMM_ROWS):
    """One variant chunk's share of the GRM for a pair of sample tiles.

    Parameters
    ----------
    alt_i, alt_j : array, int8, shape (v, s_i) and (v, s_j)
        ALT allele counts, -1 missing.
    alt_freq : array, float, shape (v,)
        Frequencies standardizing the genotypes (:func:`popgen.pca.standardize_block`).
    dtype : float dtype of the namespace, optional
        Of the standardized genotypes and their product (default float64).
    rows : int
        Variants per product (bounds the temporaries).

    Returns
    -------
    array, float64, shape (1, 2, s_i, s_j)
        ``X_i' X_j`` and ``O_i' O_j`` (variants called in both; float32 GEMM,
        exact below 2^24 variants per chunk).
    """
    from popgen.backend import namespace
    from popgen.pca import standardize_block

    xp = namespace(alt_i)
    dtype = dtype or xp.float64
    p = xp.asarray(alt_freq, dtype=xp.float64)
    gram = called = None
    n = alt_i.shape[0]
    for start in range(0, max(n, 1), rows):
        stop = min(start + rows, n)
        a, b, f = alt_i[start:stop, :], alt_j[start:stop, :], p[start:stop]
        xi, xj = standardize_block(a, f, dtype), standardize_block(b, f, dtype)
        g = xp.astype(xp.matmul(xp.matrix_transpose(xi), xj), xp.float64)
        del xi, xj
        oi, oj = xp.astype(a >= 0, xp.float32), xp.astype(b >= 0, xp.float32)
        c = xp.astype(xp.matmul(xp.matrix_transpose(oi), oj), xp.float64)
        gram, called = (g, c) if gram is None else (gram + g, called + c)
    return xp.stack([gram, called], axis=0)[None, ...]


def grm(ds, *, samples=None, tile=None, dtype: str = "float32", compute=None):
    """Variance-standardized genomic relationship matrix (``plink2 --make-rel``).

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype``, Dask-chunked; NumPy or CuPy blocks.
    samples : array_like of bool, shape (samples,), optional
        Samples whose ALT allele frequencies standardize the genotypes
        (PLINK 2: founders, :func:`popgen.genotypes.founder_mask`).  Default: all.
    tile : int, optional
        Samples per tile (default 1024).
    dtype : {"float32", "float64"}
        Precision of the standardized genotypes and their products.
        float32 (default): products of 1024 variants at a time, summed in
        float64: within ~1e-7 of PLINK 2 (tests: 1e-6), about twice as fast;
        float64 equals PLINK 2 to 1e-13.
    compute : callable, optional
        ``compute(*collections) -> tuple``, used for the allele frequencies.

    Returns
    -------
    dask.array.Array, float64, shape (samples, samples)
        ``K_ij = sum_v x_vi x_vj / C_ij`` over autosomal variants (see the
        module docstring), lazily tiled ``tile x tile`` on the genotypes'
        device; NaN where two samples share no called variant.  Only blocks
        on and below the diagonal are computed; those above are their
        transposes.

    Notes
    -----
    Eager work: the allele frequencies (one pass), and the genotypes are
    bit-packed (:func:`king_planes`) and persisted, 0.5 bytes per genotype.
    A block ``(I, J)`` standardizes 1024 variants of its two tiles at a time
    from the planes (kernel ``standardize_planes``) and multiplies them
    (``T x T`` float64 sums, ``T x 1024`` products); ``C_ij`` comes from the
    missing calls variant by variant when they are sparse
    (:func:`popgen.kernels.king.called_in_both_sparse`), else from float32
    products of called indicators.
    """
    import dask
    import dask.array as da

    from popgen import qc
    from popgen.backend import namespace, release_host_memory

    if dtype not in ("float64", "float32"):
        raise PopgenError(f"unknown GRM precision {dtype!r}: use float64 or float32")
    compute = compute or _backend.compute
    tile = _GRM_TILE if tile is None else tile
    alt, sub = _pair_alt(ds, tile, "GRM")
    (af,) = compute(qc.variant_stats(sub, samples=samples, merge=False)["variant_allele_frequency"].data[:, 1])
    af = np.asarray(af, dtype=np.float64)
    if not ((af > 0) & (af < 1)).any():
        raise PopgenError("GRM: every variant is monomorphic in the frequency samples")
    xp = namespace(alt)
    (planes,) = dask.persist(_pack_planes(alt, codes=True))
    release_host_memory()
    n_words = planes.shape[2]
    table = np.zeros((64 * n_words, 4), dtype=dtype)
    table[:len(af)] = _standardize_table(af)
    valid = np.zeros(64 * n_words, dtype=bool)
    valid[:len(af)] = True
    valid = np.packbits(valid, bitorder="little").view(np.uint64)
    table_d, valid_d = dask.delayed(table), dask.delayed(valid)
    blocks = planes.to_delayed().ravel()
    sizes = planes.chunks[0]
    meta = xp.empty((0, 0), dtype=xp.float64)
    rows = []
    for I, si in enumerate(sizes):  # noqa: E741
        row = []
        for J, sj in enumerate(sizes[:I + 1]):
            d = dask.delayed(grm_block)(blocks[I], blocks[J], table_d, valid_d, I == J)
            row.append(da.from_delayed(d, shape=(si, sj), dtype=np.float64, meta=meta))
        rows.append(row)
    full = [[rows[I][J] if J <= I else rows[J][I].T for J in range(len(sizes))] for I in range(len(sizes))]  # noqa: E741
    return da.block(full)


def _standardize_table(af):
    """Per variant: standardized value of ALT count 0, 1, 2 and missing (0); zeros if monomorphic."""
    p = np.asarray(af, dtype=np.float64)
    poly = (p > 0) & (p < 1)
    p = np.where(poly, p, 0.5)
    inv_sd = np.where(poly, 1.0 / np.sqrt(2.0 * p * (1.0 - p)), 0.0)
    return np.stack([-2.0 * p * inv_sd, (1.0 - 2.0 * p) * inv_sd, (2.0 - 2.0 * p) * inv_sd, np.zeros_like(p)], axis=1)


def grm_block(planes_i, planes_j, table, valid, diagonal: bool = False, step: int = _GRM_STEP_WORDS):
    """One block of the GRM from packed planes: ``X_i X_j' / C_ij``.

    Parameters
    ----------
    planes_i, planes_j : array, uint64, shape (s_i, 4, words) and (s_j, 4, words)
        :func:`king_planes` chunks (NumPy or CuPy).
    table : ndarray, float32 or float64, shape (64 words, 4)
        Standardized value of each variant bit for ALT count 0, 1, 2, missing
        (padding rows 0); its dtype is the products' precision.
    valid : ndarray, uint64, shape (words,)
        Bits of real variants.
    diagonal : bool
        ``planes_i`` and ``planes_j`` are the same tile.
    step : int
        Words (64 variants) per product: float32 sums of at most ``64 step``
        terms, summed in float64.

    Returns
    -------
    array, float64, shape (s_i, s_j)
        NaN where a pair shares no called variant.
    """
    from popgen import kernels
    from popgen.backend import is_cupy, namespace

    if not is_cupy(planes_i):
        return _grm_block_cpu(planes_i, planes_j, np.asarray(table), valid, diagonal, step)
    xp = namespace(planes_i)
    std = kernels.get("standardize_planes")
    table = xp.asarray(table)
    n_words = planes_i.shape[2]
    gram = xp.zeros((planes_i.shape[0], planes_j.shape[0]), dtype=xp.float64)
    called = xp.zeros_like(gram)
    ones = xp.asarray(_ones_table(table.shape[0], np.float32))
    for w0 in range(0, n_words, step):  # on the GPU, called counts are float32 GEMMs too
        w1 = min(w0 + step, n_words)
        for t, acc in ((table, gram), (ones, called)):
            xi = std(planes_i, w0, w1, t)
            xj = xi if diagonal else std(planes_j, w0, w1, t)
            acc += xp.matmul(xi, xp.matrix_transpose(xj))
            del xi, xj
    return _ratio(gram, called)


def _ones_table(n_rows: int, dtype):
    """Table giving 1 for a called genotype and 0 for a missing one (padding rows 0)."""
    return np.repeat(np.array([[1.0, 1.0, 1.0, 0.0]], dtype=dtype), n_rows, axis=0)


def _grm_block_cpu(planes_i, planes_j, table, valid, diagonal: bool, step: int):
    """:func:`grm_block` on the CPU: standardized words into reused buffers (fresh
    pages cost as much as the lookups), one GEMM per step into a reused product,
    and on diagonal blocks SYRK (half the flops; one triangle, mirrored at the end)."""
    from scipy.linalg import blas

    from popgen.kernels.king import called_in_both_sparse, standardize_planes_cpu

    planes_i = np.ascontiguousarray(planes_i, dtype=np.uint64)
    planes_j = planes_i if diagonal else np.ascontiguousarray(planes_j, dtype=np.uint64)
    s_i, s_j, n_words = planes_i.shape[0], planes_j.shape[0], planes_i.shape[2]
    called = called_in_both_sparse(planes_i, planes_j, valid, s_i * s_j * n_words // 4)
    tables = [table] if called is not None else [table, _ones_table(table.shape[0], table.dtype)]
    sums = [np.zeros((s_i, s_j), dtype=np.float64) for _ in tables]
    width = 64 * min(step, n_words)
    buf_i = np.empty(s_i * width, dtype=table.dtype)
    buf_j = buf_i if diagonal else np.empty(s_j * width, dtype=table.dtype)
    part = np.zeros((s_i, s_j), dtype=table.dtype)  # SYRK leaves its other triangle at 0
    syrk = blas.get_blas_funcs("syrk", (part,))
    for w0 in range(0, n_words, step):
        w1 = min(w0 + step, n_words)
        k = 64 * (w1 - w0)
        for t, acc in zip(tables, sums):
            xi = standardize_planes_cpu(planes_i, w0, w1, t, out=buf_i[:s_i * k].reshape(s_i, k))
            if diagonal:  # Fortran views: part' = xi xi' filled in part's upper triangle, in place
                syrk(1.0, xi.T, trans=1, beta=0.0, c=part.T, overwrite_c=1, lower=1)
            else:
                xj = standardize_planes_cpu(planes_j, w0, w1, t, out=buf_j[:s_j * k].reshape(s_j, k))
                np.matmul(xi, xj.T, out=part)
            acc += part
    if diagonal:
        for acc in sums:
            acc += np.triu(acc, 1).T
    gram, called = sums[0], (called if called is not None else sums[1])
    np.divide(gram, called, out=gram, where=called > 0)  # in place: tasks hold few (T x T) arrays
    gram[called <= 0] = np.nan
    return gram


def _ratio(g, c):
    from popgen.backend import namespace

    xp = namespace(g)
    ok = c > 0
    return xp.where(ok, g / xp.where(ok, c, xp.asarray(1.0, dtype=c.dtype)), xp.asarray(float("nan"), dtype=g.dtype))


def write_grm(prefix, ds, K, *, shape: str = "square", binary=False, compute=None) -> list[str]:
    """Write a GRM as ``plink2 --make-rel`` does: ``O.rel`` or ``O.rel.bin``, and ``O.rel.id``.

    Row blocks of ``K`` (one tile of rows at a time) are computed and
    appended, so memory is one row panel (``tile x N``), never ``N x N``.

    Parameters
    ----------
    prefix : str
        Output prefix ``O``.
    K : dask.array.Array, float, shape (samples, samples)
        From :func:`grm`.
    shape : {"square", "square0", "triangle"}
        ``square``: the full matrix; ``square0``: zeros above the diagonal;
        ``triangle``: row ``i`` holds ``K[i, :i + 1]`` (lower triangle with diagonal).
    binary : bool or {"bin", "bin4"}
        False: tab-separated text, 6 significant digits; True or ``"bin"``:
        little-endian float64, rows concatenated (PLINK 2's ``bin``);
        ``"bin4"``: float32.
    compute : callable, optional

    Returns
    -------
    list of str
        Paths written.
    """
    from popgen.backend import computed_ahead
    from popgen.io.files import atomic_write, scratch_directory
    from popgen.io.reports import sample_columns, write_table

    if shape not in ("square", "square0", "triangle"):
        raise PopgenError(f"unknown GRM shape {shape!r}: use square, square0 or triangle")
    if binary not in (False, True, "bin", "bin4"):
        raise PopgenError(f"unknown GRM binary format {binary!r}: use bin or bin4")
    compute = compute or _backend.compute
    n = K.shape[0]
    dtype = np.dtype("<f4") if binary == "bin4" else np.dtype("<f8")  # little-endian, as PLINK 2
    path = f"{prefix}.rel.bin" if binary else f"{prefix}.rel"
    bounds = np.cumsum((0,) + K.chunks[0]).tolist()
    nb = len(bounds) - 1
    if shape == "square":  # column I's blocks on and below the diagonal give row panel I's right part
        jobs = [[K.blocks[J, I] for J in range(I, nb)] for I in range(nb)]  # noqa: E741
    else:
        jobs = [[K.blocks[I, J] for J in range(I + 1)] for I in range(nb)]  # noqa: E741
    with atomic_write(path, "wb") as f, scratch_directory(Path(path).parent, "grm") as spill:
        for I, result in enumerate(computed_ahead(compute, jobs)):  # noqa: E741
            blocks = [_host(b) for b in result]
            del result
            r0, r1 = bounds[I], bounds[I + 1]
            if shape == "square":
                for J in range(I + 1, nb):  # block (J, I) of a later row panel: to disk until then
                    blocks[J - I].tofile(Path(spill) / f"{J}_{I}.f8")
                left = [(Path(spill) / f"{I}_{J}.f8", bounds[J + 1] - bounds[J]) for J in range(I)]
            for a in range(0, r1 - r0, _GRM_WRITE_ROWS):  # a few rows at a time: no (tile x N) panel
                b = min(a + _GRM_WRITE_ROWS, r1 - r0)
                if shape == "square":
                    parts = [np.fromfile(path, dtype=np.float64, count=(b - a) * w, offset=8 * a * w).reshape(b - a, w)
                             for path, w in left]
                    parts += [blocks[0][a:b]] + [blk[:, a:b].T for blk in blocks[1:]]
                else:
                    parts = [blk[a:b] for blk in blocks]
                _write_grm_rows(f, np.concatenate(parts, axis=1), r0 + a, n, shape, binary, dtype)
            if shape == "square":
                for path, _ in left:
                    path.unlink()
            del blocks
    write_table(f"{prefix}.rel.id", sample_columns(ds))
    return [path, f"{prefix}.rel.id"]


def write_grm_zarr(prefix, ds, K, *, compute=None) -> list[str]:
    """Write the full GRM to a chunked store, ``O.rel.zarr``, and ``O.rel.id``.

    A Zarr (v2) group holding ``rel`` (float64, samples x samples, chunks of
    one tile x one tile: a reader loads any block or row range without the
    rest) and the sample IDs (``sample_id``, and ``sample_family_id`` when the
    cohort has families), ``rel.id``'s columns in the same order.  Each
    computed block below the diagonal is stored with its transpose above it,
    one column of blocks at a time (the next computing meanwhile), so memory
    is two columns (``8 T N`` bytes each), never ``N x N``; the store appears
    under its name only once complete.
    """
    import zarr

    from popgen.backend import computed_ahead
    from popgen.io.files import atomic_dir
    from popgen.io.reports import sample_columns, write_table

    compute = compute or _backend.compute
    n = K.shape[0]
    bounds = np.cumsum((0,) + K.chunks[0]).tolist()
    nb = len(bounds) - 1
    path = f"{prefix}.rel.zarr"
    ids = sample_columns(ds)
    jobs = [[K.blocks[J, I] for J in range(I, nb)] for I in range(nb)]  # noqa: E741
    with atomic_dir(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        rel = root.create_dataset("rel", shape=(n, n), chunks=(K.chunks[0][0],) * 2, dtype="<f8",
                                  fill_value=np.nan)
        rel.attrs["description"] = "variance-standardized relationship matrix, as plink2 --make-rel"
        for col, name in (("IID", "sample_id"), ("#FID", "sample_family_id")):
            if col in ids:
                root.array(name, np.asarray(ids[col].astype(str).tolist(), dtype=str))
        for I, result in enumerate(computed_ahead(compute, jobs)):  # noqa: E741
            blocks = [_host(b) for b in result]
            del result
            c0, c1 = bounds[I], bounds[I + 1]
            for J, block in enumerate(blocks, start=I):
                rel[bounds[J]:bounds[J + 1], c0:c1] = block
                if J != I:
                    rel[c0:c1, bounds[J]:bounds[J + 1]] = block.T
            del blocks
        zarr.consolidate_metadata(str(tmp))
    write_table(f"{prefix}.rel.id", ids)
    return [path, f"{prefix}.rel.id"]


def _host(block) -> np.ndarray:
    from popgen.backend import to_cpu

    return np.asarray(to_cpu(block), dtype=np.float64)


def _write_grm_rows(f, panel, r0: int, n: int, shape: str, binary, dtype) -> None:
    """Rows ``r0 ..`` of the GRM (``panel``: their first columns) as PLINK 2 writes them."""
    rows = panel.shape[0]
    lengths = np.full(rows, n, np.int64) if shape == "square" else np.arange(r0 + 1, r0 + rows + 1, dtype=np.int64)
    pad = n - lengths if shape == "square0" else np.zeros(rows, np.int64)
    if binary:
        if shape == "square":
            f.write(np.ascontiguousarray(panel[:, :n], dtype=dtype).tobytes())
            return
        for k in range(rows):
            f.write(panel[k, :lengths[k]].astype(dtype).tobytes())
            if pad[k]:
                f.write(np.zeros(pad[k], dtype).tobytes())
        return
    from popgen._text import g_rows

    f.write(g_rows(np.ascontiguousarray(panel), lengths, pad).tobytes())


# ------------------------------------------------------------------ KING counts

def _method(method: str, alt) -> str:
    from popgen.backend import is_cupy

    if method == "auto":
        # CPU: the numba popcount kernel is 2-3x faster than OpenBLAS float32 GEMMs
        # (5.3e-11 against 1.5e-10 s per pair and variant on one core, 2000 samples x
        # 20,000 variants: 6 s against 19 s end to end on 2 cores);
        # GPU: cuBLAS GEMMs, not measured against the CUDA popcount kernel (method="popcount")
        return "gemm" if is_cupy(alt) else "popcount"
    if method not in ("gemm", "popcount"):
        raise PopgenError(f"unknown KING method {method!r}: use auto, gemm or popcount")
    return method


def king_counts(ds, *, tile=None, method: str = "auto"):
    """KING-robust pair counts of every pair of samples, lazily tiled.

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype``, Dask-chunked; NumPy or CuPy blocks.
        Only autosomal variants are used (as PLINK 2).
    tile : int, optional
        Samples per tile (default 2048).
    method : {"auto", "gemm", "popcount"}
        ``gemm``: float32 GEMMs on indicator matrices (:func:`king_gemm_tile`);
        ``popcount``: the bit-packed ``king_counts`` kernel; ``auto``:
        popcount on CPU, gemm on GPU.

    Returns
    -------
    dask.array.Array, int32, shape (5, samples, samples)
        NSNP, HETHET, IBS0, HET1, HET2 (:data:`KING_COUNTS`) of each ordered
        pair ``(i, j)`` (HET1 of ``i``, HET2 of ``j``), chunked
        ``(5, tile, tile)``, computed on the genotypes' device: ``gemm``, the
        sum over variant chunks of one tile pair; ``popcount``, one kernel
        call over the packed planes of all variants (:func:`king_planes`).
    """
    import dask.array as da

    from popgen.backend import namespace

    alt, _ = _pair_alt(ds, tile, "KING")
    if alt.shape[0] >= 2**31:
        raise PopgenError(f"KING: {alt.shape[0]} variants overflow the int32 counts")
    method = _method(method, alt)
    xp = namespace(alt)
    meta = xp.empty((0, 0, 0, 0), dtype=xp.int32)
    if method == "gemm":
        parts = da.blockwise(king_gemm_tile, "cnij", alt, "ci", alt, "cj", new_axes={"n": 5},
                             adjust_chunks={"c": 1}, dtype=np.int32, meta=meta)
        return parts.sum(axis=0, dtype=np.int32)
    planes = _pack_planes(alt)
    return da.blockwise(_king_block, "nij", planes, "ipw", planes, "jpw", new_axes={"n": 5},
                        dtype=np.int32, meta=xp.empty((0, 0, 0), dtype=xp.int32), concatenate=True)


def _king_block(planes_i, planes_j):
    return king_popcount_tile(planes_i, planes_j)[0]


def king_planes(ds, *, tile=None):
    """Autosomal genotypes bit-packed for the KING kernel, one chunk per sample tile.

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype``, Dask-chunked; NumPy or CuPy blocks.
    tile : int, optional
        Samples per chunk (default 2048).

    Returns
    -------
    planes : dask.array.Array, uint64, shape (samples, 4, words)
        :func:`popgen.kernels.king.pack_king_planes` of all autosomal
        variants (one chunk along planes and words: 0.5 bytes per genotype
        per sample tile), chunked ``(tile, 4, words)``.  Bit ``k`` of word
        ``w`` is autosomal variant ``64 w + k``; padding bits are missing calls.
    sub : xarray.Dataset
        The autosomal cohort the planes hold.
    """
    alt, sub = _pair_alt(ds, tile, "KING")
    return _pack_planes(alt), sub


def _pack_planes(alt, codes: bool = False):
    """Planes of ``alt`` (variant chunks x sample tiles), one chunk per tile holding every variant.

    ``codes``: the two planes of :func:`genotype_codes` (the GRM's) instead of KING's four.
    """
    import dask.array as da

    from popgen.backend import namespace
    from popgen.kernels.king import pack_king_planes

    if any(c % 64 for c in alt.chunks[0][:-1]):  # word k of every chunk = variants 64 k ..: whole words per chunk
        alt = alt.rechunk({0: max(64, alt.chunks[0][0] // 64 * 64)})  # about the reader's chunks
    if _in_process_numpy(alt):
        return _pack_planes_in_place(alt, codes)
    xp = namespace(alt)

    def pack(block):
        planes = pack_king_planes(block)
        return genotype_codes(planes) if codes else planes

    planes = da.blockwise(pack, "ipw", alt, "wi", new_axes={"p": 2 if codes else 4},
                          adjust_chunks={"w": lambda v: max(1, -(-v // 64))}, dtype=np.uint64,
                          meta=xp.empty((0, 0, 0), dtype=xp.uint64))
    return planes.rechunk({1: -1, 2: -1})


def genotype_codes(planes, out=None):
    """KING planes (s, 4, words) to 2-bit genotype codes as two planes (s, 2, words).

    Per variant bit, ``(lo, hi)`` = (het or missing, hom ALT or missing):
    ``00`` hom REF, ``10`` het, ``01`` hom ALT, ``11`` missing (padding bits are
    missing).  Half the bytes of the four planes; all the GRM needs.
    """
    from popgen.backend import namespace

    xp = namespace(planes)
    missing = ~planes[:, 0, :]
    lo, hi = planes[:, 1, :] | missing, planes[:, 3, :] | missing
    if out is None:
        return xp.stack([lo, hi], axis=1)
    out[:, 0, :], out[:, 1, :] = lo, hi
    return out


def _in_process_numpy(alt) -> bool:
    """NumPy chunks and an in-process scheduler (threads or synchronous): tasks may
    write into host arrays."""
    import dask.base
    import dask.local
    import dask.threaded

    return isinstance(alt._meta, np.ndarray) and dask.base.get_scheduler() in (dask.threaded.get,
                                                                              dask.local.get_sync)


def _pack_planes_in_place(alt, codes: bool = False):
    """:func:`_pack_planes` in process: each (variant chunk, tile) block is packed
    straight into its tile's preallocated planes, so packing holds the planes
    (``N M / 2`` bytes; ``N M / 4`` as codes) and a few genotype chunks, not also
    the per-chunk pieces that a concatenation would copy."""
    import dask
    import dask.array as da

    from popgen.kernels.king import pack_king_planes

    n_words = max(1, -(-alt.shape[0] // 64))
    starts = np.cumsum((0,) + alt.chunks[0])[:-1] // 64
    tiles = [np.zeros((s, 2 if codes else 4, n_words), dtype=np.uint64) for s in alt.chunks[1]]

    def pack(block, block_info=None):
        i, j = block_info[0]["chunk-location"]
        w0 = int(starts[i])
        dest = tiles[j][:, :, w0:w0 + max(1, -(-block.shape[0] // 64))]
        if codes:
            genotype_codes(pack_king_planes(block), out=dest)
        else:
            pack_king_planes(block, out=dest)
        return np.zeros((1, 1), dtype=np.uint8)

    done = alt.map_blocks(pack, dtype=np.uint8, chunks=tuple((1,) * len(c) for c in alt.chunks),
                          meta=np.empty((0, 0), dtype=np.uint8))
    dask.compute(done)
    return da.concatenate([da.from_array(t, chunks=t.shape, name=False) for t in tiles], axis=0)


def iter_king_pairs(ds, *, min_kinship=None, tile=None, method: str = "auto", compute=None) -> Iterator[KingPairs]:
    """KING pairs in PLINK 2's order, one row panel (tile of samples) at a time.

    Panel ``I`` holds the pairs ``(i, j)``, ``j < i``, of the samples ``i``
    of tile ``I``; its tiles ``(I, J <= I)`` are computed together on the
    genotypes' device, reduced there to the pairs kept, and only those come
    to the host.  With the popcount method the genotypes are packed once
    (:func:`king_planes`, persisted: 0.5 bytes per genotype) and each tile
    counts over all variants at once (diagonal tiles: only ``j < i``).

    Parameters
    ----------
    min_kinship : float, optional
        Keep pairs with ``not KINSHIP < min_kinship`` (``--king-table-filter``).
    tile, method :
        As :func:`king_counts`; tile defaults to 2048 with a filter, and to
        what keeps an unfiltered panel under 1 GiB without.
    compute : callable, optional
        ``compute(*collections) -> tuple``.

    Yields
    ------
    KingPairs
    """

    compute = compute or _backend.compute
    n = ds.sizes["samples"]
    _check_cohort(ds, "KING")
    tile = _table_tile(tile, n, min_kinship is not None)
    for tasks, r0 in _king_panels(ds, tile, method, _king_tile_pairs, (min_kinship,)):
        panel = KingPairs.concat(compute(*tasks))
        order = np.argsort(panel.idx1, kind="stable")  # tiles are column ranges: (i, j) order
        yield panel.select(order)


def _king_panels(ds, tile, method, fn, args):
    """``(delayed fn(tile counts, row0, col0, *args) of panel I's tiles J <= I, row0)`` per panel."""
    import dask

    from popgen.backend import release_host_memory

    alt, _ = _pair_alt(ds, tile, "KING")
    if _method(method, alt) == "gemm":
        counts = king_counts(ds, tile=tile, method="gemm")
        bounds = np.cumsum((0,) + counts.chunks[1]).tolist()
        blocks = counts.to_delayed()
        for I in range(len(bounds) - 1):  # noqa: E741
            yield [dask.delayed(fn)(blocks[0, I, J], bounds[I], bounds[J], *args) for J in range(I + 1)], bounds[I]
        return
    if alt.shape[0] >= 2**31:
        raise PopgenError(f"KING: {alt.shape[0]} variants overflow the int32 counts")
    (planes,) = dask.persist(_pack_planes(alt))  # packed once, read by every tile
    release_host_memory()
    bounds = np.cumsum((0,) + planes.chunks[0]).tolist()
    blocks = planes.to_delayed().ravel()
    for I in range(len(bounds) - 1):  # noqa: E741
        yield [dask.delayed(_counted)(fn, blocks[I], blocks[J], bounds[I], bounds[J], *args)
               for J in range(I + 1)], bounds[I]


def _counted(fn, planes_i, planes_j, row0, col0, *args):
    counts = king_popcount_tile(planes_i, planes_j, below=row0 - col0)[0]
    return fn(counts, row0, col0, *args)


def _king_tile_pairs(counts, row0, col0, min_kinship):
    return tile_pairs(counts, row0, col0, min_kinship)


def _king_tile_text(counts, row0, col0, min_kinship, ids, id_off, degree_column):
    """``.kin0`` text of one tile (pairs ``j < i``): (bytes, row offsets, pairs written)."""
    from popgen._text import kin0_rows
    from popgen.backend import to_cpu

    counts = np.asarray(to_cpu(counts))
    filtered = min_kinship is not None
    buf, offsets, kept = kin0_rows(counts, row0, col0, filtered, float(min_kinship) if filtered else 0.0,
                                   ids, id_off, bool(degree_column), np.asarray(DEGREE_BOUNDS, dtype=np.float64))
    return buf, offsets, int(kept)


def related_pairs(ds, threshold: float, *, tile=None, method: str = "auto", compute=None) -> KingPairs:
    """All pairs with KINSHIP ``> threshold`` (the constraints of ``--king-cutoff``)."""
    _check_cutoff(threshold)
    parts = [p.select(p.kinship > threshold) for p in
             iter_king_pairs(ds, min_kinship=threshold, tile=tile, method=method, compute=compute)]
    return KingPairs.concat(parts)


def write_king_table(prefix, ds, *, king_table_filter=None, degree_column: bool = False, tile=None,
                     method: str = "auto", compute=None) -> dict:
    """Write ``O.kin0`` as ``plink2 --make-king-table [--king-table-filter T]``.

    Rows are written panel by panel as the tiles finish (never all pairs in
    memory); columns ``#FID1 IID1 FID2 IID2 NSNP HETHET IBS0 KINSHIP``
    (``#IID1 IID2 ...`` without family IDs), HETHET and IBS0 as proportions of
    NSNP, 6 significant digits; with ``degree_column`` a trailing ``DEGREE``
    (0-3, ``NA`` unrelated).

    Parameters
    ----------
    king_table_filter : float, optional
        Write only pairs with ``KINSHIP >= T`` (``T <= 0.5``; PLINK 2 keeps
        rows that are not below T).

    Returns
    -------
    dict
        ``path``, ``n_pairs`` (written), ``n_filtered`` (left out).
    """
    import dask

    from popgen.backend import computed_ahead
    from popgen.io.files import atomic_write
    from popgen.io.reports import sample_columns

    if king_table_filter is not None:
        t = float(king_table_filter)
        if not np.isfinite(t) or t > 0.5:
            raise PopgenError(f"--king-table-filter must be a number <= 0.5, got {king_table_filter!r}")
    _check_cohort(ds, "KING")
    ids = sample_columns(ds)
    names = list(ids)
    id_text = np.array(["\t".join(v) for v in zip(*(ids[c].astype(str).tolist() for c in names))], dtype=object)
    header = ["#" + "\t".join(c.lstrip("#") + "1" for c in names), "\t".join(c.lstrip("#") + "2" for c in names)]
    cols = header + ["NSNP", "HETHET", "IBS0", "KINSHIP"] + (["DEGREE"] if degree_column else [])
    path = f"{prefix}.kin0"
    n = ds.sizes["samples"]
    compute = compute or _backend.compute
    id_bytes = [t.encode() for t in id_text.tolist()]
    id_off = np.cumsum([0] + [len(t) for t in id_bytes]).astype(np.int64)
    ids = dask.delayed(np.frombuffer(b"".join(id_bytes), dtype=np.uint8).copy())  # one key, shared by the tasks
    id_off_d = dask.delayed(id_off)
    if tile is None and king_table_filter is None:  # a panel's text (tile x N rows) stays under 128 MiB
        tile = max(64, min(_TILE, _PANEL_TEXT_BYTES // ((_ROW_TEXT_BYTES + 2 * int(np.diff(id_off).mean())) * n)))
    tile = _table_tile(tile, n, king_table_filter is not None)
    panels = _king_panels(ds, tile, method, _king_tile_text, (king_table_filter, ids, id_off_d, degree_column))
    written = 0
    with atomic_write(path, "wb") as f:
        f.write(("\t".join(cols) + "\n").encode())
        # the next panel computes while this one is written; text buffers freed across threads trimmed
        for parts in computed_ahead(compute, (tasks for tasks, _ in panels), trim=True):
            written += _write_panel(f, parts)
            del parts
    return {"path": path, "n_pairs": written, "n_filtered": n * (n - 1) // 2 - written}


def _write_panel(f, parts) -> int:
    """Rows of a panel in PLINK 2's order: row i of tile 0, 1, .., I."""
    offsets = [p[1].tolist() for p in parts]
    bufs = [memoryview(p[0]) for p in parts]
    rows = len(offsets[0]) - 1
    for k in range(rows):  # slices straight to the (buffered) file: no joined copy of the panel
        for buf, o in zip(bufs, offsets):
            if o[k + 1] > o[k]:
                f.write(buf[o[k]:o[k + 1]])
    return sum(p[2] for p in parts)


def _kin0_lines(pairs: KingPairs, id_text, degree_column: bool) -> list[str]:
    nsnp = pairs.counts[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        recip = 1.0 / nsnp.astype(np.float64)  # PLINK 2 multiplies by the reciprocal
        hethet = pairs.counts[:, 1] * recip
        ibs0 = pairs.counts[:, 2] * recip
    cols = [id_text[pairs.idx1].tolist(), id_text[pairs.idx2].tolist(), nsnp.tolist(),
            fmt_plink2(hethet), fmt_plink2(ibs0), fmt_plink2(pairs.kinship)]
    if degree_column:
        cols.append(["NA" if d < 0 else str(d) for d in degree(pairs.kinship).tolist()])
    return ["\t".join(map(str, row)) + "\n" for row in zip(*cols)]


def fmt_plink2(x) -> list[str]:
    """Numbers as PLINK 2 prints them: 6 significant digits, near-ties to even
    (:func:`popgen.io.reports.round_plink2`); non-finite as ``inf``/``-inf``/``nan``."""
    from popgen.io.reports import round_plink2

    return [f"{v:.6g}" for v in round_plink2(x).tolist()]


# ------------------------------------------------------------------ unrelated set

def king_cutoff(pairs, n_samples: int, threshold: float, *, seed: int = 0, effort: int = 20) -> np.ndarray:
    """A large set of samples without any pair of KINSHIP ``> threshold`` (``--king-cutoff``).

    Maximum independent set of the graph whose edges are the related pairs,
    per connected component: exact (branch and bound) up to 40 samples,
    else iterated local search (ARW 2012: (1,2)-swaps with random
    perturbation, ``effort x size`` iterations, seeded) started from PLINK
    2's greedy, so never fewer samples than PLINK 2 keeps.

    Parameters
    ----------
    pairs : KingPairs or tuple (idx1, idx2, kinship)
        Pairs with their kinship (at least those above ``threshold``; e.g.
        :func:`related_pairs`).
    n_samples : int
    threshold : float
        In [0, 0.5), as PLINK 2 accepts.
    seed, effort : int
        Local search seed and iterations per sample of a component.

    Returns
    -------
    ndarray, bool, shape (n_samples,)
        Samples kept.
    """
    t = _check_cutoff(threshold)
    if n_samples < 2:
        raise PopgenError(f"--king-cutoff needs at least 2 samples; the cohort has {n_samples}")
    if isinstance(pairs, KingPairs):
        i, j, k = pairs.idx1, pairs.idx2, pairs.kinship
    else:
        i, j, k = (np.asarray(x) for x in pairs)
    rel = np.asarray(k, dtype=np.float64) > t
    i, j = np.asarray(i, dtype=np.int64)[rel], np.asarray(j, dtype=np.int64)[rel]
    if ((i < 0) | (j < 0) | (i >= n_samples) | (j >= n_samples)).any():
        raise PopgenError(f"sample index out of range for {n_samples} samples")
    keep = np.ones(n_samples, dtype=bool)
    if not len(i):
        return keep
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    ok = i != j
    g = sp.coo_matrix((np.ones(int(ok.sum()), np.int32), (i[ok], j[ok])), shape=(n_samples, n_samples)).tocsr()
    g = (g + g.T).tocsr()  # symmetric; duplicate pairs only add up
    g.sort_indices()
    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    n_comp, label = connected_components(g, directed=False)
    sizes = np.bincount(label, minlength=n_comp)
    order = np.argsort(label, kind="stable")  # members of each component, ascending
    starts = np.concatenate([[0], np.cumsum(sizes)])
    local = np.empty(n_samples, dtype=np.int64)
    for c in np.flatnonzero(sizes > 1):
        members = order[starts[c]:starts[c + 1]]  # ascending: PLINK 2's tie-breaking order
        local[members] = np.arange(len(members))
        rows = [indices[indptr[m]:indptr[m + 1]] for m in members.tolist()]
        sub_indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        sub_indices = local[np.concatenate(rows)]  # sorted: local order follows sample order
        keep[members] = _component_mis(sub_indptr, sub_indices, seed, effort)
    return keep


def _check_cutoff(threshold) -> float:
    t = float(threshold)
    if not (0.0 <= t < 0.5):
        raise PopgenError(f"--king-cutoff threshold must be in [0, 0.5), got {threshold!r}")
    return t


def plink2_king_cutoff(pairs, n_samples: int, threshold: float) -> np.ndarray:
    """PLINK 2's ``--king-cutoff`` greedy (for comparison): samples kept, bool (n_samples,)."""
    import scipy.sparse as sp

    i, j, k = (pairs.idx1, pairs.idx2, pairs.kinship) if isinstance(pairs, KingPairs) else pairs
    rel = np.asarray(k) > threshold
    i, j = np.asarray(i)[rel], np.asarray(j)[rel]
    g = sp.coo_matrix((np.ones(len(i), np.int32), (i, j)), shape=(n_samples, n_samples)).tocsr()
    g = (g + g.T).tocsr()
    g.sort_indices()
    return _greedy_plink2(g.indptr.astype(np.int64), g.indices.astype(np.int64))


def _greedy_plink2(indptr, indices) -> np.ndarray:
    """PLINK 2's KinshipPruneDestructive: while constraints remain, remove the partner of
    the first degree-1 sample if there is one, else the first sample of maximum degree."""
    n = len(indptr) - 1
    deg = np.diff(indptr).astype(np.int64)
    removed = np.zeros(n, dtype=bool)
    while True:
        ones = np.flatnonzero(deg == 1)
        if len(ones):
            v = ones[0]
            nb = indices[indptr[v]:indptr[v + 1]]
            prune = nb[~removed[nb]][0]
        else:
            prune = int(np.argmax(deg))
            if deg[prune] == 0:
                break
        nb = indices[indptr[prune]:indptr[prune + 1]]
        nb = nb[~removed[nb] & (deg[nb] > 0)]
        deg[nb] -= 1
        deg[prune] = 0
        removed[prune] = True
    return ~removed


def _component_mis(indptr, indices, seed: int, effort: int) -> np.ndarray:
    n = len(indptr) - 1
    start = _greedy_plink2(indptr, indices)
    if n <= _EXACT_MAX:
        exact = _mis_exact(indptr, indices)
        if exact is not None:
            return exact
    from popgen._mis import local_search

    return local_search(indptr, indices, start, int(effort) * n, int(seed))


class _Budget(Exception):
    pass


def _mis_exact(indptr, indices, budget: int = 20_000):
    """Maximum independent set by branch and bound on bitsets; None if over budget."""
    n = len(indptr) - 1
    adj = [0] * n
    for v in range(n):
        for u in indices[indptr[v]:indptr[v + 1]].tolist():
            adj[v] |= 1 << u
    best = [0, 0]
    nodes = [0]

    def rec(cand, chosen, size):
        nodes[0] += 1
        if nodes[0] > budget:
            raise _Budget
        if cand == 0:
            if size > best[0]:
                best[0], best[1] = size, chosen
            return
        if size + bin(cand).count("1") <= best[0]:
            return
        verts = [v for v in range(n) if cand >> v & 1]
        degs = [bin(adj[v] & cand).count("1") for v in verts]
        lo = int(np.argmin(degs))
        if degs[lo] <= 1:  # a vertex of degree <= 1 is in some maximum set
            v = verts[lo]
            rec(cand & ~adj[v] & ~(1 << v), chosen | 1 << v, size + 1)
            return
        v = verts[int(np.argmax(degs))]
        rec(cand & ~adj[v] & ~(1 << v), chosen | 1 << v, size + 1)
        rec(cand & ~(1 << v), chosen, size)

    try:
        rec((1 << n) - 1, 0, 0)
    except _Budget:
        return None
    return np.array([bool(best[1] >> v & 1) for v in range(n)], dtype=bool)


def write_king_cutoff(prefix, ds, keep) -> list[str]:
    """``O.king.cutoff.in.id`` / ``O.king.cutoff.out.id`` (``#FID IID``, as PLINK 2)."""
    from popgen.io.reports import sample_columns, write_table

    keep = np.asarray(keep, dtype=bool)
    cols = sample_columns(ds)
    paths = [f"{prefix}.king.cutoff.in.id", f"{prefix}.king.cutoff.out.id"]
    for path, mask in zip(paths, (keep, ~keep)):
        write_table(path, {k: v[mask] for k, v in cols.items()})
    return paths
