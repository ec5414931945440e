"""Quality control: allele counts and frequencies, call rates, heterozygosity,
the Hardy-Weinberg exact test, and PLINK-style filters.

Every statistic is a small block function written against the array namespace
(NumPy, CuPy, Array-API strict) and composed over Dask chunks; counts are
reduced on the device that holds the genotypes, and only per-variant and
per-sample aggregates leave it.  Functions follow sgkit's convention
``stat(ds, *, merge=True) -> xr.Dataset`` and sgkit's output variable names.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from popgen import backend as _backend
from popgen.errors import PopgenError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ block math

def variant_counts_block(alt, samples=None):
    """Per-variant call counts of one block.

    Parameters
    ----------
    alt : array, int8, shape (v, s)
        ALT allele counts, -1 missing (NumPy, CuPy or Array-API array).
    samples : array, bool, shape (s,), optional
        Only these samples are counted.

    Returns
    -------
    array, int64, shape (v, 3)
        Columns: called, heterozygous, homozygous ALT.
    """
    from popgen.backend import namespace

    if isinstance(alt, np.ndarray):  # one numba pass instead of six
        from popgen.kernels.qc import variant_counts_cpu

        return variant_counts_cpu(alt, None if samples is None else np.asarray(samples))
    xp = namespace(alt)
    called, het, hom_alt = alt >= 0, alt == 1, alt == 2
    if samples is not None:
        keep = xp.asarray(samples)[None, :]
        called, het, hom_alt = called & keep, het & keep, hom_alt & keep
    return xp.stack(
        [xp.astype(xp.count_nonzero(x, axis=1), xp.int64) for x in (called, het, hom_alt)], axis=1
    )


def sample_counts_block(alt):
    """Per-sample call counts of one block: ``(s, 3)`` int64 (called, het, hom ALT)."""
    from popgen.backend import namespace

    if isinstance(alt, np.ndarray):  # one numba pass instead of six
        from popgen.kernels.qc import sample_counts_cpu

        return sample_counts_cpu(alt)
    xp = namespace(alt)
    return xp.stack(
        [xp.astype(xp.count_nonzero(x, axis=0), xp.int64) for x in (alt >= 0, alt == 1, alt == 2)], axis=1
    )


def inbreeding_block(alt, expected_hom, polymorphic, rows: int = 1024):
    """Per-sample homozygosity sums of one block (for the method-of-moments F).

    Parameters
    ----------
    alt : array, int8, shape (v, s)
        ALT allele counts, -1 missing.
    expected_hom : array, float64, shape (v,)
        ``1 - 2 p (1 - p)`` per variant (0 where not used).
    polymorphic : array, bool, shape (v,)
        Variants that count (PLINK skips monomorphic ones).
    rows : int
        Variants per float64 product, bounding the temporary to ``rows * s``.

    Returns
    -------
    array, float64, shape (s, 3)
        Columns: calls counted (OBS_CT), observed homozygous, expected homozygous.
    """
    from popgen.backend import namespace

    if isinstance(alt, np.ndarray):  # one numba pass (the composed version: masks and a float64 product)
        from popgen.kernels.qc import inbreeding_cpu

        return inbreeding_cpu(alt, np.asarray(expected_hom), np.asarray(polymorphic))
    xp = namespace(alt)
    use = xp.asarray(polymorphic)[:, None]
    called = (alt >= 0) & use
    obs = xp.astype(xp.count_nonzero(called, axis=0), xp.float64)
    hom = xp.astype(xp.count_nonzero(((alt == 0) | (alt == 2)) & use, axis=0), xp.float64)
    w = xp.asarray(expected_hom, dtype=xp.float64)
    exp = xp.zeros(alt.shape[1], dtype=xp.float64)
    for start in range(0, alt.shape[0], rows):
        stop = min(start + rows, alt.shape[0])
        exp = exp + xp.matmul(w[start:stop], xp.astype(called[start:stop, :], xp.float64))
    return xp.stack([obs, hom, exp], axis=1)


def _variant_counts(alt, samples=None):
    """Dask: (variants, 3) int64 counts, reduced over sample chunks."""
    import dask.array as da

    xp_meta = alt._meta
    n_sc = len(alt.chunks[1])
    if samples is not None:
        mask = da.from_array(np.asarray(samples, dtype=bool)[None, :], chunks=((1,), alt.chunks[1]))
        parts = da.map_blocks(
            lambda a, m: variant_counts_block(a, m[0])[:, None, :], alt, mask,
            new_axis=2, chunks=(alt.chunks[0], (1,) * n_sc, (3,)), dtype=np.int64,
            meta=_meta_like(xp_meta, 3),
        )
    else:
        parts = alt.map_blocks(
            lambda a: variant_counts_block(a)[:, None, :],
            new_axis=2, chunks=(alt.chunks[0], (1,) * n_sc, (3,)), dtype=np.int64,
            meta=_meta_like(xp_meta, 3),
        )
    return parts.sum(axis=1, dtype=np.int64)


def _sample_counts(alt):
    """Dask: (samples, 3) int64 counts, reduced over variant chunks."""
    n_vc = len(alt.chunks[0])
    parts = alt.map_blocks(
        lambda a: sample_counts_block(a)[None, :, :],
        new_axis=2, chunks=((1,) * n_vc, alt.chunks[1], (3,)), dtype=np.int64,
        meta=_meta_like(alt._meta, 3),
    )
    return parts.sum(axis=0, dtype=np.int64)


def _meta_like(meta, ndim, dtype: str = "int64"):
    """Zero-size array of ``meta``'s array type, for ``map_blocks(meta=)``."""
    from popgen.backend import namespace

    xp = namespace(meta)
    return xp.empty((0,) * ndim, dtype=getattr(xp, dtype))


def _to_host(x):
    """Dask array of small aggregates -> NumPy-backed (a no-op for NumPy blocks)."""
    from popgen.backend import is_cupy, to_cpu

    if is_cupy(x):
        return x.map_blocks(to_cpu, meta=np.empty((0,) * x.ndim, dtype=x.dtype))
    return x


# ------------------------------------------------------------------ statistics

def variant_stats(ds, *, samples=None, merge: bool = True, sex_chromosomes: bool = False):
    """Per-variant call counts, call rate and allele frequencies.

    Parameters
    ----------
    ds : xarray.Dataset
        Cohort with ``call_genotype``.
    samples : array_like, bool, shape (samples,), optional
        Count only these samples (e.g. :func:`popgen.genotypes.founder_mask`,
        as PLINK 2 does for frequencies).  Default: all samples.
    merge : bool
        Merge the new variables into ``ds`` (default) or return them alone.
    sex_chromosomes : bool
        Count chrX, chrY and MT as ``plink2 --freq --missing`` do (needs ``sample_sex``
        for chrX and chrY): on chrX a male's call is one allele (his 0/2 code halved, a
        heterozygous call half an ALT allele); chrY counts males only, as haploid calls;
        MT counts every sample as haploid.  Default: every contig as an autosome.

    Returns
    -------
    xarray.Dataset
        ``variant_n_called``, ``variant_n_samples`` (samples counted: the males on chrY),
        ``variant_call_rate``, ``variant_n_het``, ``variant_n_hom_ref``,
        ``variant_n_hom_alt``, ``variant_n_non_ref`` (genotypes as coded),
        ``variant_allele_count`` (variants, alleles=2: REF, ALT; float64, as haploid calls
        may count half alleles), ``variant_allele_total``, ``variant_allele_frequency``
        (variants, 2), ``variant_autosomal`` (diploid model: autosomes and XY; False on
        chrX/chrY/MT with ``sex_chromosomes``), ``variant_chrx`` and
        ``variant_hwe_x_counts`` (variants, 5: females' REF/REF, REF/ALT, ALT/ALT calls,
        males' REF and ALT calls, their heterozygous calls left out; 0 off chrX), the
        counts of chrX's Hardy-Weinberg test; ``variant_genotype_counts`` (variants, 6:
        ``plink2 --geno-counts``' HOM_REF, HET, TWO_ALT diploid calls, HAP_REF, HAP_ALT haploid
        calls, MISSING, where a heterozygous haploid call counts as missing).  Lazy, NumPy
        backed.  Biallelic: any non-REF allele counts as ALT.
    """
    if sex_chromosomes:
        from popgen.genotypes import model_runs

        runs = model_runs(ds)
        if any(model != "autosome" for *_, model in runs):
            new = _variant_stats_by_model(ds, runs, samples)
            return ds.merge(new) if merge else new
    new = _variant_stats(ds, samples, "autosome")
    return ds.merge(new) if merge else new


def _variant_stats(ds, samples, model, male=None, female=None):
    """:func:`variant_stats` of variants that all follow one contig model (``male``, ``female``:
    the samples' sex, for chrX and chrY)."""
    import dask.array as da
    import xarray as xr

    from popgen.genotypes import alt_allele_count

    alt = alt_allele_count(ds)
    nv = alt.shape[0]
    base = np.ones(alt.shape[1], dtype=bool) if samples is None else np.asarray(samples, dtype=bool)
    x_counts = da.zeros((nv, 5), chunks=(alt.chunks[0], 5), dtype=np.int64)
    if model in ("x", "y"):  # males and the others counted apart (chrY: males only)
        m = _to_host(_variant_counts(alt, base & male))
        o = _to_host(_variant_counts(alt, base & ~male)) if model == "x" else da.zeros_like(m)
        if model == "x":  # the chrX Hardy-Weinberg test's counts: females' genotypes, males' alleles
            f = _to_host(_variant_counts(alt, base & female))
            hom_ref_m = m[:, 0] - m[:, 1] - m[:, 2]
            x_counts = da.stack([f[:, 0] - f[:, 1] - f[:, 2], f[:, 1], f[:, 2], hom_ref_m, m[:, 2]], axis=1)
        c = m + o
        n_samples = int(np.count_nonzero(base if model == "x" else base & male))
        n_alt = (o[:, 1] + 2 * o[:, 2]).astype(np.float64) + 0.5 * m[:, 1] + m[:, 2]
        total = (2 * o[:, 0] + m[:, 0]).astype(np.float64)
    else:
        c = _to_host(_variant_counts(alt, samples))
        n_samples = int(np.count_nonzero(base))
        n_alt = (c[:, 1] + 2 * c[:, 2]).astype(np.float64)
        total = (2 * c[:, 0]).astype(np.float64)
        if model == "mt":  # haploid: a call is one allele
            n_alt, total = 0.5 * n_alt, 0.5 * total
    called, het, hom_alt = c[:, 0], c[:, 1], c[:, 2]
    hom_ref = called - het - hom_alt
    ac = da.stack([total - n_alt, n_alt], axis=1)
    # plink2 --geno-counts: diploid calls, haploid calls (a heterozygous haploid call is missing there)
    zero = da.zeros_like(called)
    if model == "autosome":
        dip, hap = (hom_ref, het, hom_alt), (zero, zero, zero)
    elif model == "mt":
        dip, hap = (zero, zero, zero), (hom_ref, hom_alt, het)
    else:
        dip = (o[:, 0] - o[:, 1] - o[:, 2], o[:, 1], o[:, 2])
        hap = (m[:, 0] - m[:, 1] - m[:, 2], m[:, 2], m[:, 1])
    geno_counts = da.stack([*dip, hap[0], hap[1], n_samples - called + hap[2]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        af = ac / total[:, None]
        rate = called / n_samples if n_samples else called * np.nan
    return xr.Dataset(
        {
            "variant_n_called": (("variants",), called),
            "variant_n_samples": (("variants",), da.full(nv, n_samples, chunks=called.chunks, dtype=np.int64)),
            "variant_call_rate": (("variants",), rate),
            "variant_n_het": (("variants",), het),
            "variant_n_hom_ref": (("variants",), hom_ref),
            "variant_n_hom_alt": (("variants",), hom_alt),
            "variant_n_non_ref": (("variants",), het + hom_alt),
            "variant_allele_count": (("variants", "alleles"), ac),
            "variant_allele_total": (("variants",), total),
            "variant_allele_frequency": (("variants", "alleles"), af),
            "variant_autosomal": (("variants",), da.full(nv, model == "autosome", chunks=called.chunks, dtype=bool)),
            "variant_chrx": (("variants",), da.full(nv, model == "x", chunks=called.chunks, dtype=bool)),
            "variant_hwe_x_counts": (("variants", "hwe_x_counts"), x_counts),
            "variant_genotype_counts": (("variants", "genotype_counts"), geno_counts),
        }
    )


def _variant_stats_by_model(ds, runs, samples):
    """:func:`_variant_stats` of each run of variants under one contig model, concatenated."""
    import xarray as xr

    from popgen.genotypes import sample_sex

    sex = sample_sex(ds)
    male, female = sex == 1, sex == 2
    parts = [_variant_stats(ds.isel(variants=slice(a, b)), samples, model, male, female) for a, b, model in runs]
    return xr.concat(parts, dim="variants")


def sample_stats(ds, *, merge: bool = True, sex_chromosomes: bool = False):
    """Per-sample call counts, call rate and heterozygosity.

    With ``sex_chromosomes``, chrY counts for males only (``plink2 --missing``: a female's
    chrY calls are neither called nor missing).

    Returns
    -------
    xarray.Dataset
        ``sample_n_called``, ``sample_n_variants`` (variants counted), ``sample_call_rate``,
        ``sample_n_het``, ``sample_n_hom_ref``, ``sample_n_hom_alt``, ``sample_n_non_ref``,
        ``sample_heterozygosity`` (heterozygous / called). Lazy, NumPy backed.
    """
    import dask.array as da
    import xarray as xr

    from popgen.genotypes import alt_allele_count, model_runs, sample_sex

    alt = alt_allele_count(ds)
    runs = model_runs(ds) if sex_chromosomes else []
    if any(model == "y" for *_, model in runs):
        male = sample_sex(ds) == 1
        c, n_variants = 0, np.zeros(alt.shape[1], dtype=np.int64)
        for a, b, model in runs:  # chrY runs count for males only
            w = male if model == "y" else np.ones(alt.shape[1], dtype=bool)
            c = c + _to_host(_sample_counts(alt[a:b])) * w[:, None]
            n_variants += (b - a) * w
        n_variants = da.from_array(n_variants, chunks=(c.chunks[0],))
    else:
        c = _to_host(_sample_counts(alt))
        n_variants = da.full(alt.shape[1], alt.shape[0], chunks=(c.chunks[0],), dtype=np.int64)
    called, het, hom_alt = c[:, 0], c[:, 1], c[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        new = xr.Dataset(
            {
                "sample_n_called": (("samples",), called),
                "sample_n_variants": (("samples",), n_variants),
                "sample_call_rate": (("samples",), called / n_variants),
                "sample_n_het": (("samples",), het),
                "sample_n_hom_ref": (("samples",), called - het - hom_alt),
                "sample_n_hom_alt": (("samples",), hom_alt),
                "sample_n_non_ref": (("samples",), het + hom_alt),
                "sample_heterozygosity": (("samples",), het / called),
            }
        )
    return ds.merge(new) if merge else new


def sample_inbreeding(ds, allele_frequency=None, *, samples=None, variants=None, merge: bool = True):
    """Method-of-moments inbreeding coefficient F per sample (``plink2 --het``).

    For each sample, over its called variants that are polymorphic in the
    frequency sample: ``O`` homozygous calls, ``E = sum(1 - 2 p q)`` expected,
    ``F = (O - E) / (N - E)`` with ``N`` the calls counted.

    Parameters
    ----------
    allele_frequency : array_like, float, shape (variants,), optional
        ALT allele frequencies; default: computed over ``samples``
        (PLINK 2 uses founders).
    variants : array_like, bool, shape (variants,), optional
        Only these variants count (``plink2 --het``: the autosomes and XY).

    Returns
    -------
    xarray.Dataset
        ``sample_n_hom_observed``, ``sample_n_hom_expected``,
        ``sample_n_called_polymorphic`` (``OBS_CT``), ``sample_inbreeding`` (F).
        Lazy; the per-variant weights are computed first.
    """
    import dask.array as da
    import xarray as xr

    from popgen.genotypes import alt_allele_count

    alt = alt_allele_count(ds)
    if allele_frequency is None:
        v = variant_stats(ds, samples=samples, merge=False)
        ac = v["variant_allele_count"].data
        poly = (ac[:, 0] > 0) & (ac[:, 1] > 0)
        p = v["variant_allele_frequency"].data[:, 1]
    else:
        p = da.asarray(np.asarray(allele_frequency, dtype=np.float64))
        poly = (p > 0) & (p < 1)
    if variants is not None:
        poly = poly & da.asarray(np.asarray(variants, dtype=bool))
    p = p.rechunk((alt.chunks[0],))
    poly = poly.rechunk((alt.chunks[0],))
    e_hom = da.where(poly, 1.0 - 2.0 * p * (1.0 - p), 0.0)
    n_vc = len(alt.chunks[0])
    parts = da.map_blocks(
        lambda a, w, m: inbreeding_block(a, w[:, 0], m[:, 0])[None, :, :],
        alt, e_hom[:, None], poly[:, None],
        new_axis=2, chunks=((1,) * n_vc, alt.chunks[1], (3,)), dtype=np.float64,
        meta=_meta_like(alt._meta, 3, "float64"),
    )
    c = _to_host(parts.sum(axis=0))
    obs, hom, exp = c[:, 0], c[:, 1], c[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (hom - exp) / (obs - exp)
    new = xr.Dataset(
        {
            "sample_n_hom_observed": (("samples",), hom.astype(np.int64)),
            "sample_n_hom_expected": (("samples",), exp),
            "sample_n_called_polymorphic": (("samples",), obs.astype(np.int64)),
            "sample_inbreeding": (("samples",), f),
        }
    )
    return ds.merge(new) if merge else new


def hardy_weinberg_test(ds, *, samples=None, merge: bool = True):
    """Hardy-Weinberg exact test per variant (as ``plink2 --hardy``).

    Uses ``variant_n_het``/``variant_n_hom_ref``/``variant_n_hom_alt`` when
    present in ``ds`` (so counts computed once are reused), else computes
    them over ``samples`` (default all; PLINK 2 uses founders).

    Returns
    -------
    xarray.Dataset
        ``variant_hwe_p_value`` float64 (variants,) and
        ``variant_hwe_het_expected`` (expected heterozygote frequency,
        ``E(HET_A1)`` in PLINK 2's .hardy); with the counts of ``variant_stats(...,
        sex_chromosomes=True)``, chrX's p-value is Graffelman and Weir's test
        (:func:`popgen.hwe.hwe_x_exact_p`) and chrY's and MT's NaN. Lazy.
    """
    import dask.array as da
    import xarray as xr

    from popgen.hwe import hwe_exact_p

    counts = ds if "variant_n_het" in ds else variant_stats(ds, samples=samples, merge=False)
    het = da.asarray(counts["variant_n_het"].data)
    hom_ref = da.asarray(counts["variant_n_hom_ref"].data)
    hom_alt = da.asarray(counts["variant_n_hom_alt"].data)
    p = da.map_blocks(hwe_exact_p, het, hom_ref, hom_alt, dtype=np.float64, meta=np.empty(0))
    if "variant_autosomal" in counts:  # chrY/MT: no test; chrX: Graffelman and Weir's (PLINK 2's .hardy.x)
        from popgen.hwe import hwe_x_exact_p

        xc = da.asarray(counts["variant_hwe_x_counts"].data)
        px = da.map_blocks(lambda c: hwe_x_exact_p(*c.T), xc, drop_axis=1, dtype=np.float64, meta=np.empty(0))
        p = da.where(da.asarray(counts["variant_autosomal"].data), p,
                     da.where(da.asarray(counts["variant_chrx"].data), px, np.nan))
    n = het + hom_ref + hom_alt
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (het + 2 * hom_alt) / (2 * n)
        e_het = 2 * q * (1 - q)
    new = xr.Dataset(
        {
            "variant_hwe_p_value": (("variants",), p),
            "variant_hwe_het_expected": (("variants",), e_het),
        }
    )
    return ds.merge(new) if merge else new


# ------------------------------------------------------------------ filters

#: tolerance of threshold comparisons, as PLINK's: a rate equal to the
#: threshold (e.g. 6 missing of 100 for --mind 0.06) is kept
_EPS = 1e-7


@dataclasses.dataclass(frozen=True)
class Filters:
    """PLINK-style QC thresholds (``None`` disables a filter).

    maf : remove variants with minor allele frequency < maf (founders)
    mac : remove variants with minor allele count < mac (founders)
    geno : remove variants with missing call rate > geno
    mind : remove samples with missing call rate > mind
    hwe : remove variants with Hardy-Weinberg exact p < hwe (founders)
    """

    maf: float | None = None
    mac: int | None = None
    geno: float | None = None
    mind: float | None = None
    hwe: float | None = None

    def __post_init__(self):
        for name in ("maf", "geno", "mind", "hwe"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise PopgenError(f"--{name} must be between 0 and 1, got {v}")
        if self.maf is not None and self.maf > 0.5:
            raise PopgenError(f"--maf must be at most 0.5, got {self.maf}")
        if self.mac is not None and self.mac < 0:
            raise PopgenError(f"--mac must be non-negative, got {self.mac}")

    @property
    def any(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))


@dataclasses.dataclass
class FilterReport:
    """What each filter removed, for the log."""

    samples_in: int
    variants_in: int
    removed: dict[str, int]
    samples_out: int
    variants_out: int

    def lines(self) -> list[str]:
        out = [f"{self.samples_in} samples and {self.variants_in} variants in"]
        out += [f"  --{k}: removed {v} {'samples' if k == 'mind' else 'variants'}" for k, v in self.removed.items()]
        out.append(f"{self.samples_out} samples and {self.variants_out} variants remain")
        return out


def variant_filter_mask(filters: Filters, n_called, n_samples, allele_count, hwe_p):
    """Variants kept by ``--geno``, ``--hwe``, ``--maf`` and ``--mac`` (PLINK 2's thresholds and
    tolerance) from per-variant statistics, and how many each filter removed (in that order).

    ``n_called`` (v,) calls over ``n_samples`` (int or (v,)); ``allele_count`` (v, 2) REF
    and ALT counts and ``hwe_p`` (v,) over the frequency samples (founders)."""
    n_called = np.asarray(n_called)
    ac = np.asarray(allele_count)
    keep = np.ones(n_called.shape[0], dtype=bool)
    removed = {}
    if filters.geno is not None:
        n = np.asarray(n_samples, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = np.where(n > 0, (n - n_called) / np.maximum(n, 1), 1.0) > filters.geno + _EPS
        removed["geno"] = int((drop & keep).sum())
        keep &= ~drop
    if filters.hwe is not None:
        drop = np.asarray(hwe_p) < filters.hwe * (1 - _EPS)
        removed["hwe"] = int((drop & keep).sum())
        keep &= ~drop
    minor = ac.min(axis=1)
    total = ac.sum(axis=1)
    if filters.maf is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            maf = np.where(total > 0, minor / np.maximum(total, 1), 0.0)
        drop = maf < filters.maf - _EPS
        removed["maf"] = int((drop & keep).sum())
        keep &= ~drop
    if filters.mac is not None:
        drop = minor < filters.mac
        removed["mac"] = int((drop & keep).sum())
        keep &= ~drop
    return keep, removed


def apply_filters(ds, filters: Filters, *, founders_only: bool = True, compute=None):
    """Apply QC filters in PLINK 2's order; returns ``(filtered_ds, FilterReport)``.

    Order (as ``plink2``): sample missingness (``--mind``) on all variants;
    then, on the remaining samples, variant missingness (``--geno``),
    Hardy-Weinberg (``--hwe``) and allele frequency (``--maf``, ``--mac``),
    the last two on founders.  Each stage is one pass over the genotypes.
    chrX, chrY and MT are counted as PLINK 2 counts them (:func:`variant_stats`,
    :func:`sample_stats` with ``sex_chromosomes``); ``--hwe`` tests chrX with Graffelman
    and Weir's exact test (PLINK 2's) and keeps chrY and MT variants.

    Parameters
    ----------
    compute : callable, optional
        ``compute(*collections)`` used to evaluate (e.g. with a progress bar);
        default :func:`dask.compute`.
    """

    from popgen.genotypes import founder_mask

    compute = compute or _backend.compute
    report = FilterReport(ds.sizes["samples"], ds.sizes["variants"], {}, 0, 0)
    if filters.mind is not None:
        st = sample_stats(ds, merge=False, sex_chromosomes=True)
        called, n = compute(st["sample_n_called"].data, st["sample_n_variants"].data)
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = ~((n - called) / n > filters.mind + _EPS)
        report.removed["mind"] = int((~keep).sum())
        ds = ds.isel(samples=np.flatnonzero(keep))
        if ds.sizes["samples"] == 0:
            raise PopgenError(f"--mind {filters.mind} removed every sample")
    variant_filters = [f for f in ("geno", "hwe", "maf", "mac") if getattr(filters, f) is not None]
    if variant_filters:
        founders = founder_mask(ds) if founders_only else None
        all_stats = variant_stats(ds, merge=False, sex_chromosomes=True)
        fstats = variant_stats(ds, samples=founders, merge=False, sex_chromosomes=True)
        hwe = hardy_weinberg_test(fstats, merge=False)
        called, n, ac, p = compute(
            all_stats["variant_n_called"].data, all_stats["variant_n_samples"].data,
            fstats["variant_allele_count"].data, hwe["variant_hwe_p_value"].data,
        )
        keep, removed = variant_filter_mask(filters, called, n, ac, p)
        report.removed.update(removed)
        ds = ds.isel(variants=np.flatnonzero(keep))
        if ds.sizes["variants"] == 0:
            raise PopgenError("the QC filters removed every variant")
    report.samples_out, report.variants_out = ds.sizes["samples"], ds.sizes["variants"]
    return ds, report
