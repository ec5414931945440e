"""Linkage disequilibrium: pairwise r^2 of genotype dosages and LD pruning.

:func:`ld_prune` keeps a set of variants in approximate linkage equilibrium,
the same set as ``plink2 --indep-pairwise`` (PLINK v2.00a3.5) on the same
data; :func:`write_prune_lists` writes it as PLINK's ``.prune.in`` and
``.prune.out``.

The work is split as the problem is shaped.  r^2 among the variants of a
window is a matrix product over samples: it runs block by block, as a few
float32 GEMMs on the device that holds the genotypes (:func:`pair_sums_block`,
:func:`r2_from_sums`, written against the array namespace, so NumPy, CuPy and
array-api-strict run the same code).  Only a band of r^2 values per variant
(its pairs within reach of a window) leaves the device.  The greedy pruning
decisions are sequential and run on the host (numba), streaming over variant
chunks with an overlap of one window, so memory is bounded by the chunk and
window sizes, never by the cohort.
"""

from __future__ import annotations

import logging

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError

log = logging.getLogger(__name__)

#: PLINK 2's ``kSmallEpsilon`` (2^-44): the r^2 threshold is raised by this
#: relative amount, and major allele frequencies within it count as equal
SMALL_EPSILON = 2.0**-44
#: PLINK 2 refuses LD computations on fewer founders than this (``--bad-ld``)
BAD_LD_MIN_SAMPLES = 50
#: packing factor of the paired GEMMs (see :func:`pair_sums_block`)
_PACK = 4096.0
#: samples per packed GEMM: every packed partial sum stays an integer below 2^24
_PACK_SAMPLES = 2047
#: rows per tile of the band products (each tile is multiplied with itself and
#: the next tiles its pairs reach), and rows per group of tiles encoded and
#: multiplied at once (batched GEMMs), by device
_TILE = {"cpu": 64, "gpu": 64}
_GROUP = {"cpu": 512, "gpu": 4096}
#: variants per host batch: chunks are grouped until a batch has this many rows
_BATCH_ROWS = 16384


# ------------------------------------------------------------------ block math


def _encode(g, dtype, packed):
    """Operands of the r^2 products of ALT counts ``g`` (..., v, s).

    Dosage centred on the heterozygote ``x`` (-1, 0, 1; 0 where missing), the
    homozygote indicator ``h = x^2``, the called indicator ``m`` (as
    ``dtype``) and the called mask; with ``packed``, also ``h + 4096 m``,
    ``x + 4096 m`` and ``h + 4096 x``.
    """
    from popgen.backend import namespace

    xp = namespace(g)
    called = g >= 0
    x = xp.where(called, xp.astype(g, dtype) - 1, xp.zeros((), dtype=dtype))
    h = xp.astype((g == 0) | (g == 2), dtype)
    m = xp.astype(called, dtype)
    if not packed:
        return x, h, m, called, None, None, None
    return x, h, m, called, h + _PACK * m, x + _PACK * m, h + _PACK * x


def _exact_float32(x) -> bool:
    """False where float32 products are not exact (CuPy with TF32 tensor cores)."""
    import os

    from popgen.backend import is_cupy

    return not (is_cupy(x) and os.environ.get("CUPY_TF32", "0") not in ("", "0"))


def _take_samples(x, samples):
    from popgen.backend import namespace

    if samples is None:
        return x
    xp = namespace(x)
    keep = xp.asarray(samples, dtype=xp.bool)
    if keep.shape != (x.shape[-1],):
        raise PopgenError(f"samples mask has shape {tuple(keep.shape)}, expected ({x.shape[-1]},)")
    (idx,) = xp.nonzero(keep)
    return xp.take(x, idx, axis=x.ndim - 1)


def pair_sums_block(x, y, samples=None, *, packed: bool = True):
    """Pairwise-complete sums for the r^2 of every row of ``x`` with every row of ``y``.

    Each pair uses the samples called in both variants (as PLINK 2 does), with
    dosages centred on the heterozygote, ``x = ALT count - 1``.

    Parameters
    ----------
    x : array, int8, shape (..., m, s)
        ALT allele counts 0/1/2, -1 missing (NumPy, CuPy or any Array-API
        array); leading dimensions are a batch.
    y : array, int8, shape (..., n, s)
        Same, same samples.
    samples : array, bool, shape (s,), optional
        Only these samples are used.
    packed : bool
        Pack two sums into each float32 product (3 GEMMs instead of 6; exact,
        see Notes).  False is the plain six-product form, kept as a check.

    Returns
    -------
    array, float32 (float64 for 2^24 samples or more), shape (6, ..., m, n)
        Integer-valued: ``n`` (samples called in both), ``sum x``, ``sum y``,
        ``sum x^2``, ``sum y^2``, ``sum xy``, each over the pair's common
        samples.  Sums over sample blocks add up (reduce them with ``+``).

    Notes
    -----
    With ``m`` the called indicator, ``h = x^2`` the homozygote indicator and
    rows of ``x`` zero where missing, the six sums are the products
    ``M_x M_y'``, ``X M_y'``, ``M_x X_y'``, ``H_x M_y'``, ``M_x H_y'`` and
    ``X X_y'``.  Two that share an operand go into one product with the other
    operands packed as ``a + 4096 b``; over at most 2047 samples every partial
    sum is an integer below 2^24, so float32 GEMMs (in any summation order)
    are exact and the two sums are unpacked exactly.  (With ``CUPY_TF32=1``
    CuPy's products round their inputs to 10 bits, so the plain form is used.)
    A block with no missing call needs only ``X X_y'``.
    """
    from popgen.backend import namespace

    xp = namespace(x, y)
    x = _take_samples(x, samples)
    y = _take_samples(y, samples)
    n_s = x.shape[-1]
    dtype = xp.float32 if n_s < 2**24 else xp.float64
    packed = packed and dtype == xp.float32 and _exact_float32(x)
    return _sums_from_encoded(xp, _encode(x, dtype, packed), _encode(y, dtype, packed), n_s, dtype)


def _sums_from_encoded(xp, er, ec, n_s, dtype):
    """The six sums (6, ..., r, c) from :func:`_encode` operands of rows and columns."""
    xr, hr, mr, cr, hmr, _, _ = er
    xc, hc, mc, cc, _, xmc, hxc = ec
    t = xp.matrix_transpose
    shape = xr.shape[:-1] + (xc.shape[-2],)
    if bool(xp.all(cr)) and bool(xp.all(cc)):  # no missing call: one product
        n = xp.full(shape, float(n_s), dtype=dtype)
        sx = xp.broadcast_to(xp.sum(xr, axis=-1, dtype=dtype)[..., :, None], shape)
        sy = xp.broadcast_to(xp.sum(xc, axis=-1, dtype=dtype)[..., None, :], shape)
        sxx = xp.broadcast_to(xp.sum(hr, axis=-1, dtype=dtype)[..., :, None], shape)
        syy = xp.broadcast_to(xp.sum(hc, axis=-1, dtype=dtype)[..., None, :], shape)
        return xp.stack([n, sx, sy, sxx, syy, xp.matmul(xr, t(xc))])
    if hmr is None:
        return xp.stack([
            xp.matmul(mr, t(mc)), xp.matmul(xr, t(mc)), xp.matmul(mr, t(xc)),
            xp.matmul(hr, t(mc)), xp.matmul(mr, t(hc)), xp.matmul(xr, t(xc)),
        ])
    out = None
    for k0 in range(0, n_s, _PACK_SAMPLES):
        k = slice(k0, min(k0 + _PACK_SAMPLES, n_s))
        a = xp.matmul(hmr[..., k], t(mc[..., k]))   # sxx + 4096 n    (both in [0, 2047])
        b = xp.matmul(xr[..., k], t(xmc[..., k]))   # sxy + 4096 sx   (both in [-2047, 2047])
        c = xp.matmul(mr[..., k], t(hxc[..., k]))   # syy + 4096 sy   (syy >= 0)
        n = xp.floor(a / _PACK)
        sx = xp.round(b / _PACK)
        sy = xp.floor(c / _PACK)
        part = xp.stack([n, sx, sy, a - _PACK * n, c - _PACK * sy, b - _PACK * sx])
        out = part if out is None else out + part
    return out


def r2_from_sums(sums):
    """r^2 from the pairwise-complete sums of :func:`pair_sums_block`.

    ``r^2 = cov^2 / (var_x var_y)`` with ``cov = n sum(xy) - sum(x) sum(y)``,
    ``var_x = n sum(x^2) - sum(x)^2`` (the factors of ``n`` cancel), in float64
    from exact integers, as PLINK 2's ``IndepPairwiseThread`` does.

    Parameters
    ----------
    sums : array, float, shape (6, ...)

    Returns
    -------
    array, float64, shape (...)
        NaN where either variant is constant over the pair's common samples
        (PLINK 2 never prunes such a pair: ``cov^2 > t var_x var_y`` is false).
    """
    from popgen.backend import namespace

    xp = namespace(sums)
    n, sx, sy, sxx, syy, sxy = (xp.astype(sums[k, ...], xp.float64) for k in range(6))
    cov = sxy * n - sx * sy
    den = (sxx * n - sx * sx) * (syy * n - sy * sy)
    ok = den > 0
    return xp.where(ok, cov * cov / xp.where(ok, den, xp.ones_like(den)), xp.full_like(den, xp.nan))


def r2_block(x, y, samples=None):
    """Pairwise-complete r^2 of every row of ``x`` with every row of ``y``.

    Parameters
    ----------
    x : array, int8, shape (m, s)
        ALT allele counts 0/1/2, -1 missing.
    y : array, int8, shape (n, s)
    samples : array, bool, shape (s,), optional

    Returns
    -------
    array, float64, shape (m, n)
        Squared Pearson correlation of the dosages over the samples called in
        both variants; NaN where a variant is constant on them.
    """
    return r2_from_sums(pair_sums_block(x, y, samples))


def band_sums_block(g, n_rows: int, width: int, *, tile: int = 64, group: int = 512, samples=None):
    """Pairwise-complete sums of each row with the ``width - 1`` rows after it.

    The rows are cut into tiles of ``tile`` rows; each tile is multiplied with
    itself and the ``ceil((width - 1) / tile)`` tiles after it, as batched
    GEMMs over ``group`` rows at a time, and the band is read off the
    products.

    Parameters
    ----------
    g : array, int8, shape (n_rows + halo, s)
        ALT allele counts: the band's rows, then the rows after them that
        pairs reach (``halo >= width - 1``, or up to the end of the data).
    n_rows : int
        Rows of ``g`` the band is computed for.
    width : int
        Band width: column ``d`` pairs row ``i`` with row ``i + d`` (``d = 0``
        is the row with itself).
    tile, group : int
        Rows per tile and per batch of tiles (``group`` bounds the memory:
        about ``7 (group + width) s`` floats).
    samples : array, bool, shape (s,), optional

    Returns
    -------
    array, float32, shape (6, n_rows, width)
        The sums of :func:`pair_sums_block` for the pairs ``(i, i + d)``;
        zero (r^2 NaN) past the end of ``g``.
    """
    from popgen.backend import namespace

    xp = namespace(g)
    g = _take_samples(g, samples)
    total, n_s = g.shape
    dtype = xp.float32 if n_s < 2**24 else xp.float64
    packed = dtype == xp.float32 and _exact_float32(g)
    b = max(1, int(tile))
    n_col = -(-(width - 1) // b) + 1       # tiles each tile pairs with, itself included
    n_tiles = -(-n_rows // b)
    per_group = max(1, int(group) // b)
    parts = []
    for t0 in range(0, n_tiles, per_group):
        n_t = min(per_group, n_tiles - t0)
        n_enc = n_t + n_col - 1
        r0, r1 = t0 * b, min((t0 + n_enc) * b, total)
        blk = g[r0:r1, :]
        if r1 - r0 < n_enc * b:  # past the end: missing calls (sums 0)
            blk = xp.concat([blk, xp.full((n_enc * b - (r1 - r0), n_s), -1, dtype=g.dtype)], axis=0)
        enc = _encode(xp.reshape(blk, (n_enc, b, n_s)), dtype, packed)
        rows = tuple(None if e is None else e[:n_t, ...] for e in enc)
        prods = [
            _sums_from_encoded(xp, rows, tuple(None if e is None else e[j:j + n_t, ...] for e in enc), n_s, dtype)
            for j in range(n_col)
        ]
        prod = xp.concat(prods, axis=3) if n_col > 1 else prods[0]   # (6, n_t, b, n_col b)
        # band of a (b, L) product T (L = n_col b >= b + width - 1): T[r, r + d]
        # is element r (L + 1) + d of T flattened, so append b elements and
        # read rows of L + 1
        span = n_col * b
        flat = xp.concat([xp.reshape(prod, (6, n_t, b * span)), xp.zeros((6, n_t, b), dtype=dtype)], axis=2)
        band = xp.reshape(flat, (6, n_t, b, span + 1))[..., :width]
        parts.append(xp.reshape(band, (6, n_t * b, width)))
    if not parts:
        return xp.zeros((6, 0, width), dtype=dtype)
    out = xp.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    return out[:, :n_rows, :]


# ------------------------------------------------------------------ windows


def _segments(contig_codes, positions, names, window_bp):
    """Runs of variants PLINK 2 prunes independently ("subcontigs").

    Returns (starts, ends, skipped) where skipped marks chromosome-0 variants
    (in neither output list).  Contigs must be contiguous; with a kb window,
    positions must be sorted and runs split where consecutive variants are
    more than the window apart.  Runs of one variant are dropped (never
    loaded, so kept even when monomorphic), as in ``LdPruneSubcontigSplitAll``.
    """
    n = len(contig_codes)
    skipped = np.zeros(n, dtype=bool)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), skipped
    brk = np.flatnonzero(np.diff(contig_codes) != 0) + 1
    run_start = np.concatenate([[0], brk])
    run_end = np.concatenate([brk, [n]])
    codes = contig_codes[run_start]
    if len(np.unique(codes)) != len(codes):
        _, first = np.unique(codes, return_index=True)
        split = codes[np.setdiff1d(np.arange(len(codes)), first)[0]]
        raise PopgenError(f"contig {names[split]!r} is split into several runs of variants; "
                          "sort the cohort by contig first")
    starts, ends = [], []
    for s, e, c in zip(run_start, run_end, codes):
        name = str(names[c])
        if _strip_chr(name) == "0":
            skipped[s:e] = True
            continue
        if window_bp is None:
            starts.append([s])
            ends.append([e])
            continue
        pos = positions[s:e]
        if np.any(np.diff(pos) < 0):
            raise PopgenError(f"contig {name!r}: positions are not sorted; a kb window needs variants "
                              "sorted by position within each contig")
        cut = np.flatnonzero(np.diff(pos) > window_bp) + 1
        starts.append(s + np.concatenate([[0], cut]))
        ends.append(s + np.concatenate([cut, [e - s]]))
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), skipped
    starts = np.concatenate(starts).astype(np.int64)
    ends = np.concatenate(ends).astype(np.int64)
    keep = ends - starts > 1
    return starts[keep], ends[keep], skipped


def _strip_chr(name: str) -> str:
    name = name.strip()
    return name[3:] if name.lower().startswith("chr") else name


def _count_windows(seg_starts, seg_ends, window, step):
    """Windows of ``window`` variants, ``step`` apart, per segment (``LdPruneNextWindow``)."""
    s_all, e_all, new_all = [], [], []
    for c0, c1 in zip(seg_starts, seg_ends):
        length = c1 - c0
        k_last = max(0, -(-(length - window) // step))
        s = c0 + np.arange(k_last + 1, dtype=np.int64) * step
        e = np.minimum(s + window, c1)
        new = np.zeros(len(s), dtype=bool)
        new[0] = True
        s_all.append(s)
        e_all.append(e)
        new_all.append(new)
    if not s_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(s_all), np.concatenate(e_all), np.concatenate(new_all)


_JIT = {}


def _jit(name):
    """numba versions of the host loops, compiled on first use and cached."""
    if name not in _JIT:
        import numba

        _JIT["kb_windows"] = numba.njit(cache=True, nogil=True)(_kb_windows_py)
        _JIT["greedy"] = numba.njit(cache=True, nogil=True)(_greedy_py)
    return _JIT[name]


def _kb_windows_py(pos, seg_starts, seg_ends, window_bp, out_s, out_e, out_new):
    """Windows of ``window_bp`` base pairs per segment, as PLINK 2 slides them.

    The first window holds the variants within ``window_bp`` of the segment's
    first; each next window starts at the first variant no more than
    ``window_bp`` before the first variant the last window left out, and
    holds the variants within ``window_bp`` of its start
    (``LdPruneNextSubcontig`` / ``LdPruneNextWindow``).
    """
    k = 0
    for j in range(seg_starts.shape[0]):
        c0 = seg_starts[j]
        c1 = seg_ends[j]
        s = c0
        e = c0 + 1
        while e < c1 and pos[e] <= pos[s] + window_bp:
            e += 1
        out_s[k] = s
        out_e[k] = e
        out_new[k] = True
        k += 1
        while e < c1:
            lo_bp = pos[e] - window_bp
            s += 1
            while pos[s] < lo_bp:
                s += 1
            e += 1
            while e < c1 and pos[e] <= pos[s] + window_bp:
                e += 1
            out_s[k] = s
            out_e[k] = e
            out_new[k] = False
            k += 1
    return k


def _greedy_py(band, lo, hi, win_s, win_e, win_new, k, mono, maj, removed, wbuf, wfu, state, thresh, eps):
    """PLINK 1.x-order greedy pruning of every window that ends by ``hi``.

    ``band[i - lo, d]`` is the r^2 of variants ``i`` and ``i + d``.  The window
    (``wbuf``), each member's first unchecked partner (``wfu``) and
    ``state = [window length, variants loaded]`` carry over between calls.
    Returns the index of the first window not processed.
    """
    wl = state[0]
    loaded = state[1]
    n_win = win_s.shape[0]
    while k < n_win and win_e[k] <= hi:
        s = win_s[k]
        e = win_e[k]
        if win_new[k]:
            wl = 0
            loaded = s
        else:  # drop members removed or before the new start
            j = 0
            for p in range(wl):
                v = wbuf[p]
                if v >= s and not removed[v]:
                    wbuf[j] = v
                    wfu[j] = wfu[p]
                    j += 1
            wl = j
        for v in range(loaded, e):  # load; constant dosages are removed on load
            wbuf[wl] = v
            wfu[wl] = v + 1
            wl += 1
            if mono[v]:
                removed[v] = True
        loaded = e
        changed = True
        while changed:  # passes until one removes nothing
            changed = False
            for p in range(wl):
                a = wbuf[p]
                if removed[a]:
                    continue
                # members are in cohort order: binary search for the first unchecked
                q = p + 1
                top = wl
                while q < top:
                    mid = (q + top) >> 1
                    if wbuf[mid] < wfu[p]:
                        q = mid + 1
                    else:
                        top = mid
                while q < wl and removed[wbuf[q]]:
                    q += 1
                if q == wl:
                    continue
                while True:
                    b = wbuf[q]
                    if band[a - lo, b - a] > thresh:
                        if maj[a] > maj[b] * (1.0 + eps):
                            removed[a] = True
                        else:
                            removed[b] = True
                            q += 1
                            while q < wl and removed[wbuf[q]]:
                                q += 1
                            wfu[p] = wbuf[q] if q < wl else e
                        changed = True
                        break
                    q += 1
                    while q < wl and removed[wbuf[q]]:
                        q += 1
                    if q == wl:
                        wfu[p] = e
                        break
        k += 1
    state[0] = wl
    state[1] = loaded
    return k


# ------------------------------------------------------------------ pruning


def ld_prune(ds, *, window: int | None = None, window_kb: float | None = None, step: int = 1,
             r2: float = 0.2, samples=None, allele_frequency=None, compute=None) -> np.ndarray:
    """Variants in approximate linkage equilibrium, as ``plink2 --indep-pairwise``.

    Slides a window along each contig; in each window, pairs of variants with
    r^2 above ``r2`` are found and one variant of each pair is removed, the
    less frequent first, until no such pair remains (Purcell et al. 2007;
    the PLINK 2 implementation of Chang et al. 2015).  Exactly, as PLINK
    v2.00a3.5 (``IndepPairwiseThread``, ``LdPruneNextWindow``,
    ``LdPruneSubcontigSplitAll`` in ``plink2_ld.cc``):

    * **r^2** is the squared Pearson correlation of the ALT allele counts over
      the samples called in both variants (pairwise complete, no imputation),
      from exact integer sums: a pair is "in LD" when
      ``cov^2 > r2 (1 + 2^-44) var_1 var_2``.  A pair with a variant constant
      over their common samples is never in LD.
    * **Samples**: ``samples`` (default all) for r^2, the monomorphic check and
      the allele frequencies.  PLINK 2 computes r^2 on founders only, always;
      pass :func:`popgen.genotypes.founder_mask` to get its result.
      ``plink2 --nonfounders`` changes only the allele frequencies (to all
      samples): pass those as ``allele_frequency`` to reproduce it.
    * **Windows** run per contig; a contig named ``0`` is skipped (its variants
      are in neither list, so ``False`` here) and a contig with one variant is
      kept whole.  ``window`` variants, moved ``step`` variants at a time
      (``step <= window``); or, with ``window_kb``, every variant within
      ``floor(1000 window_kb)`` bp of the window's first, the window moving to
      the first variant within that distance of the first one it left out
      (``step`` must be 1, as in plink2); a gap wider than the window splits a
      contig, and a variant alone between two gaps is kept.
    * **Monomorphic** variants (one dosage over the called samples: all
      homozygous for one allele, all heterozygous, or no call) are removed
      when they enter a window.
    * **Which of a pair** (PLINK 1.x order, the only one in v2.00a3.5; PLINK 2
      builds from 2023 on scan in another order by default and keep this one
      as ``--indep-pairwise ... plink1-order``): when
      a window is full, each variant in window order, from the first partner
      it has not yet been checked against, is compared with the later
      variants still in the window until a pair is in LD; then the variant
      with the higher major allele frequency over ``samples`` (the lower MAF)
      is removed, the later one on a tie (frequencies within 2^-44); a first
      variant that survives resumes after the removed partner.  Passes repeat
      until one removes nothing, then the window moves on; survivors keep
      their place in the next window and are only compared with new variants.

    **chrX, chrY and MT** (:func:`popgen.genotypes.contig_model`) are pruned as
    PLINK 2 prunes them, each run of them on its own view of the samples
    (:func:`_haploid_view`): on chrX a male's call counts once and another
    sample's twice, a male's heterozygous call is missing; chrY uses males only
    and MT every sample, heterozygous calls missing; the tie-break frequencies
    count a male's chrX call as one allele (``popgen qc``'s ``.afreq``).  (PLINK
    v2.00a3.5 takes the wrong samples there when the cohort has non-founders,
    a bug fixed upstream in 2023; popgen follows the fixed rule.)  PLINK 2 also
    refuses fewer than 50 founders without ``--bad-ld``; here that is a warning.

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype`` (Dask backed, chunked along variants and
        samples, NumPy or CuPy blocks), ``variant_contig``, ``contig_id``,
        ``variant_position``.  Biallelic: any non-REF allele counts as ALT.
    window : int
        Window size in variants (>= 2).  Exactly one of ``window`` and
        ``window_kb`` is given.
    window_kb : float
        Window size in kilobases (> 0); positions sorted within contigs.
    step : int
        Variants the window moves each time (1 <= step <= window; 1 for kb).
    r2 : float
        r^2 threshold, 0 < r2 < 1 (plink2 rejects 1).
    samples : array_like, bool, shape (samples,), optional
        Samples the r^2 and allele frequencies use.
    allele_frequency : array_like, float, shape (variants,), optional
        ALT allele frequencies for the tie-break (the major allele frequency
        is ``max(p, 1 - p)``); default: computed over ``samples``.
    compute : callable, optional
        ``compute(*collections)`` evaluating Dask collections (e.g. with a
        progress bar); default :func:`dask.compute`.  Called once per batch of
        variant chunks (about 16k variants).

    Returns
    -------
    ndarray, bool, shape (variants,)
        True for the variants kept (PLINK's ``.prune.in``).

    Notes
    -----
    Chunking: any.  Each variant chunk is decoded once: the band rows whose
    pairs end inside it are computed (r^2 of each variant with the next
    ``width - 1``, float64) and moved to the host, and the genotype rows after
    them (at most one window) stay on the device for the next chunk.  The
    greedy pass consumes the bands in order while the next batch computes;
    host memory is a few batches of bands (variants x window x 8 bytes),
    device memory a few chunks of genotypes plus one tile of products.  The
    r^2 products run on the device holding the genotypes.

    References
    ----------
    Purcell S. et al. (2007) PLINK: a tool set for whole-genome association and
    population-based linkage analyses. *Am J Hum Genet* 81(3):559-575.
    Chang C. C. et al. (2015) Second-generation PLINK: rising to the challenge
    of larger and richer datasets. *GigaScience* 4:7.
    PLINK 2.0 documentation, "--indep-pairwise":
    https://www.cog-genomics.org/plink/2.0/ld#indep
    """
    from popgen.genotypes import model_runs
    from popgen.variables import validate

    window_bp = _check_params(window, window_kb, step, r2)
    validate(ds, "call_genotype", "variant_contig", "variant_position")
    n_variants = ds.sizes["variants"]
    if n_variants == 0:
        raise PopgenError("the cohort has no variants to prune")
    runs = model_runs(ds)
    kw = dict(window=window, window_bp=window_bp, step=step, r2=r2, compute=compute)
    if all(model == "autosome" for *_, model in runs):
        keep, skipped = _ld_prune(ds, samples=samples, allele_frequency=allele_frequency, **kw)
    else:
        _segments(np.asarray(ds["variant_contig"].values), np.asarray(ds["variant_position"].values).astype(np.int64),
                  _contig_names(ds), window_bp)  # a contig in several runs is an error, as without sex chromosomes
        checked = _check_samples(samples, ds.sizes["samples"])
        given = None if allele_frequency is None else np.asarray(allele_frequency, dtype=np.float64)
        keep, skipped = np.zeros(n_variants, dtype=bool), np.zeros(n_variants, dtype=bool)
        for a, b, model in runs:
            part = ds.isel(variants=slice(a, b))
            freq = None if given is None else given[a:b]
            if model != "autosome":
                if freq is None:  # the tie-break's: a male's chrX call is one allele (plink2 --freq)
                    from popgen.qc import variant_stats

                    stats = variant_stats(part, samples=checked, merge=False, sex_chromosomes=True)
                    (freq,) = (compute or _backend.compute)(stats["variant_allele_frequency"].data[:, 1])
                part = _haploid_view(part, model, checked)
                if part.sizes["samples"] < 2:
                    log.warning("LD pruning: %d variants on %s removed: fewer than 2 samples to compare them on "
                                "(chrY needs males)", b - a, model)
                    continue
            keep[a:b], skipped[a:b] = _ld_prune(part, samples=None if model != "autosome" else samples,
                                                allele_frequency=freq, **kw)
    if not keep.any():
        raise PopgenError(f"LD pruning removed every variant ({n_variants} in, "
                          f"{int(skipped.sum())} on contig 0, the rest monomorphic or in LD)")
    log.info("LD pruning: %d of %d variants removed", int((~keep & ~skipped).sum()), n_variants)
    return keep


def _check_samples(samples, n_samples):
    if samples is None:
        return None
    samples = np.asarray(samples)
    if samples.dtype != bool or samples.shape != (n_samples,):
        raise PopgenError(f"samples must be a boolean mask of shape ({n_samples},), "
                          f"got {samples.dtype} {samples.shape}")
    return samples


def _het_missing(alt):
    from popgen.backend import namespace

    xp = namespace(alt)
    return xp.where(alt == 1, xp.asarray(-1, dtype=alt.dtype), alt)


def _haploid_view(ds, model, samples):
    """A chrX, chrY or MT run of ``ds`` as PLINK 2's --indep-pairwise sees it, as a cohort
    whose r^2 is the plain one: the samples of ``samples`` (founders), a haploid call's
    heterozygote missing; on chrX the males once and the other samples twice (weights 1
    and 2), on chrY the males only, on MT everyone.  Lazy (the same chunks of genotypes,
    sample columns taken and repeated)."""
    import dask.array as da
    import xarray as xr

    from popgen.genotypes import alt_allele_count, sample_sex
    from popgen.io.plink import genotype_from_alt_count

    n = ds.sizes["samples"]
    base = np.ones(n, dtype=bool) if samples is None else samples
    male = sample_sex(ds) == 1
    alt = alt_allele_count(ds)
    hap = alt.map_blocks(_het_missing, dtype=alt.dtype)
    if model == "x":
        cols = [(hap, base & male), (alt, base & ~male), (alt, base & ~male)]
    elif model == "y":
        cols = [(hap, base & male)]
    else:
        cols = [(hap, base)]
    parts = [g[:, np.flatnonzero(m)] for g, m in cols if m.any()]
    g = da.concatenate(parts, axis=1) if parts else alt[:, :0]
    gt = g.map_blocks(genotype_from_alt_count, new_axis=2, chunks=g.chunks + ((2,),), dtype=np.int8)
    return xr.Dataset(
        {"call_alt_count": (("variants", "samples"), g), "call_genotype": (("variants", "samples", "ploidy"), gt),
         "variant_contig": ds["variant_contig"], "variant_position": ds["variant_position"],
         "contig_id": ds["contig_id"]},
    )


def _ld_prune(ds, *, window, window_bp, step, r2, samples, allele_frequency, compute):
    """:func:`ld_prune` of a cohort whose contigs all follow one model (after the checks):
    ``(keep, skipped)`` (``skipped``: contig 0, in neither list)."""
    n_variants = ds.sizes["variants"]
    n_samples = ds.sizes["samples"]
    samples = _check_samples(samples, n_samples)
    if samples is not None and samples.all():
        samples = None
    n_used = n_samples if samples is None else int(samples.sum())
    if n_used < 2:
        raise PopgenError(f"LD pruning needs at least two samples, {n_used} selected")
    if n_used < BAD_LD_MIN_SAMPLES:
        log.warning("LD pruning on %d samples: plink2 refuses fewer than %d founders (without --bad-ld)",
                    n_used, BAD_LD_MIN_SAMPLES)

    maj = None
    if allele_frequency is not None:
        p = np.asarray(allele_frequency, dtype=np.float64)
        if p.shape != (n_variants,):
            raise PopgenError(f"allele_frequency has shape {p.shape}, expected ({n_variants},)")
        maj = np.maximum(p, 1.0 - p)

    names = _contig_names(ds)
    codes = np.asarray(ds["variant_contig"].values)
    positions = np.asarray(ds["variant_position"].values).astype(np.int64)
    seg_s, seg_e, skipped = _segments(codes, positions, names, window_bp)
    if window_bp is None:
        win_s, win_e, win_new = _count_windows(seg_s, seg_e, window, step)
    else:
        out_s = np.empty(n_variants, np.int64)
        out_e = np.empty(n_variants, np.int64)
        out_new = np.empty(n_variants, bool)
        k = _jit("kb_windows")(positions, seg_s, seg_e, window_bp, out_s, out_e, out_new)
        win_s, win_e, win_new = out_s[:k].copy(), out_e[:k].copy(), out_new[:k].copy()
    removed = np.zeros(n_variants, dtype=bool)
    if len(win_s) == 0:
        log.warning("no pair of variants to compare (plink2 skips --indep-pairwise and writes no lists)")
    else:
        _prune_windows(ds, samples, n_used, maj, win_s, win_e, win_new, r2, removed, compute)
    return ~removed & ~skipped, skipped


def _check_params(window, window_kb, step, r2):
    """Validate the --indep-pairwise parameters; returns the window in bp (None for a count window)."""
    import numbers

    if (window is None) == (window_kb is None):
        raise PopgenError("give exactly one of window (variants) and window_kb (kilobases)")
    if not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 1:
        raise PopgenError(f"LD pruning step must be an integer >= 1, got {step!r}")
    try:
        r2 = float(r2)
    except (TypeError, ValueError):
        raise PopgenError(f"r^2 threshold must be a number, got {r2!r}") from None
    if not 0 < r2 < 1:
        raise PopgenError(f"r^2 threshold must be > 0 and < 1, got {r2}")
    if window is not None:
        if not isinstance(window, numbers.Integral) or isinstance(window, bool) or window < 2:
            raise PopgenError(f"LD pruning window must be an integer >= 2 variants, got {window!r}")
        if step > window:
            raise PopgenError(f"LD pruning step ({step}) cannot be larger than the window ({window})")
        return None
    try:
        kb = float(window_kb)
    except (TypeError, ValueError):
        raise PopgenError(f"window_kb must be a number, got {window_kb!r}") from None
    if not kb > 0 or not np.isfinite(kb):
        raise PopgenError(f"window_kb must be > 0, got {window_kb}")
    if step != 1:
        raise PopgenError(f"LD pruning step must be 1 with a kb window (as in plink2), got {step}")
    return int(kb * 1000 * (1 + SMALL_EPSILON))


def _contig_names(ds):
    if "contig_id" in ds:
        return np.asarray(ds["contig_id"].values).astype(str)
    return np.asarray(ds.attrs["contigs"]).astype(str)


def _prune_windows(ds, samples, n_used, maj_given, win_s, win_e, win_new, r2, removed, compute):
    """Stream r^2 bands, variant chunk by variant chunk, to the host greedy pass.

    Each variant chunk is decoded once.  Its band rows are those whose pairs
    end inside the chunk; the genotype rows after them (at most one window)
    are carried, on the device, into the next chunk's product.
    """
    import concurrent.futures


    from popgen.backend import device_of
    from popgen.genotypes import alt_allele_count

    compute = compute or _backend.compute
    alt = alt_allele_count(ds)
    n = alt.shape[0]
    # the last variant each variant is compared with (itself when in no
    # window); non-decreasing, so the rows whose pairs end before b are a prefix
    idx = np.arange(n, dtype=np.int64)
    w = np.searchsorted(win_s, idx, side="right") - 1
    inside = (w >= 0) & (idx < win_e[np.maximum(w, 0)])
    reach = np.where(inside, win_e[np.maximum(w, 0)] - 1, idx)
    width = int((reach - idx).max()) + 1
    tile, group = _TILE[device_of(alt)], _GROUP[device_of(alt)]
    mono = np.zeros(n, dtype=bool)
    maj = np.zeros(n, dtype=np.float64) if maj_given is None else maj_given

    bounds = np.cumsum((0,) + alt.chunks[0])
    units = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    batches, cur = [], []
    for u in units:
        cur.append(u)
        if cur[-1][1] - cur[0][0] >= _BATCH_ROWS:
            batches.append(cur)
            cur = []
    if cur:
        batches.append(cur)

    def run(batch, done, tail):
        """Compute a batch: per chunk (band rows [done, e), counts), then the carried tail."""
        import dask.array as da

        lazy, plan = [], []
        if tail is not None:
            tail = da.from_array(tail, chunks=((tail.shape[0],), alt.chunks[1]), asarray=False)
        for a, b in batch:
            g = alt[a:b] if tail is None else da.concatenate([tail, alt[a:b]], axis=0)
            e = int(np.searchsorted(reach, b, side="left"))  # rows with reach < b
            if e > done:
                lazy.append(_band_graph(g, samples, e - done, width, tile, group, n_used))
            lazy.append(_counts_graph(alt[a:b], samples))
            plan.append((a, b, done, e))
            tail = g[e - done:] if e < b else None
            done = e
        if tail is not None:
            lazy.append(tail)
        results = list(compute(*lazy))
        return plan, results, (results.pop() if tail is not None else None)

    greedy = _jit("greedy")
    thresh = float(r2) * (1 + SMALL_EPSILON)
    cap = int((win_e - win_s).max())
    wbuf = np.zeros(cap, np.int64)
    wfu = np.zeros(cap, np.int64)
    state = np.zeros(2, np.int64)
    band = np.zeros((0, width))
    lo = k = 0
    from popgen.backend import helper_thread_compute

    run = helper_thread_compute(run)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(run, batches[0], 0, None)
        for j in range(len(batches)):
            plan, results, tail = pending.result()
            if j + 1 < len(batches):  # the device works on the next batch meanwhile
                pending = pool.submit(run, batches[j + 1], plan[-1][3], tail)
            parts = [band]
            for a, b, done, e in plan:
                if e > done:
                    parts.append(np.asarray(results.pop(0), dtype=np.float64))
                mono[a:b], maj_ab = _variant_flags(np.asarray(results.pop(0)))
                if maj_given is None:
                    maj[a:b] = maj_ab
            band = np.concatenate(parts)
            hi = plan[-1][3]
            k = greedy(band, lo, hi, win_s, win_e, win_new, k, mono, maj, removed, wbuf, wfu, state,
                       thresh, SMALL_EPSILON)
            new_lo = int(win_s[k]) if k < len(win_s) else hi
            band = band[new_lo - lo:]
            lo = new_lo
    assert k == len(win_s) and hi == n


def _variant_flags(counts):
    """Constant-dosage flag and major allele frequency from (called, het, hom ALT) counts."""
    called, het, hom_alt = counts[:, 0], counts[:, 1], counts[:, 2]
    hom_ref = called - het - hom_alt
    mono = ((hom_ref == 0) & (hom_alt == 0)) | (hom_ref == called) | (hom_alt == called)
    with np.errstate(divide="ignore", invalid="ignore"):
        maj = np.maximum(2 * hom_ref + het, 2 * hom_alt + het) / (2.0 * called)
    return mono, maj


def _sample_mask(samples, chunks):
    import dask.array as da

    mask = np.ones(sum(chunks), dtype=bool) if samples is None else samples
    return da.from_array(mask[None, :], chunks=((1,), chunks))


def _band_graph(g, samples, n_rows, width, tile, group, n_used):
    """Lazy r^2 band, (n_rows, width) float64 on the host, of the first rows of ``g``."""
    import dask.array as da

    from popgen.backend import namespace

    xp = namespace(g._meta)
    dtype = np.float32 if n_used < 2**24 else np.float64
    g = g.rechunk({0: -1})
    n_sc = len(g.chunks[1])
    use_mask = samples is not None

    def band_part(blk, m):
        sums = band_sums_block(blk, n_rows, width, tile=tile, group=group, samples=m[0] if use_mask else None)
        bx = namespace(sums)
        return bx.reshape(bx.permute_dims(sums, (1, 0, 2)), (n_rows, 1, 6 * width))

    parts = da.map_blocks(
        band_part, g, _sample_mask(samples, g.chunks[1]), new_axis=2,
        chunks=((n_rows,), (1,) * n_sc, (6 * width,)), dtype=dtype,
        meta=xp.empty((0, 0, 0), dtype=getattr(xp, np.dtype(dtype).name)),
    )
    sums = parts.sum(axis=1, dtype=dtype)

    def to_r2(s):
        bx = namespace(s)
        return r2_from_sums(bx.permute_dims(bx.reshape(s, (n_rows, 6, width)), (1, 0, 2)))

    r2 = sums.map_blocks(to_r2, chunks=((n_rows,), (width,)), dtype=np.float64,
                         meta=xp.empty((0, 0), dtype=xp.float64))
    return _to_host(r2)


def _counts_graph(rows, samples):
    """Lazy (called, het, hom ALT) counts over ``samples``, (rows, 3) int64 on the host."""
    import dask.array as da

    from popgen.backend import namespace
    from popgen.qc import variant_counts_block

    xp = namespace(rows._meta)
    use_mask = samples is not None
    counts = da.map_blocks(
        lambda blk, m: variant_counts_block(blk, m[0] if use_mask else None)[:, None, :],
        rows, _sample_mask(samples, rows.chunks[1]), new_axis=2,
        chunks=(rows.chunks[0], (1,) * len(rows.chunks[1]), (3,)),
        dtype=np.int64, meta=xp.empty((0, 0, 0), dtype=xp.int64),
    )
    return _to_host(counts.sum(axis=1, dtype=np.int64))


def _to_host(x):
    from popgen.backend import is_cupy, to_cpu

    if is_cupy(x):
        return x.map_blocks(to_cpu, meta=np.empty((0,) * x.ndim, dtype=x.dtype))
    return x


# ------------------------------------------------------------------ output


def write_prune_lists(prefix, ds, keep) -> None:
    """Write ``PREFIX.prune.in`` and ``PREFIX.prune.out`` as plink2 does.

    One variant ID per line, in cohort order: the kept variants in ``.prune.in``,
    the removed ones in ``.prune.out``; variants on contig ``0`` are in
    neither (plink2 skips them).  Each file is written atomically.

    Parameters
    ----------
    prefix : str or path
    ds : xarray.Dataset
        The cohort ``keep`` was computed on (``variant_id``, ``variant_contig``).
    keep : array_like, bool, shape (variants,)
        From :func:`ld_prune`.

    Raises
    ------
    PopgenError
        When variant IDs are duplicated (plink2 refuses them too: an
        ``--extract`` list would be ambiguous).
    """
    from popgen.io.files import atomic_write, ensure_parent

    keep = np.asarray(keep)
    n = ds.sizes["variants"]
    if keep.dtype != bool or keep.shape != (n,):
        raise PopgenError(f"keep must be a boolean mask of shape ({n},), got {keep.dtype} {keep.shape}")
    if "variant_id" not in ds:
        raise PopgenError("dataset has no variant_id: prune lists name variants by ID")
    ids = np.asarray(ds["variant_id"].values).astype(str)
    names = _contig_names(ds)
    listed = np.array([_strip_chr(str(names[c])) != "0" for c in np.asarray(ds["variant_contig"].values)],
                      dtype=bool) if n else np.zeros(0, bool)
    uniq, counts = np.unique(ids[listed], return_counts=True)
    if (counts > 1).any():
        raise PopgenError(f"variant ID {uniq[counts > 1][0]!r} is not unique; prune lists need unique IDs "
                          "(set IDs, e.g. CHR:POS:REF:ALT, first)")
    ensure_parent(prefix)
    for ext, sel in ((".prune.in", keep & listed), (".prune.out", ~keep & listed)):
        with atomic_write(f"{prefix}{ext}") as f:
            f.write("".join(f"{i}\n" for i in ids[sel]))
