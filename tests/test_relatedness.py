"""Relatedness: KING-robust table, GRM and unrelated sets against PLINK 2, the
popcount kernel against a NumPy oracle, tile functions on backends, bad input.

References: tests/data/plink2/example.king.kin0.gz and example.king_*.king.cutoff.*.id
(tests/data/make_reference.sh); the GRM is compared with plink2 run at test time.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, EXAMPLE, make_dataset, random_alt
from popgen import relatedness as R
from popgen.errors import PopgenError
from popgen.genotypes import alt_allele_count, founder_mask
from popgen.io.plink import read_plink
from popgen.kernels.king import pack_king_planes

REF = DATA / "plink2"
TILE = 256  # 3 tiles of the 600 samples; variant chunks of 1300: 4 chunks


# ------------------------------------------------------------------ oracles

def king_oracle(g_i, g_j=None):
    """NSNP, HETHET, IBS0, HET1, HET2 of every pair, plain NumPy (float64 BLAS: exact counts), int64."""
    g_j = g_i if g_j is None else g_j
    ind = lambda g: [(g >= 0), (g == 1), (g == 0), (g == 2)]  # noqa: E731
    oi, hi, ri, ai = (x.astype(np.float64) for x in ind(g_i))
    oj, hj, rj, aj = (x.astype(np.float64) for x in ind(g_j))
    return np.stack([oi.T @ oj, hi.T @ hj, ri.T @ aj + ai.T @ rj, hi.T @ oj, oi.T @ hj]).astype(np.int64)


def plink2_nsnp_excess(g):
    """PLINK 2's NSNP over-count: pairs (rare homozygote, missing) on its 'sparse' variants
    (at most N/33 samples off the commonest homozygote, AVX2 build)."""
    n = g.shape[1]
    common = n - n // 33
    hom_ref_common = ((g == 0).sum(1) >= common)[:, None]
    hom_alt_common = ((g == 2).sum(1) >= common)[:, None] & ~hom_ref_common
    rare_hom = np.where(hom_ref_common, g == 2, np.where(hom_alt_common, g == 0, False)).astype(np.float64)
    x = (rare_hom.T @ (g < 0).astype(np.float64)).astype(np.int64)
    return x + x.T


def kinship_oracle(c):
    """KING-robust between-family estimator from oracle counts (float64)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 - (4 * c[2] + c[3] + c[4] - 2 * c[1]) / (4 * np.minimum(c[3], c[4]))


def require_plink2():
    if not shutil.which("plink2"):
        pytest.fail("plink2 is required for the cross-checks (apt-get install plink2)")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def example():
    return read_plink(EXAMPLE, chunks=(1300, TILE))  # >= 2 chunks on both axes


@pytest.fixture(scope="module")
def genotypes(example):
    g = np.asarray(alt_allele_count(example).compute())
    assert 0.005 < (g < 0).mean() < 0.02  # missing calls present (~1%)
    return g


@pytest.fixture(scope="module")
def oracle(genotypes):
    return king_oracle(genotypes)


@pytest.fixture(scope="module")
def table(example, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("king") / "example"
    info = R.write_king_table(prefix, example, king_table_filter=0.02, degree_column=True, tile=TILE)
    return info, pd.read_csv(info["path"], sep="\t", keep_default_na=False)


@pytest.fixture(scope="module")
def plink2_table():
    return pd.read_csv(REF / "example.king.kin0.gz", sep="\t")


# ------------------------------------------------------------------ KING vs PLINK 2

def test_king_table_equals_plink2(table, plink2_table, example, genotypes, oracle):
    info, ours = table
    ref = plink2_table
    assert list(ours.columns) == list(ref.columns) + ["DEGREE"]  # PLINK 2's columns first
    assert info["n_pairs"] == len(ref) and info["n_filtered"] == 600 * 599 // 2 - len(ref)
    # same pairs in the same order (PLINK 2's lower triangle: ID1 after ID2 in sample order)
    for col in ("#FID1", "IID1", "FID2", "IID2"):
        np.testing.assert_array_equal(ours[col].to_numpy(), ref[col].to_numpy())
    np.testing.assert_allclose(ours["KINSHIP"], ref["KINSHIP"], rtol=0, atol=1e-6)
    pos = {s: i for i, s in enumerate(example["sample_id"].values.tolist())}
    i1, i2 = ref["IID1"].map(pos).to_numpy(), ref["IID2"].map(pos).to_numpy()
    assert (i1 > i2).all()
    # counts: HETHET and IBS0 exactly (PLINK 2 prints them as proportions of its NSNP) ...
    for col, k in (("HETHET", 1), ("IBS0", 2)):
        np.testing.assert_array_equal(np.rint(ref[col] * ref["NSNP"]), oracle[k][i1, i2])
        np.testing.assert_array_equal(np.rint(ours[col] * ours["NSNP"]), oracle[k][i1, i2])
    # ... NSNP is the number of variants called in both, which PLINK 2 over-counts by its
    # sparse-variant bookkeeping (see popgen.relatedness): exactly that excess, nothing else
    np.testing.assert_array_equal(ours["NSNP"], oracle[0][i1, i2])
    excess = plink2_nsnp_excess(genotypes)[i1, i2]
    np.testing.assert_array_equal(ref["NSNP"], ours["NSNP"] + excess)
    same = excess == 0
    assert same.mean() > 0.98
    for col in ("HETHET", "IBS0"):
        np.testing.assert_array_equal(ours[col][same], ref[col][same])  # same text where NSNP agrees


def test_kinship_text_equals_plink2(table):
    """KINSHIP printed as PLINK 2 prints it (6 digits, near-ties to even): byte-identical."""
    info, _ = table
    ours = [line.split("\t")[7] for line in open(info["path"]).read().splitlines()]
    import gzip

    ref = [line.split("\t")[7] for line in gzip.open(REF / "example.king.kin0.gz", "rt").read().splitlines()]
    assert ours == ref


def test_unfiltered_table_order_and_counts(rng, tmp_path):
    g = random_alt(rng, 150, 23, missing=0.05)
    ds = make_dataset(g, chunks=(40, 6))  # 4 variant chunks, 4 tiles of 6 samples
    panels = list(R.iter_king_pairs(ds, tile=6))
    assert len(panels) == 4
    pairs = R.KingPairs.concat(panels)
    rows, cols = np.array([(i, j) for i in range(23) for j in range(i)]).T
    np.testing.assert_array_equal(pairs.idx1, rows)  # PLINK 2's order: by ID1, then ID2
    np.testing.assert_array_equal(pairs.idx2, cols)
    c = king_oracle(g)
    np.testing.assert_array_equal(pairs.counts, c[:, rows, cols].T)
    np.testing.assert_array_equal(pairs.kinship, kinship_oracle(c)[rows, cols])
    info = R.write_king_table(tmp_path / "t", ds, tile=6)
    lines = open(info["path"]).read().splitlines()
    assert lines[0] == "#IID1\tIID2\tNSNP\tHETHET\tIBS0\tKINSHIP"  # no family IDs: as PLINK 2 on VCF input
    assert len(lines) == 1 + 23 * 22 // 2 and lines[1].startswith("s1\ts0\t")


def test_king_counts_equal_oracle(example, oracle):
    for method in ("popcount", "gemm"):
        counts = R.king_counts(example, tile=TILE, method=method)
        assert counts.chunks[1] == (256, 256, 88) and counts.dtype == np.int32  # lazy, tiled
        np.testing.assert_array_equal(counts.compute(), oracle)


def test_king_filter_keeps_not_below_threshold(rng):
    """--king-table-filter T keeps KINSHIP >= T; a sample without heterozygous calls gives -inf."""
    g = random_alt(rng, 80, 9, missing=0.0)
    g[:, 0] = np.where(g[:, 0] == 1, 2, g[:, 0])  # sample 0: no heterozygous call
    ds = make_dataset(g, chunks=(30, 4))
    every = R.KingPairs.concat(R.iter_king_pairs(ds, tile=4))
    assert np.isneginf(every.kinship[every.idx2 == 0]).all()
    t = float(np.sort(every.kinship[np.isfinite(every.kinship)])[10])
    kept = R.KingPairs.concat(R.iter_king_pairs(ds, min_kinship=t, tile=4))
    np.testing.assert_array_equal(kept.kinship, every.kinship[every.kinship >= t])
    assert (kept.kinship == t).any()
    assert R.fmt_plink2([-np.inf, np.nan]) == ["-inf", "nan"]


def test_fmt_plink2_rounds_near_ties_to_even():
    assert R.fmt_plink2([0.028906250000000022, 0.0289063, 2.5e-7, 123456.5, 123457.5, -0.0885]) == [
        "0.0289062", "0.0289063", "2.5e-07", "123456", "123458", "-0.0885"]


# ------------------------------------------------------------------ degrees

def test_degree_thresholds():
    k = [0.5, 0.3541, 0.354, 0.2, 0.177, 0.1, 0.0884, 0.05, 0.0442, 0.0, -0.3, np.nan]
    np.testing.assert_array_equal(R.degree(k), [0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1])


def test_planted_relatives_found_at_their_degree(table, example):
    _, ours = table
    truth = json.loads((EXAMPLE.parent / "example.truth.json").read_text())["relatives"]
    by_pair = {frozenset(p): (k, d) for p, k, d in
               zip(zip(ours["IID1"], ours["IID2"]), ours["KINSHIP"], ours["DEGREE"])}
    seen = set()
    for rel in truth:
        kinship, deg = by_pair[frozenset((rel["iid1"], rel["iid2"]))]
        assert deg == str(rel["degree"]), (rel, kinship)
        assert R.degree(kinship) == rel["degree"]
        seen.add(rel["relationship"])
    assert {"duplicate", "parent-offspring", "full-sibling", "half-sibling"} <= seen
    assert set(ours["DEGREE"]) <= {"0", "1", "2", "3", "NA"}


# ------------------------------------------------------------------ unrelated set

@pytest.mark.parametrize("threshold", [0.0884, 0.177])
def test_king_cutoff_vs_plink2(example, oracle, threshold, tmp_path):
    pairs = R.related_pairs(example, threshold, tile=TILE)
    assert (pairs.kinship > threshold).all()
    kin = kinship_oracle(oracle)
    lower = np.tril(np.ones_like(kin, dtype=bool), -1)
    assert len(pairs) == int((kin[lower] > threshold).sum())
    keep = R.king_cutoff(pairs, 600, threshold)
    assert not (kin[np.ix_(keep, keep)][lower[np.ix_(keep, keep)]] > threshold).any()
    name = f"example.king_{threshold}.king.cutoff"
    ref_in = pd.read_csv(REF / f"{name}.in.id", sep="\t")
    ref_out = pd.read_csv(REF / f"{name}.out.id", sep="\t")
    assert keep.sum() >= len(ref_in)
    # PLINK 2's greedy, reproduced exactly
    greedy = R.plink2_king_cutoff(pairs, 600, threshold)
    ids = example["sample_id"].values
    np.testing.assert_array_equal(ids[~greedy], ref_out["IID"].to_numpy())
    paths = R.write_king_cutoff(tmp_path / "o", example, keep)
    got_in = pd.read_csv(paths[0], sep="\t")
    assert list(got_in.columns) == ["#FID", "IID"] == list(ref_in.columns)
    assert len(got_in) + len(pd.read_csv(paths[1], sep="\t")) == 600


def test_king_cutoff_beats_plink2_greedy():
    # a hub joined to one corner of each of 5 triangles: PLINK 2 removes the hub (maximum
    # degree) and keeps 5; the hub and a far corner of every triangle make 6
    edges = []
    for t in range(5):
        a, b, c = 1 + 3 * t, 2 + 3 * t, 3 + 3 * t
        edges += [(0, a), (a, b), (a, c), (b, c)]
    i, j = np.array(edges).T
    pairs = (np.maximum(i, j), np.minimum(i, j), np.full(len(i), 0.25))
    assert R.plink2_king_cutoff(pairs, 16, 0.177).sum() == 5
    keep = R.king_cutoff(pairs, 16, 0.177)
    assert keep.sum() == 6 and keep[0]
    # a random graph too large for the exact solver: local search, never worse, reproducible
    rng = np.random.default_rng(5)
    n = 300
    i, j = rng.integers(0, n, 1200), rng.integers(0, n, 1200)
    pairs = (np.maximum(i, j), np.minimum(i, j), np.full(1200, 0.3))
    keep = R.king_cutoff(pairs, n, 0.177, seed=1)
    adj = np.zeros((n, n), bool)
    adj[i, j] = adj[j, i] = i != j
    assert not adj[np.ix_(keep, keep)].any()
    assert keep.sum() > R.plink2_king_cutoff(pairs, n, 0.177).sum()
    np.testing.assert_array_equal(R.king_cutoff(pairs, n, 0.177, seed=1), keep)


# ------------------------------------------------------------------ GRM vs PLINK 2

def test_grm_equals_plink2(example, tmp_path):
    require_plink2()
    for args, out in ((["triangle", "bin"], "tb"), (["square"], "sq")):
        subprocess.run(["plink2", "--silent", "--threads", "2", "--bfile", str(EXAMPLE), "--make-rel", *args,
                        "--out", str(tmp_path / out)], check=True)
    K = R.grm(example, samples=founder_mask(example), tile=TILE)
    assert K.chunks[0] == (256, 256, 88)
    K = K.persist()  # written twice below
    R.write_grm(tmp_path / "ours_tb", example, K, shape="triangle", binary=True)
    ref = np.fromfile(tmp_path / "tb.rel.bin", dtype=np.float64)
    ours = np.fromfile(tmp_path / "ours_tb.rel.bin", dtype=np.float64)
    assert ours.shape == ref.shape == (600 * 601 // 2,)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)  # float32 products, float64 sums (default)
    K64 = R.grm(example, samples=founder_mask(example), tile=TILE, dtype="float64")
    R.write_grm(tmp_path / "ours64", example, K64, shape="triangle", binary=True)
    ours64 = np.fromfile(tmp_path / "ours64.rel.bin", dtype=np.float64)
    assert np.abs(ours64 - ref).max() < 1e-10  # float64 products: equal to rounding
    R.write_grm(tmp_path / "ours_sq", example, K, shape="square")
    a = [line.split("\t") for line in open(tmp_path / "ours_sq.rel").read().splitlines()]
    b = [line.split("\t") for line in open(tmp_path / "sq.rel").read().splitlines()]
    assert [len(r) for r in a] == [len(r) for r in b] == [600] * 600
    np.testing.assert_allclose(np.array(a, float), np.array(b, float), rtol=1e-5, atol=1e-6)
    assert open(tmp_path / "ours_sq.rel.id").read() == open(tmp_path / "sq.rel.id").read()  # #FID IID


def test_grm_shapes_and_precision(rng, tmp_path):
    g = random_alt(rng, 120, 13, missing=0.05)
    ds = make_dataset(g, chunks=(50, 5))
    K = R.grm(ds, tile=5, dtype="float64")
    full = K.compute()
    # oracle: standardized with all samples' frequencies, pairwise-complete
    called = g >= 0
    p = np.where(called, g, 0).sum(1) / (2 * called.sum(1))
    sd = np.sqrt(2 * p * (1 - p))
    x = np.where(called & (sd > 0)[:, None], (g - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)
    np.testing.assert_allclose(full, (x.T @ x) / (called.T.astype(float) @ called), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(R.grm(ds, tile=5, dtype="float32").compute(), full, atol=1e-5)
    R.write_grm(tmp_path / "s0", ds, K, shape="square0", binary="bin4")
    s0 = np.fromfile(tmp_path / "s0.rel.bin", dtype=np.float32).reshape(13, 13)
    np.testing.assert_allclose(s0, np.tril(full), rtol=1e-6)
    R.write_grm(tmp_path / "t", ds, K, shape="triangle")
    rows = open(tmp_path / "t.rel").read().splitlines()
    assert [len(r.split("\t")) for r in rows] == list(range(1, 14))
    assert open(tmp_path / "t.rel.id").read().splitlines()[0] == "#IID"


# ------------------------------------------------------------------ kernels and backends

@pytest.mark.parametrize("n_variants", [1, 63, 64, 65, 130])
def test_popcount_cpu_twin_matches_oracle(rng, n_variants):
    from popgen import kernels

    g = random_alt(rng, n_variants, 21, missing=0.1)
    planes = pack_king_planes(g)
    assert planes.shape == (21, 4, -(-n_variants // 64)) and planes.dtype == np.uint64
    got = kernels.get("king_counts")(planes[:17], planes[5:])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, king_oracle(g[:, :17], g[:, 5:]))


def test_pack_planes_bits(rng):
    g = random_alt(rng, 70, 3, missing=0.2)
    planes = pack_king_planes(g)
    bits = ((planes[:, :, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).reshape(3, 4, -1)[:, :, :70]
    for k, plane in enumerate((g >= 0, g == 1, g == 0, g == 2)):
        np.testing.assert_array_equal(bits[:, k, :].T.astype(bool), plane)


def std_oracle(g, p):
    """Standardized genotypes (variants, samples), 0 where missing or monomorphic, float64."""
    sd = np.sqrt(2 * p * (1 - p))
    ok = (g >= 0) & (sd > 0)[:, None]
    return np.where(ok, (g - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)


@pytest.mark.parametrize("n_variants", [1, 64, 200])
def test_standardize_planes_cpu_twin_matches_oracle(rng, n_variants):
    from popgen import kernels

    g = random_alt(rng, n_variants, 9, missing=0.15)
    g[0] = 2  # a monomorphic variant: zeros
    p = np.where(g >= 0, g, 0).sum(1) / (2 * (g >= 0).sum(1))
    planes = R.genotype_codes(pack_king_planes(g))
    assert planes.shape == (9, 2, -(-n_variants // 64))
    n_words = planes.shape[2]
    table = np.zeros((64 * n_words, 4))
    table[:n_variants] = R._standardize_table(p)
    x = table[np.arange(n_variants)[:, None], np.where(g < 0, 3, g)]  # the contract: one lookup per call
    np.testing.assert_allclose(x, std_oracle(g, p), rtol=1e-14, atol=1e-14)
    std = kernels.get("standardize_planes")
    for w0, w1 in ((0, n_words), (n_words - 1, n_words)):
        got = std(planes, w0, w1, table)
        want = np.zeros((9, 64 * (w1 - w0)))
        part = x[64 * w0:64 * w1].T
        want[:, :part.shape[1]] = part
        np.testing.assert_array_equal(got, want)
        out = np.full((9, 64 * (w1 - w0)), np.nan, dtype=np.float32)  # in place, float32 table
        assert std(planes, w0, w1, table.astype(np.float32), out=out) is out
        np.testing.assert_array_equal(out, want.astype(np.float32))
    with pytest.raises(ValueError, match="out"):
        std(planes, 0, n_words, table, out=np.empty((9, 1)))


@pytest.mark.parametrize("missing", [0.02, 0.6])  # sparse missing calls; dense (called-call GEMMs)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grm_block_cpu_matches_oracle(rng, missing, dtype):
    g = random_alt(rng, 300, 40, missing=missing)  # 5 words: steps of 2 words leave a partial one
    p = np.where(g >= 0, g, 0).sum(1) / (2 * (g >= 0).sum(1))
    planes = R.genotype_codes(pack_king_planes(g))
    n_words = planes.shape[2]
    table = np.zeros((64 * n_words, 4), dtype=dtype)
    table[:300] = R._standardize_table(p)
    valid = np.packbits(np.arange(64 * n_words) < 300, bitorder="little").view(np.uint64)
    x, o = std_oracle(g, p), (g >= 0).astype(np.float64)
    want = (x.T @ x) / (o.T @ o)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    off = R.grm_block(planes[:15], planes[15:], table, valid, step=2)
    np.testing.assert_allclose(off, want[:15, 15:], rtol=tol, atol=tol)
    diag = R.grm_block(planes[15:], planes[15:], table, valid, diagonal=True, step=2)
    np.testing.assert_allclose(diag, want[15:, 15:], rtol=tol, atol=tol)
    np.testing.assert_array_equal(diag, diag.T)  # mirrored from one SYRK triangle


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_tile_functions_on_backends(rng, backend_name):
    xp = np if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    g = random_alt(rng, 30, 11, missing=0.1)
    gi, gj = xp.asarray(g[:, :6]), xp.asarray(g[:, 6:])
    c = np.asarray(R.king_gemm_tile(gi, gj, rows=7))[0]  # several products per chunk
    np.testing.assert_array_equal(c, king_oracle(g[:, :6], g[:, 6:]))
    pairs = R.tile_pairs(xp.asarray(king_oracle(g)), 0, 0, min_kinship=-0.2)
    full = king_oracle(g)
    kin = kinship_oracle(full)
    rows, cols = np.tril_indices(11, -1)
    keep = ~(kin[rows, cols] < -0.2)
    np.testing.assert_array_equal(pairs.idx1, rows[keep])
    np.testing.assert_array_equal(pairs.idx2, cols[keep])
    np.testing.assert_array_equal(pairs.counts, full[:, rows[keep], cols[keep]].T)
    np.testing.assert_array_equal(pairs.kinship, kin[rows[keep], cols[keep]])
    p = np.clip(np.where(g >= 0, g, 0).sum(1) / (2 * (g >= 0).sum(1)), 0.0, 1.0)
    t = np.asarray(R.grm_tile(gi, gj, xp.asarray(p), rows=7))[0]
    sd = np.sqrt(2 * p * (1 - p))
    x = np.where((g >= 0) & (sd > 0)[:, None], (g - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)
    np.testing.assert_allclose(t[0], x[:, :6].T @ x[:, 6:], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(t[1], (g[:, :6] >= 0).T.astype(int) @ (g[:, 6:] >= 0))


def test_autosomes_only(rng):
    g = random_alt(rng, 60, 10, missing=0.05)
    ds = make_dataset(g, chunks=(25, 5))
    contigs = np.array(["1", "chrX"], dtype=object)
    ds["contig_id"] = ("contigs", contigs)  # variants 30.. are on chrX: excluded, as by PLINK 2
    assert R.autosomal_variants(ds).sum() == 30
    np.testing.assert_array_equal(R.king_counts(ds, tile=5).compute(), king_oracle(g[:30]))
    auto = make_dataset(g[:30], chunks=(25, 5))
    np.testing.assert_allclose(R.grm(ds, tile=5).compute(), R.grm(auto, tile=5).compute())
    ds["contig_id"] = ("contigs", np.array(["X", "MT"], dtype=object))
    with pytest.raises(PopgenError, match="no autosomal variants"):
        R.king_counts(ds)


# ------------------------------------------------------------------ bad input

def test_bad_input(rng, tmp_path):
    one = make_dataset(random_alt(rng, 20, 1), chunks=(10, 1))
    for call in (lambda: R.king_counts(one), lambda: R.grm(one), lambda: R.write_king_table(tmp_path / "o", one),
                 lambda: R.king_cutoff(([], [], []), 1, 0.1)):
        with pytest.raises(PopgenError, match="needs at least 2 samples; the cohort has 1"):
            call()
    for t in (0.5, -0.01, float("nan"), 1.0):
        with pytest.raises(PopgenError, match=r"threshold must be in \[0, 0.5\)"):
            R.king_cutoff(([1], [0], [0.3]), 2, t)
    ds = make_dataset(random_alt(rng, 20, 6), chunks=(10, 3))
    with pytest.raises(PopgenError, match=r"threshold must be in \[0, 0.5\), got 0.6"):
        R.related_pairs(ds, 0.6)  # before any computation
    for t in (0.6, float("inf"), float("nan")):
        with pytest.raises(PopgenError, match="king-table-filter must be a number <= 0.5"):
            R.write_king_table(tmp_path / "o", ds, king_table_filter=t)
    with pytest.raises(PopgenError, match="unknown KING method"):
        R.king_counts(ds, method="bits")
    with pytest.raises(PopgenError, match="unknown GRM shape"):
        R.write_grm(tmp_path / "o", ds, R.grm(ds), shape="diamond")
    with pytest.raises(PopgenError, match="monomorphic"):
        R.grm(make_dataset(np.zeros((20, 6), np.int8), chunks=(10, 3)))
    with pytest.raises(PopgenError, match="tile size must be at least 1"):
        R.king_counts(ds, tile=0)
    try:
        R.king_cutoff(([1], [0], [0.3]), 2, 0.7)
    except PopgenError as e:
        assert "\n" not in str(e)  # one line, for the CLI


# ------------------------------------------------------------------ GPU

@pytest.mark.gpu
def test_gpu_equals_cpu(example, oracle, rng):
    import cupy

    from popgen import kernels

    gpu = read_plink(EXAMPLE, chunks=(1300, TILE), device="gpu")
    for method in ("gemm", "popcount"):
        counts = R.king_counts(gpu, tile=TILE, method=method).compute()
        assert isinstance(counts, cupy.ndarray)
        np.testing.assert_array_equal(counts.get(), oracle)
    cpu_pairs = R.KingPairs.concat(R.iter_king_pairs(example, min_kinship=0.02, tile=TILE))
    gpu_pairs = R.KingPairs.concat(R.iter_king_pairs(gpu, min_kinship=0.02, tile=TILE))
    for field in ("idx1", "idx2", "counts", "kinship"):
        np.testing.assert_array_equal(getattr(gpu_pairs, field), getattr(cpu_pairs, field))
    k_gpu = R.grm(gpu, samples=founder_mask(gpu), tile=TILE).compute()
    assert isinstance(k_gpu, cupy.ndarray)
    k_cpu = R.grm(example, samples=founder_mask(example), tile=TILE).compute()
    # float32 products of 1024 variants (cuBLAS GEMMs; OpenBLAS GEMM/SYRK on the CPU), float64 sums
    np.testing.assert_allclose(k_gpu.get(), k_cpu, rtol=0, atol=1e-6)
    g = random_alt(rng, 1000, 70, missing=0.05)
    planes = pack_king_planes(g)
    gpu_planes = pack_king_planes(cupy.asarray(g))
    np.testing.assert_array_equal(gpu_planes.get(), planes)
    k = kernels.get("king_counts")
    np.testing.assert_array_equal(k(gpu_planes[:33], gpu_planes[20:]).get(), k(planes[:33], planes[20:]))
    codes, gpu_codes = R.genotype_codes(planes), R.genotype_codes(gpu_planes)
    np.testing.assert_array_equal(gpu_codes.get(), codes)
    table = rng.standard_normal((64 * codes.shape[2], 4)).astype(np.float32)
    std = kernels.get("standardize_planes")
    np.testing.assert_array_equal(std(gpu_codes, 3, 16, cupy.asarray(table)).get(), std(codes, 3, 16, table))


def test_cli_king_and_grm(tmp_path):
    from conftest import DATA, EXAMPLE
    from popgen.cli import main

    out = tmp_path / "k"
    assert main(["king", "--bfile", str(EXAMPLE), "--out", str(out), "--king-table-filter", "0.0884",
                 "--king-cutoff", "0.0884", "--cluster", "none", "--device", "cpu"]) == 0
    kin = (tmp_path / "k.kin0").read_text().splitlines()
    assert kin[0].split("\t") == ["#FID1", "IID1", "FID2", "IID2", "NSNP", "HETHET", "IBS0", "KINSHIP", "DEGREE"]
    assert all(float(line.split("\t")[7]) >= 0.0884 for line in kin[1:])
    kept = (tmp_path / "k.king.cutoff.in.id").read_text().splitlines()[1:]
    ref = (DATA / "plink2" / "example.king_0.0884.king.cutoff.in.id").read_text().splitlines()[1:]
    assert len(kept) >= len(ref)
    assert main(["grm", "--bfile", str(EXAMPLE), "--out", str(tmp_path / "g"), "--bin", "--cluster", "none",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "g.rel.bin").stat().st_size == 600 * 600 * 8
    assert main(["grm", "--bfile", str(EXAMPLE), "--out", str(tmp_path / "t"), "--shape", "triangle",
                 "--cluster", "none", "--device", "cpu"]) == 0  # text, without --bin
    assert [len(r.split("\t")) for r in (tmp_path / "t.rel").read_text().splitlines()] == list(range(1, 601))
    assert main(["grm", "--bfile", str(EXAMPLE), "--out", str(tmp_path / "z"), "--zarr", "--cluster", "none",
                 "--device", "cpu"]) == 0
    assert not (tmp_path / "z.rel").exists() and (tmp_path / "z.rel.id").is_file()
    import zarr

    store = zarr.open_group(str(tmp_path / "z.rel.zarr"), mode="r")
    square = np.fromfile(tmp_path / "g.rel.bin", dtype="<f8").reshape(600, 600)
    np.testing.assert_array_equal(store["rel"][:], square)
    ids = (tmp_path / "z.rel.id").read_text().splitlines()[1:]
    assert store["sample_id"][:].tolist() == [line.split("\t")[-1] for line in ids]


def test_grm_zarr_store_tiles(rng, tmp_path):
    g = random_alt(rng, 200, 23, missing=0.1)
    ds = make_dataset(g, chunks=(64, 7))
    K = R.grm(ds, tile=5)  # 5 tiles on each axis, the last partial
    paths = R.write_grm_zarr(tmp_path / "s", ds, K)
    assert paths == [f"{tmp_path / 's'}.rel.zarr", f"{tmp_path / 's'}.rel.id"]
    import zarr

    rel = zarr.open_group(paths[0], mode="r")["rel"]
    assert rel.chunks == (5, 5) and rel.shape == (23, 23)
    np.testing.assert_array_equal(rel[:], K.compute())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.rel.id", "s.rel.zarr"]  # temporary store renamed


def test_text_formatter_equals_fmt_plink2(rng):
    from popgen._text import fmt_g

    x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-9, 9, 20000),
                        np.round(rng.random(5000), 7), rng.integers(0, 1000, 5000) / rng.integers(1, 10**5, 5000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-5, 1e-4, 123456.5, 123457.5, 999999.6,
                         0.028906250000000022, 0.0999999999, 1e100, -1e-100, 0.5, 1e6, 999999.5]])
    assert fmt_g(x) == R.fmt_plink2(x)


def test_autosomes_as_plink2(tmp_path):
    """PLINK 2 leaves X, Y and MT variants out of --make-king-table and --make-rel, but keeps the
    pseudo-autosomal XY: so does popgen (100 variants of each moved to those contigs)."""
    require_plink2()
    src = read_plink(EXAMPLE)
    bim = (EXAMPLE.parent / "example.bim").read_text().splitlines()
    n = len(bim)
    contigs = ["X", "Y", "XY", "MT"]
    out = tmp_path / "mixed"
    shutil.copy(f"{EXAMPLE}.bed", f"{out}.bed")
    shutil.copy(f"{EXAMPLE}.fam", f"{out}.fam")
    lines = []
    for k, line in enumerate(bim):  # the last 400 variants moved to non-autosomes
        f = line.split("\t")
        if k >= n - 400:
            f[0] = contigs[(k - (n - 400)) // 100]
        lines.append("\t".join(f))
    (tmp_path / "mixed.bim").write_text("\n".join(lines) + "\n")
    subprocess.run(["plink2", "--silent", "--threads", "2", "--bfile", str(out), "--make-king-table",
                    "--king-table-filter", "0.05", "--make-rel", "triangle", "bin", "--out", str(out)], check=True)
    mixed = read_plink(out, chunks=(1300, TILE))
    assert R.autosomal_variants(mixed).sum() == n - 300 and src.sizes["samples"] == 600
    R.write_king_table(tmp_path / "ours", mixed, king_table_filter=0.05, tile=TILE)
    ours = pd.read_csv(tmp_path / "ours.kin0", sep="\t")
    ref = pd.read_csv(f"{out}.kin0", sep="\t")
    assert len(ours) == len(ref) > 0
    np.testing.assert_array_equal(ours["IID1"], ref["IID1"])
    np.testing.assert_allclose(ours["KINSHIP"], ref["KINSHIP"], atol=1e-6)
    R.write_grm(tmp_path / "ours", mixed, R.grm(mixed, samples=founder_mask(mixed), tile=TILE), shape="triangle",
                binary=True)
    np.testing.assert_allclose(np.fromfile(tmp_path / "ours.rel.bin"), np.fromfile(f"{out}.rel.bin"), atol=1e-6)
