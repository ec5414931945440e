"""VCF -> VCF Zarr conversion (bio2zarr), read_vcz, write_vcz: values, caching, errors."""

from __future__ import annotations

import gzip
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from popgen import backend
from popgen.errors import PopgenError
from popgen.io import vcz

N_SAMPLES = 12
CONTIGS = ("1", "2")


def write_vcf(path: pathlib.Path, n_variants: int = 50, seed: int = 0, contig_lines: bool = True) -> dict:
    """Write a small two-contig VCF by hand; return what it holds, as read_vcz should give it."""
    rng = np.random.default_rng(seed)
    samples = [f"ind{i:02d}" for i in range(N_SAMPLES)]
    header = ["##fileformat=VCFv4.2"]
    if contig_lines:
        header += [f"##contig=<ID={c},length=1000000>" for c in CONTIGS]
    header += [
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    gt = np.zeros((n_variants, N_SAMPLES, 2), dtype=np.int8)
    contig, pos, ids, alleles, lines = [], [], [], [], []
    for i in range(n_variants):
        c = 0 if i < n_variants * 3 // 5 else 1
        p = 1000 + 37 * i
        vid = "." if i % 4 == 0 else f"rs{1000 + i}"
        alts = ["G", "T"] if i % 7 == 3 else ["G"]  # some multi-allelic sites
        calls = []
        for s in range(N_SAMPLES):
            r = rng.random()
            a, b = rng.integers(0, len(alts) + 1, size=2)
            if r < 0.1:
                calls.append("./.")
                gt[i, s] = -1
            else:
                calls.append(f"{a}{'|' if r < 0.4 else '/'}{b}")
                gt[i, s] = (a, b)
        contig.append(c)
        pos.append(p)
        ids.append(vid)
        alleles.append(["A", *alts])
        lines.append("\t".join([CONTIGS[c], str(p), vid, "A", ",".join(alts), ".", "PASS", ".", "GT", *calls]))
    path.write_text("\n".join(header + lines) + "\n")
    return dict(gt=gt, contig=np.array(contig), pos=np.array(pos), ids=ids, alleles=alleles, samples=samples)


def check_equal(ds, exp) -> None:
    np.testing.assert_array_equal(ds.call_genotype.values, exp["gt"])
    np.testing.assert_array_equal(ds.call_genotype_mask.values, exp["gt"] < 0)
    np.testing.assert_array_equal(ds.variant_position.values, exp["pos"])
    contig_names = ds.contig_id.values[ds.variant_contig.values]
    np.testing.assert_array_equal(contig_names, np.array(CONTIGS)[exp["contig"]])
    assert list(ds.sample_id.values) == exp["samples"]
    assert list(ds.variant_id.values) == exp["ids"]
    got_alleles = [[a for a in row if a != ""] for row in ds.variant_allele.values.tolist()]
    assert got_alleles == exp["alleles"]


def leftovers(folder: pathlib.Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One VCF converted once, shared by the read tests."""
    folder = tmp_path_factory.mktemp("converted")
    exp = write_vcf(folder / "cohort.vcf")
    return vcz.vcf_to_vcz(folder / "cohort.vcf"), exp


# --- conversion ------------------------------------------------------------


def test_vcf_to_vcz_values(converted):
    store, exp = converted
    assert store.name == "cohort.vcf.vcz"
    ds = vcz.read_vcz(store)
    check_equal(ds, exp)
    assert ds.call_genotype.dtype == np.int8
    assert ds.variant_position.dtype.itemsize >= 4
    assert leftovers(store.parent) == []


def _gzip(src, dest):
    dest.write_bytes(gzip.compress(src.read_bytes()))


def _bgzip_indexed(src, dest):
    vcz._bgzip(src, dest, gzipped=False)
    vcz._build_index(dest, src)  # writes dest.csi, as `bcftools index` would


def _bcf(src, dest):
    import cyvcf2

    reader = cyvcf2.VCF(str(src))
    writer = cyvcf2.Writer(str(dest), reader, mode="wb")
    for record in reader:
        writer.write_record(record)
    writer.close()
    reader.close()


@pytest.mark.parametrize(
    "name, make",
    [("plain_gz.vcf.gz", _gzip), ("indexed.vcf.gz", _bgzip_indexed), ("cohort.bcf", _bcf)],
)
def test_vcf_to_vcz_compressed_inputs(tmp_path, name, make):
    exp = write_vcf(tmp_path / "src.vcf", seed=3)
    make(tmp_path / "src.vcf", tmp_path / name)
    before = sorted(p.name for p in tmp_path.iterdir())
    ds = vcz.read_vcf(tmp_path / name)
    check_equal(ds, exp)
    # only the store is added beside the input: no index, no temp dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, name + ".vcz"])


def test_vcf_without_contig_header_lines(tmp_path):
    exp = write_vcf(tmp_path / "nocontigs.vcf", contig_lines=False, seed=5)
    check_equal(vcz.read_vcf(tmp_path / "nocontigs.vcf"), exp)


def test_cache_reuses_and_reconverts(tmp_path, monkeypatch):
    from bio2zarr import vcf as b2z_vcf

    calls = []
    real = b2z_vcf.convert
    monkeypatch.setattr(b2z_vcf, "convert", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    src = tmp_path / "c.vcf"
    write_vcf(src)
    store = vcz.vcf_to_vcz(src)
    stamp = (store / vcz.STAMP_NAME).read_text()
    assert vcz.vcf_to_vcz(src) == store
    assert len(calls) == 1

    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch
    vcz.vcf_to_vcz(src)
    assert len(calls) == 2
    assert (store / vcz.STAMP_NAME).read_text() != stamp

    exp = write_vcf(src, n_variants=40, seed=9)  # rewritten with other content
    check_equal(vcz.read_vcf(src), exp)
    assert len(calls) == 3
    vcz.vcf_to_vcz(src, cache=False)
    assert len(calls) == 4
    assert leftovers(tmp_path) == []


def test_vcf_to_vcz_out_and_refuses_to_clobber(tmp_path):
    src = tmp_path / "c.vcf"
    exp = write_vcf(src, n_variants=20)
    out = tmp_path / "stores" / "mine.vcz"
    assert vcz.vcf_to_vcz(src, out=out) == out
    check_equal(vcz.read_vcz(out), exp)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(PopgenError, match="refusing to overwrite") as e:
        vcz.vcf_to_vcz(src, out=precious)
    assert str(precious) in str(e.value)
    assert (precious / "notes.txt").read_text() == "keep me"


# --- read_vcz ----------------------------------------------------------------


def test_read_vcz_chunks_and_cpu_device(converted):
    store, exp = converted
    ds = vcz.read_vcz(store, chunks={"variants": 16, "samples": 5})
    g = ds.call_genotype.data
    assert len(g.chunks[0]) >= 2 and len(g.chunks[1]) >= 2
    assert type(g._meta) is np.ndarray and backend.device_of(g) == "cpu"
    check_equal(ds, exp)
    with pytest.raises(PopgenError, match="unknown dimension"):
        vcz.read_vcz(store, chunks={"snps": 3})


@pytest.mark.skipif(backend.gpu_status()[0], reason="checks the no-GPU error")
def test_read_vcz_gpu_without_gpu_is_an_error(converted):
    with pytest.raises(PopgenError, match="gpu"):
        vcz.read_vcz(converted[0], device="gpu")


class FakeDeviceArray(np.ndarray):
    """Stands in for a CuPy array so the device="gpu" wiring is tested without a GPU."""


def test_read_vcz_gpu_path_maps_blocks(converted, monkeypatch):
    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "fake device"))
    monkeypatch.setattr(backend, "to_gpu", lambda x: np.asarray(x).view(FakeDeviceArray))
    monkeypatch.setattr(
        backend, "empty_meta", lambda device, ndim, dtype: np.empty((0,) * ndim, dtype).view(FakeDeviceArray)
    )
    store, exp = converted
    ds = vcz.read_vcz(store, chunks={"variants": 16, "samples": 5}, device="gpu")
    for name in ("call_genotype", "call_genotype_mask"):
        data = ds[name].data
        assert type(data._meta) is FakeDeviceArray
        block = data.blocks[1, 1, 0].compute(scheduler="sync")
        assert type(block) is FakeDeviceArray
    np.testing.assert_array_equal(np.asarray(ds.call_genotype.data.compute(scheduler="sync")), exp["gt"])
    assert type(ds.variant_position.data._meta) is np.ndarray  # only genotypes move


@pytest.mark.gpu
def test_read_vcz_gpu(converted):
    import cupy

    store, exp = converted
    ds = vcz.read_vcz(store, chunks={"variants": 16, "samples": 5}, device="gpu")
    assert backend.is_cupy(ds.call_genotype.data)
    block = ds.call_genotype.data.blocks[0, 0, 0].compute()
    assert isinstance(block, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(ds.call_genotype.data.compute()), exp["gt"])


def test_haploid_calls_read_as_homozygous(tmp_path):
    """Haploid calls (a male's chrX, padded with -2 by bio2zarr) are read as PLINK 2 imports
    them: ``1`` as 1/1 (ALT count 2), ``.`` as missing; diploid calls as they are."""
    vcf = tmp_path / "hap.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=X>\n"
                   '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tm1\tf1\tm2\n"
                   "1\t100\ta\tA\tC\t.\t.\t.\tGT\t0/1\t1/1\t0/0\n"
                   "X\t200\tb\tA\tC\t.\t.\t.\tGT\t1\t0/1\t0\n"
                   "X\t300\tc\tA\tC\t.\t.\t.\tGT\t.\t./.\t1\n")
    ds = vcz.read_vcf(vcf)
    np.testing.assert_array_equal(ds.call_genotype.values[1:], [[[1, 1], [0, 1], [0, 0]], [[-1, -1], [-1, -1], [1, 1]]])
    np.testing.assert_array_equal(ds.call_genotype_mask.values[2, :, 0], [True, True, False])
    from popgen.genotypes import alt_allele_count

    # PLINK 2's --vcf import of the same file (plink2 --vcf hap.vcf --make-bed): 1 2 0 / 2 1 0 / -1 -1 2
    np.testing.assert_array_equal(alt_allele_count(ds).compute(), [[1, 2, 0], [2, 1, 0], [-1, -1, 2]])


# --- write_vcz -------------------------------------------------------------


def lazy_cohort():
    """A simulated cohort whose arrays are lazy (map_blocks), non-uniformly chunked, with object strings."""
    import dask.array as da
    import sgkit

    ds = sgkit.simulate_genotype_call_dataset(n_variant=60, n_sample=14, n_contig=2, missing_pct=0.05, seed=7)
    ds = ds.drop_vars("call_genotype_mask")
    expected = ds.copy(deep=True)
    expected["variant_id"] = ("variants", np.array([f"v{i}" for i in range(60)], dtype=object))
    expected["sample_id"] = ("samples", expected.sample_id.values.astype(object))
    expected["call_genotype_mask"] = expected.call_genotype < 0

    g = da.from_array(ds.call_genotype.values, chunks=(25, 6, 2)).rechunk(((20, 15, 25), (6, 4, 4), 2))
    ds["call_genotype"] = (ds.call_genotype.dims, g.map_blocks(lambda b: b + np.int8(0), dtype=np.int8))
    ids = da.from_array(expected.variant_id.values, chunks=((30, 10, 20),))
    ds["variant_id"] = ("variants", ids.map_blocks(lambda b: b.copy(), dtype=object))
    ds["sample_id"] = ("samples", da.from_array(expected.sample_id.values, chunks=5))
    ds["variant_position"] = ds.variant_position.chunk({"variants": 25})
    return ds, expected


def test_write_vcz_round_trip(tmp_path):
    import sgkit
    import zarr

    ds, expected = lazy_cohort()
    out = tmp_path / "cohort.vcz"
    vcz.write_vcz(ds, out)
    assert leftovers(tmp_path) == []
    back = vcz.read_vcz(out)
    for name in ("call_genotype", "call_genotype_mask", "variant_position", "variant_contig", "contig_id"):
        np.testing.assert_array_equal(back[name].values, expected[name].values, err_msg=name)
    for name in ("variant_id", "sample_id"):
        assert back[name].values.tolist() == expected[name].values.tolist()
    np.testing.assert_array_equal(back.variant_allele.values, expected.variant_allele.values)

    # written chunk by chunk: the store keeps a (uniform) chunking, not one block
    assert zarr.open(str(out / "call_genotype")).chunks == (25, 6, 2)
    filters = zarr.open(str(out / "variant_id")).filters or []
    assert [type(f).__name__ for f in filters] == ["VLenUTF8"]

    opened = sgkit.load_dataset(str(out))
    np.testing.assert_array_equal(opened.call_genotype.values, expected.call_genotype.values)

    # re-writing a store read back (its encodings carried along), rechunked, replaces it
    vcz.write_vcz(back.chunk({"variants": 7, "samples": 3}), out)
    again = vcz.read_vcz(out)
    np.testing.assert_array_equal(again.call_genotype.values, expected.call_genotype.values)
    assert leftovers(tmp_path) == []


def test_write_vcz_of_converted_vcf(converted, tmp_path):
    store, exp = converted
    out = tmp_path / "copy.vcz"
    vcz.write_vcz(vcz.read_vcz(store, chunks={"variants": 16, "samples": 5}), out)
    check_equal(vcz.read_vcz(out), exp)


# --- errors ----------------------------------------------------------------


def test_missing_paths(tmp_path):
    for fn in (vcz.read_vcz, vcz.vcf_to_vcz, vcz.read_vcf):
        missing = tmp_path / "nope.vcz"
        with pytest.raises(PopgenError) as e:
            fn(missing)
        assert str(missing) in str(e.value)


def test_garbage_vcf(tmp_path):
    bad = tmp_path / "garbage.vcf"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(PopgenError) as e:
        vcz.vcf_to_vcz(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.vcf"]


@pytest.mark.parametrize("compress", ["gzip", "bgzip"])
def test_truncated_vcf(tmp_path, compress):
    src = tmp_path / "big.vcf"
    write_vcf(src, n_variants=1500)
    bad = tmp_path / "cut.vcf.gz"
    if compress == "gzip":
        _gzip(src, bad)
    else:
        vcz._bgzip(src, bad, gzipped=False)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])  # header intact, body cut
    with pytest.raises(PopgenError, match="truncated") as e:
        vcz.vcf_to_vcz(bad)
    assert str(bad) in str(e.value)
    assert not (tmp_path / "cut.vcf.gz.vcz").exists()
    assert leftovers(tmp_path) == []


def test_not_a_vcz_directory(tmp_path):
    plain = tmp_path / "plain_dir"
    plain.mkdir()
    (plain / "readme.txt").write_text("hello")
    with pytest.raises(PopgenError, match="not a VCF Zarr store") as e:
        vcz.read_vcz(plain)
    assert str(plain) in str(e.value)

    a_file = tmp_path / "file.vcz"
    a_file.write_text("x")
    with pytest.raises(PopgenError, match="not a VCF Zarr store"):
        vcz.read_vcz(a_file)


def test_zarr_without_genotypes(tmp_path):
    import xarray as xr

    store = tmp_path / "samples_only.zarr"
    xr.Dataset({"sample_id": ("samples", np.array(["a", "b"]))}).to_zarr(store)
    with pytest.raises(PopgenError, match="call_genotype") as e:
        vcz.read_vcz(store)
    assert str(store) in str(e.value)


def test_import_stays_light():
    code = "import sys, popgen.io.vcz; print(sorted(m for m in ('sgkit','xarray','dask','bio2zarr','zarr') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
