"""Association scans: PLINK 2 --glm cross-checks, statsmodels and exact-Firth oracles, simulated
causal variants, chunking, backends, a 2-worker cluster, writers and bad input.

References: tests/data/plink2/example.glm.* (tests/data/make_reference.sh, block 5).

Tolerances against PLINK 2 a3.5: linear estimates and standard logistic odds ratios agree to
its 6 printed digits.  PLINK 2 a3.5 fits logistic and Firth regressions in single precision, so
its Firth estimates and a few logistic standard errors (with the raw AGE covariate) are off by
up to ~1e-3; those rows are compared at 2e-3 and popgen's values are checked against double
precision oracles (statsmodels, an exact penalized-likelihood solver) instead.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, EXAMPLE, make_dataset, random_alt
from popgen import association as A
from popgen.errors import PopgenError
from popgen.io.plink import read_plink

REF = DATA / "plink2"
SHOWN = (".", "UNFINISHED")  # rows with estimates (UNFINISHED: PLINK 2's iteration limit)


def plink(name):
    return pd.read_csv(REF / name, sep="\t")


def errclass(codes):
    """ERRCODE with the estimate-bearing codes merged (UNFINISHED is a single-precision artefact)."""
    codes = np.asarray(codes).astype(str)
    return np.where(np.isin(codes, SHOWN), "estimate", codes)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.abs(b)


@pytest.fixture(scope="module")
def example():
    return read_plink(EXAMPLE, chunks=(1300, 256))  # >= 2 chunks on both axes


@pytest.fixture(scope="module")
def pheno(example):
    return A.load_phenotypes(example, f"{EXAMPLE}.pheno", ["QT", "BT"], f"{EXAMPLE}.covar", ["SEX", "AGE"])


@pytest.fixture(scope="module")
def linear(example, pheno):
    return A.linear_scan(example, pheno.quantitative(), pheno.covariates,
                         covariate_names=pheno.covariate_names).collect()["QT"]


@pytest.fixture(scope="module")
def logistic(example, pheno):
    return A.logistic_scan(example, pheno.case_control(), pheno.covariates,
                           covariate_names=pheno.covariate_names).collect()["BT"]


# ------------------------------------------------------------------ PLINK 2

def test_phenotypes_read_as_plink2(pheno):
    assert pheno.binary == {"QT": False, "BT": True}
    assert pheno.covariate_names == ["SEX", "AGE"]
    bt = pheno.values["BT"]
    assert set(np.unique(bt[np.isfinite(bt)])) == {0.0, 1.0}  # 1/2 coding -> 0/1


def test_linear_equals_plink2(linear):
    ref = plink("example.glm.QT.glm.linear")
    for col in ("ID", "REF", "ALT", "A1", "OBS_CT", "ERRCODE"):
        np.testing.assert_array_equal(linear[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
    ok = (ref.ERRCODE == ".").to_numpy()
    assert ok.sum() > 4900 and (~ok).any()  # CONST_OMITTED_ALLELE rows too
    assert (ref.A1 != ref.ALT).any()  # A1 is the minor allele, sometimes REF
    for col in ("BETA", "SE", "T_STAT"):
        assert rel(linear[col][ok], ref[col][ok]).max() < 1e-4, col
    assert np.abs(linear.LOG10_P[ok] + np.log10(ref.P[ok])).max() < 1e-3
    assert linear.BETA[~ok].isna().all()


def test_logistic_equals_plink2(logistic):
    ref = plink("example.glm.BT.glm.logistic.hybrid")
    for col in ("ID", "A1", "OBS_CT", "FIRTH?"):
        np.testing.assert_array_equal(logistic[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(errclass(logistic.ERRCODE), errclass(ref.ERRCODE))
    shown = np.isin(ref.ERRCODE, SHOWN)
    std = shown & (ref["FIRTH?"] == "N").to_numpy()
    firth = shown & (ref["FIRTH?"] == "Y").to_numpy()
    assert std.sum() > 4000 and firth.sum() > 100
    # standard logistic rows: odds ratios to PLINK 2's printed precision; a few standard errors carry
    # its single-precision Hessian inversion (raw AGE), the rest are exact
    assert rel(logistic.OR[std], ref.OR[std]).max() < 1e-4
    se = rel(logistic.SE[std], ref["LOG(OR)_SE"][std])
    assert np.mean(se < 1e-4) > 0.995 and se.max() < 5e-3
    # Firth rows: PLINK 2's single-precision Firth is within 2e-3 (popgen is exact: test below)
    assert rel(logistic.OR[firth], ref.OR[firth]).max() < 2e-3
    assert rel(logistic.SE[firth], ref["LOG(OR)_SE"][firth]).max() < 2e-3
    assert np.abs(logistic.LOG10_P[shown] + np.log10(ref.P[shown])).max() < 1e-3


def _firth_oracle(x, y):
    """Firth's penalized MLE by quasi-Newton (BFGS) on the penalized log-likelihood, whose gradient
    is the modified score: an algorithm independent of logistf's scoring iteration."""
    from scipy.optimize import minimize

    def parts(b):
        p = 1 / (1 + np.exp(-x @ b))
        w = p * (1 - p)
        info = x.T @ (w[:, None] * x)
        inv = np.linalg.inv(info)
        return p, w, info, inv

    def neg_pll(b):
        eta = x @ b
        _, _, info, _ = parts(b)
        return -(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(info)[1])

    def neg_score(b):
        p, w, _, inv = parts(b)
        h = w * np.einsum("ij,jk,ik->i", x, inv, x)
        return -(x.T @ (y - p + h * (0.5 - p)))

    b = minimize(neg_pll, np.zeros(x.shape[1]), jac=neg_score, method="BFGS", options={"gtol": 1e-9}).x
    return b, np.sqrt(np.diag(parts(b)[3]))


def test_firth_equals_exact_penalized_mle(example, pheno, logistic):
    from popgen.genotypes import alt_allele_count

    rows = np.flatnonzero((logistic["FIRTH?"] == "Y").to_numpy() & np.isin(logistic.ERRCODE, SHOWN))[::8][:25]
    alt = alt_allele_count(example.isel(variants=rows)).compute()
    y, cov = pheno.values["BT"], pheno.covariates
    m = np.isfinite(y) & np.isfinite(cov).all(axis=1)
    for i, v in enumerate(rows):
        g = alt[i].astype(float)
        use = m & (g >= 0)
        a1 = 2 - g if logistic.A1[v] == logistic.REF[v] else g
        b, se = _firth_oracle(np.column_stack([np.ones(use.sum()), a1[use], cov[use]]), y[use])
        assert abs(np.log(logistic.OR[v]) - b[1]) < 1e-5, logistic.ID[v]
        assert abs(logistic.SE[v] / se[1] - 1) < 1e-5, logistic.ID[v]


@pytest.mark.parametrize("firth,ext", [("never", "glm.logistic"), ("always", "glm.firth")])
def test_rare_variants_without_and_with_firth_equal_plink2(tmp_path, example, pheno, firth, ext):
    ref = plink(f"example.glm.rare.BT.{ext}")
    idx = np.flatnonzero(np.isin(example["variant_id"].values.astype(str), ref.ID.to_numpy()))
    scan = A.logistic_scan(example.isel(variants=idx), pheno.case_control(), pheno.covariates, firth=firth)
    assert scan.extension == ext
    t = scan.collect()["BT"]
    np.testing.assert_array_equal(t.ID.to_numpy(), ref.ID.to_numpy())
    shown = np.isin(ref.ERRCODE, SHOWN)
    if firth == "never":  # separation is an error without Firth: same codes (SEPARATION,ALT1 / ,REF)
        np.testing.assert_array_equal(t.ERRCODE.to_numpy(), ref.ERRCODE.to_numpy())
        assert ref.ERRCODE.str.startswith("SEPARATION").sum() > 100
        tol = 1e-4
    else:
        np.testing.assert_array_equal(errclass(t.ERRCODE), errclass(ref.ERRCODE))
        tol = 2e-3
    assert rel(t.OR[shown], ref.OR[shown]).max() < tol
    assert rel(t.SE[shown], ref["LOG(OR)_SE"][shown]).max() < tol
    path = A.write_glm(tmp_path / "rare", "BT", t, "logistic", firth=firth)
    ours, theirs = open(path).read().splitlines(), (REF / f"example.glm.rare.BT.{ext}").read_text().splitlines()
    assert ours[0] == theirs[0] and len(ours) == len(theirs)
    cols = [line.split("\t") for line in ours[1:]], [line.split("\t") for line in theirs[1:]]
    assert [r[:7] for r in cols[0]] == [r[:7] for r in cols[1]]  # through OBS_CT, byte for byte


def test_causal_variants_recovered(linear, logistic):
    truth = pd.DataFrame(json.loads(EXAMPLE.with_suffix(".truth.json").read_text())["causal_variants"])
    for table, effect, n_top in ((linear, "effect_qt", 3), (logistic, "effect_bt", 2)):
        rank = dict(zip(table.ID, table.P.rank(method="min")))
        strongest = truth.loc[truth[effect].abs().sort_values(ascending=False).index[:n_top], "variant_id"]
        assert all(rank[v] <= 25 for v in strongest), {v: rank[v] for v in strongest}


def test_mean_imputation_path(example, pheno, linear):
    scan = A.linear_scan(example, pheno.quantitative(), pheno.covariates, missing="mean")
    fast = scan.collect()["QT"]
    n = scan.n_samples["QT"]
    complete = (linear.OBS_CT == n).to_numpy() & (linear.ERRCODE == ".").to_numpy()
    assert complete.sum() >= 5
    # no missing call among the phenotype's samples: the same regression (float32 GEMMs)
    assert rel(fast.BETA[complete], linear.BETA[complete]).max() < 1e-4
    assert rel(fast.SE[complete], linear.SE[complete]).max() < 1e-4
    ok = (fast.ERRCODE == ".").to_numpy() & (linear.ERRCODE == ".").to_numpy()
    assert (fast.OBS_CT == n).all()
    assert np.corrcoef(fast.LOG10_P[ok], linear.LOG10_P[ok])[0, 1] > 0.999


# ------------------------------------------------------------------ oracles on small data

def _small(rng, n_variants=40, n_samples=150, chunks=(13, 40)):
    g = random_alt(rng, n_variants, n_samples, missing=0.05)
    g[0] = 1  # constant -> CONST_OMITTED_ALLELE
    g[1] = np.where(rng.random(n_samples) < 0.9, 2, 1)  # ALT frequency > 0.5 -> A1 is REF
    ds = make_dataset(g, chunks=chunks)
    cov = np.column_stack([rng.normal(size=n_samples), rng.integers(0, 2, n_samples)])
    cov[3, 0] = np.nan
    qt = 0.4 * np.where(g[5] >= 0, g[5], 1) + cov[:, 0] + rng.normal(size=n_samples)
    qt[[7, 8]] = np.nan
    bt = (rng.random(n_samples) < 1 / (1 + np.exp(-0.8 * (np.where(g[6] >= 0, g[6], 1) - 1)))).astype(float)
    bt[9] = np.nan
    return g, ds, cov, {"qt": qt, "qt2": rng.normal(size=n_samples)}, {"bt": bt}


def _a1(g, row):
    return np.where(g >= 0, 2 - g, -1) if row.A1 == row.REF and row.A1 != row.ALT else g


def test_linear_equals_statsmodels(rng):
    import statsmodels.api as sm

    g, ds, cov, qt, _ = _small(rng)
    res = A.linear_scan(ds, qt, cov).collect()
    for name, y in qt.items():
        t = res[name]
        assert t.ERRCODE[0] == "CONST_OMITTED_ALLELE" and t.A1[1] == "A"  # A1 = REF (minor)
        for v in range(1, g.shape[0]):
            gv = _a1(g[v], t.iloc[v])
            use = np.isfinite(y) & np.isfinite(cov).all(axis=1) & (gv >= 0)
            fit = sm.OLS(y[use], np.column_stack([np.ones(use.sum()), gv[use], cov[use]])).fit()
            assert t.OBS_CT[v] == use.sum()
            np.testing.assert_allclose([t.BETA[v], t.SE[v], t.P[v]], [fit.params[1], fit.bse[1], fit.pvalues[1]],
                                       rtol=1e-8)
            assert abs(t.A1_FREQ[v] - gv[use].sum() / (2 * use.sum())) < 1e-12


@pytest.mark.parametrize("with_covariates", [True, False])
def test_logistic_equals_statsmodels(rng, with_covariates):
    import statsmodels.api as sm

    g, ds, cov, _, bt = _small(rng)
    if not with_covariates:
        cov = np.zeros((g.shape[1], 0))
    t = A.logistic_scan(ds, bt, cov if with_covariates else None).collect()["bt"]
    y = bt["bt"]
    checked = 0
    for v in range(1, g.shape[0]):
        if t["FIRTH?"][v] == "Y" or t.ERRCODE[v] != ".":
            continue
        gv = _a1(g[v], t.iloc[v])
        use = np.isfinite(y) & np.isfinite(cov).all(axis=1) & (gv >= 0)
        fit = sm.Logit(y[use], np.column_stack([np.ones(use.sum()), gv[use], cov[use]])).fit(disp=0, tol=1e-12)
        assert abs(np.log(t.OR[v]) - fit.params[1]) < 1e-6
        # PLINK 2 takes the SE from the Hessian of its last iteration, before the last (< 1e-4) step
        np.testing.assert_allclose(t.SE[v], fit.bse[1], rtol=1e-4)
        checked += 1
    assert checked > 25


def test_firth_fallback_on_separation(rng):
    """A variant carried only by cases separates: Firth, finite estimate, equal to the oracle."""
    n = 200
    g = random_alt(rng, 6, n, missing=0.0)
    y = (rng.random(n) < 0.3).astype(float)
    g[2] = 0
    g[2, np.flatnonzero(y == 1)[:3]] = 1  # three carriers, all cases
    cov = rng.normal(size=(n, 1))
    t = A.logistic_scan(make_dataset(g, chunks=(3, 64)), {"y": y}, cov).collect()["y"]
    assert t["FIRTH?"][2] == "Y" and t.ERRCODE[2] == "." and t.OR[2] > 1 and np.isfinite(t.SE[2])
    b, se = _firth_oracle(np.column_stack([np.ones(n), g[2], cov]), y)
    assert abs(np.log(t.OR[2]) - b[1]) < 1e-5 and abs(t.SE[2] / se[1] - 1) < 1e-5
    never = A.logistic_scan(make_dataset(g, chunks=(3, 64)), {"y": y}, cov, firth="never").collect()["y"]
    assert never.ERRCODE[2] == "SEPARATION,ALT1" and np.isnan(never.OR[2])


# ------------------------------------------------------------------ chunking, laziness, cluster, backends

def test_chunking_invariance_and_laziness(rng):
    import dask.array as da

    g, _, cov, qt, bt = _small(rng, n_variants=60, n_samples=120)
    results = []
    for chunks in ((60, 120), (17, 36)):
        ds = make_dataset(g, chunks=chunks)
        scans = [A.linear_scan(ds, qt, cov), A.linear_scan(ds, qt, cov, missing="mean"), A.logistic_scan(ds, bt, cov)]
        assert all(isinstance(s.fields, da.Array) for s in scans)  # lazy
        results.append([pd.concat(s.collect(batch=2).values()) for s in scans])
    for i, (one, many) in enumerate(zip(*results)):
        assert (one.ERRCODE.to_numpy() == many.ERRCODE.to_numpy()).all()
        # float64 paths to rounding; the float32 GEMMs of the mean-imputation path to 1e-4 SE
        a, b, se = many.BETA.to_numpy(), one.BETA.to_numpy(), one.SE.to_numpy()
        ok = np.isfinite(b)
        assert (np.isfinite(a) == ok).all()
        tol = 1e-4 * se[ok] if i == 1 else 1e-9 * np.abs(b[ok]) + 1e-12
        assert (np.abs(a[ok] - b[ok]) <= tol).all(), (i, np.abs(a[ok] - b[ok]).max())
        np.testing.assert_allclose(many.SE, one.SE, rtol=1e-9 if i != 1 else 1e-4)


def test_two_worker_cluster_equals_in_process(rng):
    from popgen.cluster import cluster_client

    g, _, cov, qt, bt = _small(rng, n_variants=30, n_samples=100)
    ds = make_dataset(g, chunks=(10, 50))
    local = [A.linear_scan(ds, qt, cov).collect()["qt"], A.logistic_scan(ds, bt, cov).collect()["bt"]]
    with cluster_client("local", n_workers=2, threads_per_worker=1):
        remote = [A.linear_scan(ds, qt, cov).collect()["qt"], A.logistic_scan(ds, bt, cov).collect()["bt"]]
    for a, b in zip(local, remote):
        pd.testing.assert_frame_equal(a, b, rtol=1e-10)


def _block_inputs(rng):
    g = random_alt(rng, 14, 50, missing=0.08)
    g[0] = 0
    g[0, :2] = 1  # rare: Firth
    g[1] = 2  # constant
    cov = rng.normal(size=(50, 2))
    y = rng.normal(size=(50, 2))
    y[4, 0] = np.nan
    founders = np.arange(50) % 7 != 0
    mask = np.isfinite(y)
    design = A._Design(["a", "b"], np.nan_to_num(y), mask, cov, ["c1", "c2"], founders, {})
    yb = (rng.random((50, 1)) < 0.4).astype(float)
    yb[:2, 0] = 1.0
    return g, design, yb, founders, cov


def _run_blocks(xp, g, design, yb, founders, cov):
    c, y, f, totals = A.linear_design(design)
    n_f = int(founders.sum())
    part = A.linear_partial_block(xp.asarray(g), xp.asarray(c), xp.asarray(y), xp.asarray(f))
    lin = A.linear_finalize_block(part[:, 0, :], xp.asarray(totals), n_pheno=2, n_cov=2, n_founders=n_f)
    w, wsq, y_ss = A.meanimpute_weights(design)
    part = A.meanimpute_partial_block(xp.asarray(g), xp.asarray(w), xp.asarray(wsq), dtype="float64")
    mean = A.meanimpute_finalize_block(part[:, 0, :], xp.asarray(y_ss), xp.asarray(design.mask.sum(0) * 1.0),
                                       n_pheno=2, n_cov=2, n_samples=g.shape[1], n_founders=n_f)
    logi = A.logistic_block(xp.asarray(g), xp.asarray(founders), xp.asarray(yb),
                            xp.asarray(np.ones((g.shape[1], 1), bool)), xp.asarray(cov))
    from popgen.backend import to_cpu

    return [np.asarray(to_cpu(a)) for a in (lin, mean, logi)]


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_block_math_on_backends(rng, backend_name):
    xp = np if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    g, design, yb, founders, cov = _block_inputs(rng)
    out = _run_blocks(xp, g, design, yb, founders, cov)
    for a, b in zip(out, _run_blocks(np, g, design, yb, founders, cov)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True)
    lin, mean, logi = out
    assert lin[1, 0, 4] == A.E_CONST and mean[1, 0, 4] == A.E_CONST and logi[1, 0, 4] == A.E_CONST
    assert logi[0, 0, 5] == 1 and logi[0, 0, 4] == A.E_OK  # Firth fallback (alleles only in cases), converged
    # the exact linear block equals a direct least-squares fit
    for j in range(2):
        for v in range(2, g.shape[0]):
            ga = np.where(lin[v, j, 6] > 0, 2 - g[v], g[v])
            use = design.mask[:, j] & (g[v] >= 0)
            x = np.column_stack([np.ones(use.sum()), ga[use], cov[use]])
            beta, *_ = np.linalg.lstsq(x, design.y[use, j], rcond=None)
            np.testing.assert_allclose(lin[v, j, 0], beta[1], rtol=1e-9)
            assert lin[v, j, 2] == use.sum() and lin[v, j, 3] == ga[use].sum()


@pytest.mark.gpu
def test_blocks_on_gpu_equal_numpy(rng):
    cupy = pytest.importorskip("cupy")
    g, design, yb, founders, cov = _block_inputs(rng)
    for a, b in zip(_run_blocks(cupy, g, design, yb, founders, cov), _run_blocks(np, g, design, yb, founders, cov)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)


# ------------------------------------------------------------------ writers

def test_gwas_writes_plink2_files_ssf_and_plots(tmp_path, example, pheno):
    sub = example.isel(variants=slice(0, 1500))
    report = A.gwas(sub, pheno, tmp_path / "out" / "ex", batch=1)
    ref_lin, ref_log = plink("example.glm.QT.glm.linear"), plink("example.glm.BT.glm.logistic.hybrid")
    for name, ext, ref in (("QT", "glm.linear", ref_lin), ("BT", "glm.logistic.hybrid", ref_log)):
        path = tmp_path / "out" / f"ex.{name}.{ext}"
        ours = path.read_text().splitlines()
        theirs = (REF / f"example.glm.{name}.{ext}").read_text().splitlines()[:1501]
        assert ours[0] == theirs[0] and len(ours) == len(theirs)
        split = [line.split("\t") for line in ours[1:]], [line.split("\t") for line in theirs[1:]]
        n_id = 9 if name == "BT" else 8  # through OBS_CT: byte for byte
        assert [r[:n_id] for r in split[0]] == [r[:n_id] for r in split[1]]
        assert [r[-1] for r in split[0]] == [r[-1] for r in split[1]] or name == "BT"
        if name == "QT":  # most rows byte-identical (the rest differ in P's 6th digit)
            assert sum(a == b for a, b in zip(ours, theirs)) > 0.95 * len(ours)
        rep = report[name]
        t = pd.read_csv(path, sep="\t")
        assert rep["n_variants"] == 1500 and rep["n_tested"] == t.P.notna().sum()
        assert rep["lambda_gc"] == pytest.approx(A.lambda_gc(t.P.to_numpy()), rel=1e-4)
        ssf = pd.read_csv(tmp_path / "out" / f"ex.{name}.ssf.tsv", sep="\t", keep_default_na=False)
        assert list(ssf.columns) == A.ssf_header(rep["kind"])
        assert list(ssf.columns)[:8] == ["chromosome", "base_pair_location", "effect_allele", "other_allele",
                                          "beta" if name == "QT" else "odds_ratio", "standard_error",
                                          "effect_allele_frequency", "p_value"]
        assert len(ssf) == rep["n_tested"]
        valid = t[t.P.notna()].reset_index(drop=True)
        np.testing.assert_array_equal(ssf.effect_allele, valid.A1)
        np.testing.assert_array_equal(ssf.ref_allele, np.where(valid.A1 == valid.REF, "EA", "OA"))
        assert (ssf.rsid == "#NA").all() and ssf.n.equals(valid.OBS_CT)
        assert ((ssf.effect_allele_frequency > 0) & (ssf.effect_allele_frequency < 1)).all()
        assert ssf.effect_allele_frequency.median() < 0.3  # A1: the minor allele
        for plot in ("manhattan", "qq"):
            assert (tmp_path / "out" / f"ex.{name}.{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["BT"]["n_cases"] > 100 and report["BT"]["n_firth"] > 0
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_writers_stream_and_leave_nothing_half_written(tmp_path, rng, monkeypatch):
    g, ds, cov, qt, _ = _small(rng, n_variants=40, n_samples=60, chunks=(10, 60))
    scan = A.linear_scan(ds, qt, cov)
    seen = []
    real = scan.iter_chunks

    def failing(compute=None, batch=8):
        for chunk in real(compute, batch):
            seen.append(chunk.start)
            if len(seen) == 2:
                raise RuntimeError("worker lost")
            yield chunk

    monkeypatch.setattr(scan, "iter_chunks", failing)
    with pytest.raises(RuntimeError):
        A.write_results(tmp_path / "o", scan, plots=False, batch=1)
    assert seen == [0, 10] and not list(tmp_path.iterdir())  # chunk by chunk; no file left behind
    monkeypatch.undo()
    rep = A.write_results(tmp_path / "o", scan, plots=False, batch=1, genome_assembly="GRCh38")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.qt.glm.linear", "o.qt.ssf.tsv", "o.qt.ssf.tsv-meta.yaml",
                                                          "o.qt2.glm.linear", "o.qt2.ssf.tsv", "o.qt2.ssf.tsv-meta.yaml"]
    assert rep["qt"]["errcodes"]["CONST_OMITTED_ALLELE"] == 1
    # GWAS-SSF metadata: the GWAS Catalog schema's required keys, the data file's md5sum, what popgen knows
    import hashlib

    import yaml

    meta = yaml.safe_load((tmp_path / "o.qt.ssf.tsv-meta.yaml").read_text())
    assert {"data_file_name", "file_type", "data_file_md5sum", "genome_assembly"} <= set(meta)
    assert meta["data_file_md5sum"] == hashlib.md5((tmp_path / "o.qt.ssf.tsv").read_bytes()).hexdigest()
    assert (meta["data_file_name"], meta["genome_assembly"], meta["coordinate_system"]) == \
        ("o.qt.ssf.tsv", "GRCh38", "1-based")
    assert meta["samples"] == [{"sample_size": rep["qt"]["n_samples"]}] and meta["is_sorted"] is True
    assert meta["trait_description"] == ["qt"] and meta["is_harmonised"] is False


def test_ssf_metadata_fields():
    meta = A.ssf_metadata("d/o.BT.ssf.tsv", "0" * 32, "BT", n_samples=100, n_cases=30, covariates=["AGE", "PC1"])
    assert meta["samples"] == [{"sample_size": 100, "case_control_study": True, "case_count": 30, "control_count": 70}]
    assert meta["genome_assembly"] == "#NA" and meta["adjusted_covariates"] == ["AGE", "PC1"]
    assert meta["data_file_name"] == "o.BT.ssf.tsv"
    assert A._ssf_sorted(np.array(["1", "1", "2", "X"]), [5, 9, 1, 3])
    assert not A._ssf_sorted(np.array(["1", "2", "1"]), [5, 1, 9]) and not A._ssf_sorted(np.array(["1", "1"]), [9, 5])
    assert not A._ssf_sorted(np.array(["1", "chrUn"]), [1, 2])  # no GWAS-SSF chromosome code


def test_lambda_gc_and_p_formatting(tmp_path, rng):
    p = rng.random(20000)
    assert A.lambda_gc(p) == pytest.approx(1.0, abs=0.05)
    from scipy import stats

    assert A.lambda_gc(stats.chi2.sf(1.5 * stats.chi2.isf(p, 1), 1)) == pytest.approx(1.5, rel=0.05)
    assert np.isnan(A.lambda_gc([]))
    for q in (p[:1001], p[:1000], p[:2], p[:1]):  # odd and even counts: the median of all quantiles
        assert A.lambda_gc(q) == pytest.approx(np.median(stats.chi2.isf(q, 1)) / A.CHI2_MEDIAN, rel=1e-12)
    assert list(A._fmt_lnp(np.log([0.5, 1.23456789e-5]))) == ["0.5", "1.23457e-05"]
    assert A._fmt_lnp(np.array([-1000.0]))[0] == "5.07596e-435"  # below double precision
    np.testing.assert_allclose(A._t_lnp(np.array([40.0]), np.array([100.0])), np.log(2 * stats.t.sf(40, 100)),
                               rtol=1e-10)
    assert np.isfinite(A._t_lnp(np.array([1e4]), np.array([500.0]))[0])
    A.plot_qq(tmp_path / "q.png", p)
    A.plot_manhattan(tmp_path / "m.png", np.repeat(["1", "2"], 10000), np.tile(np.arange(10000), 2), p)
    assert all((tmp_path / f).read_bytes()[:4] == b"\x89PNG" for f in ("q.png", "m.png"))


def test_plots_redrawn_on_a_kept_figure_equal_fresh_ones(tmp_path, rng):
    """A Manhattan / QQ plot drawn on the figure kept from the previous phenotype has the pixels
    of one drawn on a new figure (nothing of the previous phenotype left: points, limits,
    title); a plot of another genome gets its own figure, and at most one per kind is kept."""
    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    chrom, pos = np.repeat(["1", "2", "3"], 400), np.tile(np.arange(400) * 1000 + 1, 3)
    a, b = rng.uniform(size=1200), rng.uniform(size=1200)
    a[:3] = 1e-40  # a taller first plot
    b[:5], b[7] = 1e-12, np.nan
    A.release_plot_figures()
    for name, p in (("a", a), ("b_after", b)):
        A.plot_manhattan(tmp_path / f"m_{name}.png", chrom, pos, p, title=name[0].upper())
        A.plot_qq(tmp_path / f"q_{name}.png", p, title=name[0].upper())
    assert len(plt.get_fignums()) == 2
    other = np.repeat(["7"], 1200)
    A.plot_manhattan(tmp_path / "m_other.png", other, pos, b, title="B")  # another genome: a new figure
    assert len(plt.get_fignums()) == 2
    A.release_plot_figures()
    assert not plt.get_fignums()
    A.plot_manhattan(tmp_path / "m_b_alone.png", chrom, pos, b, title="B")
    A.plot_qq(tmp_path / "q_b_alone.png", b, title="B")
    A.release_plot_figures()
    for kind in ("m", "q"):
        np.testing.assert_array_equal(imread(tmp_path / f"{kind}_b_after.png"), imread(tmp_path / f"{kind}_b_alone.png"))
        assert not np.array_equal(imread(tmp_path / f"{kind}_a.png"), imread(tmp_path / f"{kind}_b_alone.png"))


def test_plots_of_many_phenotypes_drawn_by_a_process_pool(tmp_path, rng, monkeypatch):
    """From PLOT_POOL_FROM phenotypes on the plots are drawn by spawned processes (each needs
    the module importable there): the same files as drawn here."""
    from dask.system import cpu_count

    monkeypatch.setattr("dask.system.cpu_count", lambda: max(2, cpu_count()))
    chrom, pos = np.repeat(["1", "2"], 500), np.tile(np.arange(500) * 100, 2)
    jobs = [(str(tmp_path / f"m{i}.png"), str(tmp_path / f"q{i}.png"), rng.uniform(size=1000), f"P{i}", 1.0)
            for i in range(A.PLOT_POOL_FROM)]
    A._draw_plots(jobs, chrom, pos)
    for man, qq, *_ in jobs:
        assert open(man, "rb").read(4) == b"\x89PNG" and open(qq, "rb").read(4) == b"\x89PNG"
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(  # no temporary file left
        [f"m{i}.png" for i in range(A.PLOT_POOL_FROM)] + [f"q{i}.png" for i in range(A.PLOT_POOL_FROM)])


@pytest.mark.parametrize("t, df, ln_p", [
    # ln of the two-sided p = I_x(df/2, 1/2), x = df/(df + t^2), from mpmath at 60 digits:
    # mp.log(mp.betainc(mp.mpf(df)/2, mp.mpf(1)/2, 0, x, regularized=True))
    (39.3798, 9706, -723.16324574915235),  # a row of bench_gwas: plink2 8.6e-315
    (38.0, 9706, -676.88278014799726),
    (40.0, 20000, -773.48723811172578),
    (200.0, 5000, -5497.4870147595165),
    (50.0, 100, -165.4164847304367),  # above double's range: stdtr itself
    (1000.0, 10, -58.966715876046068),
])
def test_t_test_p_far_in_the_tail(t, df, ln_p):
    assert A._t_lnp(np.array([t]), np.array([float(df)]))[0] == pytest.approx(ln_p, rel=1e-12)


@pytest.mark.parametrize("df", [A._HILL_DF, 1500.0, 9816.0, 1e5])
def test_t_test_p_by_hill_agrees_with_scipy(df):
    """Where Hill's expansion is used (df >= _HILL_DF, t^2 <= _HILL_T2 df) its ln P is scipy's
    stdtr's (continued fraction where that underflows) to 1e-11; NaN and infinite t give NaN."""
    from scipy import special

    t = np.linspace(0.0, np.sqrt(A._HILL_T2 * df), 20001)
    with np.errstate(divide="ignore"):
        ref = np.log(2.0 * special.stdtr(df, -t))
    under = ~np.isfinite(ref)
    ref[under] = A._ln_betainc(df / 2.0, 0.5, df / (df + t[under] ** 2))
    d = np.full_like(t, df)
    np.testing.assert_allclose(A._hill_lnp(t, d), ref, rtol=1e-13, atol=1e-11)
    mixed = np.concatenate([t[::1000], [np.nan, np.inf, -np.inf, -3.0, 2.0 * t[-1]]])
    got = A._t_lnp(mixed, np.full_like(mixed, df))
    assert np.isnan(got[-5:-2]).all()
    assert got[-2] == pytest.approx(np.log(2.0 * special.stdtr(df, -3.0)), rel=1e-12)
    assert np.isfinite(got[-1]) and got[-1] < ref[-1]  # beyond the expansion's range: stdtr or the fraction
    np.testing.assert_allclose(got[:-5], ref[::1000], rtol=1e-13, atol=1e-11)


# ------------------------------------------------------------------ phenotypes, covariates, bad input

def _write(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_covariate_tables_categorical_and_pcs(tmp_path, rng):
    g = random_alt(rng, 20, 60)
    ds = make_dataset(g, chunks=(10, 30))
    ids = [f"s{j}" for j in range(60)]
    site = np.where(np.arange(60) % 3 == 0, "a", "b")  # b is the most common level
    site[5] = "c"
    qt = rng.normal(size=60)
    cc01 = (np.arange(60) % 2).astype(int)
    ph = _write(tmp_path / "p.txt", ["#IID", "QT", "CC", "CC01"], [[i, q, 1 + c, c] for i, q, c in zip(ids, qt, cc01)])
    cv = _write(tmp_path / "c.txt", ["#IID", "SITE", "AGE"],
                [[i, s, 40 + j % 17] for j, (i, s) in enumerate(zip(ids, site))])
    pcs = _write(tmp_path / "pca.eigenvec", ["#FID", "IID", "PC1", "PC2"],
                 [[i, i, *rng.normal(size=2)] for i in ids])
    data = A.load_phenotypes(ds, ph, ["QT", "CC"], cv)
    assert data.binary == {"QT": False, "CC": True}
    with pytest.raises(PopgenError, match="CC01 has only controls.*case_control_01"):  # 0 = missing, as plink2
        A.load_phenotypes(ds, ph, ["CC01"])
    assert data.covariate_names == ["SITE=a", "SITE=c", "AGE"]  # the most common level (b) is omitted
    np.testing.assert_array_equal(data.covariates[:6, 0], [1, 0, 0, 1, 0, 0])
    assert data.covariates[5, 1] == 1
    data01 = A.load_phenotypes(ds, ph, ["CC01"], None, case_control_01=True)
    assert data01.binary["CC01"] and np.array_equal(data01.values["CC01"], cc01)
    # PCs from `popgen pca` (#FID IID PC1..) used directly as covariates, alone or with another table
    with_pcs = A.load_phenotypes(ds, ph, ["QT", "CC"], pcs)
    assert with_pcs.covariate_names == ["PC1", "PC2"]
    t = A.linear_scan(ds, with_pcs.quantitative(), with_pcs.covariates).collect()["QT"]
    assert (t.ERRCODE == ".").sum() > 15 and (t.OBS_CT <= 60).all()
    both = A.load_phenotypes(ds, ph, ["QT"], [cv, pcs], ["AGE", "PC2"])
    assert both.covariate_names == ["AGE", "PC2"] and both.covariates.shape == (60, 2)
    with pytest.raises(PopgenError, match="covariate column PC1 is in both"):
        A.load_phenotypes(ds, ph, ["QT"], [pcs, pcs])


def test_plink_column_lists():
    """--pheno-name / --covar-name as PLINK 2 reads them (checked against plink2 --covar-name
    SEX,PC1-PC3: the same 4 covariates and .glm rows)."""
    cols = ["SEX", "AGE", "PC1", "PC2", "PC3", "HDL-C", "LDL-C", "A-B", "A", "B"]
    assert A.column_list("SEX,PC1-PC3", cols) == ["SEX", "PC1", "PC2", "PC3"]
    assert A.column_list(["AGE PC2", "PC3-LDL-C"], cols) == ["AGE", "PC2", "PC3", "HDL-C", "LDL-C"]
    assert A.column_list("A-B,HDL-C", cols) == ["A-B", "HDL-C"]  # a column's own name first
    assert A.column_list("PC1-PC9", cols) == ["PC1-PC9"]  # not a range of these columns: named by the caller
    with pytest.raises(PopgenError, match="column range PC3-PC1: PC1 comes before PC3"):
        A.column_list("PC3-PC1", cols)


def test_column_ranges_in_tables(tmp_path, rng):
    g = random_alt(rng, 6, 30)
    ds = make_dataset(g, chunks=(6, 30))
    ids = [f"s{j}" for j in range(30)]
    ph = _write(tmp_path / "p.txt", ["#IID", "Q1", "Q2", "Q3"], [[i, *rng.normal(size=3)] for i in ids])
    cv = _write(tmp_path / "c.txt", ["#IID", "AGE"], [[i, j] for j, i in enumerate(ids)])
    pcs = _write(tmp_path / "pca.eigenvec", ["#FID", "IID", "PC1", "PC2", "PC3"], [[i, i, *rng.normal(size=3)] for i in ids])
    data = A.load_phenotypes(ds, ph, "Q2-Q3", [cv, pcs], "AGE,PC1-PC2")
    assert list(data.values) == ["Q2", "Q3"] and data.covariate_names == ["AGE", "PC1", "PC2"]
    with pytest.raises(PopgenError, match=r"pca\.eigenvec: no covariate column 'PC1-PC9'"):
        A.load_phenotypes(ds, ph, "Q1", [cv, pcs], "AGE,PC1-PC9")


def test_pcs_as_covariates_reduce_inflation(example, linear):
    pcs = [f"PC{i}" for i in range(1, 5)]
    data = A.load_phenotypes(example, f"{EXAMPLE}.pheno", ["QT"], [f"{EXAMPLE}.covar", REF / "example.pca.eigenvec"],
                             ["SEX", "AGE", *pcs])
    assert data.covariate_names == ["SEX", "AGE", *pcs]
    adjusted = A.linear_scan(example, data.quantitative(), data.covariates).collect()["QT"]
    assert A.lambda_gc(adjusted.P) < A.lambda_gc(linear.P) - 0.1  # population structure absorbed


def test_bad_input(tmp_path, rng, caplog):
    g = random_alt(rng, 12, 40)
    ds = make_dataset(g, chunks=(6, 20))
    ids = [f"s{j}" for j in range(40)]
    y = rng.normal(size=40)
    rows = [[i, v, "x" if j == 3 else v, "NA", 1, 5 if j < 5 else "NA", v] for j, (i, v) in enumerate(zip(ids, y))]
    ph = _write(tmp_path / "p.txt", ["#IID", "QT", "WORD", "EMPTY", "CTRL", "FEW", "QT2"], rows)
    cv = _write(tmp_path / "c.txt", ["#IID", "A", "B", "CONST"],
                [[i, j, 2 * j + 1, 7] for j, i in enumerate(ids)])
    with pytest.raises(PopgenError, match=r"c\.txt: no covariate column 'AGE'"):
        A.load_phenotypes(ds, ph, ["QT"], cv, ["AGE"])
    with pytest.raises(PopgenError, match=r"p\.txt: no phenotype column 'BMI'"):
        A.load_phenotypes(ds, ph, ["BMI"])
    with pytest.raises(PopgenError, match=r"p\.txt: phenotype WORD is not numeric \(value 'x'\)"):
        A.load_phenotypes(ds, ph, ["WORD"])
    for model in ("auto", "logistic", "linear"):
        with pytest.raises(PopgenError, match=r"p\.txt: phenotype EMPTY has no non-missing value"):
            A.load_phenotypes(ds, ph, ["EMPTY"], model=model)
    with pytest.raises(PopgenError, match=r"p\.txt: --logistic: phenotype QT is not case/control \(value [^;]+;"):
        A.load_phenotypes(ds, ph, ["QT"], model="logistic")
    with pytest.raises(PopgenError, match=r"p\.txt: case/control phenotype CTRL has only controls"):
        A.load_phenotypes(ds, ph, ["CTRL"])
    with pytest.raises(PopgenError, match=r"c\.txt: covariate CONST is constant"):
        A.load_phenotypes(ds, ph, ["QT"], cv)
    with pytest.raises(PopgenError, match="covariates A and B are collinear"):
        A.linear_scan(ds, {"QT": y}, np.column_stack([np.arange(40.0), 2 * np.arange(40.0) + 1]),
                      covariate_names=["A", "B"])
    with pytest.raises(PopgenError, match="covariates A, B, C are collinear"):
        x = rng.normal(size=(40, 2))
        A.linear_scan(ds, {"QT": y}, np.column_stack([x, x.sum(1)]), covariate_names=["A", "B", "C"])
    other = _write(tmp_path / "o.txt", ["#IID", "QT"], [[f"z{j}", 1.0] for j in range(40)])
    with pytest.raises(PopgenError, match=r"o\.txt: none of the 40 phenotype sample IDs"):
        A.load_phenotypes(ds, other)
    with pytest.raises(PopgenError, match="binary phenotype y has only"):
        A.logistic_scan(ds, {"y": np.ones(40)})
    with pytest.raises(PopgenError, match="unknown missing-call handling"):
        A.linear_scan(ds, {"QT": y}, missing="zero")
    with pytest.raises(PopgenError, match="unknown Firth mode"):
        A.logistic_scan(ds, {"y": (y > 0) * 1.0}, firth="sometimes")
    # an all-missing phenotype among others, or one with too few samples: skipped with a warning
    with caplog.at_level(logging.WARNING, logger="popgen"):
        data = A.load_phenotypes(ds, ph, ["QT", "EMPTY", "FEW", "QT2"])
    assert set(data.values) == {"QT", "QT2"} and set(data.skipped) == {"EMPTY", "FEW"}
    assert "FEW skipped: only 5 samples" in caplog.text
    scan = A.linear_scan(ds, {"QT": y, "FEW": np.where(np.arange(40) < 5, 1.0, np.nan)})
    assert scan.phenotypes == ["QT"] and "FEW" in scan.skipped
    with pytest.raises(PopgenError, match="no phenotype has enough samples"):
        A.linear_scan(ds, {"FEW": np.where(np.arange(40) < 5, 1.0, np.nan)})


def test_cli_gwas_with_pcs_as_covariates(tmp_path):
    """popgen pca, then popgen gwas with the .eigenvec as a second covariate file."""
    from conftest import EXAMPLE
    from popgen.cli import main

    ex = str(EXAMPLE)
    assert main(["pca", "--bfile", ex, "--out", str(tmp_path / "p"), "--n-pcs", "4", "--no-plot",
                 "--cluster", "none", "--device", "cpu"]) == 0
    assert main(["gwas", "--bfile", ex, "--pheno", ex + ".pheno", "--pheno-name", "QT",
                 "--covar", ex + ".covar", "--covar", str(tmp_path / "p.eigenvec"),
                 "--covar-name", "SEX AGE PC1 PC2 PC3 PC4", "--out", str(tmp_path / "g"), "--no-plots",
                 "--cluster", "none", "--device", "cpu"]) == 0
    header = (tmp_path / "g.QT.glm.linear").read_text().splitlines()[0].split("\t")
    assert header[:6] == ["#CHROM", "POS", "ID", "REF", "ALT", "A1"] and header[-1] == "ERRCODE"
    assert (tmp_path / "g.QT.ssf.tsv").is_file()
    assert "lambda_GC" in (tmp_path / "g.log").read_text()
    # PLINK 2's spelling: several values after one option (the README's usage)
    assert main(["gwas", "--bfile", ex, "--pheno", ex + ".pheno", "--pheno-name", "QT",
                 "--covar", ex + ".covar", str(tmp_path / "p.eigenvec"),
                 "--covar-name", "SEX", "AGE", "PC1", "PC2", "PC3", "PC4", "--out", str(tmp_path / "h"),
                 "--no-plots", "--no-ssf", "--cluster", "none", "--device", "cpu"]) == 0
    assert (tmp_path / "h.QT.glm.linear").read_text() == (tmp_path / "g.QT.glm.linear").read_text()


def test_cli_gwas_logistic_and_linear_force_the_model(tmp_path):
    """--logistic: every phenotype case/control (else one line naming it, no output but the log);
    --linear: a case/control phenotype by linear regression of its 0/1 codes."""
    from conftest import EXAMPLE
    from popgen.cli import main

    ex = str(EXAMPLE)
    base = ["gwas", "--bfile", ex, "--pheno", ex + ".pheno", "--covar", ex + ".covar", "--no-plots", "--no-ssf",
            "--cluster", "none", "--device", "cpu", "--no-progress"]
    res = subprocess.run([sys.executable, "-m", "popgen", *base, "--logistic", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("popgen: error:")]
    assert len(errors) == 1 and "example.pheno: --logistic: phenotype QT is not case/control" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.log"]

    assert main(base + ["--pheno-name", "BT", "--logistic", "--out", str(tmp_path / "lo")]) == 0
    assert main(base + ["--pheno-name", "BT", "--out", str(tmp_path / "auto")]) == 0
    assert (tmp_path / "lo.BT.glm.logistic.hybrid").read_text() == (tmp_path / "auto.BT.glm.logistic.hybrid").read_text()

    # --linear on BT (1/2 coded) = the linear scan of the quantitative 0.5 + 10 * (BT - 1)
    table = [line.split("\t") for line in Path(ex + ".pheno").read_text().splitlines()]
    col = table[0].index("BT")
    rows = ["\t".join(["#FID", "IID", "BT"])] + [
        "\t".join(r[:2] + [r[col] if r[col] in ("NA", "-9", "0") else f"{0.5 + 10 * (float(r[col]) - 1):g}"])
        for r in table[1:]]
    (tmp_path / "q.pheno").write_text("\n".join(rows) + "\n")
    assert main(base + ["--pheno-name", "BT", "--linear", "--out", str(tmp_path / "li")]) == 0
    base[base.index("--pheno") + 1] = str(tmp_path / "q.pheno")
    assert main(base + ["--pheno-name", "BT", "--out", str(tmp_path / "qt")]) == 0
    li = np.loadtxt(tmp_path / "li.BT.glm.linear", dtype=str, comments=None)
    qt = np.loadtxt(tmp_path / "qt.BT.glm.linear", dtype=str, comments=None)
    assert li.shape == qt.shape and li.shape[0] > 100
    h = list(li[0])
    num = lambda a, c: np.array([float(v) if v != "NA" else np.nan for v in a[1:, h.index(c)]])  # noqa: E731
    for c in ("T_STAT", "P"):
        np.testing.assert_allclose(num(li, c), num(qt, c), rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(10 * num(li, "BETA"), num(qt, "BETA"), rtol=1e-5, equal_nan=True)
    assert (li[:, h.index("OBS_CT")] == qt[:, h.index("OBS_CT")]).all()


def test_phenotypes_sharing_samples_equal_each_alone(rng, monkeypatch):
    """Phenotypes with one sample set share their covariate sums (grouped scan); results equal
    each phenotype scanned alone, also when groups take several passes over the genotypes."""
    g, ds, cov, qt, _ = _small(rng, n_variants=30, n_samples=120, chunks=(11, 50))
    y = qt["qt"]
    phenos = {"a": y, "b": y + rng.normal(size=120), "c": np.where(np.arange(120) % 9 == 0, np.nan, y),
              "d": 2 * y - 1 + rng.normal(size=120)}
    alone = {name: A.linear_scan(ds, {name: v}, cov).collect()[name] for name, v in phenos.items()}
    assert [len(grp) for grp in A._sample_set_groups(A._design(ds, phenos, cov, None, binary=False,
                                                                 min_samples=10).mask)] == [3, 1]
    for weight_bytes in (A._LINEAR_WEIGHT_BYTES, 1):  # one pass; one pass per group
        monkeypatch.setattr(A, "_LINEAR_WEIGHT_BYTES", weight_bytes)
        together = A.linear_scan(ds, phenos, cov).collect()
        assert list(together) == list(phenos)
        for name in phenos:
            pd.testing.assert_frame_equal(together[name], alone[name], rtol=1e-9)


def test_small_inverse_numba_equals_namespace_code(rng):
    """_sym_inverse on NumPy (numba loop) equals the array-namespace code (array-api-strict)."""
    xs = pytest.importorskip("array_api_strict")
    x = rng.normal(size=(40, 30, 6))
    a = np.einsum("vsi,vsj->vij", x, x) / 30 * rng.uniform(0.01, 100, size=(40, 1, 1))
    a[3, 1, :], a[3, :, 1] = a[3, 2, :], a[3, :, 2]           # singular (two equal predictors)
    a[5, 0, 0] = -1.0                                         # non-positive diagonal
    a[7, 2, 3] = np.nan                                       # non-finite
    inv, logdet, ok = A._sym_inverse(np, a)
    with np.errstate(all="ignore"):
        ref = [np.asarray(r) for r in A._sym_inverse(xs, xs.asarray(a))]
    np.testing.assert_array_equal(ok, ref[2])
    assert not ok[[3, 5, 7]].any() and ok.sum() == 37
    np.testing.assert_allclose(inv[ok], ref[0][ok], rtol=1e-10)
    np.testing.assert_allclose(logdet[ok], ref[1][ok], rtol=1e-10)
    np.testing.assert_allclose(inv[ok] @ a[ok], np.broadcast_to(np.eye(6), (37, 6, 6)), atol=1e-8)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_chord_iterations_equal_plink2_newton_path(rng, backend_name, monkeypatch):
    """The chord-then-Newton logistic fit gives PLINK 2's Newton estimates (and SEs from a Hessian
    as close to the optimum as PLINK 2's); variants it cannot finish (strong or rare-allele
    effects, near separation) fall back to the Newton path itself."""
    import array_api_compat.numpy as xnp

    xp = xnp if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    n, nv = 600, 80
    cov = rng.normal(size=(n, 3))
    maf = np.concatenate([rng.uniform(0.05, 0.5, nv - 10), np.full(10, 0.004)])
    g = (rng.random((nv, n)) < maf[:, None]).astype(float) + (rng.random((nv, n)) < maf[:, None])
    effect = np.where(np.arange(nv) % 9 == 0, 1.5, rng.normal(0, 0.1, nv))
    eta = -0.7 + cov @ np.array([0.5, -0.3, 0.2]) + effect[:, None] * g
    y = (rng.random((nv, n)) < 1 / (1 + np.exp(-eta)))[0].astype(float)  # one phenotype; variant 0 causal
    w = (rng.random((nv, n)) > 0.02).astype(float)
    g = g * w
    m = np.ones(n, bool)
    cp = A._pair_products(xnp, cov)
    start = A._null_logistic(xnp, y, m * 1.0, cov)
    v0, a0, r0 = A._null_weights(xnp, start, m, cov, y)
    wr = w * r0
    grad0 = np.column_stack([wr.sum(1), (wr * g).sum(1), wr @ cov])  # X'(w (mu0 - y))
    calls = []
    fit = A._logistic_fit
    monkeypatch.setattr(A, "_logistic_fit", lambda model, s=None: calls.append(model.g.shape[0]) or fit(model, s))
    args = [xp.asarray(a) for a in (g, w, y, cov, cp)]
    chord = A._logistic_chord(A._Model(xp, *args), *(xp.asarray(a) for a in (start, v0, a0)),
                              grad0=xp.asarray(grad0))
    newton = fit(A._Model(xp, *args), xp.asarray(start))
    chord, newton = ([np.asarray(a) for a in r] for r in (chord, newton))
    assert 0 < sum(calls) < nv // 4  # a few variants took the Newton path, most did not
    np.testing.assert_array_equal(chord[2], newton[2])
    ok = ~newton[2]
    np.testing.assert_allclose(chord[0][ok], newton[0][ok], rtol=0, atol=2e-6)
    se = [np.sqrt(np.linalg.inv(h[ok])[:, 1, 1]) for h in (chord[1], newton[1])]
    np.testing.assert_allclose(se[0], se[1], rtol=2e-5)


def _rare_firth_case(rng, n=800, nv=40):
    """Rare variants (a few carriers, some only among cases: separation), one without carriers,
    missing calls, and a null model: ``(g, w, y, cov, start)``."""
    import array_api_compat.numpy as xnp

    cov = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.8 + cov @ np.array([0.4, -0.2, 0.1]))))).astype(float)
    g = np.zeros((nv, n))
    for v in range(nv):
        carriers = rng.choice(n, size=rng.integers(1, 12), replace=False)
        g[v, carriers] = rng.integers(1, 3, size=carriers.size)
    cases = np.flatnonzero(y == 1)
    g[1], g[1, cases[:4]] = 0.0, 1.0  # carriers only among cases
    g[2] = 0.0                        # no carrier
    w = (rng.random((nv, n)) > 0.02).astype(float)
    g = g * w
    start = A._null_logistic(xnp, y, np.ones(n), cov)
    return g, w, y, cov, start


def test_firth_start_numba_equals_namespace_code_and_maximizes_1d_objective(rng):
    """The carrier-only 1-D start of Firth's iterations: the numba loop equals the array-namespace
    code (NumPy and array-api-strict), and each coefficient is the maximum of the 1-D penalized
    log-likelihood (scipy's bounded scalar optimizer as the oracle)."""
    import array_api_compat.numpy as xnp
    from scipy.optimize import minimize_scalar

    xs = pytest.importorskip("array_api_strict")
    g, w, y, cov, start = _rare_firth_case(rng)
    cp = A._pair_products(xnp, cov)
    got = A._firth_start(A._Model(xnp, g, w, y, cov, cp), start)
    assert got.shape == (g.shape[0], 5)
    np.testing.assert_array_equal(got[:, [0, 2, 3, 4]], np.broadcast_to(start[[0, 2, 3, 4]], (g.shape[0], 4)))
    b = got[:, 1]
    eta0 = start[0] + cov @ start[2:]
    for name, xp in (("numpy", xnp), ("array_api_strict", xs)):
        dense = np.asarray(A._firth_start_dense(xp, *(xp.asarray(a) for a in (eta0, g, w, y))))
        np.testing.assert_allclose(dense, b, rtol=0, atol=1e-6, err_msg=name)  # steps end below 1e-6
    assert b[2] == 0.0 and b[1] > 2.0  # no carrier: stays at the null; separated: large, finite

    def objective(beta, v):
        c = (g[v] != 0) & (w[v] != 0)
        eta = eta0[c] + beta * g[v, c]
        mu = 1 / (1 + np.exp(-eta))
        return -(np.sum(y[c] * eta - np.logaddexp(0, eta)) + 0.5 * np.log(np.sum(mu * (1 - mu) * g[v, c] ** 2)))

    for v in np.flatnonzero(b != 0):
        best = minimize_scalar(objective, bounds=(b[v] - 3, b[v] + 3), args=(v,), method="bounded",
                               options={"xatol": 1e-10})
        assert abs(best.x - b[v]) < 1e-4, v
        assert objective(b[v], v) <= best.fun + 1e-9


def test_firth_start_without_covariates(rng):
    """Without covariates the null linear predictor is the intercept for every sample: the numba
    start equals the array code's (and reads no sample beyond the cohort)."""
    import array_api_compat.numpy as xnp

    g, w, y, cov, _ = _rare_firth_case(rng)
    cov = np.zeros((y.shape[0], 0))
    start = A._null_logistic(xnp, y, np.ones(y.shape[0]), cov)
    got = A._firth_start(A._Model(xnp, g, w, y, cov, A._pair_products(xnp, cov)), start)
    dense = A._firth_start_dense(xnp, np.full(y.shape[0], start[0]), g, w, y)
    np.testing.assert_allclose(got[:, 1], dense, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[:, 0], start[0])


def test_firth_from_the_1d_start_equals_firth_from_the_null(rng, monkeypatch):
    """Firth's iterations from the 1-D start end at the estimates they reach from the null model
    (within the 1e-4 convergence criteria), in fewer iterations."""
    import array_api_compat.numpy as xnp

    g, w, y, cov, start = _rare_firth_case(rng)
    cp = A._pair_products(xnp, cov)
    model = A._Model(xnp, g, w, y, cov, cp)
    keep = np.flatnonzero(g.any(axis=1))
    model = model.take(keep)
    scores = []
    score = A._Model.firth_score
    monkeypatch.setattr(A._Model, "firth_score", lambda self, mu, h: scores.append(h.shape[0]) or score(self, mu, h))
    null = A._firth_fit(model, start)
    n_null, scores[:] = sum(scores), []
    fast = A._firth_fit(model, A._firth_start(model, start))
    assert sum(scores) < 0.7 * n_null
    np.testing.assert_array_equal(fast[2], null[2])
    ok = ~null[2]
    assert ok.sum() > 30
    np.testing.assert_allclose(fast[0][ok], null[0][ok], rtol=0, atol=5e-4)
    np.testing.assert_allclose(np.sqrt(fast[1][ok][:, 1, 1]), np.sqrt(null[1][ok][:, 1, 1]), rtol=1e-4)


def _grouped_solve_array_code(sums, totals, sizes, *, n_cov, n_founders, max_corr, vif):
    """The linear solve of a NumPy block by the array code (what CuPy blocks run)."""
    st = A._grouped_stats(sums, totals, sizes, n_cov=n_cov, n_founders=n_founders)
    return np.asarray(A._grouped_solve(st["xtx"], st["xty"], st["yy"], st["flip"], sizes,
                                       max_corr=max_corr, vif=vif))


def test_grouped_solve_numba_equals_array_code(rng, monkeypatch):
    """The per-phenotype solve of the grouped linear scan on NumPy blocks (numba loop) gives the
    array code's fields: phenotype groups of several sizes, a constant variant, A1 = REF, a
    variant collinear with a covariate, a phenotype exactly linear in the covariates
    (INVALID_RESULT) and missing calls."""
    g, ds, cov, qt, _ = _small(rng, n_variants=30, n_samples=120, chunks=(11, 50))
    g = np.asarray(ds["call_genotype"].values).sum(axis=-1).astype(np.int8)  # as the dataset holds it
    y = qt["qt"]
    c0 = np.where(np.isnan(cov[:, 0]), 0.0, cov[:, 0])
    phenos = {"a": y, "b": y + rng.normal(size=120), "c": np.where(np.arange(120) % 9 == 0, np.nan, y),
              "d": 2 * y - 1 + rng.normal(size=120), "exact": 3.0 + 2.0 * c0,
              "e": np.where(np.arange(120) % 7 == 0, np.nan, rng.normal(size=120))}
    cov = np.column_stack([cov, np.where(g[3] >= 0, g[3], 0) + 0.0])  # variant 3 ~ this covariate
    fast = A.linear_scan(ds, phenos, cov).collect()

    monkeypatch.setattr(A, "_grouped_solve_numba", _grouped_solve_array_code)
    slow = A.linear_scan(ds, phenos, cov).collect()
    codes = set()
    for name in phenos:
        codes |= set(np.asarray(fast[name]["ERRCODE"]).astype(str))
        if name != "exact":
            pd.testing.assert_frame_equal(fast[name], slow[name], rtol=1e-10)
    assert {".", "CONST_OMITTED_ALLELE", "CORR_TOO_HIGH"} <= codes, codes
    # no residual: INVALID_RESULT, or (where rounding leaves a variance above PLINK 2's 1e-20) no signal
    for res in (fast["exact"], slow["exact"]):
        errs = np.asarray(res["ERRCODE"]).astype(str)
        assert (errs == "INVALID_RESULT").sum() >= 10
        assert np.nanmax(np.abs(res["T_STAT"][errs == "."])) < 1e-5


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_group_terms_numba_equals_array_code(rng, backend_name):
    """The numba group terms of the linear solve (PLINK 2's sample-count, constant-genotype,
    correlation, VIF and rank checks, the inverse and its diagonal) equal the array code's."""
    import array_api_compat.numpy as xnp
    from popgen.kernels.assoc._linear_solve_numba import group_terms

    xp = xnp if backend_name == "numpy" else pytest.importorskip("array_api_strict")
    n, k = 60, 4
    mats = []
    for case in range(14):
        c = rng.normal(size=(n, k))
        g = rng.integers(0, 3, n).astype(float)
        rows = n
        if case == 1:
            g[:] = 1.0                                    # constant genotype
        elif case == 2:
            rows = 5                                      # fewer samples than predictors
        elif case == 3:
            c[:, 1] = c[:, 0] * 2.0 + 1e-9 * rng.normal(size=n)  # correlated covariates
        elif case == 4:
            c[:, 3] = c[:, 0] + c[:, 1] + c[:, 2] + 0.02 * rng.normal(size=n)  # high VIF
        elif case == 5:
            g = c[:, 0] - c[:, 1]                         # genotype in the covariates' span
        elif case == 6:
            c[:, 2] = 0.0                                 # constant covariate
        x = np.column_stack([np.ones(rows), c[:rows], g[:rows]])
        mats.append(x.T @ x)
    xtx = np.stack(mats).reshape(7, 2, k + 2, k + 2)
    xtx[6, 1, 2, 3] = np.nan                              # non-finite
    flip = np.array([True, False] * 3 + [True])
    ref = [np.asarray(a) for a in A._group_terms(xp, xp.asarray(xtx), xp.asarray(flip), max_corr=0.999, vif=50.0)]
    ref_n, ref_err, ref_inv, ref_d, ref_corr_bad, ref_d_min, ref_d_finite, ref_a1 = ref
    out = [np.empty((7, 2)) for _ in range(5)]
    d_finite, corr_bad, inv = np.empty((7, 2), bool), np.empty((7, 2), bool), np.empty_like(xtx)
    codes = np.array([A.E_SAMPLE_CT, A.E_CONST, A.E_CORR, A.E_VIF_INF, A.E_VIF, A.E_RANK], dtype=float)
    group_terms(xtx, flip, 0.999, 50.0, codes, out[0], out[1], inv, out[2], out[3], d_finite, corr_bad, out[4])
    nn, err, d_k, d_min, a1 = out
    errs = {A.ERRCODES[int(e)] for e in ref_err.ravel()}
    assert {".", "CONST_OMITTED_ALLELE", "SAMPLE_CT<=PREDICTOR_CT", "CORR_TOO_HIGH", "VIF_TOO_HIGH"} <= errs, errs
    np.testing.assert_array_equal(err, ref_err)
    np.testing.assert_array_equal(nn, ref_n)
    np.testing.assert_array_equal(a1, ref_a1)
    np.testing.assert_array_equal(corr_bad, ref_corr_bad)
    np.testing.assert_array_equal(d_finite, ref_d_finite)
    ok = err == 0
    np.testing.assert_allclose(inv[ok], ref_inv[ok], rtol=1e-12)
    np.testing.assert_allclose(d_k[ok], ref_d[..., -1][ok], rtol=1e-12)
    np.testing.assert_allclose(d_min[ok], ref_d_min[ok], rtol=1e-12)


def test_grouped_solve_numba_equals_array_code_without_covariates(rng, monkeypatch):
    """Without covariates (intercept and genotype only: no correlation or VIF check) the numba
    solve gives the array code's fields too."""
    g = random_alt(rng, 30, 120, missing=0.05)
    g[0] = 1
    ds = make_dataset(g, chunks=(11, 50))
    phenos = {"a": rng.normal(size=120), "b": np.where(np.arange(120) % 5 == 0, np.nan, rng.normal(size=120))}
    fast = A.linear_scan(ds, phenos, None).collect()

    monkeypatch.setattr(A, "_grouped_solve_numba", _grouped_solve_array_code)
    slow = A.linear_scan(ds, phenos, None).collect()
    for name in phenos:
        pd.testing.assert_frame_equal(fast[name], slow[name], rtol=1e-10)
    assert set(fast["a"]["ERRCODE"]) == {".", "CONST_OMITTED_ALLELE"}


# ------------------------------------------------------------------ sex chromosomes

SEXCHROM = DATA / "sexchrom" / "sexchrom"


@pytest.mark.parametrize("covar_names, ref", [("AGE", "sexchrom.glm"), ("AGE,SEX", "sexchrom.sexcovar.glm")])
def test_sex_chromosomes_equal_plink2(tmp_path, covar_names, ref):
    """chrX (sex added as a covariate, males 0/2), chrY (males, haploid), XY (diploid) and MT
    (haploid) between two autosomes, as plink2 --glm scans them; with SEX among the covariates,
    as its no-x-sex modifier (it stops with VIF_INFINITE without it)."""
    ds = read_plink(SEXCHROM, chunks=(50, 400))  # runs of variants end inside chunks; 2 sample chunks
    data = A.load_phenotypes(ds, f"{SEXCHROM}.pheno", ["QT", "BT"], f"{SEXCHROM}.covar", covar_names)
    report = A.gwas(ds, data, tmp_path / "s", ssf=True, plots=False)
    assert report["QT"]["n_variants"] == report["BT"]["n_variants"] == ds.sizes["variants"]
    for name, ext, est in (("QT", "glm.linear", "BETA"), ("BT", "glm.logistic.hybrid", "OR")):
        got, want = pd.read_csv(tmp_path / f"s.{name}.{ext}", sep="\t"), plink(f"{ref}.{name}.{ext}")
        assert set(want["#CHROM"].astype(str)) == {"1", "X", "XY", "Y", "MT", "2"}
        for col in ["#CHROM", "POS", "A1", "OBS_CT"] + (["FIRTH?"] if name == "BT" else []):
            np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=f"{name} {col}")
        np.testing.assert_array_equal(errclass(got.ERRCODE), errclass(want.ERRCODE))
        shown = np.isin(want.ERRCODE, SHOWN)
        firth = (want["FIRTH?"] == "Y").to_numpy() if name == "BT" else np.zeros(len(want), bool)
        se = "SE" if name == "QT" else "LOG(OR)_SE"
        for col in (est, se):
            r = rel(got[col][shown & ~firth], want[col][shown & ~firth])
            # logistic standard errors: a few carry PLINK 2's single-precision Hessian (as on the
            # autosomes of the example; here 3 of 347 rows beyond 1e-4, on chrX/chrY), linear is exact
            assert (r.max() < 1e-4) if col != "LOG(OR)_SE" else (np.mean(r < 1e-4) > 0.98 and r.max() < 5e-3), \
                (name, col, r.max())
            assert rel(got[col][shown & firth], want[col][shown & firth]).max(initial=0) < 2e-3, (name, col)
        assert np.abs(np.log10(got.P[shown]) - np.log10(want.P[shown])).max() < 1e-3
        # males on chrY only; fewer samples on chrX (unknown sex left out)
        obs = want.groupby("#CHROM").OBS_CT.max()
        assert obs["Y"] < obs["1"] / 2 + 50 and obs["X"] < obs["1"]
    ssf = pd.read_csv(tmp_path / "s.QT.ssf.tsv", sep="\t")
    assert len(ssf) == ds.sizes["variants"] and set(ssf.chromosome.astype(str)) >= {"23", "24", "25"}
    # chrX effect allele frequencies among the phenotype's samples, a male's call one allele (as --freq)
    alt = ds.call_alt_count.values.astype(float)
    sex = ds.sample_sex.values
    used = np.isfinite(data.values["QT"]) & np.all(np.isfinite(data.covariates), axis=1) & (sex > 0)
    x = np.flatnonzero(np.asarray(ds.contig_id.values)[ds.variant_contig.values] == "X")
    g = np.where(alt[x] >= 0, alt[x], 0.0)[:, used]
    called = (alt[x] >= 0)[:, used]
    male = sex[used] == 1
    alt_freq = (g[:, ~male].sum(1) + g[:, male].sum(1) / 2) / (2 * called[:, ~male].sum(1) + called[:, male].sum(1))
    eaf = np.where(ssf.ref_allele[x] == "EA", 1 - alt_freq, alt_freq)
    np.testing.assert_allclose(ssf.effect_allele_frequency[x], eaf, rtol=1e-5)


def test_contig_models_and_runs(rng):
    g = random_alt(rng, 9, 20)
    ds = make_dataset(g, chunks=(4, 20))
    ds["contig_id"] = ("contigs", np.array(["1", "chrX", "Y", "MT", "XY"], dtype=object))
    ds["variant_contig"] = ("variants", np.array([0, 0, 1, 1, 4, 2, 3, 0, 0], dtype=np.int32))
    from popgen.genotypes import contig_model, model_runs

    assert [contig_model(c) for c in ("1", "23", "chrX", "X", "24", "M", "26", "XY", "25")] == \
        ["autosome", "x", "x", "x", "y", "mt", "mt", "autosome", "autosome"]
    runs = [(0, 2, "autosome"), (2, 4, "x"), (4, 5, "autosome"), (5, 6, "y"), (6, 7, "mt"), (7, 9, "autosome")]
    assert model_runs(ds) == runs
    for chunks in (1, 2, 4):  # a lazy variant_contig is read block by block: runs across and at block edges
        assert model_runs(ds.chunk({"variants": chunks})) == runs


def test_sex_chromosome_inputs(rng):
    n = 30
    sex = np.array([1, 2, 0] * 10)
    pheno = {"QT": rng.normal(size=n)}
    cov = np.column_stack([rng.normal(size=n), np.where(sex == 0, np.nan, sex * 3.0 + 1)])  # AGE and a SEX code
    # chrX: the sex is added as a covariate unless the covariates hold it already
    values, c, names, haploid = A.sex_chromosome_inputs("x", sex, pheno, cov[:, :1], ["AGE"])
    assert names == ["AGE", "SEX"] and not haploid and np.isnan(c[sex == 0, 1]).all()
    np.testing.assert_array_equal(c[sex > 0, 1], sex[sex > 0])
    assert A.sex_chromosome_inputs("x", sex, pheno, cov, ["AGE", "S"])[2] == ["AGE", "S"]
    assert A.sex_chromosome_inputs("x", np.zeros(n), pheno, None, None)[1] is None  # no known sex: none added
    # chrY: males only, covariates constant among them dropped, haploid
    values, c, names, haploid = A.sex_chromosome_inputs("y", sex, pheno, cov, ["AGE", "S"])
    assert haploid and names == ["AGE"] and c.shape == (n, 1)
    assert np.isfinite(values["QT"]).sum() == 10 and np.isnan(values["QT"][sex != 1]).all()
    assert A.sex_chromosome_inputs("y", np.full(n, 2), pheno, cov, ["AGE", "S"]) == "no male sample"
    assert A.sex_chromosome_inputs("mt", sex, pheno, cov, ["AGE", "S"])[3] is True


def test_sex_chromosomes_without_sex(tmp_path, caplog):
    """No sample sex (e.g. VCF input): chrX scanned without a sex covariate (PLINK 2 too),
    chrY not tested, with a warning."""
    ds = read_plink(SEXCHROM).drop_vars("sample_sex")
    data = A.load_phenotypes(ds, f"{SEXCHROM}.pheno", ["QT"], f"{SEXCHROM}.covar", ["AGE"])
    with caplog.at_level(logging.WARNING, logger="popgen"):
        A.gwas(ds, data, tmp_path / "n", ssf=False, plots=False)
    assert "30 variants on chrY not tested: no male sample" in caplog.text
    got = pd.read_csv(tmp_path / "n.QT.glm.linear", sep="\t")
    assert "Y" not in set(got["#CHROM"]) and len(got) == ds.sizes["variants"] - 30
    x = np.flatnonzero(np.asarray(ds.contig_id.values)[ds.variant_contig.values] == "X")
    autosomal = A.linear_scan(ds.isel(variants=x), data.quantitative(), data.covariates).collect()["QT"]
    np.testing.assert_allclose(got[got["#CHROM"] == "X"].BETA.to_numpy(), autosomal.BETA.to_numpy(), rtol=1e-5)


def test_confidence_intervals_equal_plink2(tmp_path):
    """--ci 0.95: L95 U95 after the standard error, as plink2 --glm --ci 0.95 writes them (normal
    quantile; exponentiated for odds ratios)."""
    from popgen.cli import main

    assert main(["gwas", "--bfile", str(SEXCHROM), "--pheno", f"{SEXCHROM}.pheno", "--covar", f"{SEXCHROM}.covar",
                 "--covar-name", "AGE", "--ci", "0.95", "--out", str(tmp_path / "c"), "--cluster", "none",
                 "--device", "cpu", "--no-plots", "--no-progress"]) == 0
    for name, ext, tol in (("QT", "glm.linear", 1e-5), ("BT", "glm.logistic.hybrid", 5e-3)):
        got, want = pd.read_csv(tmp_path / f"c.{name}.{ext}", sep="\t"), plink(f"sexchrom.ci.glm.{name}.{ext}")
        assert list(got.columns) == list(want.columns) and "L95" in got
        for col in ("L95", "U95"):  # logistic: PLINK 2's single-precision fits, as OR and SE above
            assert rel(got[col], want[col]).max() < tol, (name, col)
        est, se = (got.BETA, got.SE) if name == "QT" else (np.log(got.OR), got["LOG(OR)_SE"])
        lo = est - 1.959963984540054 * se  # from the printed 6-digit estimates: to their precision
        assert (np.abs(np.log(got.L95) - lo) if name == "BT" else np.abs(got.L95 - lo)).max() < \
            1e-5 * (1 + np.abs(lo).max() + se.max())
        ssf = pd.read_csv(tmp_path / f"c.{name}.ssf.tsv", sep="\t")  # GWAS-SSF: ci_upper ci_lower, last
        assert list(ssf.columns[-2:]) == ["ci_upper", "ci_lower"]
        np.testing.assert_array_equal(ssf.ci_upper, got.U95)
        np.testing.assert_array_equal(ssf.ci_lower, got.L95)
