"""PCA: PLINK 2 cross-checks, randomized vs exact, projection, chunking, backends, bad input.

References: tests/data/plink2/example.pca*.eigen{vec,val} (tests/data/make_reference.sh).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, EXAMPLE, make_dataset, random_alt
from popgen import pca
from popgen.cli import main
from popgen.errors import PopgenError
from popgen.genotypes import alt_allele_count, founder_mask
from popgen.io.plink import read_plink

REF = DATA / "plink2"


def plink_pcs(name):
    vec = pd.read_csv(REF / f"{name}.eigenvec", sep="\t").iloc[:, 2:].to_numpy()
    return vec, np.loadtxt(REF / f"{name}.eigenval")


def abs_corr(a, b):
    return np.array([abs(np.corrcoef(a[:, k], b[:, k])[0, 1]) for k in range(a.shape[1])])


@pytest.fixture(scope="module")
def example():
    return read_plink(EXAMPLE, chunks=(1300, 256))  # >= 2 chunks on both axes


@pytest.fixture(scope="module")
def exact(example):
    return pca.pca(example, n_components=10, samples=founder_mask(example))


@pytest.fixture(scope="module")
def exact_mi(example):
    return pca.pca(example, n_components=10, missing="meanimpute", samples=founder_mask(example))


def test_exact_equals_plink2(exact):
    vec, val = plink_pcs("example.pca")
    assert (abs_corr(exact.eigenvectors, vec) >= 0.999).all()
    np.testing.assert_allclose(exact.eigenvalues, val, rtol=1e-4)
    np.testing.assert_allclose((exact.eigenvectors ** 2).sum(0), 1.0, rtol=1e-10)


def test_exact_meanimpute_equals_plink2(exact_mi):
    vec, val = plink_pcs("example.pca.meanimpute")
    assert (abs_corr(exact_mi.eigenvectors, vec) >= 0.999).all()
    np.testing.assert_allclose(exact_mi.eigenvalues, val, rtol=1e-4)


def test_randomized_matches_exact(example, exact_mi):
    r = pca.pca(example, n_components=10, solver="randomized", samples=founder_mask(example), seed=7)
    # both mean-impute (PLINK 2's approx does too)
    np.testing.assert_allclose(r.eigenvalues, exact_mi.eigenvalues, rtol=1e-3)
    assert (abs_corr(r.eigenvectors, exact_mi.eigenvectors) >= 0.999).all()
    again = pca.pca(example, n_components=10, solver="randomized", samples=founder_mask(example), seed=7)
    np.testing.assert_array_equal(again.eigenvectors, r.eigenvectors)  # seeded: deterministic


def test_randomized_loadings_project_samples_onto_their_pcs(example):
    r = pca.pca(example, n_components=4, solver="randomized", seed=3)
    # L = X V: the loadings project the samples back onto their PCs (X'L = M lambda V)
    x = pca.standardize_block(np.asarray(alt_allele_count(example)), r.alt_freq).astype(np.float64)
    np.testing.assert_allclose(x.T @ r.loadings / (r.n_variants * r.eigenvalues), r.eigenvectors, atol=2e-3)
    np.testing.assert_allclose(r.loadings, x @ r.eigenvectors, rtol=1e-4, atol=1e-4 * np.abs(r.loadings).max())


def test_deterministic_signs(exact):
    idx = np.argmax(np.abs(exact.eigenvectors), axis=0)
    assert (exact.eigenvectors[idx, np.arange(10)] > 0).all()


def test_allele_weights_equal_plink2(tmp_path, exact):
    if not shutil.which("plink2"):
        pytest.fail("plink2 is required for the cross-checks (apt-get install plink2)")
    subprocess.run(["plink2", "--silent", "--threads", "2", "--bfile", str(EXAMPLE), "--pca", "10", "allele-wts",
                    "--out", str(tmp_path / "p")], check=True)
    ref = pd.read_csv(tmp_path / "p.eigenvec.allele", sep="\t")
    alt = ref[ref["A1"] == ref["ALT"]].iloc[:, 5:].to_numpy()
    vec = pd.read_csv(tmp_path / "p.eigenvec", sep="\t").iloc[:, 2:].to_numpy()
    signs = np.sign((exact.eigenvectors * vec).sum(0))
    np.testing.assert_allclose(exact.allele_weights * signs, alt, atol=5e-5 * np.abs(alt).max())


def test_self_projection_reproduces_pcs(example, exact, exact_mi):
    scores, report = pca.project(example, pca.reference_from_result(example, exact_mi))
    assert report["matched"] == example.sizes["variants"]
    np.testing.assert_allclose(scores, exact_mi.eigenvectors, atol=1e-5)  # float32 products
    scores, _ = pca.project(example, pca.reference_from_result(example, exact))
    # pairwise: exact up to C_ij ~ D_i (missing calls ~1%)
    assert (abs_corr(scores, exact.eigenvectors) > 0.9999).all()
    np.testing.assert_allclose(scores[:, :2], exact.eigenvectors[:, :2], atol=2e-3)


def test_projection_of_held_out_third(example):
    """Fit on two thirds, project the last third; compare with a fit on all samples.

    Achieved on the example (600 samples, 5000 variants): |corr| 0.9995 on PC1
    and 0.979 on PC2; tested at 0.999 and 0.97.  PC2 (eigenvalue 6.3 against a
    noise floor of ~4.8) is itself only reproduced to |corr| 0.988 between a
    fit on 400 and on 600 samples, so projection adds little error.  Projected
    scores of samples outside the fit shrink towards zero, more for PCs closer
    to the noise floor (Lee et al. 2010): here 0.96 on PC1 and 0.78 on PC2.
    PCs beyond the second are noise (flat spectrum) and not compared.
    """
    n = example.sizes["samples"]
    fit_idx, new_idx = np.arange(0, 2 * n // 3), np.arange(2 * n // 3, n)
    ref_ds, new_ds = example.isel(samples=fit_idx), example.isel(samples=new_idx)
    fit = pca.pca(ref_ds, n_components=4)
    scores, _ = pca.project(new_ds, pca.reference_from_result(ref_ds, fit))
    full = pca.pca(example, n_components=4)
    target = full.eigenvectors[new_idx] * np.sqrt(n / len(fit_idx))  # unit-norm over 400 vs 600 samples
    corr = abs_corr(scores[:, :2], target[:, :2])
    assert corr[0] >= 0.999 and corr[1] >= 0.97, corr
    ratio = np.abs(scores[:, :2]).sum(0) / np.abs(target[:, :2]).sum(0)
    assert 0.9 < ratio[0] < 1.02 and 0.7 < ratio[1] < 1.02, ratio


def test_projection_flips_and_drops_alleles(example, exact_mi):
    ref = pca.reference_from_result(example, exact_mi)
    sub = example.isel(variants=np.arange(400))
    base, _ = pca.project(sub, ref)
    flipped = sub.drop_vars("call_alt_count")  # derived view: dropped when call_genotype is edited
    alleles = flipped["variant_allele"].values.copy()
    alleles[:200] = alleles[:200, ::-1]
    gt = flipped["call_genotype"].data
    swap = np.zeros(400, bool)
    swap[:200] = True
    import dask.array as da

    flipped["variant_allele"] = (("variants", "alleles"), alleles)
    swap_d = da.from_array(swap[:, None, None], chunks=(gt.chunks[0], 1, 1))
    flipped["call_genotype"] = (gt.dims if hasattr(gt, "dims") else ("variants", "samples", "ploidy"),
                                da.where(swap_d & (gt >= 0), 1 - gt, gt))
    scores, report = pca.project(flipped, ref)
    assert report["flipped"] == 200 and report["matched"] == 400
    np.testing.assert_allclose(scores, base, atol=1e-6)
    alleles[:10] = [["X", "Y"]] * 10
    flipped["variant_allele"] = (("variants", "alleles"), alleles)
    _, report = pca.project(flipped, ref)
    assert report["allele_mismatch"] == 10 and report["matched"] == 390


def test_chunking_invariance(rng):
    g = random_alt(rng, 300, 40, missing=0.03)
    one = pca.pca(make_dataset(g, chunks=(300, 40)), n_components=3)
    many = pca.pca(make_dataset(g, chunks=(37, 12)), n_components=3)
    np.testing.assert_allclose(many.eigenvalues, one.eigenvalues, rtol=1e-6)
    np.testing.assert_allclose(np.abs(many.eigenvectors), np.abs(one.eigenvectors), atol=1e-6)
    r1 = pca.pca(make_dataset(g, chunks=(300, 40)), n_components=3, solver="randomized")
    r2 = pca.pca(make_dataset(g, chunks=(37, 12)), n_components=3, solver="randomized")
    np.testing.assert_allclose(r1.eigenvalues, r2.eigenvalues, rtol=1e-6)


def test_two_worker_cluster_equals_in_process(rng):
    from popgen.cluster import cluster_client

    g = random_alt(rng, 200, 30, missing=0.03)
    ds = make_dataset(g, chunks=(50, 10))
    local = pca.pca(ds, n_components=3, solver="randomized")
    with cluster_client("local", n_workers=2, threads_per_worker=1):
        remote = pca.pca(ds, n_components=3, solver="randomized")
    np.testing.assert_allclose(remote.eigenvalues, local.eigenvalues, rtol=1e-6)
    np.testing.assert_allclose(remote.eigenvectors, local.eigenvectors, atol=1e-6)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_block_math_on_backends(rng, backend_name):
    xp = np if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    g = random_alt(rng, 12, 9, missing=0.1)
    p = np.clip(np.where(g >= 0, g, 0).sum(1) / (2 * (g >= 0).sum(1)), 0, 1)
    p[0] = 0.0  # monomorphic: zeros
    sd = np.sqrt(2 * p * (1 - p))
    oracle = np.where((g >= 0) & (sd > 0)[:, None], (g - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)
    x = np.asarray(pca.standardize_block(xp.asarray(g), xp.asarray(p)))
    np.testing.assert_allclose(x, oracle, rtol=1e-6, atol=1e-6)
    gram = np.asarray(pca.gram_tile(xp.asarray(g), xp.asarray(g), xp.asarray(p)))[0]
    np.testing.assert_allclose(gram, oracle.T @ oracle, rtol=1e-5, atol=1e-5)
    called = np.asarray(pca.called_tile(xp.asarray(g), xp.asarray(g)))[0]
    np.testing.assert_array_equal(called, (g >= 0).T.astype(float) @ (g >= 0).astype(float))
    q = rng.standard_normal((9, 3))
    z = np.asarray(pca.pass_block(xp.asarray(g), xp.asarray(p), xp.asarray(q)))[0]
    assert z.shape == (9, 3)
    np.testing.assert_allclose(z, oracle.T @ (oracle @ q), rtol=1e-4, atol=1e-4)
    flip = np.arange(12) % 2 == 0
    f = np.asarray(pca.flip_alleles_block(xp.asarray(g), xp.asarray(flip)))
    np.testing.assert_array_equal(f, np.where(flip[:, None] & (g >= 0), 2 - g, g))


def test_bad_input(rng):
    ds = make_dataset(random_alt(rng, 20, 8), chunks=(10, 4))
    with pytest.raises(PopgenError, match="cannot compute 8 PCs from 8 samples"):
        pca.pca(ds, n_components=8)
    with pytest.raises(PopgenError, match="cannot compute 21 PCs"):
        pca.pca(make_dataset(random_alt(rng, 20, 40), chunks=(10, 8)), n_components=21)
    for solver in ("exact", "randomized"):  # randomized: found by its first pass, which computes the frequencies
        with pytest.raises(PopgenError, match="monomorphic"):
            pca.pca(make_dataset(np.zeros((20, 8), np.int8), chunks=(10, 4)), n_components=2, solver=solver)
    with pytest.raises(PopgenError, match="randomized PCA solver always mean-imputes"):
        pca.pca(ds, n_components=2, solver="randomized", missing="pairwise")
    fit = pca.pca(ds, n_components=2)
    other = make_dataset(random_alt(rng, 20, 8), chunks=(10, 4))
    other["variant_id"] = ("variants", np.array([f"x{i}" for i in range(20)], dtype=object))
    with pytest.raises(PopgenError, match="no variant of the cohort matches"):
        pca.project(other, pca.reference_from_result(ds, fit))


def test_cli_pca_and_project(tmp_path):
    out = tmp_path / "ref"
    assert main(["pca", "--bfile", str(EXAMPLE), "--out", str(out), "--n-pcs", "4", "--cluster", "none",
                 "--labels", str(EXAMPLE) + ".pop"]) == 0
    for ext in ("eigenvec", "eigenval", "eigenvec.allele", "eigenvec.var", "pca.json", "pca.png", "log"):
        assert (tmp_path / f"ref.{ext}").is_file(), ext
    assert (tmp_path / "ref.pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vec = pd.read_csv(tmp_path / "ref.eigenvec", sep="\t")
    assert list(vec.columns) == ["#FID", "IID", "PC1", "PC2", "PC3", "PC4"]
    assert main(["pca-project", "--bfile", str(EXAMPLE), "--ref", str(out), "--out", str(tmp_path / "proj"),
                 "--cluster", "none", "--no-plot"]) == 0
    proj = pd.read_csv(tmp_path / "proj.eigenvec", sep="\t")
    assert (abs_corr(proj.iloc[:, 2:].to_numpy(), vec.iloc[:, 2:].to_numpy()) > 0.999).all()
    assert "matched" in (tmp_path / "proj.log").read_text()


def test_cli_bad_pca_input(tmp_path):
    from test_cli import assert_one_line_error, popgen

    res = popgen("pca", "--bfile", EXAMPLE, "--out", tmp_path / "o", "--n-pcs", "700", "--cluster", "none")
    assert_one_line_error(res, "cannot compute 700 PCs")
    res = popgen("pca-project", "--bfile", EXAMPLE, "--ref", tmp_path / "none", "--out", tmp_path / "o",
                 "--cluster", "none")
    assert_one_line_error(res, "file not found")


def test_cli_pca_excludes_non_autosomes(tmp_path):
    """As plink2 --pca ("Excluding 1000 variants on non-autosomes from PCA"): chrX variants
    are left out, so the PCs equal those of the autosomes alone."""
    for ext in ("bed", "fam"):
        shutil.copy(f"{EXAMPLE}.{ext}", tmp_path / f"x.{ext}")
    lines = Path(f"{EXAMPLE}.bim").read_text().splitlines()
    (tmp_path / "x.bim").write_text("".join(("X" + line[line.index("\t"):] if i >= 4000 else line) + "\n"
                                            for i, line in enumerate(lines)))
    (tmp_path / "auto.ids").write_text("".join(line.split("\t")[1] + "\n" for line in lines[:4000]))
    args = ["--n-pcs", "3", "--cluster", "none", "--no-plot"]
    assert main(["pca", "--bfile", str(tmp_path / "x"), "--out", str(tmp_path / "x"), *args]) == 0
    assert main(["pca", "--bfile", str(EXAMPLE), "--extract", str(tmp_path / "auto.ids"),
                 "--out", str(tmp_path / "a"), *args]) == 0
    assert (tmp_path / "x.eigenval").read_text() == (tmp_path / "a.eigenval").read_text()
    var = pd.read_csv(tmp_path / "x.eigenvec.var", sep="\t", dtype={"#CHROM": str})
    assert len(var) == 4000 and "X" not in set(var["#CHROM"])
    assert "excluding 1000 variants on non-autosomes" in (tmp_path / "x.log").read_text()


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_pass_blocks_in_sub_blocks_equal_oracle(rng, monkeypatch, backend_name):
    xp = np if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    g = random_alt(rng, 70, 9, missing=0.1)
    p = np.where(g >= 0, g, 0).sum(1) / (2 * (g >= 0).sum(1))
    sd = np.sqrt(2 * p * (1 - p))
    x = np.where((g >= 0) & (sd > 0)[:, None], (g - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)
    q = rng.standard_normal((9, 3))
    monkeypatch.setattr(pca, "_SUB_BYTES", 4 * 9 * 16)  # 16 variants at a time: 5 sub-blocks, the last partial
    assert pca._sub_rows(g) == 16
    got = np.asarray(pca.pass_block(xp.asarray(g), xp.asarray(p), xp.asarray(q)))
    np.testing.assert_allclose(got[0], x.T @ (x @ q), rtol=1e-4, atol=1e-4)  # float32 products
    v = rng.standard_normal((9, 2))
    got = np.asarray(pca.loadings_block(xp.asarray(g), xp.asarray(p), xp.asarray(v)))
    np.testing.assert_allclose(got, x @ v, rtol=1e-4, atol=1e-4)
    flip = rng.random(70) < 0.3
    c = rng.random(70)
    lo = rng.standard_normal((70, 3))
    got = np.asarray(pca.project_block(xp.asarray(g), xp.asarray(p), xp.asarray(lo), xp.asarray(c), xp.asarray(flip)))
    gf = np.where(flip[:, None] & (g >= 0), 2 - g, g)
    xf = np.where((gf >= 0) & (sd > 0)[:, None], (gf - 2 * p[:, None]) / np.where(sd > 0, sd, 1)[:, None], 0.0)
    np.testing.assert_allclose(got[0, :, :3], xf.T @ lo, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[0, :, 3], (gf >= 0).T.astype(float) @ c, rtol=1e-5)


@pytest.mark.parametrize("rows, cols, samples", [(1, 5, 7), (3, 10, 33), (4, 5, 100), (9, 25, 17), (66, 20, 1001)])
def test_pass_product_kernels_equal_numpy(rng, rows, cols, samples):
    """The numba products of the passes (blocks of 4 rows x 5 columns, remainder rows one at
    a time) against float64 NumPy; ``ytx_add`` adds to what ``out`` holds."""
    from popgen._pca_numba import xq, ytx_add

    x = rng.standard_normal((rows, samples)).astype(np.float32)
    qt = rng.standard_normal((cols, samples)).astype(np.float32)
    y = np.full((rows, cols), np.nan, dtype=np.float32)
    xq(x, qt, y)
    x64 = x.astype(np.float64)
    ref = x64 @ qt.T.astype(np.float64)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=2e-6 * np.abs(ref).max())  # float32 sums
    out = rng.standard_normal((cols, samples)).astype(np.float32)
    expected = out.astype(np.float64) + y.astype(np.float64).T @ x64
    ytx_add(y, x, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=2e-6 * np.abs(expected).max())
