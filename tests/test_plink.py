"""PLINK 1 reader and writer: round trips, chunking, sgkit/bed-reader as oracle, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_dataset, random_alt
from popgen.errors import PopgenError
from popgen.genotypes import alt_allele_count
from popgen.io.plink import read_plink, write_plink


@pytest.fixture
def bfile(tmp_path, rng):
    g = random_alt(rng, 41, 23, missing=0.08)
    ds = make_dataset(g, chunks=(9, 8), sex=np.tile([1, 2], 12)[:23])
    write_plink(ds, tmp_path / "c")
    return tmp_path / "c", g


@pytest.mark.parametrize("chunks", [(5, 4), (41, 8), (7, 100)])
def test_round_trip(bfile, chunks):
    prefix, g = bfile
    ds = read_plink(prefix, chunks=chunks)
    alt = alt_allele_count(ds)
    if chunks == (5, 4):
        assert len(alt.chunks[0]) >= 2 and len(alt.chunks[1]) >= 2
    np.testing.assert_array_equal(alt.compute(), g)
    np.testing.assert_array_equal(ds.variant_position.values, np.arange(41) * 100 + 1)
    assert list(ds.contig_id.values) == ["1", "2"]
    assert ds.variant_allele.values[0].tolist() == ["A", "G"]
    assert ds.sample_id.values[3] == "s3"
    assert ds.call_genotype.dtype == np.int8 and ds.call_genotype.dims == ("variants", "samples", "ploidy")
    assert ds.call_genotype_mask.values.sum() == 2 * (g < 0).sum()


def test_results_stay_lazy(bfile):
    import dask.array as da

    ds = read_plink(bfile[0], chunks=(5, 4))
    assert isinstance(ds.call_genotype.data, da.Array)
    assert isinstance(alt_allele_count(ds), da.Array)


def test_matches_sgkit_bed_reader(bfile):
    """sgkit's own PLINK reader (bed-reader) decodes the same calls."""
    from sgkit.io.plink import read_plink as sg_read

    prefix, g = bfile
    ours = read_plink(prefix, chunks=(8, 8))
    theirs = sg_read(path=str(prefix))
    # sgkit orders alleles as in the .bim (A1, A2); ours is (REF=A2, ALT=A1)
    assert (theirs.variant_allele.values[:, ::-1].astype(str) == ours.variant_allele.values.astype(str)).all()
    sg_gt = theirs.call_genotype.values
    sg_alt = np.where((sg_gt < 0).any(-1), -1, (sg_gt == 0).sum(-1))  # count of allele index 0 (= A1 = ALT)
    np.testing.assert_array_equal(alt_allele_count(ours).compute(), sg_alt)


def test_written_files_are_byte_identical_to_plink2(bfile, tmp_path):
    """plink2 --make-bed on our fileset writes the same .bed bytes."""
    import shutil
    import subprocess

    if not shutil.which("plink2"):
        pytest.fail("plink2 is required for the cross-checks (apt-get install plink2)")
    prefix, _ = bfile
    res = subprocess.run(["plink2", "--bfile", str(prefix), "--make-bed", "--out", str(tmp_path / "p2")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert (tmp_path / "p2.bed").read_bytes() == prefix.with_suffix(".bed").read_bytes()


def test_opens_in_sgkit_after_vcz_round_trip(bfile, tmp_path):
    import sgkit

    ds = read_plink(bfile[0], chunks=(16, 8))
    sgkit.save_dataset(ds.drop_vars(["call_genotype_mask"]), tmp_path / "x.zarr")
    back = sgkit.load_dataset(tmp_path / "x.zarr")
    np.testing.assert_array_equal(back.call_genotype.values, ds.call_genotype.values)
    stats = sgkit.variant_stats(back)
    assert stats.variant_n_called.values.sum() == (bfile[1] >= 0).sum()


# ------------------------------------------------------------------- bad input

def _corrupt(prefix, ext, mutate):
    path = prefix.with_suffix(ext)
    path.write_bytes(mutate(path.read_bytes()))
    return path


def test_truncated_bed(bfile):
    prefix, _ = bfile
    path = _corrupt(prefix, ".bed", lambda b: b[:-7])
    with pytest.raises(PopgenError, match="truncated") as e:
        read_plink(prefix)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_wrong_magic(bfile):
    prefix, _ = bfile
    path = _corrupt(prefix, ".bed", lambda b: b"\x00\x00" + b[2:])
    with pytest.raises(PopgenError, match="not a PLINK 1 .bed") as e:
        read_plink(prefix)
    assert str(path) in str(e.value)


def test_fam_rows_disagree_with_bed(bfile):
    prefix, _ = bfile
    _corrupt(prefix, ".fam", lambda b: b + b"x extra 0 0 1 -9\n" * 5)
    with pytest.raises(PopgenError, match="28 samples"):
        read_plink(prefix)


def test_bim_rows_disagree_with_bed(bfile):
    prefix, _ = bfile
    _corrupt(prefix, ".bim", lambda b: b"\n".join(b.split(b"\n")[:-3]) + b"\n")
    with pytest.raises(PopgenError, match="too long"):
        read_plink(prefix)


def test_bim_wrong_columns(bfile):
    prefix, _ = bfile
    path = _corrupt(prefix, ".bim", lambda b: b.replace(b"\t", b" ", 3).replace(b"1 v0 0", b"1 v0", 1))
    with pytest.raises(PopgenError) as e:
        read_plink(prefix)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(PopgenError, match="file not found"):
        read_plink(tmp_path / "nothing")


def test_writer_leaves_nothing_half_written(bfile, tmp_path, monkeypatch):
    """A failure while streaming the .bed leaves no output and no temp files."""
    import popgen.io.plink as plink

    ds = read_plink(bfile[0], chunks=(5, 8))
    calls = {"n": 0}
    real = plink.encode_bed

    def failing(block):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(block)

    monkeypatch.setattr(plink, "encode_bed", failing)
    with pytest.raises(RuntimeError):
        write_plink(ds, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("chunks", [(7, 5), (3, 4), (100, 100)])
def test_writer_is_chunking_invariant(tmp_path, rng, chunks):
    """Blocks are written in place; odd sample chunks are rechunked onto whole bytes."""
    g = random_alt(rng, 29, 19, missing=0.1)
    write_plink(make_dataset(g, chunks=chunks), tmp_path / "a")
    write_plink(make_dataset(g, chunks=(29, 19)), tmp_path / "b")
    assert (tmp_path / "a.bed").read_bytes() == (tmp_path / "b.bed").read_bytes()
    np.testing.assert_array_equal(alt_allele_count(read_plink(tmp_path / "a", chunks=(8, 8))).compute(), g)


def test_short_bim_strings_are_held_compactly_long_ones_as_objects(bfile, tmp_path):
    """IDs and alleles up to 16 characters come as fixed-width U arrays (no object per string);
    a column with a longer value (an indel allele) keeps Python strings; both write back and
    report the same text."""
    from popgen import qc
    from popgen.io import reports

    prefix, g = bfile
    ds = read_plink(prefix)
    assert ds.variant_id.dtype.kind == "U" and ds.variant_allele.dtype.kind == "U"
    lines = (tmp_path / "c.bim").read_text().splitlines()
    long_allele = "ACGTACGTACGTACGTACGTACGTACGTAC"
    lines[3] = "\t".join(lines[3].split("\t")[:4] + [long_allele, lines[3].split("\t")[5]])
    (tmp_path / "c.bim").write_text("\n".join(lines) + "\n")
    ds = read_plink(prefix)
    assert ds.variant_allele.dtype == object and ds.variant_id.dtype.kind == "U"
    assert ds.variant_allele.values[3, 1] == long_allele and ds.variant_allele.values[0].tolist() == ["A", "G"]
    write_plink(ds, tmp_path / "back")
    assert (tmp_path / "back.bim").read_text() == (tmp_path / "c.bim").read_text()
    reports.write_afreq(tmp_path / "x.afreq", ds, qc.variant_stats(ds, merge=False).variant_allele_count.values)
    row = (tmp_path / "x.afreq").read_text().splitlines()[4].split("\t")
    assert row[1:4] == [ds.variant_id.values[3], ds.variant_allele.values[3, 0], long_allele]


@pytest.mark.parametrize("n_samples", [1, 2, 3, 4, 5, 7, 8, 9, 30])
def test_encode_is_the_inverse_of_decode(rng, n_samples):
    """The numba .bed packer against the decoder and a per-call NumPy oracle (PLINK's codes,
    four samples a byte, low bits first, the last byte's padding zero)."""
    from popgen.io.plink import encode_bed
    from popgen.kernels.bed import decode_bed_cpu

    alt = rng.integers(-1, 3, size=(13, n_samples)).astype(np.int8)
    packed = encode_bed(alt)
    assert packed.shape == (13, -(-n_samples // 4)) and packed.dtype == np.uint8
    np.testing.assert_array_equal(decode_bed_cpu(packed, n_samples), alt)
    code = {-1: 0b01, 0: 0b11, 1: 0b10, 2: 0b00}
    oracle = np.zeros_like(packed)
    for v in range(13):
        for s in range(n_samples):
            oracle[v, s // 4] |= code[int(alt[v, s])] << (2 * (s % 4))
    np.testing.assert_array_equal(packed, oracle)
