"""popgen qc equals PLINK 2 on the bundled example cohort.

The reference files in tests/data/plink2/ were made by tests/data/make_reference.sh
(PLINK v2.00a3.5).  Counts and identifiers must be equal, frequencies and call
rates equal to PLINK 2's printed precision, HWE p within 1e-6 relative.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, EXAMPLE
from popgen.cli import main

REF = DATA / "plink2"
EXACT = {"O(HOM)", "#CHROM", "ID", "REF", "ALT", "A1", "AX", "OBS_CT", "MISSING_CT", "HOM_A1_CT", "HET_A1_CT", "TWO_AX_CT",
         "#FID", "IID", "#IID", "PHENO1"}


def read(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def assert_same_table(ours_path, ref_path, rtol=1e-6, id_cols_only=None):
    ours, ref = read(ours_path), read(ref_path)
    assert list(ours.columns) == list(ref.columns), ours_path
    assert len(ours) == len(ref)
    for col in ref.columns:
        if col in EXACT:
            assert (ours[col] == ref[col]).all(), f"{ours_path.name}:{col}"
        else:
            a, b = ours[col].astype(float).to_numpy(), ref[col].astype(float).to_numpy()
            assert_printed_equal(a, b, f"{ours_path.name}:{col}")


def assert_printed_equal(a, b, what):
    """Equal to PLINK 2's printed precision: 6 significant digits, ties may round either way.

    That is at most one unit in the 6th significant digit (1e-5 relative for a
    leading 1, 1e-6 for a leading 9); values are otherwise printed identically.
    """
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    ok = ~np.isnan(b) & (b != 0)
    unit = 10.0 ** (np.floor(np.log10(np.abs(b[ok]))) - 5)
    err = np.abs(a[ok] - b[ok])
    assert (err <= unit * 1.0001).all(), f"{what}: max error {(err / unit).max():.3g} units of the 6th digit"
    assert (a[~ok & ~np.isnan(b)] == 0).all(), what
    # and nearly all are printed identically
    assert (err == 0).mean() > 0.99, what


@pytest.fixture(scope="module")
def qc_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("qc") / "ex"
    assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(out), "--cluster", "none", "--device", "cpu",
                 "--chunk-variants", "1024", "--chunk-samples", "256", "--geno-counts"]) == 0
    return out


@pytest.mark.parametrize("ext", ["afreq", "vmiss", "smiss", "hardy", "het"])
def test_reports_equal_plink2(qc_out, ext):
    assert_same_table(qc_out.with_suffix(f".{ext}"), REF / f"example.{ext}")


def test_frequency_and_missingness_files_are_byte_identical(qc_out):
    for ext in ("afreq", "vmiss", "smiss", "het", "hardy", "gcount"):
        assert qc_out.with_suffix(f".{ext}").read_bytes() == (REF / f"example.{ext}").read_bytes(), ext


def test_hwe_p_within_1e6_relative(qc_out):
    """Unrounded HWE p against PLINK 2's printed p (6 significant digits).

    1e-6 relative is below PLINK 2's printed precision for p-values with a
    leading digit under 5, so the check is: our unrounded p rounds to PLINK's
    printed value (half a unit in the 6th digit), which implies agreement to
    <= 5e-6 relative everywhere and <= 1e-6 relative for leading digits >= 5.
    """
    from popgen import qc
    from popgen.genotypes import founder_mask
    from popgen.io.plink import read_plink

    ds = read_plink(EXAMPLE, chunks=(1000, 600))
    p = qc.hardy_weinberg_test(ds, samples=founder_mask(ds), merge=False).variant_hwe_p_value.values
    ref = read(REF / "example.hardy")["P"].astype(float).to_numpy()
    unit = 10.0 ** (np.floor(np.log10(ref)) - 5)
    assert (np.abs(p - ref) <= 0.5 * unit * 1.0001).all()
    assert (ref < 1e-3).sum() > 10  # the example has real departures (population structure)


def test_nonfounders(tmp_path):
    out = tmp_path / "nf"
    assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(out), "--nonfounders", "--cluster", "none",
                 "--device", "cpu"]) == 0
    for ext in ("afreq", "hardy", "het"):
        assert_same_table(out.with_suffix(f".{ext}"), REF / f"example.nonfounders.{ext}")
    # the example's .fam has parents, so founders-only differs
    assert out.with_suffix(".afreq").read_bytes() != (REF / "example.afreq").read_bytes()


def test_filters_keep_what_plink2_keeps(tmp_path):
    out = tmp_path / "f"
    assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(out), "--mind", "0.011", "--geno", "0.02",
                 "--hwe", "1e-3", "--maf", "0.05", "--make-bed", "--cluster", "none", "--device", "cpu"]) == 0
    ref_ids = [line.split()[1] for line in (REF / "example.filtered.fam").read_text().splitlines()]
    assert [line.split()[1] for line in out.with_suffix(".fam").read_text().splitlines()] == ref_ids
    ref_snps = (REF / "example.filtered.snplist").read_text().split()
    assert [line.split()[1] for line in out.with_suffix(".bim").read_text().splitlines()] == ref_snps


def test_vcf_and_vcz_inputs_equal_plink2(tmp_path):
    """The example exported by PLINK 2 as VCF (no parents there: all samples are founders)."""
    if not shutil.which("plink2"):
        pytest.fail("plink2 is required for the cross-checks (apt-get install plink2)")
    subprocess.run(["plink2", "--silent", "--bfile", str(EXAMPLE), "--export", "vcf", "bgz", "id-paste=iid",
                    "--out", str(tmp_path / "ex")], check=True)
    out = tmp_path / "v"
    assert main(["qc", "--vcf", str(tmp_path / "ex.vcf.gz"), "--out", str(out), "--make-vcz",
                 "--cluster", "none", "--device", "cpu"]) == 0
    assert (tmp_path / "ex.vcf.gz.vcz").is_dir()  # cached beside the input
    assert_same_table(out.with_suffix(".afreq"), REF / "example.nonfounders.afreq")
    assert_same_table(out.with_suffix(".hardy"), REF / "example.nonfounders.hardy")
    # the VCF Zarr store written by --make-vcz reads back to the same numbers
    out2 = tmp_path / "z"
    assert main(["qc", "--vcz", str(out.with_suffix(".vcz")), "--out", str(out2), "--cluster", "none",
                 "--device", "cpu"]) == 0
    assert out2.with_suffix(".afreq").read_bytes() == out.with_suffix(".afreq").read_bytes()
    vm = read(out2.with_suffix(".vmiss"))
    ref = read(REF / "example.vmiss")
    assert (vm["MISSING_CT"] == ref["MISSING_CT"]).all()


def test_two_worker_cluster_equals_in_process(tmp_path):
    """The same QC on a 2-worker process LocalCluster (the reader pickles to workers)."""
    import dask

    from popgen import qc
    from popgen.cluster import cluster_client
    from popgen.io.plink import read_plink

    ds = read_plink(EXAMPLE, chunks=(700, 160))
    stats = qc.variant_stats(ds, merge=False)
    s = qc.sample_stats(ds, merge=False)
    local = dask.compute(stats.variant_allele_count.data, s.sample_n_het.data, scheduler="sync")
    with cluster_client("local", n_workers=2, threads_per_worker=1) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = client.compute([stats.variant_allele_count.data, s.sample_n_het.data], sync=True)
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(a, b)


SEXCHROM = DATA / "sexchrom" / "sexchrom"


def test_sex_chromosome_reports_and_filters_equal_plink2(tmp_path):
    """chrX (males one allele), chrY (males only), XY and MT (haploid) between two autosomes:
    .afreq/.vmiss/.smiss/.het/.hardy, chrX's .hardy.x and --geno-counts' .gcount (haploid calls
    apart) byte-identical to PLINK 2's, and the same filters (--hwe with chrX's test) keep the
    same samples and variants."""
    out = tmp_path / "sx"
    assert main(["qc", "--bfile", str(SEXCHROM), "--out", str(out), "--cluster", "none", "--device", "cpu",
                 "--chunk-variants", "64", "--geno-counts"]) == 0
    for ext in ("afreq", "vmiss", "smiss", "het", "hardy", "hardy.x", "gcount"):
        assert out.with_suffix(f".{ext}").read_bytes() == (REF / f"sexchrom.{ext}").read_bytes(), ext
    assert (read(REF / "sexchrom.hardy.x")["P"].astype(float) < 0.05).sum() >= 2  # chrX variants --hwe removes
    chroms = set(read(REF / "sexchrom.afreq")["#CHROM"])
    assert chroms == {"1", "X", "XY", "Y", "MT", "2"} and set(read(REF / "sexchrom.hardy")["#CHROM"]) == {"1", "XY", "2"}
    f = tmp_path / "sf"
    assert main(["qc", "--bfile", str(SEXCHROM), "--out", str(f), "--maf", "0.1", "--geno", "0.012", "--mind", "0.012",
                 "--hwe", "0.05", "--make-bed", "--cluster", "none", "--device", "cpu"]) == 0
    assert [x.split()[1] for x in f.with_suffix(".fam").read_text().splitlines()] == \
        [x.split()[1] for x in (REF / "sexchrom.filtered.fam").read_text().splitlines()]
    assert [x.split()[1] for x in f.with_suffix(".bim").read_text().splitlines()] == \
        (REF / "sexchrom.filtered.snplist").read_text().split()


def test_update_sex_gives_the_fam_sexes_results(tmp_path):
    """A cohort without sexes (as VCF input) and --update-sex: the QC reports and the GWAS of
    the cohort with its .fam sexes (PLINK 2's)."""
    nosex = tmp_path / "nosex"
    for ext in (".bed", ".bim"):
        shutil.copy(f"{SEXCHROM}{ext}", f"{nosex}{ext}")
    fam = [line.split() for line in open(f"{SEXCHROM}.fam")]
    with open(f"{nosex}.fam", "w") as f:
        f.writelines("\t".join(r[:4] + ["0"] + r[5:]) + "\n" for r in fam)
    codes = {"1": "M", "2": "F", "0": "NA"}
    (tmp_path / "sex.txt").write_text("#FID\tIID\tSEX\n" + "".join(f"{r[0]}\t{r[1]}\t{codes[r[4]]}\n" for r in fam))
    out = tmp_path / "u"
    common = ["--bfile", str(nosex), "--update-sex", str(tmp_path / "sex.txt"), "--cluster", "none", "--device", "cpu"]
    assert main(["qc", *common, "--out", str(out)]) == 0
    for ext in ("afreq", "vmiss", "smiss", "hardy.x"):
        assert out.with_suffix(f".{ext}").read_bytes() == (REF / f"sexchrom.{ext}").read_bytes(), ext
    assert main(["gwas", *common, "--pheno", f"{SEXCHROM}.pheno", "--pheno-name", "QT", "--covar",
                 f"{SEXCHROM}.covar", "--covar-name", "AGE", "--no-ssf", "--no-plots", "--out", str(out)]) == 0
    got, want = read(out.with_suffix(".QT.glm.linear")), read(REF / "sexchrom.glm.QT.glm.linear")
    assert (got["OBS_CT"] == want["OBS_CT"]).all() and (got["#CHROM"] == want["#CHROM"]).all()
    (tmp_path / "bad.txt").write_text("#IID\tSEX\ni0\tX\n")
    assert main(["qc", *common[:2], "--update-sex", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "b")]) == 2


def test_vcf_with_haploid_calls_equals_plink2(tmp_path):
    """The sex-chromosome cohort as a VCF writes it (males' chrX/chrY and MT calls haploid:
    ``1``, not ``1/1``), sexes from --update-sex: PLINK 2's reports of the .bed."""
    from popgen.io.plink import read_plink

    ds = read_plink(SEXCHROM)
    alt = ds.call_alt_count.values
    sex = ds.sample_sex.values
    chrom = np.asarray(ds.contig_id.values)[ds.variant_contig.values]
    iids = [str(s) for s in ds.sample_id.values]
    diploid = {0: "0/0", 1: "0/1", 2: "1/1", -1: "./."}
    haploid = {0: "0", 1: "0/1", 2: "1", -1: "."}
    lines = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c}>" for c in dict.fromkeys(chrom)]
    lines += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *iids])]
    for v in range(len(chrom)):
        hap = (sex == 1) if chrom[v] in ("X", "Y") else np.full(len(iids), chrom[v] == "MT")
        gts = [(haploid if h else diploid)[int(a)] for a, h in zip(alt[v], hap)]
        lines.append("\t".join([chrom[v], str(int(ds.variant_position.values[v])), str(ds.variant_id.values[v]),
                                "A", "C", ".", ".", ".", "GT", *gts]))
    (tmp_path / "sx.vcf").write_text("\n".join(lines) + "\n")
    (tmp_path / "sex.txt").write_text("#IID\tSEX\n" + "".join(f"{i}\t{s}\n" for i, s in zip(iids, sex)))
    out = tmp_path / "v"
    assert main(["qc", "--vcf", str(tmp_path / "sx.vcf"), "--update-sex", str(tmp_path / "sex.txt"), "--out", str(out),
                 "--cluster", "none", "--device", "cpu"]) == 0
    for ext in ("afreq", "vmiss", "hardy", "hardy.x"):
        assert out.with_suffix(f".{ext}").read_bytes() == (REF / f"sexchrom.{ext}").read_bytes(), ext
    for ext in ("smiss", "het"):  # VCF input: #IID without FID
        assert read(out.with_suffix(f".{ext}")).iloc[:, 1:].equals(read(REF / f"sexchrom.{ext}").iloc[:, 2:]), ext
