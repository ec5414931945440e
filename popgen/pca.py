"""Principal component analysis of genotypes, as PLINK 2 computes it, on CPU or GPU.

Genotypes are standardized per variant with ALT allele frequency ``p``
(PLINK 2 uses founders' frequencies)::

    x = (g - 2p) / sqrt(2p(1-p))        g = ALT allele count; missing -> 0; monomorphic -> 0

and PCA is the eigendecomposition of the variance-standardized relationship
matrix ``K`` (samples x samples).  Two ways of handling missing calls:

``pairwise`` (PLINK 2's ``--pca`` default, exact solver only)
    ``K_ij = sum_v x_vi x_vj / C_ij``, ``C_ij`` the number of variants called
    in both samples.
``meanimpute`` (``--pca meanimpute``; always used by the randomized solver, as
    PLINK 2's ``approx``)
    ``K = X'X / M``, ``M`` the number of variants.

Solvers (explicit; no silent switching):

``exact``
    ``K`` accumulated as blocked GEMMs over variant chunks and sample tiles
    (float32 products, float64 sums), then a symmetric eigendecomposition.
    Memory O(N^2): for cohorts up to tens of thousands of samples.
``randomized``
    Blocked randomized subspace iteration (Halko, Martinsson & Tropp 2011;
    Galinsky et al. 2016, as ``plink2 --pca approx``): each iteration is one
    streaming pass ``Z = X'(X Q) / M`` over the genotypes; memory
    O((N + chunk) x (k + oversamples)), never O(N x M).

Everything is written against the array namespace, so the same code runs on
NumPy and CuPy blocks (decoding, standardization and products on the device; on
NumPy blocks the passes' products are :mod:`popgen._pca_numba`'s).  What comes to
the host, explicitly: each pass's summed ``X'XQ`` (samples x (k + p), 1.6 MB at
10,000 samples; orthogonalized there against the basis), the allele frequencies
and call rates once, and the loadings (variants x k) at the end.

Projection (:func:`project`) places new samples onto a fitted PCA with the
reference's frequencies and loadings (``O.eigenvec.var``)::

    pc_ik = sum_v x_vi L_vk / (lambda_k D_i)

with ``L = X V`` (the variant loadings) and ``D_i = M`` (meanimpute) or
``D_i = sum_v called_vi c_v`` (pairwise; ``c_v`` the reference call rate), which
reproduces the reference's own eigenvectors exactly (meanimpute) or to the
accuracy of ``C_ij ~ D_i`` (pairwise).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Literal

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError

log = logging.getLogger("popgen")

Solver = Literal["exact", "randomized"]
Missing = Literal["pairwise", "meanimpute"]

#: bytes of float32 standardized genotypes one task may hold in the streaming passes
_PASS_BYTES = 64 * 2**20
#: bytes of float32 standardized genotypes multiplied at a time within a pass chunk (64 variants
#: of 10,000 samples: 2 threads run at 0.95x one thread's rate each, where 8 MiB ran at 0.7x)
_SUB_BYTES = 5 * 2**19


# ------------------------------------------------------------------ block math

def standardize_block(alt, alt_freq, dtype=None):
    """Standardized genotypes of one block.

    Parameters
    ----------
    alt : array, int8, shape (v, s)
        ALT allele counts, -1 missing.
    alt_freq : array, float, shape (v,)
        ALT allele frequency used to standardize (NaN or 0/1: the variant
        contributes zeros).

    Returns
    -------
    array, float32, shape (v, s)
        ``(g - 2p) / sqrt(2p(1-p))``; 0 where missing or monomorphic.
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    return _standardize_with(alt, _standardize_table(xp, alt_freq, dtype or xp.float32))


def _standardize_table(xp, alt_freq, dtype):
    """Per-variant values of g = 0, 1, 2 and missing: (v, 4) ``dtype``."""
    p = xp.asarray(alt_freq, dtype=xp.float64)
    poly = (p > 0) & (p < 1)
    p = xp.where(poly, p, xp.asarray(0.5, dtype=xp.float64))
    inv_sd = xp.where(poly, 1.0 / xp.sqrt(2.0 * p * (1.0 - p)), xp.asarray(0.0, dtype=xp.float64))
    table = xp.stack([(-2.0 * p) * inv_sd, (1.0 - 2.0 * p) * inv_sd, (2.0 - 2.0 * p) * inv_sd,
                      xp.zeros_like(p)], axis=1)
    return xp.astype(table, dtype)


def _standardize_with(alt, table):
    """``table[v, g]`` for each call (one gather instead of arithmetic on the block)."""
    from popgen.backend import namespace

    xp = namespace(alt)
    if table.dtype == xp.float32 and type(alt).__module__.split(".")[0] in ("numpy", "cupy"):
        from popgen.kernels import get  # the registered kernel: numba on CPU, CUDA on GPU

        return get("standardize_alt")(alt, table)
    idx = xp.where(alt < 0, xp.asarray(3, dtype=alt.dtype), alt)
    return xp.take_along_axis(table, xp.astype(idx, xp.int64), axis=1)


def flip_alleles_block(alt, flip):
    """ALT counts with REF/ALT swapped where ``flip`` (shape (v,)) is True."""
    from popgen.backend import namespace

    xp = namespace(alt)
    f = xp.asarray(flip)[:, None] & (alt >= 0)
    return xp.where(f, xp.asarray(2, dtype=alt.dtype) - alt, alt)


def gram_tile(alt_i, alt_j, alt_freq):
    """``X_i' X_j`` for one variant chunk and a pair of sample tiles: (1, s_i, s_j) float64."""
    from popgen.backend import namespace

    xp = namespace(alt_i)
    xi = standardize_block(alt_i, alt_freq)
    xj = xi if alt_j is alt_i else standardize_block(alt_j, alt_freq)
    return xp.astype(xp.matmul(xp.matrix_transpose(xi), xj), xp.float64)[None, ...]


def called_tile(alt_i, alt_j):
    """Variants called in both samples, for one variant chunk and tile pair: (1, s_i, s_j) float64."""
    from popgen.backend import namespace

    xp = namespace(alt_i)
    oi = xp.astype(alt_i >= 0, xp.float32)
    oj = xp.astype(alt_j >= 0, xp.float32)
    return xp.astype(xp.matmul(xp.matrix_transpose(oi), oj), xp.float64)[None, ...]


def _sub_rows(alt) -> int:
    """Variants standardized at a time inside a pass chunk (``_SUB_BYTES`` of float32)."""
    return max(16, _SUB_BYTES // max(1, 4 * alt.shape[1]) // 4 * 4)  # whole blocks of the numba products


def _row_slices(alt):
    """``(start, stop)`` of :func:`_sub_rows` variants of ``alt`` at a time."""
    step = _sub_rows(alt)
    for r in range(0, alt.shape[0], step):
        yield r, min(r + step, alt.shape[0])  # in bounds: the array API leaves out-of-bounds stops unspecified


def _standardized_sub_blocks(alt, alt_freq):
    """:func:`standardize_block` of :func:`_sub_rows` variants of ``alt`` at a time."""
    from popgen.backend import namespace

    xp = namespace(alt)
    table = _standardize_table(xp, alt_freq, xp.float32)
    for r, e in _row_slices(alt):
        yield _standardize_with(alt[r:e, :], table[r:e, :])


def pass_block(alt, alt_freq, q):
    """One variant chunk's share of a randomized-PCA pass, ``X_c'(X_c Q)``: (1, N, l) float64
    (summed over chunks: ``X'XQ``).  ``alt`` holds all samples.

    Standardized ``_SUB_BYTES`` of variants at a time, so that ``X_s`` of the second product
    is read from cache where ``X_s Q`` left it, and summed as ``(X_s Q)' X_s`` (l, N): on two
    cores this shape takes 0.6x the time of ``X_s' (X_s Q)`` (N, l), whose GEMM contends for
    memory bandwidth.  NumPy blocks: :mod:`popgen._pca_numba`'s products.
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    if isinstance(alt, np.ndarray):
        out = _pass_products_numba(alt, alt_freq, q)
    else:
        qd = xp.asarray(q, dtype=xp.float32)
        # summed in place in float32 within the chunk (each product is a float32 GEMM over its
        # sub-block already), in float64 across chunks
        out = xp.zeros((q.shape[1], alt.shape[1]), dtype=xp.float32)
        for x in _standardized_sub_blocks(alt, alt_freq):
            out += xp.matmul(xp.matrix_transpose(xp.matmul(x, qd)), x)
    return xp.matrix_transpose(xp.astype(out, xp.float64))[None, ...]


def _padded5(n_cols: int) -> int:
    """``n_cols`` rounded up to a multiple of 5: the column block of :mod:`popgen._pca_numba`."""
    return -(-n_cols // 5) * 5


def _numba_products(alt, alt_freq, m):
    """``(X_s, X_s M)`` for each standardized sub-block ``X_s`` of ``alt`` (NumPy), the product
    by :func:`popgen._pca_numba.xq`; ``M`` (samples, c) padded with zero columns to
    :func:`_padded5` ``(c)``, and so ``X_s M``."""
    from popgen._pca_numba import xq

    mt = np.zeros((_padded5(m.shape[1]), m.shape[0]), dtype=np.float32)
    mt[:m.shape[1]] = np.asarray(m).T
    for x in _standardized_sub_blocks(alt, alt_freq):
        y = np.empty((x.shape[0], mt.shape[0]), dtype=np.float32)
        xq(x, mt, y)
        yield x, y


def _pass_products_numba(alt, alt_freq, q):
    """:func:`pass_block`'s ``(X'XQ)'`` (l, N) float32 on NumPy blocks by :mod:`popgen._pca_numba`
    (1.6x OpenBLAS's rate on these shapes)."""
    from popgen._pca_numba import ytx_add

    out = np.zeros((_padded5(q.shape[1]), alt.shape[1]), dtype=np.float32)
    for x, y in _numba_products(alt, alt_freq, q):
        ytx_add(y, x, out)
    return out[:q.shape[1]]


def loadings_block(alt, alt_freq, v):
    """``X V`` for one variant chunk: (v_chunk, k) float64.  ``alt`` holds all samples.
    Standardized ``_SUB_BYTES`` of variants at a time (the chunk's float32 ``X`` would
    be 16x its int8 calls)."""
    from popgen.backend import namespace

    xp = namespace(alt)
    if isinstance(alt, np.ndarray):  # popgen._pca_numba's product
        parts = [y[:, :v.shape[1]].astype(np.float64) for _, y in _numba_products(alt, alt_freq, v)]
    else:
        vd = xp.asarray(v, dtype=xp.float32)
        parts = [xp.astype(xp.matmul(x, vd), xp.float64) for x in _standardized_sub_blocks(alt, alt_freq)]
    return xp.concat(parts, axis=0) if parts else xp.zeros((0, v.shape[1]), dtype=xp.float64)


def project_block(alt, alt_freq, loadings, call_rate, flip):
    """One variant chunk's share of the projection: (1, s, k + 1) float64.

    Columns 0..k-1: ``sum_v x_vi L_vk``; column k: ``sum_v called_vi c_v``.
    ``_SUB_BYTES`` of variants at a time.
    """
    from popgen.backend import namespace

    xp = namespace(alt)
    p, flip = xp.asarray(alt_freq), xp.asarray(flip)
    lc = xp.concat([xp.asarray(loadings, dtype=xp.float32), xp.asarray(call_rate, dtype=xp.float32)[:, None]],
                   axis=1)
    k = lc.shape[1] - 1
    out = xp.zeros((alt.shape[1], k + 1), dtype=xp.float64)
    for r, e in _row_slices(alt):
        a = flip_alleles_block(alt[r:e, :], flip[r:e])
        x = standardize_block(a, p[r:e])
        num = xp.matmul(xp.matrix_transpose(x), lc[r:e, :k])
        den = xp.matmul(xp.matrix_transpose(xp.astype(a >= 0, xp.float32)), lc[r:e, k:])
        out = out + xp.astype(xp.concat([num, den], axis=1), xp.float64)
    return out[None, ...]


# ------------------------------------------------------------------ results

@dataclasses.dataclass
class PCAResult:
    """A fitted PCA.

    Attributes
    ----------
    eigenvectors : ndarray, float64, shape (samples, k)
        Unit-norm sample eigenvectors (PLINK 2's ``.eigenvec`` values).
    eigenvalues : ndarray, float64, shape (k,)
        Eigenvalues of the relationship matrix (``.eigenval``).
    loadings : ndarray, float64, shape (variants, k)
        ``L = X V``; divided by ``sqrt(M lambda)`` they are unit-norm variant loadings.
    alt_freq, call_rate : ndarray, float64, shape (variants,)
        Frequencies used to standardize; fraction of samples called.
    n_variants : int
        ``M``, all variants used (monomorphic ones included, as in PLINK 2).
    solver, missing : str
    """

    eigenvectors: np.ndarray
    eigenvalues: np.ndarray
    loadings: np.ndarray
    alt_freq: np.ndarray
    call_rate: np.ndarray
    n_variants: int
    solver: str
    missing: str
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def allele_weights(self) -> np.ndarray:
        """PLINK 2 ``.eigenvec.allele`` weights of the ALT allele, (variants, k)."""
        return -self.loadings / (2.0 * np.sqrt(self.eigenvalues))[None, :]


def _freq_and_callrate_lazy(ds, samples):
    """ALT frequencies (of ``samples``) and call rates (of all samples): lazy, (variants,) each."""
    from popgen import qc

    v = qc.variant_stats(ds, samples=samples, merge=False)
    a = qc.variant_stats(ds, merge=False)
    return v["variant_allele_frequency"].data[:, 1], a["variant_call_rate"].data


def _host_f64(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _check_polymorphic(af):
    if not ((af > 0) & (af < 1)).any():
        raise PopgenError("every variant is monomorphic: nothing to compute PCs from")


def _sign_fix(vectors):
    """Deterministic signs: the largest-magnitude entry of each column is positive."""
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return vectors * signs


def _pass_chunks(alt, n_samples):
    """Variant chunk size for passes that hold all samples of a chunk at once."""
    rows = max(16, min(alt.chunks[0][0], _PASS_BYTES // max(1, 4 * n_samples)))
    return alt.rechunk({0: rows, 1: -1})


def pca(ds, *, n_components: int = 10, solver: Solver = "exact", missing: Missing | None = None,
        samples=None, n_oversamples: int = 10, n_iter: int = 8, seed: int = 0, compute=None) -> PCAResult:
    """Top principal components of a cohort (``plink2 --pca``).

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype``, Dask-chunked; NumPy or CuPy blocks.
    n_components : int
        ``k``, at most min(samples, variants) - 1.
    solver : {"exact", "randomized"}
    missing : {"pairwise", "meanimpute"}, optional
        Default ``pairwise`` for exact (PLINK 2's default), ``meanimpute``
        for randomized (the only choice there, as in PLINK 2).
    samples : array_like of bool, shape (samples,), optional
        Samples whose allele frequencies standardize the genotypes (PLINK 2:
        founders, :func:`popgen.genotypes.founder_mask`). Default: all.
    n_oversamples, n_iter, seed : int
        Randomized solver: extra basis vectors, power iterations (streaming
        passes), and the seed of the random start (same result on CPU and GPU).
    compute : callable, optional
        ``compute(*collections) -> tuple`` (e.g. with a progress bar).

    Returns
    -------
    PCAResult
    """
    from popgen.genotypes import alt_allele_count

    compute = compute or _backend.compute
    n_samples, n_variants = ds.sizes["samples"], ds.sizes["variants"]
    if solver not in ("exact", "randomized"):
        raise PopgenError(f"unknown PCA solver {solver!r}: use exact or randomized")
    if missing is None:
        missing = "pairwise" if solver == "exact" else "meanimpute"
    if solver == "randomized" and missing != "meanimpute":
        raise PopgenError("the randomized PCA solver always mean-imputes missing calls (missing='meanimpute')")
    if missing not in ("pairwise", "meanimpute"):
        raise PopgenError(f"unknown missing-call handling {missing!r}: use pairwise or meanimpute")
    k = int(n_components)
    if k < 1:
        raise PopgenError(f"number of PCs must be at least 1, got {k}")
    if k >= n_samples or k > n_variants:
        raise PopgenError(
            f"cannot compute {k} PCs from {n_samples} samples and {n_variants} variants "
            f"(need fewer PCs than samples and no more than variants)"
        )
    freq = _freq_and_callrate_lazy(ds, samples)
    alt = alt_allele_count(ds)
    if solver == "exact":
        af, rate = _host_f64(*compute(*freq))
        _check_polymorphic(af)
        vectors, values = _exact(alt, af, k, missing, n_variants, compute)
        vectors = _sign_fix(vectors)
        loadings = _loadings(alt, af, vectors, compute)
        meta = {}
    else:  # the frequencies are computed with the first pass, from the chunks it decodes
        vectors, values, meta, (af, rate) = _randomized(alt, freq, k, n_variants, n_oversamples, n_iter, seed,
                                                        compute)
        vectors = _sign_fix(vectors)
        loadings = _loadings(alt, af, vectors, compute)
    return PCAResult(vectors, values, loadings, af, rate, n_variants, solver, missing, meta)


def _exact(alt, af, k, missing, n_variants, compute):
    import dask.array as da

    from popgen.backend import is_cupy, namespace, to_cpu

    xp = namespace(alt)
    p = da.from_array(af, chunks=(alt.chunks[0],))
    meta = xp.empty((0, 0, 0), dtype=xp.float64)
    gram = da.blockwise(gram_tile, "cij", alt, "ci", alt, "cj", p, "c", dtype=np.float64,
                        adjust_chunks={"c": 1}, meta=meta).sum(axis=0)
    parts = [gram]
    if missing == "pairwise":
        parts.append(da.blockwise(called_tile, "cij", alt, "ci", alt, "cj", dtype=np.float64,
                                  adjust_chunks={"c": 1}, meta=meta).sum(axis=0))
    results = compute(*parts)
    g = results[0]
    if missing == "pairwise":
        c = results[1]
        if (c == 0).any():
            raise PopgenError("some pairs of samples share no called variant: cannot use pairwise PCA "
                              "(use missing='meanimpute')")
        kmat = g / c
    else:
        kmat = g / n_variants
    kmat = (kmat + kmat.T) / 2
    if is_cupy(kmat):  # full decomposition on the device; only k vectors come back
        values, vectors = namespace(kmat).linalg.eigh(kmat)
        values, vectors = to_cpu(values[-k:]), to_cpu(vectors[:, -k:])
    else:
        import scipy.linalg

        n = kmat.shape[0]
        with _backend.all_cores_blas():
            values, vectors = scipy.linalg.eigh(np.asarray(kmat), subset_by_index=[n - k, n - 1], driver="evr")
    order = np.argsort(values)[::-1]
    return np.asarray(vectors)[:, order], np.asarray(values)[order]


def _randomized(alt, freq, k, n_variants, n_oversamples, n_iter, seed, compute):
    """Block Krylov PCA (see below): ``(vectors, values, meta, (af, rate))``; the loadings take a
    pass of their own (:func:`_loadings`), so that memory does not grow with the variants by the
    passes' ``X Q`` products (72 MB per 100,000 variants at the defaults).

    ``freq``: the lazy ``(af, rate)`` of :func:`_freq_and_callrate_lazy`, computed in one
    graph with the first pass: where the passes' chunks are the cohort's (the default),
    each chunk is decoded once for its counts and its products instead of in a pass of its own.
    """
    import dask.array as da

    from popgen.backend import namespace, to_cpu

    n_samples = alt.shape[1]
    l = min(k + max(0, int(n_oversamples)), n_samples - 1)  # noqa: E741
    alt = _pass_chunks(alt, n_samples)
    p = freq[0].rechunk((alt.chunks[0],))  # the first pass's; then the computed values
    xp = namespace(alt)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_samples, l))  # drawn on the host: identical start on every device
    q, _ = np.linalg.qr(q)

    def xtxq(q_host, *extra):
        """``(X'X Q / M, extra computed)``: one pass over the genotypes (all samples (j) in one
        chunk), computing the collections ``extra`` in the same graph."""
        qd = xp.asarray(q_host, dtype=xp.float32)
        parts = da.blockwise(pass_block, "cil", alt, "cj", p, "c", qd, None, dtype=np.float64,
                             new_axes={"i": n_samples, "l": q_host.shape[1]}, adjust_chunks={"c": 1},
                             meta=xp.empty((0, 0, 0), dtype=xp.float64), concatenate=True)
        z, *more = compute(parts.sum(axis=0), *extra)
        return np.asarray(to_cpu(z)) / n_variants, more

    # block Krylov subspace (Musco & Musco 2015; the "blanczos" of Galinsky et al. 2016): keep every
    # block, so that flat spectra beyond the top PCs converge in few passes.  Each new block is
    # orthogonalized against the earlier ones (block Lanczos with full reorthogonalization), so the
    # basis C = [Q_0 .. Q_q] is orthonormal as built and the Rayleigh-Ritz matrix C'KC comes from
    # the passes already made (C'[KQ_0 .. KQ_q]): one pass of width l per block, where
    # orthogonalizing the concatenated blocks afterwards needs a pass over a basis of width l(q+1).
    blocks, images = [q], []
    for i in range(max(0, int(n_iter)) + 1):
        z, more = xtxq(blocks[-1], *(freq if i == 0 else ()))
        if i == 0:
            af, rate = _host_f64(*more)
            _check_polymorphic(af)
            p = da.from_array(af, chunks=(alt.chunks[0],))
        images.append(z)
        if i == n_iter:
            break
        nxt = _orthonormal_complement(images[-1], np.concatenate(blocks, axis=1))
        if nxt.shape[1] == 0:  # the basis spans every sample: the decomposition is exact
            break
        blocks.append(nxt)
    basis = np.concatenate(blocks, axis=1)
    t = basis.T @ np.concatenate(images, axis=1)
    t = (t + t.T) / 2
    values, u = np.linalg.eigh(t)
    order = np.argsort(values)[::-1][:k]
    vectors = basis @ u[:, order]
    meta = {"n_iter": int(n_iter), "n_oversamples": int(l - k), "seed": int(seed)}
    return vectors, values[order], meta, (af, rate)


def _orthonormal_complement(z, basis):
    """Orthonormal columns spanning ``z``'s part outside ``basis`` (orthonormal, (N, b)).

    Two rounds of projecting ``basis`` out twice ("twice is enough", Parlett) and a QR: columns
    of ``z`` already (nearly) in ``span(basis)`` leave rounding noise, which the first QR scales
    up to unit length, and the second round keeps it orthogonal to ``basis``.  At most
    ``N - b`` columns.
    """
    room = basis.shape[0] - basis.shape[1]
    if room <= 0:
        return z[:, :0]
    w = z[:, :room]
    for _ in range(2):
        w = w - basis @ (basis.T @ w)
        w = w - basis @ (basis.T @ w)
        w, _ = np.linalg.qr(w)
    return w


def _loadings(alt, af, vectors, compute):
    import dask.array as da

    from popgen.backend import namespace, to_cpu

    n_samples = alt.shape[1]
    alt = _pass_chunks(alt, n_samples)
    xp = namespace(alt)
    p = da.from_array(af, chunks=(alt.chunks[0],))
    vd = xp.asarray(vectors, dtype=xp.float32)
    lo = da.blockwise(loadings_block, "ck", alt, "cj", p, "c", vd, None, dtype=np.float64,
                      new_axes={"k": vectors.shape[1]}, concatenate=True,
                      meta=xp.empty((0, 0), dtype=xp.float64))
    (out,) = compute(lo)
    return np.asarray(to_cpu(out))


# ------------------------------------------------------------------ projection

@dataclasses.dataclass
class Reference:
    """What projection needs from a fitted PCA (read from ``O.eigenvec.var`` etc.)."""

    variant_id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    alt_freq: np.ndarray
    call_rate: np.ndarray
    loadings: np.ndarray
    eigenvalues: np.ndarray
    n_variants: int
    missing: str


def match_variants(ds, reference: Reference):
    """Match a cohort's variants to a reference by ID and alleles.

    Returns
    -------
    ds_index : ndarray, int, indices of matched variants in ``ds``
    ref_index : ndarray, int, the same variants' indices in the reference
    flip : ndarray, bool, REF/ALT swapped relative to the reference
    report : dict, counts of matched, flipped and dropped variants
    """
    from popgen.io.reports import _str

    ids = _str(ds["variant_id"].values)
    alleles = _str(ds["variant_allele"].values)
    pos = {vid: i for i, vid in enumerate(reference.variant_id.tolist())}
    ds_index, ref_index, flip = [], [], []
    mismatched = absent = 0
    for i, vid in enumerate(ids.tolist()):
        j = pos.get(vid)
        if j is None:
            absent += 1
            continue
        a, b = alleles[i, 0], alleles[i, 1]
        if a == reference.ref[j] and b == reference.alt[j]:
            flip.append(False)
        elif a == reference.alt[j] and b == reference.ref[j]:
            flip.append(True)
        else:
            mismatched += 1
            continue
        ds_index.append(i)
        ref_index.append(j)
    report = {"matched": len(ds_index), "flipped": int(np.sum(flip)), "allele_mismatch": mismatched,
              "not_in_reference": absent, "reference_missing": reference.variant_id.shape[0] - len(ds_index)}
    return np.asarray(ds_index, dtype=np.int64), np.asarray(ref_index, dtype=np.int64), np.asarray(flip, bool), report


def project(ds, reference: Reference, *, compute=None):
    """Project a cohort's samples onto a reference PCA.

    Variants are matched by ID and alleles (swapped alleles are flipped;
    others dropped and reported).  Missing calls contribute zero.

    Returns
    -------
    scores : ndarray, float64, shape (samples, k)
        On the scale of the reference's ``.eigenvec`` (unit-norm eigenvectors).
    report : dict
        Variant matching counts.
    """
    import dask.array as da

    from popgen.backend import namespace, to_cpu
    from popgen.genotypes import alt_allele_count

    compute = compute or _backend.compute
    di, ri, flip, report = match_variants(ds, reference)
    if len(di) == 0:
        raise PopgenError("no variant of the cohort matches the reference PCA (by ID and alleles)")
    sub = ds.isel(variants=di)
    alt = alt_allele_count(sub)
    chunks = (alt.chunks[0],)
    xp = namespace(alt)
    k = reference.loadings.shape[1]
    args = [
        da.from_array(reference.alt_freq[ri], chunks=chunks), "c",
        da.from_array(reference.loadings[ri], chunks=chunks + ((k,),)), "ck",
        da.from_array(reference.call_rate[ri], chunks=chunks), "c",
        da.from_array(flip, chunks=chunks), "c",
    ]
    parts = da.blockwise(project_block, "cjk", alt, "cj", *args, dtype=np.float64,
                         adjust_chunks={"c": 1, "k": k + 1}, meta=xp.empty((0, 0, 0), dtype=xp.float64),
                         concatenate=True)
    (sums,) = compute(parts.sum(axis=0))
    sums = np.asarray(to_cpu(sums))
    num, den = sums[:, :k], sums[:, k]
    if reference.missing == "meanimpute":
        den = np.full_like(den, float(reference.n_variants))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = num / (reference.eigenvalues[None, :] * den[:, None])
    return scores, report


def reference_from_result(ds, result: PCAResult) -> Reference:
    from popgen.io.reports import _str

    alleles = _str(ds["variant_allele"].values)
    return Reference(_str(ds["variant_id"].values), alleles[:, 0], alleles[:, 1], result.alt_freq,
                     result.call_rate, result.loadings, result.eigenvalues, result.n_variants, result.missing)


# ------------------------------------------------------------------ files

def write_pca(prefix, ds, result: PCAResult) -> list[str]:
    """Write ``.eigenvec``, ``.eigenval``, ``.eigenvec.allele`` (PLINK 2 formats),
    ``.eigenvec.var`` (frequencies, call rates and loadings, for projection)
    and ``.pca.json`` (solver and settings).  Returns the paths written."""
    import concurrent.futures

    from popgen.io.reports import Formatted, sample_columns, variant_columns, write_table

    k = result.eigenvalues.shape[0]
    pcs = [f"PC{i + 1}" for i in range(k)]
    cols = sample_columns(ds)
    for i, name in enumerate(pcs):
        cols[name] = Formatted(result.eigenvectors[:, i])
    write_table(f"{prefix}.eigenvec", cols)
    v = variant_columns(ds)
    w = result.allele_weights

    def write_allele():
        allele = {"#CHROM": np.repeat(v["#CHROM"], 2), "ID": np.repeat(v["ID"], 2), "REF": np.repeat(v["REF"], 2),
                  "ALT": np.repeat(v["ALT"], 2), "A1": np.stack([v["REF"], v["ALT"]], axis=1).ravel()}
        for i, name in enumerate(pcs):
            allele[name] = Formatted(np.stack([-w[:, i], w[:, i]], axis=1).ravel())
        write_table(f"{prefix}.eigenvec.allele", allele)

    # the two per-variant tables side by side (their numba formatting releases the GIL): 0.43 -> 0.29 s
    # at 100,000 variants
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        allele_done = pool.submit(write_allele)
        unit = result.loadings / np.sqrt(result.n_variants * result.eigenvalues)[None, :]
        meta = {"solver": result.solver, "missing": result.missing, "n_samples": int(result.eigenvectors.shape[0]),
                **result.meta}
        write_reference(prefix, ds, result.eigenvalues, unit, result.alt_freq, result.call_rate, result.n_variants,
                        meta)
        allele_done.result()
    return [f"{prefix}.{ext}" for ext in ("eigenvec", "eigenval", "eigenvec.allele", "eigenvec.var", "pca.json")]


def write_reference(prefix, ds, eigenvalues, unit_loadings, alt_freq, call_rate, n_variants: int, meta: dict, *,
                    eigenval: bool = True) -> list[str]:
    """Write what projection needs (:func:`read_reference`): ``.eigenval`` (unless
    ``eigenval=False``), ``.eigenvec.var`` (frequencies, call rates and unit-norm variant
    loadings of ``ds``'s variants) and ``.pca.json`` (``n_variants`` M, ``missing`` and ``meta``)."""
    from popgen import __version__
    from popgen.io.files import atomic_write
    from popgen.io.reports import Formatted, fmt_g, variant_columns, write_table
    from popgen.io.textfmt import format_g9

    k = len(eigenvalues)
    if eigenval:
        with atomic_write(f"{prefix}.eigenval") as f:
            f.write("".join(f"{v}\n" for v in fmt_g(eigenvalues)))
    var = variant_columns(ds)
    var["ALT_FREQS"] = Formatted(alt_freq)
    var["CALL_RATE"] = Formatted(call_rate)
    for i in range(k):
        var[f"PC{i + 1}"] = Formatted(unit_loadings[:, i], format_g9)
    write_table(f"{prefix}.eigenvec.var", var)
    meta = {"popgen": __version__, "n_components": int(k), "n_variants": int(n_variants), **meta}
    with atomic_write(f"{prefix}.pca.json") as f:
        json.dump(meta, f, indent=2)
    return [f"{prefix}.{ext}" for ext in (("eigenval",) if eigenval else ()) + ("eigenvec.var", "pca.json")]


def read_reference(prefix) -> Reference:
    """Read a PCA written by :func:`write_pca` for projection; errors name the file."""
    import pandas as pd

    prefix = str(prefix)
    paths = {ext: f"{prefix}.{ext}" for ext in ("eigenvec.var", "eigenval", "pca.json")}
    import os

    for path in paths.values():
        if not os.path.isfile(path):
            raise PopgenError("file not found (a reference PCA is written by popgen pca --out PREFIX)", path)
    try:
        meta = json.loads(open(paths["pca.json"]).read())
        n_variants, missing = int(meta["n_variants"]), str(meta["missing"])
    except (ValueError, KeyError) as e:
        raise PopgenError(f"not a popgen PCA description ({e})", paths["pca.json"]) from None
    try:
        values = np.loadtxt(paths["eigenval"], dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise PopgenError(f"cannot read eigenvalues ({e})", paths["eigenval"]) from None
    var = pd.read_csv(paths["eigenvec.var"], sep="\t", dtype={"#CHROM": str, "ID": str, "REF": str, "ALT": str})
    pcs = [c for c in var.columns if c.startswith("PC")]
    needed = {"ID", "REF", "ALT", "ALT_FREQS", "CALL_RATE"}
    if not needed <= set(var.columns) or len(pcs) != len(values):
        raise PopgenError(f"expected columns {sorted(needed)} and one PC column per eigenvalue", paths["eigenvec.var"])
    unit = var[pcs].to_numpy(dtype=np.float64)
    loadings = unit * np.sqrt(n_variants * values)[None, :]
    return Reference(var["ID"].to_numpy(object), var["REF"].to_numpy(object), var["ALT"].to_numpy(object),
                     var["ALT_FREQS"].to_numpy(np.float64), var["CALL_RATE"].to_numpy(np.float64),
                     loadings, values, n_variants, missing)


def write_projection(prefix, ds, scores) -> None:
    """``.sscore``-like projection output in ``.eigenvec`` layout: #FID IID PC1..PCk."""
    from popgen.io.reports import fmt_g, sample_columns, write_table

    cols = sample_columns(ds)
    for i in range(scores.shape[1]):
        cols[f"PC{i + 1}"] = fmt_g(scores[:, i])
    write_table(f"{prefix}.eigenvec", cols)


def plot_pcs(path, vectors, labels=None, *, title: str = "") -> None:
    """PC1/PC2 and PC3/PC4 scatter plots as a PNG, coloured by population label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from popgen.io.files import tmp_name

    k = vectors.shape[1]
    pairs = [(0, 1)] + ([(2, 3)] if k >= 4 else [])
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 5), squeeze=False)
    groups = [(None, np.ones(len(vectors), bool))] if labels is None else [
        (lab, np.asarray(labels) == lab) for lab in sorted(set(np.asarray(labels).tolist()))]
    for ax, (a, b) in zip(axes[0], pairs):
        for lab, m in groups:
            ax.scatter(vectors[m, a], vectors[m, b], s=8, alpha=0.7, label=lab)
        ax.set_xlabel(f"PC{a + 1}")
        ax.set_ylabel(f"PC{b + 1}")
        if labels is not None:
            ax.legend(markerscale=2, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = tmp_name(path)
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    import os

    os.replace(tmp, path)
