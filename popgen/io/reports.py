"""PLINK 2 text reports: .afreq, .hardy, .vmiss, .smiss.

Same column names, order and meaning as PLINK 2 (v2.00a3+), tab separated,
numbers with 6 significant digits as PLINK 2 prints them, so that downstream
scripts written for PLINK 2 read popgen's files unchanged.  Each file is
written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import numpy as np

from popgen.io.files import atomic_write


def round_plink2(x) -> np.ndarray:
    """Round to 6 significant digits as PLINK 2 prints, near-ties to even.

    PLINK 2's ``dtoa_g`` rounds the 6th digit half-to-even within 5e-7 of a
    tie (``kBankerRound6``), where ``%g`` rounds the exact binary value:
    0.028906250000000022 prints 0.0289062 there, 0.0289063 with ``%.6g``.
    """
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    a = np.abs(x[ok])
    if a.size:
        shift = np.where(a < 1e-290, 100.0, 0.0)  # subnormals: keep 10^(5 - e) finite
        a = a * 10.0 ** shift
        e = np.floor(np.log10(a))
        scaled = a * 10.0 ** (5 - e)
        low, high = scaled < 1e5, scaled >= 1e6  # log10 off by one at powers of ten
        e = e - low + high
        scaled = a * 10.0 ** (5 - e)
        whole = np.floor(scaled)
        up = (scaled - whole) + np.where(whole % 2 == 0, 0.4999995, 0.5000005) >= 1.0
        out[ok] = np.sign(x[ok]) * ((whole + up) * 10.0 ** (e - 5 - shift / 2)) * 10.0 ** (-shift / 2)
    return out


def fmt_g(x) -> np.ndarray:
    """Format floats like PLINK 2 (6 significant digits, its tie rounding, NaN as NA)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.array([f"{v:.6g}" for v in round_plink2(x).tolist()], dtype=object)
    out[~np.isfinite(x)] = "NA"
    return out


def _str(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(str).astype(object) if a.dtype.kind == "S" else a.astype(object)


def variant_columns(ds) -> dict[str, np.ndarray]:
    """``#CHROM``, ``ID``, ``REF``, ``ALT`` columns of a cohort."""
    contigs = _str(ds["contig_id"].values) if "contig_id" in ds else np.array(ds.attrs["contigs"], dtype=object)
    alleles = _str(ds["variant_allele"].values)
    ids = _str(ds["variant_id"].values) if "variant_id" in ds else np.full(ds.sizes["variants"], ".", object)
    return {
        "#CHROM": contigs[np.asarray(ds["variant_contig"].values)],
        "ID": ids,
        "REF": alleles[:, 0],
        "ALT": alleles[:, 1],
    }


def sample_columns(ds) -> dict[str, np.ndarray]:
    """``#FID IID`` (PLINK input) or ``#IID`` (VCF input) columns."""
    iid = _str(ds["sample_id"].values)
    if "sample_family_id" in ds:
        return {"#FID": _str(ds["sample_family_id"].values), "IID": iid}
    return {"#IID": iid}


def _fmt_g_fast(x) -> np.ndarray:
    """:func:`fmt_g` (the reference) by the numba formatter, ~10x faster, as ``S`` bytes."""
    from popgen.io.textfmt import format_g6

    return format_g6(x)


def _fmt_g_nan(x) -> np.ndarray:
    """:func:`_fmt_g_fast` with NaN (0/0: no call counted) as ``nan``, as PLINK 2's .afreq and
    .vmiss print it."""
    out = _fmt_g_fast(x)
    out[np.isnan(np.asarray(x, dtype=np.float64))] = b"nan"
    return out


class Formatted:
    """A numeric column formatted block by block when written (``fmt(values[slice])``), so
    that :func:`write_table` never holds a whole column as strings."""

    def __init__(self, values, fmt=None):
        self.values = np.asarray(values)
        self.fmt = fmt or _fmt_g_fast

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, key):
        return self.fmt(self.values[key])


def fmt_9g(x) -> np.ndarray:
    """Floats with 9 significant digits by Python's formatting: the reference that
    :func:`popgen.io.textfmt.format_g9` (what the writers use) is tested against."""
    return np.array([f"{v:.9g}" for v in np.asarray(x, dtype=np.float64).tolist()], dtype=object)


#: rows formatted and written at a time by :func:`write_table`
TABLE_BLOCK = 16384


def write_table(path, columns: dict) -> None:
    """Write equal-length columns as a tab-separated file with a header, ``TABLE_BLOCK`` rows
    at a time (memory bounded by the block, whatever the table's length).  Columns are
    arrays, or :class:`Formatted` numbers converted to text block by block."""
    from popgen.io.textfmt import join_rows

    names = list(columns)
    cols = list(columns.values())
    n = len(cols[0]) if cols else 0
    with atomic_write(path) as f:
        f.write("\t".join(names) + "\n")
        for i in range(0, n, TABLE_BLOCK):
            f.write(join_rows([c[i:i + TABLE_BLOCK] for c in cols]))


def write_afreq(path, ds, ac: np.ndarray) -> None:
    """``.afreq``: #CHROM ID REF ALT ALT_FREQS OBS_CT (``plink2 --freq``).

    ``ac`` : (variants, 2) REF and ALT allele counts over the samples used (float where
    haploid heterozygous calls count half an allele; the totals are whole).
    """
    total = ac.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = ac[:, 1] / total
    cols = variant_columns(ds)
    cols.update({"ALT_FREQS": Formatted(freq, _fmt_g_nan), "OBS_CT": np.rint(total).astype(np.int64)})
    write_table(path, cols)


def write_hardy(path, ds, n_hom_ref, n_het, n_hom_alt, p, rows=None) -> None:
    """``.hardy``: #CHROM ID A1 AX HOM_A1_CT HET_A1_CT TWO_AX_CT O(HET_A1) E(HET_A1) P.

    As PLINK 2 prints biallelic variants: A1 is REF and AX is ALT.  ``rows`` (bool,
    variants): the variants written (PLINK 2: autosomes and XY).
    """
    if rows is not None:
        rows = np.asarray(rows, dtype=bool)
        ds = ds.isel(variants=np.flatnonzero(rows))
        n_hom_ref, n_het, n_hom_alt, p = (np.asarray(a)[rows] for a in (n_hom_ref, n_het, n_hom_alt, p))
    n = n_hom_ref + n_het + n_hom_alt
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (2 * n_hom_ref + n_het) / (2 * n)
        o_het = n_het / n
        e_het = 2 * q * (1 - q)
    v = variant_columns(ds)
    write_table(
        path,
        {
            "#CHROM": v["#CHROM"], "ID": v["ID"], "A1": v["REF"], "AX": v["ALT"],
            "HOM_A1_CT": n_hom_ref, "HET_A1_CT": n_het, "TWO_AX_CT": n_hom_alt,
            "O(HET_A1)": Formatted(o_het), "E(HET_A1)": Formatted(e_het), "P": Formatted(p),
        },
    )


def write_gcount(path, ds, counts) -> None:
    """``.gcount`` (``plink2 --geno-counts``): #CHROM ID REF ALT HOM_REF_CT HET_REF_ALT_CTS
    TWO_ALT_GENO_CTS HAP_REF_CT HAP_ALT_CTS MISSING_CT from ``counts`` (variants, 6), as
    :func:`popgen.qc.variant_stats`' ``variant_genotype_counts``."""
    c = np.asarray(counts)
    cols = variant_columns(ds)
    names = ("HOM_REF_CT", "HET_REF_ALT_CTS", "TWO_ALT_GENO_CTS", "HAP_REF_CT", "HAP_ALT_CTS", "MISSING_CT")
    cols.update({name: c[:, i] for i, name in enumerate(names)})
    write_table(path, cols)


def write_hardy_x(path, ds, x_counts, p, rows) -> None:
    """``.hardy.x`` (PLINK 2's chrX Hardy-Weinberg report): #CHROM ID A1 AX FEMALE_HOM_A1_CT
    FEMALE_HET_A1_CT FEMALE_TWO_AX_CT MALE_A1_CT MALE_AX_CT O(FEMALE_HET_A1) E(FEMALE_HET_A1)
    FEMALE_A1_FREQ MALE_A1_FREQ P, for the variants ``rows`` (bool); ``x_counts`` (variants, 5)
    as :func:`popgen.qc.variant_stats`' ``variant_hwe_x_counts``; A1 is REF."""
    rows = np.asarray(rows, dtype=bool)
    ds = ds.isel(variants=np.flatnonzero(rows))
    c, p = np.asarray(x_counts)[rows], np.asarray(p)[rows]
    hom1, het, hom2, m1, m2 = (c[:, i] for i in range(5))
    n_f = hom1 + het + hom2
    with np.errstate(divide="ignore", invalid="ignore"):
        q_f = (2 * hom1 + het) / (2 * n_f)
        q_m = m1 / (m1 + m2)
        o_het, e_het = het / n_f, 2 * q_f * (1 - q_f)
    v = variant_columns(ds)
    write_table(
        path,
        {
            "#CHROM": v["#CHROM"], "ID": v["ID"], "A1": v["REF"], "AX": v["ALT"],
            "FEMALE_HOM_A1_CT": hom1, "FEMALE_HET_A1_CT": het, "FEMALE_TWO_AX_CT": hom2,
            "MALE_A1_CT": m1, "MALE_AX_CT": m2, "O(FEMALE_HET_A1)": Formatted(o_het),
            "E(FEMALE_HET_A1)": Formatted(e_het), "FEMALE_A1_FREQ": Formatted(q_f),
            "MALE_A1_FREQ": Formatted(q_m), "P": Formatted(p),
        },
    )


def write_vmiss(path, ds, n_called, n_samples=None) -> None:
    """``.vmiss``: #CHROM ID MISSING_CT OBS_CT F_MISS (``plink2 --missing``); ``n_samples``
    (variants,) the samples counted per variant (chrY: males), default all."""
    n = np.full(len(n_called), ds.sizes["samples"]) if n_samples is None else np.asarray(n_samples)
    v = variant_columns(ds)
    missing = n - np.asarray(n_called)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_miss = missing / n
    write_table(path, {"#CHROM": v["#CHROM"], "ID": v["ID"], "MISSING_CT": missing, "OBS_CT": n,
                       "F_MISS": Formatted(f_miss, _fmt_g_nan)})


def write_smiss(path, ds, n_called, n_variants=None) -> None:
    """``.smiss``: #FID IID [PHENO1] MISSING_CT OBS_CT F_MISS (``plink2 --missing``).

    ``PHENO1`` (Y/N: is the .fam phenotype missing) appears, as in PLINK 2,
    when the .fam carries a phenotype.  ``n_variants`` (samples,): the variants counted
    per sample (chrY for males only), default all.
    """
    m = np.full(len(n_called), ds.sizes["variants"]) if n_variants is None else np.asarray(n_variants)
    cols = sample_columns(ds)
    if "sample_phenotype" in ds:
        ph = _str(ds["sample_phenotype"].values)
        missing_ph = np.isin(ph, ["-9", "0", "NA", "nan", "na", "NaN"])
        if not missing_ph.all():
            cols["PHENO1"] = np.where(missing_ph, "Y", "N")
    missing = m - np.asarray(n_called)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_miss = missing / m
    cols.update({"MISSING_CT": missing, "OBS_CT": m, "F_MISS": Formatted(f_miss, _fmt_g_nan)})
    write_table(path, cols)


def write_het(path, ds, n_hom_observed, n_hom_expected, n_called, f) -> None:
    """``.het``: #FID IID O(HOM) E(HOM) OBS_CT F (``plink2 --het``)."""
    cols = sample_columns(ds)
    cols.update({"O(HOM)": np.asarray(n_hom_observed), "E(HOM)": Formatted(n_hom_expected),
                 "OBS_CT": np.asarray(n_called), "F": Formatted(f)})
    write_table(path, cols)
