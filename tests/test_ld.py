"""LD pruning: PLINK 2 --indep-pairwise equivalence, r^2 block oracle on backends,
chunking invariance, plink2's edge cases, bad input."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from conftest import DATA, EXAMPLE, make_dataset, random_alt
from popgen import ld
from popgen.errors import PopgenError

REF = DATA / "plink2"


# ------------------------------------------------------------------ oracles


def r2_oracle(x, y, samples=None):
    """Squared Pearson correlation over the samples called in both (centred moments, float64)."""
    keep = np.ones(x.shape[1], bool) if samples is None else np.asarray(samples)
    out = np.full((x.shape[0], y.shape[0]), np.nan)
    yf = y.astype(float)
    for i in range(x.shape[0]):
        m = (x[i] >= 0) & (y >= 0) & keep                      # (n, s): common samples per pair
        cnt = np.maximum(m.sum(1, keepdims=True), 1)
        a = np.where(m, x[i].astype(float), 0.0)
        b = np.where(m, yf, 0.0)
        da = np.where(m, a - a.sum(1, keepdims=True) / cnt, 0.0)
        db = np.where(m, b - b.sum(1, keepdims=True) / cnt, 0.0)
        va, vb = (da * da).sum(1), (db * db).sum(1)
        ok = (va > 0) & (vb > 0)
        out[i, ok] = (da * db).sum(1)[ok] ** 2 / (va[ok] * vb[ok])
    return out


def prune_oracle(g, contig, pos, window, step, r2, kb=False):
    """plink2 --indep-pairwise (PLINK 1.x order), written as plainly as possible.

    ``g`` holds the samples used; returns the keep mask.  No chromosome 0 here.
    """
    n = len(g)
    called = g >= 0
    hom_ref, hom_alt = (g == 0).sum(1), (g == 2).sum(1)
    mono = ((hom_ref == 0) & (hom_alt == 0)) | (hom_ref == called.sum(1)) | (hom_alt == called.sum(1))
    p = np.where(called, g, 0).sum(1) / np.maximum(2 * called.sum(1), 1)
    maj = np.maximum(p, 1 - p)
    r = r2_oracle(g, g)
    thr = r2 * (1 + 2.0**-44)
    removed = np.zeros(n, bool)
    segments = []
    for c in dict.fromkeys(contig):
        idx = np.flatnonzero(contig == c)
        cuts = [0] + [k for k in range(1, len(idx)) if kb and pos[idx[k]] - pos[idx[k - 1]] > window] + [len(idx)]
        segments += [idx[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b - a > 1]
    for idx in segments:
        length, bp = len(idx), pos[idx]
        windows = []
        if kb:
            s, e = 0, 1
            while e < length and bp[e] <= bp[s] + window:
                e += 1
            windows.append((s, e))
            while e < length:
                s += 1
                while bp[s] < bp[e] - window:
                    s += 1
                e += 1
                while e < length and bp[e] <= bp[s] + window:
                    e += 1
                windows.append((s, e))
        else:
            s = 0
            while True:
                windows.append((s, min(s + window, length)))
                if s + window >= length:
                    break
                s += step
        members, unchecked, loaded = [], {}, 0
        for s, e in windows:
            members = [v for v in members if v >= s and not removed[idx[v]]]
            for v in range(loaded, e):
                members.append(v)
                unchecked[v] = v + 1
                removed[idx[v]] |= mono[idx[v]]
            loaded = e
            while True:
                before = removed.sum()
                for pi, a in enumerate(members):
                    if removed[idx[a]]:
                        continue
                    later = [b for b in members[pi + 1:] if not removed[idx[b]]]
                    todo = [b for b in later if b >= unchecked[a]]
                    for k, b in enumerate(todo):
                        if r[idx[a], idx[b]] > thr:
                            if maj[idx[a]] > maj[idx[b]] * (1 + 2.0**-44):
                                removed[idx[a]] = True
                            else:
                                removed[idx[b]] = True
                                rest = todo[k + 1:]
                                unchecked[a] = rest[0] if rest else e
                            break
                    else:
                        if todo:
                            unchecked[a] = e
                if removed.sum() == before:
                    break
    return ~removed


def ld_alt(rng, n_variants, n_samples, missing=0.03, stay=0.85):
    """ALT counts with LD: each call repeats the previous variant's with probability ``stay``."""
    g = np.empty((n_variants, n_samples), np.int8)
    g[0] = rng.binomial(2, 0.4, n_samples)
    for i in range(1, n_variants):
        fresh = rng.binomial(2, rng.uniform(0.05, 0.95), n_samples)
        g[i] = np.where(rng.random(n_samples) < stay, g[i - 1], fresh)
    g[rng.random(g.shape) < missing] = -1
    return g


# ------------------------------------------------------------------ PLINK 2 on the example


@pytest.fixture(scope="module")
def example():
    from popgen.io.plink import read_plink

    return read_plink(EXAMPLE, chunks=(2000, 256))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("ld_50_5_0.2", dict(window=50, step=5, r2=0.2)),
        ("ld_200kb_1_0.5", dict(window_kb=200, r2=0.5)),
        ("ld_100_10_0.1", dict(window=100, step=10, r2=0.1)),
        ("nonfounders.ld_50_5_0.2", dict(window=50, step=5, r2=0.2)),
    ],
)
def test_prune_in_equals_plink2(example, tmp_path, name, kwargs):
    """Byte-identical .prune.in (made by tests/data/make_reference.sh).

    PLINK 2 computes r^2 on founders whatever the flags; --nonfounders only
    takes the allele frequencies of the tie-break from all samples.
    """
    from popgen.genotypes import founder_mask
    from popgen.qc import variant_stats

    founders = founder_mask(example)
    assert not founders.all()  # the example has non-founders
    freq = None
    if name.startswith("nonfounders"):
        freq = variant_stats(example, merge=False).variant_allele_frequency.values[:, 1]
    keep = ld.ld_prune(example, samples=founders, allele_frequency=freq, **kwargs)
    ld.write_prune_lists(tmp_path / "ex", example, keep)
    assert (tmp_path / "ex.prune.in").read_bytes() == (REF / f"example.{name}.prune.in").read_bytes()
    out = (tmp_path / "ex.prune.out").read_text().split()
    assert len(out) == (~keep).sum() > 0
    assert sorted(out + (tmp_path / "ex.prune.in").read_text().split()) == sorted(example.variant_id.values)


def test_all_samples_differ_from_founders(example):
    """samples=None uses the non-founders too (plink2 has no flag for that)."""
    from popgen.genotypes import founder_mask

    everyone = ld.ld_prune(example, window=50, step=5, r2=0.2)
    founders = ld.ld_prune(example, window=50, step=5, r2=0.2, samples=founder_mask(example))
    assert 0 < (everyone != founders).sum() < 100


def test_edge_cases_equal_plink2(tmp_path, rng):
    """Contig 0, one-variant contigs, monomorphic and all-heterozygous variants, ties,
    kb gaps and the bp boundary, against plink2 run on the same fileset."""
    if not shutil.which("plink2"):
        pytest.fail("plink2 is required for the cross-checks (apt-get install plink2)")
    from popgen.io.memory import dataset_from_alt_count
    from popgen.io.plink import write_plink

    n_s = 60
    g = ld_alt(rng, 48, n_s, missing=0.05)
    g[5] = g[4]                           # tie: identical variants (the later one goes)
    g[8] = 0                              # monomorphic
    g[9] = 1                              # all heterozygous (constant dosage)
    g[10] = -1
    g[10, :3] = 2                         # called in 3 samples only, all hom ALT
    g[30] = 0                             # alone on its contig: kept although monomorphic
    g[31:34] = g[12]                      # contig 0: in neither list
    g[40] = 0                             # isolated by kb gaps: kept although monomorphic
    g[44:46] = g[20]
    contig = np.array(["1"] * 30 + ["2"] + ["0"] * 3 + ["3"] * 14)
    pos = np.arange(48) * 1000 + 1
    pos[34:] = [1, 301, 601, 901, 1201, 1500, 9000, 20000, 20400, 20800, 21200, 21700, 21701, 30000]
    ids = [f"v{i}" for i in range(48)]
    ds = dataset_from_alt_count(g, contig=contig, position=pos, ref=np.full(48, "A"), alt=np.full(48, "G"),
                                variant_id=ids, sample_id=[f"s{j}" for j in range(n_s)], chunks=(11, 17))
    write_plink(ds, tmp_path / "e")
    for args, kwargs in [
        (["5", "1", "0.5"], dict(window=5, r2=0.5)),
        (["4", "2", "0.3"], dict(window=4, step=2, r2=0.3)),
        (["0.5kb", "0.5"], dict(window_kb=0.5, r2=0.5)),
        (["0.3kb", "0.2"], dict(window_kb=0.3, r2=0.2)),
    ]:
        subprocess.run(["plink2", "--silent", "--threads", "2", "--bfile", str(tmp_path / "e"),
                        "--indep-pairwise", *args, "--out", str(tmp_path / "p")], check=True)
        keep = ld.ld_prune(ds, **kwargs)
        ld.write_prune_lists(tmp_path / "o", ds, keep)
        for ext in (".prune.in", ".prune.out"):
            assert (tmp_path / f"o{ext}").read_text() == (tmp_path / f"p{ext}").read_text(), (args, ext)
        kept = set((tmp_path / "o.prune.in").read_text().split())
        assert "v30" in kept and not {"v31", "v32", "v33"} & kept
        # monomorphic variants go when loaded into a window; with a kb window
        # contig 1 (1 kb apart) and v40 are isolated, so never loaded
        assert ({"v8", "v9", "v10", "v40"} <= kept) == ("window_kb" in kwargs)
        assert not {"v8", "v9", "v10", "v40"} & kept or "window_kb" in kwargs


# ------------------------------------------------------------------ block math


def _backend(name):
    return np if name == "numpy" else pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_r2_block_matches_oracle(rng, backend_name):
    xp = _backend(backend_name)
    x = random_alt(rng, 7, 2500, missing=0.1)   # > 2047 samples: two packed sample slices
    y = random_alt(rng, 5, 2500, missing=0.2)
    x[1] = 1                                    # constant dosage: NaN
    y[2, :2000] = -1                            # few common calls
    y[3] = np.where(x[0] >= 0, x[0], y[3])      # strong LD
    samples = rng.random(2500) < 0.7
    for s in (None, samples):
        want = r2_oracle(x, y, s)
        sx = None if s is None else xp.asarray(s)
        got = np.asarray(ld.r2_block(xp.asarray(x), xp.asarray(y), sx))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        packed = np.asarray(ld.pair_sums_block(xp.asarray(x), xp.asarray(y), sx))
        plain = np.asarray(ld.pair_sums_block(xp.asarray(x), xp.asarray(y), sx, packed=False))
        assert packed.dtype == np.float32
        np.testing.assert_array_equal(packed, plain)
    # no missing call: the one-product path
    z = np.clip(x, 0, 2)
    got = np.asarray(ld.r2_block(xp.asarray(z), xp.asarray(z)))
    np.testing.assert_allclose(got, r2_oracle(z, z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("tile, group, width", [(6, 12, 8), (4, 4, 3), (64, 512, 50), (5, 40, 1)])
def test_band_sums_block_is_the_r2_band(rng, backend_name, tile, group, width):
    xp = _backend(backend_name)
    g = ld_alt(rng, 40, 33, missing=0.1)
    n_rows = 29
    band = np.asarray(ld.r2_from_sums(ld.band_sums_block(xp.asarray(g), n_rows, width, tile=tile, group=group)))
    assert band.shape == (n_rows, width)
    full = r2_oracle(g, g)
    for i in range(n_rows):
        for d in range(width):
            if i + d < 40:
                np.testing.assert_allclose(band[i, d], full[i, i + d], rtol=1e-12, atol=1e-15)
            else:
                assert np.isnan(band[i, d])


# ------------------------------------------------------------------ equal to the plain algorithm


@pytest.mark.parametrize("kwargs", [dict(window=12, step=3, r2=0.3), dict(window=7, r2=0.5),
                                    dict(window_kb=1.0, r2=0.25)])
def test_equals_reference_algorithm_and_chunking_invariant(rng, monkeypatch, kwargs):
    g = ld_alt(rng, 160, 70, missing=0.04)
    g[50] = g[49]
    g[90] = 1
    samples = rng.random(70) < 0.9
    contig = np.where(np.arange(160) < 80, "1", "2")
    pos = np.arange(160) * 100 + 1
    kb = "window_kb" in kwargs
    window = kwargs.get("window", int(kwargs.get("window_kb", 0) * 1000))
    want = prune_oracle(g[:, samples], contig, pos, window, kwargs.get("step", 1), kwargs["r2"], kb=kb)
    assert 20 < want.sum() < 150
    one = ld.ld_prune(make_dataset(g, chunks=(160, 70)), samples=samples, **kwargs)
    np.testing.assert_array_equal(one, want)
    monkeypatch.setattr(ld, "_BATCH_ROWS", 40)  # several host batches, windows across them
    monkeypatch.setattr(ld, "_TILE", {"cpu": 5, "gpu": 5})
    monkeypatch.setattr(ld, "_GROUP", {"cpu": 10, "gpu": 10})
    many = ld.ld_prune(make_dataset(g, chunks=(17, 23)), samples=samples, **kwargs)
    np.testing.assert_array_equal(many, want)


def test_compute_is_used_and_results_stay_lazy_until_then(rng):
    ds = make_dataset(ld_alt(rng, 60, 50), chunks=(20, 20))
    calls = []

    def compute(*collections):
        import dask

        calls.append(len(collections))
        return dask.compute(*collections)

    keep = ld.ld_prune(ds, window=10, r2=0.3, compute=compute)
    assert calls and keep.dtype == bool and keep.shape == (60,)


# ------------------------------------------------------------------ output and errors


def test_write_prune_lists(tmp_path, rng):
    ds = make_dataset(random_alt(rng, 6, 10), chunks=(3, 5))
    keep = np.array([True, False, True, True, False, True])
    ld.write_prune_lists(tmp_path / "sub" / "x", ds, keep)
    assert (tmp_path / "sub" / "x.prune.in").read_text() == "v0\nv2\nv3\nv5\n"
    assert (tmp_path / "sub" / "x.prune.out").read_text() == "v1\nv4\n"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.prune.in", "x.prune.out"]
    ds["variant_id"] = ("variants", np.array(["a", "b", "c", "a", "d", "e"], dtype=object))
    with pytest.raises(PopgenError, match="'a' is not unique"):
        ld.write_prune_lists(tmp_path / "y", ds, keep)
    with pytest.raises(PopgenError, match="boolean mask of shape"):
        ld.write_prune_lists(tmp_path / "y", ds, keep[:3])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=1), "window must be an integer >= 2"),
        (dict(window=2.5), "window must be an integer >= 2"),
        (dict(window_kb=0), "window_kb must be > 0"),
        (dict(window_kb=-3), "window_kb must be > 0"),
        (dict(window=10, step=0), "step must be an integer >= 1"),
        (dict(window=10, step=11), "step .11. cannot be larger than the window"),
        (dict(window_kb=10, step=5), "step must be 1 with a kb window"),
        (dict(window=10, r2=0), "r.2 threshold must be > 0 and < 1"),
        (dict(window=10, r2=1), "r.2 threshold must be > 0 and < 1"),
        (dict(window=10, r2=1.5), "r.2 threshold must be > 0 and < 1"),
        (dict(), "exactly one of window"),
        (dict(window=10, window_kb=10), "exactly one of window"),
        (dict(window=10, samples=np.ones(3, bool)), "samples must be a boolean mask"),
        (dict(window=10, samples=np.eye(1, 12, dtype=bool)[0]), "at least two samples"),
    ],
)
def test_bad_parameters(rng, kwargs, message):
    ds = make_dataset(random_alt(rng, 20, 12), chunks=(10, 6))
    with pytest.raises(PopgenError, match=message):
        ld.ld_prune(ds, **kwargs)


def test_bad_cohorts(rng):
    g = random_alt(rng, 20, 12)
    with pytest.raises(PopgenError, match="no variants"):
        ld.ld_prune(make_dataset(g, chunks=(10, 6)).isel(variants=slice(0, 0)), window=10)
    with pytest.raises(PopgenError, match="removed every variant"):
        ld.ld_prune(make_dataset(np.ones((20, 12), np.int8), chunks=(10, 6)), window=10)
    ds = make_dataset(g, chunks=(10, 6))
    ds["variant_position"] = ("variants", ds.variant_position.values[::-1].copy())
    with pytest.raises(PopgenError, match="positions are not sorted"):
        ld.ld_prune(ds, window_kb=1)
    ds = make_dataset(g, chunks=(10, 6))
    ds["variant_contig"] = ("variants", (np.arange(20) % 2).astype(np.int32))
    with pytest.raises(PopgenError, match="split into several runs"):
        ld.ld_prune(ds, window=5)


# ------------------------------------------------------------------ GPU


@pytest.mark.gpu
def test_gpu_equals_plink2(tmp_path):
    from popgen.genotypes import founder_mask
    from popgen.io.plink import read_plink

    ds = read_plink(EXAMPLE, chunks=(2000, 256), device="gpu")
    keep = ld.ld_prune(ds, window=50, step=5, r2=0.2, samples=founder_mask(ds))
    ld.write_prune_lists(tmp_path / "g", ds, keep)
    assert (tmp_path / "g.prune.in").read_bytes() == (REF / "example.ld_50_5_0.2.prune.in").read_bytes()


@pytest.mark.parametrize(
    "args, ref",
    [
        (["50", "5", "0.2"], "example.ld_50_5_0.2"),
        (["200kb", "1", "0.5"], "example.ld_200kb_1_0.5"),
        (["50", "5", "0.2", "--nonfounders"], "example.nonfounders.ld_50_5_0.2"),
    ],
)
def test_cli_ld_prune_equals_plink2(tmp_path, args, ref):
    from conftest import DATA, EXAMPLE
    from popgen.cli import main

    out = tmp_path / "o"
    extra = args[3:]
    assert main(["ld-prune", "--bfile", str(EXAMPLE), "--indep-pairwise", *args[:3], *extra, "--out", str(out),
                 "--cluster", "none", "--device", "cpu"]) == 0
    assert (tmp_path / "o.prune.in").read_bytes() == (DATA / "plink2" / f"{ref}.prune.in").read_bytes()
    n_in = len((tmp_path / "o.prune.in").read_text().split())
    n_out = len((tmp_path / "o.prune.out").read_text().split())
    assert n_in + n_out == 5000


@pytest.mark.parametrize("name, args", [("ld_50_5_0.2", ["50", "5", "0.2"]), ("ld_20kb_1_0.5", ["20kb", "1", "0.5"])])
def test_sex_chromosomes_equal_plink2(tmp_path, name, args):
    """chrX (a male's call once, others twice, male heterozygotes missing; tie-break frequencies
    with a male's call one allele), chrY (males), MT (haploid) and XY, with LD blocks on each:
    byte-identical .prune.in, and different from pruning them as autosomes."""
    from popgen.cli import main
    from popgen.io.plink import read_plink

    ldsex = DATA / "sexchrom" / "ldsex"
    out = tmp_path / "l"
    assert main(["ld-prune", "--bfile", str(ldsex), "--indep-pairwise", *args, "--out", str(out), "--cluster",
                 "none", "--device", "cpu", "--chunk-variants", "48"]) == 0
    assert out.with_suffix(".prune.in").read_bytes() == (REF / f"ldsex.{name}.prune.in").read_bytes()
    kept = out.with_suffix(".prune.in").read_text().split()
    assert {k.split(":")[0] for k in kept} == {"1", "X", "XY", "Y", "MT"} and len(kept) < 360
    # the rule matters: as diploid autosomes, chrX and MT would prune differently
    ds = read_plink(ldsex)
    as_autosomes = ds.assign(contig_id=("contigs", np.array(["1", "23x", "XY", "24y", "26m"], dtype=object)))
    plain = ld.ld_prune(as_autosomes, window=50, step=5, r2=0.2)
    assert (plain != ld.ld_prune(ds, window=50, step=5, r2=0.2)).any()
