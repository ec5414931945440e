"""Federated analysis: three sites of unequal size (the example cohort's populations, with
missing calls) against the pooled individual-level analysis."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import EXAMPLE

from popgen.errors import PopgenError

CONFIGS = Path(__file__).parents[1] / "configs" / "federated"
SITES = ("centre", "north", "south")   # sorted: the coordinator's order, centre is the reference site


def write_plan(path, **over):
    plan = {"name": "test", "variants": f"{EXAMPLE}.bim", "frequencies": "founders",
            "privacy": {"min_samples": 50, "min_allele_count": 0, "min_missing_count": 0},
            "gwas": {"phenotypes": ["QT"], "covariates": ["SEX", "AGE"]},
            "pca": {"n_pcs": 10, "n_rounds": 10, "n_oversamples": 10, "seed": 0}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(plan.get(k), dict):
            plan[k] = {**plan[k], **v}
        else:
            plan[k] = v
    path.write_text(yaml.safe_dump(plan))
    from popgen.federated.plan import load_plan

    return load_plan(path)


def site_cohort(name, chunks=(1024, 128)):
    from popgen.io.plink import read_plink
    from popgen.pipeline import subset_samples

    return subset_samples(read_plink(EXAMPLE, chunks=chunks), CONFIGS / f"{name}.keep", None)


def site_pheno(ds):
    from popgen.association import load_phenotypes

    return load_phenotypes(ds, f"{EXAMPLE}.pheno", ["QT"], f"{EXAMPLE}.covar", ["SEX", "AGE"])


def messy(ds):
    """A site whose data differ in form: REF/ALT swapped on variants 0-99, variants 200-249 absent."""
    import dask.array as da

    from popgen.genotypes import alt_allele_count

    alt = np.asarray(alt_allele_count(ds).compute())
    alt[:100] = np.where(alt[:100] >= 0, 2 - alt[:100], -1)
    alleles = np.asarray(ds["variant_allele"].values).astype(str).copy()
    alleles[:100] = alleles[:100, ::-1]
    drop = [v for v in ("call_genotype", "call_genotype_mask", "call_alt_count") if v in ds]
    ds = ds.drop_vars(drop).assign(call_alt_count=(("variants", "samples"), da.from_array(alt, chunks=(700, 64))),
                                   variant_allele=(("variants", "alleles"), alleles))
    return ds.isel(variants=np.r_[0:200, 250:ds.sizes["variants"]])


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """Plan, aligned sites and their counts / linear / sumstats bundles (south is messy)."""
    from popgen.federated import site as S

    d = tmp_path_factory.mktemp("fed")
    plan = write_plan(d / "plan.yaml")
    sites, bundles = {}, {"counts": [], "linear": [], "sumstats": []}
    for name in SITES:
        ds = site_cohort(name)
        if name == "south":
            ds = messy(ds)
        st = S.align(ds, plan, name)
        ph = site_pheno(st.ds)
        sites[name] = st
        bundles["counts"].append(S.export_counts(st, d / f"{name}.counts.pgb"))
        bundles["linear"].append(S.export_linear(st, ph, d / f"{name}.linear.pgb"))
        bundles["sumstats"].append(S.export_sumstats(st, ph, d / f"{name}.sumstats.pgb"))
    return {"dir": d, "plan": plan, "sites": sites, "bundles": bundles}


def pooled_cohort(names=SITES):
    from popgen.io.plink import read_plink

    ds = read_plink(EXAMPLE, chunks=(1024, 128))
    iid = np.asarray(ds["sample_id"].values).astype(str)
    site_of = np.full(len(iid), -1)
    for i, name in enumerate(SITES):
        keep = [line.split()[1] for line in (CONFIGS / f"{name}.keep").read_text().splitlines()]
        site_of[np.isin(iid, keep)] = i
    sel = np.flatnonzero(np.isin(site_of, [SITES.index(n) for n in names]))
    return ds.isel(samples=sel), site_of[sel]


# ------------------------------------------------------------------ pooled-equivalent results


def test_site_alignment_flips_swapped_alleles_and_reports_absent_variants(fed):
    st = fed["sites"]["south"]
    assert st.report["flipped"] == 100 and st.report["matched"] == 4950
    assert not np.isin(np.arange(200, 250), st.plan_index).any()


def test_pooled_frequencies_are_exact(fed, tmp_path):
    """Summed counts equal the pooled cohort's (founders, as popgen qc / plink2 --freq),
    flipped alleles undone; the panel is byte-identical to popgen qc's .afreq."""
    from popgen import qc
    from popgen.federated import coordinator as C
    from popgen.genotypes import founder_mask
    from popgen.io import reports

    plan = fed["plan"]
    pooled = C.combine_counts(plan, C.read_site_bundles(fed["bundles"]["counts"], plan, "counts"))
    ds, _ = pooled_cohort()
    f = qc.variant_stats(ds, samples=founder_mask(ds), merge=False)
    a = qc.variant_stats(ds, merge=False)
    keep = np.r_[0:200, 250:5000]  # south lacks 200-249: their counts are the other two sites'
    np.testing.assert_array_equal(pooled["freq_n_called"][keep], f["variant_n_called"].values[keep])
    np.testing.assert_array_equal(pooled["freq_n_het"][keep], f["variant_n_het"].values[keep])
    np.testing.assert_array_equal(pooled["n_hom_alt"][keep], a["variant_n_hom_alt"].values[keep])
    assert (pooled["n_sites"][200:250] == 2).all() and (pooled["n_sites"][keep] == 3).all()
    C.write_frequency_panel(tmp_path / "pooled", plan, pooled)
    reports.write_afreq(tmp_path / "qc.afreq", ds, f["variant_allele_count"].values)
    ours = (tmp_path / "pooled.afreq").read_text().splitlines()
    theirs = (tmp_path / "qc.afreq").read_text().splitlines()
    assert [ours[0]] + [ours[i + 1] for i in keep] == [theirs[0]] + [theirs[i + 1] for i in keep]


def test_plan_filters_equal_pooled_qc(tmp_path):
    """--mind at the sites and --geno/--hwe/--maf on pooled counts keep the samples and
    variants popgen qc keeps on the pooled cohort."""
    from popgen import qc
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    f = {"mind": 0.0115, "geno": 0.015, "hwe": 1e-3, "maf": 0.05}
    plan = write_plan(tmp_path / "plan.yaml", filters=f, pca=None)
    sites = [S.align(site_cohort(n), plan, n) for n in SITES]
    pooled = C.combine_counts(plan, C.read_site_bundles(
        [S.export_counts(st, tmp_path / f"{st.name}.pgb") for st in sites], plan, "counts"))
    C.write_frequency_panel(tmp_path / "pooled", plan, pooled)
    ds, _ = pooled_cohort()
    ref, rep = qc.apply_filters(ds, qc.Filters(**f))
    assert rep.removed["mind"] > 0 and rep.removed["maf"] > 0 and rep.removed["geno"] > 0
    assert sorted(i for st in sites for i in np.asarray(st.ds["sample_id"].values).astype(str)) == \
        sorted(np.asarray(ref["sample_id"].values).astype(str))
    kept = (tmp_path / "pooled.filter.in").read_text().split()
    assert kept == list(np.asarray(ref["variant_id"].values).astype(str))
    assert pooled["removed"] == {k: v for k, v in rep.removed.items() if k != "mind"}
    np.testing.assert_array_equal(C.kept_variants(tmp_path / "pooled", plan), np.isin(plan.variant_id, kept))


def _pooled_scan(names):
    from popgen import association as A

    ds, site_of = pooled_cohort(names)
    ph = site_pheno(ds)
    dummies = [(site_of == SITES.index(n)).astype(float) for n in names[1:]]
    cov = np.column_stack([ph.covariates] + dummies)
    scan = A.linear_scan(ds, {"QT": ph.values["QT"]}, cov, covariate_names=["SEX", "AGE"] + list(names[1:]))
    return np.asarray(scan.fields.compute())[:, 0], scan.n_samples


def test_federated_linear_gwas_equals_pooled(fed):
    """BETA and SE within 1e-8 relative of popgen gwas on the pooled samples with site
    indicators as covariates; OBS_CT, A1 and ERRCODE identical.  Variants absent at one
    site equal the pooled analysis of the other two."""
    from popgen.federated import coordinator as C

    plan = fed["plan"]
    res = C.combine_linear(plan, C.read_site_bundles(fed["bundles"]["linear"], plan, "linear"))
    ours = res["fields"][:, 0]
    n_samples = _pooled_scan(SITES)[1]
    for rows, names in ((np.r_[0:200, 250:5000], SITES), (np.arange(200, 250), ("centre", "north"))):
        ref = _pooled_scan(names)[0][rows]
        got = ours[rows]
        np.testing.assert_array_equal(got[:, 4], ref[:, 4])            # ERRCODE
        np.testing.assert_array_equal(got[:, 2], ref[:, 2])            # OBS_CT
        np.testing.assert_array_equal(got[:, 3], ref[:, 3])            # A1 count
        np.testing.assert_array_equal(got[:, 6], ref[:, 6])            # A1 is REF
        ok = ref[:, 4] == 0
        assert ok.sum() > 0.9 * len(rows)
        np.testing.assert_allclose(got[ok, 0], ref[ok, 0], rtol=1e-8)  # BETA
        np.testing.assert_allclose(got[ok, 1], ref[ok, 1], rtol=1e-8)  # SE
    assert (res["n_predictors"][np.r_[0:200, 250:5000], 0] == 6).all()
    assert (res["n_predictors"][200:250, 0] == 5).all()
    assert res["n_samples"] == n_samples == {"QT": 588}  # samples with QT, SEX and AGE


def test_meta_analysis_is_the_ivw_formula(fed, tmp_path):
    """The coordinator's meta-analysis equals inverse-variance weighting of each site's own
    popgen gwas results, written by hand here."""
    from scipy import stats

    from popgen import association as A
    from popgen.federated import coordinator as C

    plan = fed["plan"]
    res = C.combine_sumstats(plan, C.read_site_bundles(fed["bundles"]["sumstats"], plan, "sumstats"))
    betas, ses = [], []
    for name in SITES:
        st = fed["sites"][name]
        ph = site_pheno(st.ds)
        t = A.linear_scan(st.ds, {"QT": ph.values["QT"]}, ph.covariates, covariate_names=["SEX", "AGE"]).collect()["QT"]
        b = np.where(t["A1"] == t["REF"], -t["BETA"], t["BETA"]).astype(float)  # per ALT allele
        b[t["ERRCODE"] != "."] = np.nan
        betas.append(st.scatter(b, np.nan))
        ses.append(st.scatter(np.where(t["ERRCODE"] == ".", t["SE"], np.nan).astype(float), np.nan))
    b, s = np.array(betas), np.array(ses)
    v = int(np.flatnonzero(np.isfinite(b).all(axis=0) & np.isfinite(s).all(axis=0))[500])  # every site has a result
    w = 1 / s[:, v] ** 2
    beta = (w * b[:, v]).sum() / w.sum()
    se = w.sum() ** -0.5
    q = (w * (b[:, v] - beta) ** 2).sum()
    assert res["beta"][v, 0] == pytest.approx(beta, rel=1e-12)
    assert res["se"][v, 0] == pytest.approx(se, rel=1e-12)
    assert res["p"][v, 0] == pytest.approx(2 * stats.norm.sf(abs(beta / se)), rel=1e-9)
    assert res["q"][v, 0] == pytest.approx(q, rel=1e-9)
    assert res["i2"][v, 0] == pytest.approx(max(0.0, (q - 2) / q), abs=1e-12)
    assert res["het_p"][v, 0] == pytest.approx(stats.chi2.sf(q, 2), rel=1e-9)
    assert "".join(res["direction"][:, v, 0]) == "".join("+" if x > 0 else "-" for x in b[:, v])
    # a variant absent at south: two sites, direction '?', df 1
    assert res["n_sites"][220, 0] == 2 and res["direction"][2, 220, 0] == "?" and res["df"][220, 0] == 1
    paths = C.write_meta(tmp_path / "meta", plan, C.read_site_bundles(fed["bundles"]["sumstats"], plan, "sumstats"))
    import pandas as pd

    t = pd.read_csv(paths[0], sep="\t")
    assert list(t.columns[:11]) == ["MarkerName", "Allele1", "Allele2", "Effect", "StdErr", "P-value", "Direction",
                                    "HetISq", "HetChiSq", "HetDf", "HetPVal"]
    assert t["Effect"][v] == pytest.approx(beta, rel=1e-5)


def test_meta_analysis_of_logistic_results(tmp_path):
    """Case/control plans meta-analyse each site's logistic (Firth-fallback) log odds ratios;
    every variant's pooled estimate is the IVW formula over the sites' own scans."""
    from popgen import association as A
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    plan = write_plan(tmp_path / "plan.yaml", gwas={"phenotypes": ["BT"], "binary": True}, pca=None)
    bundles, betas, ws = [], [], []
    for name in SITES:
        st = S.align(site_cohort(name), plan, name)
        ph = A.load_phenotypes(st.ds, f"{EXAMPLE}.pheno", ["BT"], f"{EXAMPLE}.covar", ["SEX", "AGE"])
        bundles.append(S.export_sumstats(st, ph, tmp_path / f"{name}.pgb"))
        t = A.logistic_scan(st.ds, {"BT": ph.values["BT"]}, ph.covariates,
                            covariate_names=["SEX", "AGE"]).collect()["BT"]
        ok = t["ERRCODE"].isin([".", "UNFINISHED"]).to_numpy()
        b = np.where(t["A1"] == t["REF"], -t["BETA"], t["BETA"]).astype(float)
        betas.append(st.scatter(np.where(ok, b, np.nan), np.nan))
        ws.append(st.scatter(np.where(ok, 1 / t["SE"].to_numpy(float) ** 2, 0.0)))
    res = C.combine_sumstats(plan, C.read_site_bundles(bundles, plan, "sumstats"))
    assert res["model"] == {"logistic"}
    w = np.array(ws)
    b = np.nan_to_num(np.array(betas))
    have = w.sum(axis=0) > 0
    assert have.sum() > 4000
    np.testing.assert_allclose(res["beta"][have, 0], (w * b).sum(axis=0)[have] / w.sum(axis=0)[have], rtol=1e-10)
    np.testing.assert_allclose(res["se"][have, 0], w.sum(axis=0)[have] ** -0.5, rtol=1e-10)
    assert np.isnan(res["beta"][~have, 0]).all()


def run_federated_pca(d, plan, sites):
    """Counts, then product rounds until the coordinator writes the PCA: (its result, rounds)."""
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    counts = [S.export_counts(st, d / f"{n}.counts.pgb") for n, st in sites.items()]
    basis = C.start_pca(d / "coord", plan, C.combine_counts(plan, C.read_site_bundles(counts, plan, "counts")))
    rounds = 0
    while True:
        prods = [S.export_pca_product(st, basis, d / f"{n}.r{rounds}.pgb") for n, st in sites.items()]
        rounds += 1
        out = C.pca_round(d / "coord", plan, C.read_site_bundles(prods, plan, "pca-product"))
        if "files" in out:
            return out, rounds
        basis = out["basis"]


def test_federated_pca_matches_pooled_pca_and_sites_project_locally(tmp_path):
    """11 product rounds (10 Krylov rounds + the final one): the top 10 eigenvalues within
    1e-3 relative and every PC |corr| >= 0.999 with the exact pooled PCA (mean imputation),
    with each site's PCs from projecting its own samples onto the federated reference."""
    from popgen import pca as PC
    from popgen.federated import site as S
    from popgen.genotypes import founder_mask

    plan = write_plan(tmp_path / "plan.yaml")
    sites = {n: S.align(site_cohort(n), plan, n) for n in SITES}
    out, rounds = run_federated_pca(tmp_path, plan, sites)
    assert rounds == 11
    ds, _ = pooled_cohort()
    exact = PC.pca(ds, n_components=10, solver="exact", missing="meanimpute", samples=founder_mask(ds))
    np.testing.assert_allclose(out["eigenvalues"], exact.eigenvalues, rtol=1e-3)
    ref = PC.read_reference(tmp_path / "coord")
    iid = np.asarray(ds["sample_id"].values).astype(str)
    scores = np.zeros((len(iid), 10))
    for st in sites.values():
        sc, _ = PC.project(st.ds, ref)
        scores[np.isin(iid, np.asarray(st.ds["sample_id"].values).astype(str))] = sc
    corr = [abs(np.corrcoef(scores[:, i], exact.eigenvectors[:, i])[0, 1]) for i in range(10)]
    assert min(corr) >= 0.999, corr
    # the two real axes of structure (three populations) are exact
    assert min(corr[:2]) > 1 - 1e-9


def test_federated_pca_coordinator_by_row_blocks_equals_one_block(tmp_path, monkeypatch):
    """The coordinator's Krylov blocks on disk, orthonormalized by TSQR and copied a few rows
    at a time (blocks of 64-440 rows over ~4,900 PCA variants), give the PCs of one block in
    memory; the blocks are removed once the PCA is written."""
    from popgen.federated import arrays, coordinator as C
    from popgen.federated import site as S

    plan = write_plan(tmp_path / "plan.yaml", pca={"n_rounds": 4})
    sites = {n: S.align(site_cohort(n), plan, n) for n in SITES}
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    monkeypatch.setattr(arrays, "QR_ROWS", 10**9)
    monkeypatch.setattr(C, "_PCA_BLOCK_BYTES", 2**40)
    one, _ = run_federated_pca(tmp_path / "one", plan, sites)
    monkeypatch.setattr(arrays, "QR_ROWS", 64)
    monkeypatch.setattr(C, "_PCA_BLOCK_BYTES", 8 * 20 * 97)
    many, rounds = run_federated_pca(tmp_path / "many", plan, sites)
    assert rounds == 5
    np.testing.assert_allclose(many["eigenvalues"], one["eigenvalues"], rtol=1e-10)
    np.testing.assert_allclose(many["loadings"], one["loadings"], atol=1e-9)
    assert not list((tmp_path / "many").glob("coord.pca-state.k*")) and (tmp_path / "many" / "coord.pca-state.npz").is_file()


def test_federated_pca_with_fewer_variants_than_krylov_columns(tmp_path):
    """150 PCA variants and a Krylov basis of 11 x 20 columns: the final basis has 150 columns
    (one TSQR block), the PCA completes, and its eigenvalues are those of the pooled GRM over
    those variants (the basis spans every variant: Rayleigh-Ritz is exact up to the sites'
    float32 products)."""
    from popgen import pca as PC
    from popgen.federated import site as S
    from popgen.genotypes import founder_mask

    ids = [line.split()[1] for line in Path(f"{EXAMPLE}.bim").read_text().splitlines()]
    (tmp_path / "pca.snplist").write_text("\n".join(ids[::33][:150]) + "\n")
    plan = write_plan(tmp_path / "plan.yaml", pca={"variants": str(tmp_path / "pca.snplist")}, filters={})
    assert int(plan.pca_mask.sum()) == 150
    sites = {n: S.align(site_cohort(n), plan, n) for n in SITES}
    out, rounds = run_federated_pca(tmp_path, plan, sites)
    assert rounds == 11 and out["loadings"].shape == (150, 10)
    np.testing.assert_allclose(out["loadings"].T @ out["loadings"], np.eye(10), atol=1e-12)
    ds, _ = pooled_cohort()
    ds = ds.isel(variants=np.flatnonzero(plan.pca_mask))
    exact = PC.pca(ds, n_components=10, solver="exact", missing="meanimpute", samples=founder_mask(ds))
    np.testing.assert_allclose(out["eigenvalues"], exact.eigenvalues, rtol=1e-6)  # the sites' products: float32


def test_federated_pca_state_errors(fed, tmp_path):
    """A round without a PCA in progress, with a Krylov block gone, or with an older popgen's
    state (Krylov blocks inside the .npz) is a one-line error naming the file."""
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    plan = fed["plan"]
    pooled = C.combine_counts(plan, C.read_site_bundles(fed["bundles"]["counts"], plan, "counts"))
    prefix = tmp_path / "coord"
    with pytest.raises(PopgenError, match="no federated PCA in progress"):
        C.pca_round(prefix, plan, [])
    basis = C.start_pca(prefix, plan, pooled)
    prods = C.read_site_bundles([S.export_pca_product(st, basis, tmp_path / f"{n}.r1.pgb")
                                 for n, st in fed["sites"].items()], plan, "pca-product")
    k0 = tmp_path / "coord.pca-state.k0.npy"
    k0.rename(tmp_path / "k0.npy")
    C.pca_round(prefix, plan, prods)  # round 1 needs only the products
    with pytest.raises(PopgenError, match="Krylov block is missing") as e:
        for r in range(2, 12):
            prods = C.read_site_bundles([S.export_pca_product(st, f"{prefix}.pca-basis.r{r}.pgb",
                                                              tmp_path / f"{n}.r{r}.pgb")
                                         for n, st in fed["sites"].items()], plan, "pca-product")
            C.pca_round(prefix, plan, prods)
    assert str(k0) in str(e.value) and r == 10  # the last Krylov round orthonormalizes all blocks
    with np.load(f"{prefix}.pca-state.npz") as z:
        old = {k: z[k] for k in z.files}
    np.savez(f"{prefix}.pca-state.npz", blocks=np.zeros((3, 2)), **old)
    with pytest.raises(PopgenError, match="older popgen"):
        C.pca_round(prefix, plan, prods)


def test_combine_raises_the_open_file_limit_for_its_bundles(fed):
    """Reading the sites' bundles raises a low soft limit on open files to what their arrays read
    by rows need (256 + 12 per linear bundle); in a child process, to leave this one's alone."""
    code = (
        "import resource, sys\n"
        "from popgen.federated import coordinator as C\n"
        "from popgen.federated.plan import load_plan\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "plan = load_plan(sys.argv[1])\n"
        "C.read_site_bundles(sys.argv[2:], plan, 'linear')\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    paths = [str(p) for p in fed["bundles"]["linear"]]
    out = subprocess.run([sys.executable, "-c", code, str(fed["dir"] / "plan.yaml"), *paths], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) >= 256 + 12 * len(paths)


def test_scratch_removes_what_killed_processes_of_this_host_left(tmp_path, caplog):
    """A scratch directory of a process that no longer runs (this host) is removed by the next
    one made there; a running process's, another host's and other files are kept."""
    from popgen.federated.arrays import Scratch
    from popgen.io.files import _host

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    names = {"stale": f".popgen-scratch-{_host()}-{dead}-abc123", "running": f".popgen-scratch-{_host()}-1-abc123",
             "elsewhere": f".popgen-scratch-otherhost-{dead}-abc123", "other": "results"}
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.npy").write_bytes(b"x")
    with Scratch.beside(tmp_path / "out.glm.linear") as scratch:
        mine = Path(scratch.dir).name
        assert mine.startswith(f".popgen-scratch-{_host()}-{os.getpid()}-")
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {names["running"], names["elsewhere"], names["other"], mine}
    assert not (tmp_path / mine).exists()
    assert "no longer runs" in caplog.text


def test_tall_qr_matches_numpy_qr(rng, tmp_path):
    """TSQR by blocks of rows into a DiskArray: orthonormal, spanning what np.linalg.qr's Q spans
    (also for nearly dependent columns), equal to it where the matrix has full rank; one block and
    fewer rows than columns as np.linalg.qr."""
    from popgen.federated.arrays import DiskArray, tall_qr

    for m, n, rows in [(1000, 20, 100), (1003, 20, 64), (50, 20, 100), (10, 20, 100), (3001, 120, 300)]:
        a = rng.normal(size=(m, n))
        if n == 120:
            a[:, 100:] = a[:, :20] + 1e-13 * rng.normal(size=(m, 20))  # nearly dependent (a late Krylov basis)
        out = DiskArray.create(tmp_path / f"q{m}_{n}.npy", (m, min(m, n)), np.float64)
        q = np.asarray(tall_qr(lambda i, j: a[i:j], a.shape, out, rows=rows))
        q0 = np.linalg.qr(a)[0]
        assert np.abs(q.T @ q - np.eye(q.shape[1])).max() < 1e-14
        k = min(m, n, 100)
        np.testing.assert_allclose(q[:, :k] @ q[:, :k].T, q0[:, :k] @ q0[:, :k].T, atol=1e-14)
        np.testing.assert_allclose(np.abs(q[:, :k]), np.abs(q0[:, :k]), atol=1e-13)
        if q.shape[1] > k:  # the nearly dependent columns' directions: orthogonal to the rest, as np.linalg.qr's
            assert np.abs(q0[:, :k].T @ q[:, k:]).max() < 1e-12


def test_pca_product_blocks_on_backends(rng):
    xp = pytest.importorskip("array_api_strict")
    from popgen.backend import to_cpu
    from popgen.federated.site import _ztv_block, _zw_block
    from conftest import random_alt

    g = random_alt(rng, 30, 17)
    p = rng.uniform(0.05, 0.95, 30)
    v = rng.standard_normal((30, 4))
    w = rng.standard_normal((17, 4))
    from popgen.pca import standardize_block

    z = np.asarray(standardize_block(g, p), dtype=np.float64)
    for mod in (np, xp):
        a = np.asarray(to_cpu(_ztv_block(mod.asarray(g), mod.asarray(p), mod.asarray(v))))
        b = np.asarray(to_cpu(_zw_block(mod.asarray(g), mod.asarray(p), mod.asarray(w))))
        np.testing.assert_allclose(a[0], z.T @ v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b, z @ w, rtol=1e-5, atol=1e-5)


def test_pca_product_by_rows_on_disk_equals_in_memory(fed, tmp_path):
    """A site's PCA product with the basis read by rows from disk and the product written block by
    block to disk equals the in-memory one (a messy site: swapped alleles, absent variants)."""
    from popgen.federated.arrays import DiskArray, Scratch
    from popgen.federated.site import pca_product

    st = fed["sites"]["south"]
    M = fed["plan"].n_variants
    basis = np.random.default_rng(2).standard_normal((M, 6))
    freq = np.random.default_rng(3).uniform(0.05, 0.95, M)
    ref = pca_product(st, freq, basis)
    with Scratch(tmp_path) as scratch:
        on_disk = scratch.zeros(basis.shape)
        on_disk[:] = basis
        got = pca_product(st, freq, on_disk, scratch=scratch, batch=2)
        assert isinstance(got, DiskArray)
        np.testing.assert_array_equal(np.asarray(got), ref)
    assert not ref[200:250].any() and ref[:200].any()   # absent at south: zero rows


# ------------------------------------------------------------------ privacy guards


def _all_bundles(fed, tmp_path):
    """Every kind of bundle: the fixture's exports plus a PCA basis and product."""
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    plan = fed["plan"]
    basis = C.start_pca(tmp_path / "coord", plan,
                        C.combine_counts(plan, C.read_site_bundles(fed["bundles"]["counts"], plan, "counts")))
    prod = S.export_pca_product(fed["sites"]["north"], basis, tmp_path / "north.pca.pgb")
    return [p for paths in fed["bundles"].values() for p in paths] + [basis, prod]


def test_no_bundle_array_has_a_samples_dimension(fed, tmp_path):
    from popgen.federated.bundle import ALLOWED_DIMS, KINDS, read_bundle

    plan = fed["plan"]
    sizes = {st.n_samples for st in fed["sites"].values()}
    kinds = set()
    for path in _all_bundles(fed, tmp_path):
        b = read_bundle(path, plan)
        kinds.add(b.kind)
        for name, arr in b.arrays.items():
            spec = b.manifest["arrays"][name]
            assert "samples" not in spec["dims"] and set(spec["dims"]) <= ALLOWED_DIMS, (b.kind, name)
            assert not sizes & set(arr.shape), (b.kind, name, arr.shape)
            assert spec["meaning"]
        # every file in the zip is listed in the manifest
        names = set(zipfile.ZipFile(path).namelist())
        assert names == {"manifest.json", "manifest.sha256"} | {f"arrays/{n}.npy" for n in b.arrays}
        assert "No array has a samples dimension" in b.manifest["disclosure"] or b.kind == "pca-basis"
    assert kinds == set(KINDS)


def test_writer_refuses_a_samples_dimension(fed, tmp_path):
    from popgen.federated.bundle import write_bundle

    plan = fed["plan"]
    x = np.zeros((243, 3))
    with pytest.raises(PopgenError, match="samples"):
        write_bundle(tmp_path / "x.pgb", plan, kind="counts", site="north",
                     arrays={"x": (x, ("samples", "basis"), "per-sample values")}, dims={"samples": 243, "basis": 3})
    with pytest.raises(PopgenError, match="plan fixes"):   # an axis disguised as a plan dimension
        write_bundle(tmp_path / "x.pgb", plan, kind="counts", site="north",
                     arrays={"x": (x, ("variants", "basis"), "?")}, dims={"variants": plan.n_variants, "basis": 3})
    assert not (tmp_path / "x.pgb").exists()


def _rewrite(src, dst, member, fn):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            data = z.read(name)
            out.writestr(name, fn(data) if name == member else data)


def test_tampered_mismatched_and_foreign_bundles_are_rejected(fed, tmp_path):
    from popgen.federated.bundle import read_bundle

    plan = fed["plan"]
    src = fed["bundles"]["counts"][0]

    def bump(data):
        arr = np.load(io.BytesIO(data))
        arr = arr.copy()
        arr[0] += 1
        buf = io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()

    _rewrite(src, tmp_path / "a.pgb", "arrays/n_called.npy", bump)
    with pytest.raises(PopgenError, match="checksum mismatch in array n_called"):
        read_bundle(tmp_path / "a.pgb", plan)

    def edit_manifest(data):
        m = json.loads(data)
        m["attrs"]["n_samples"] = 10**6
        return json.dumps(m).encode()

    _rewrite(src, tmp_path / "b.pgb", "manifest.json", edit_manifest)
    with pytest.raises(PopgenError, match="manifest was changed"):
        read_bundle(tmp_path / "b.pgb", plan)

    def version(data):
        m = json.loads(data)
        m["format_version"] = 99
        return json.dumps(m).encode()

    _rewrite(src, tmp_path / "c.pgb", "manifest.json", version)
    with pytest.raises(PopgenError, match="format version 99"):
        read_bundle(tmp_path / "c.pgb", plan)

    other = write_plan(tmp_path / "other.yaml", gwas={"covariates": ["SEX"]})
    assert other.sha256 != plan.sha256
    with pytest.raises(PopgenError, match="belongs to another plan"):
        read_bundle(src, other)
    with pytest.raises(PopgenError, match="expected a linear bundle"):
        read_bundle(src, plan, kind="linear")
    (tmp_path / "d.pgb").write_bytes(b"not a zip")
    with pytest.raises(PopgenError, match="not a zip"):
        read_bundle(tmp_path / "d.pgb", plan)


def test_plan_hash_covers_the_variant_file_contents(tmp_path):
    bim = tmp_path / "v.bim"
    bim.write_text(Path(f"{EXAMPLE}.bim").read_text())
    a = write_plan(tmp_path / "a.yaml", variants=str(bim))
    bim.write_text("\n".join(Path(f"{EXAMPLE}.bim").read_text().splitlines()[:-1]) + "\n")
    b = write_plan(tmp_path / "a.yaml", variants=str(bim))
    assert a.sha256 != b.sha256 and b.n_variants == a.n_variants - 1


def test_undersized_site_refuses_to_export(tmp_path):
    from popgen.federated import site as S

    plan = write_plan(tmp_path / "plan.yaml", privacy={"min_samples": 200})
    with pytest.raises(PopgenError, match="south has 162 samples, fewer than the plan's minimum of 200"):
        S.align(site_cohort("south"), plan, "south")


def test_rare_variants_and_small_missing_cells_are_withheld(tmp_path):
    from popgen import qc
    from popgen.federated import site as S

    plan = write_plan(tmp_path / "plan.yaml", privacy={"min_allele_count": 5, "min_missing_count": 3})
    st = S.align(site_cohort("south"), plan, "south")
    c = S.counts(st)
    a = qc.variant_stats(st.ds, merge=False)
    n_alt = a["variant_n_het"].values + 2 * a["variant_n_hom_alt"].values
    mac = np.minimum(n_alt, 2 * a["variant_n_called"].values - n_alt)
    rare = (mac > 0) & (mac < 5)
    assert rare.sum() > 10
    np.testing.assert_array_equal(c["suppressed"].astype(bool), rare)
    assert (c["n_called"][rare] == 0).all() and (c["n_het"][rare] == 0).all()
    lin = S.linear_statistics(st, site_pheno(st.ds))
    sup = lin["suppressed"][:, 0].astype(bool)
    open_ = S.linear_statistics(S.align(site_cohort("south"), write_plan(tmp_path / "open.yaml"), "south"),
                                site_pheno(st.ds))
    n, g = open_["xtx"][:, 0, 0], open_["xtx"][:, 0, 3]       # packed (0, 0) and (0, g)
    mac = np.minimum(g, 2 * n - g)
    missing = open_["centre"][0, 0] - n
    expect = ((mac > 0) & (mac < 5)) | ((missing > 0) & (missing < 3))
    assert 50 < sup.sum() < len(sup) - 1000
    np.testing.assert_array_equal(sup, expect)
    assert (lin["xtx"][sup] == 0).all() and (lin["xty"][sup] == 0).all() and (lin["yy"][sup] == 0).all()
    np.testing.assert_array_equal(lin["xtx"][~sup], open_["xtx"][~sup])


# ------------------------------------------------------------------ command line


def _popgen(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "popgen", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_worked_example_round_trip(tmp_path):
    """The README's worked example: three sites, every bundle through files."""
    r = _popgen("federated", "simulate", CONFIGS / "sites.yaml", "--out", tmp_path, "--cluster", "none",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    coord = tmp_path / "coordinator"
    for f in ("pooled.afreq", "pooled.gcount", "pooled.QT.glm.linear", "pooled.QT.ssf.tsv", "pooled.QT.meta.tsv",
              "pooled.eigenval", "pooled.eigenvec.var", "pooled.pca-basis.r11.pgb"):
        assert (coord / f).is_file(), f
    lines = (coord / "pooled.QT.glm.linear").read_text().splitlines()
    kept = (coord / "pooled.filter.in").read_text().split()
    assert 4000 < len(kept) < 5000                                   # the plan's maf/geno/hwe filters
    assert lines[0].split("\t")[:6] == ["#CHROM", "POS", "ID", "REF", "ALT", "A1"]
    assert [line.split("\t")[2] for line in lines[1:]] == kept
    assert len((coord / "pooled.eigenvec.var").read_text().splitlines()) == len(kept) + 1
    for site, n in (("north", 243), ("centre", 195), ("south", 162)):
        assert len((tmp_path / site / f"{site}.eigenvec").read_text().splitlines()) == n + 1
    r = _popgen("federated", "inspect", tmp_path / "north" / "north.linear.pgb", "--plan", CONFIGS / "plan.yaml")
    assert r.returncode == 0 and "xtx [<f8; variants=5000 x phenotypes=1 x predictors2=10]" in r.stdout


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pgb"
    bad.write_bytes(b"junk")
    r = _popgen("federated", "combine", CONFIGS / "plan.yaml", bad, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith(f"{bad}: not a popgen bundle (not a zip file)")
    r = _popgen("federated", "export", CONFIGS / "plan.yaml", "--site", "x", "--bfile", EXAMPLE, "--kind",
                "pca-product", "--out", tmp_path / "x", "--cluster", "none")
    assert r.returncode == 2 and "needs --basis" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "p.yaml").write_text("name: x\nvariants: nothere.bim\n")
    r = _popgen("federated", "plan", tmp_path / "p.yaml")
    assert r.returncode == 2 and "nothere.bim: file not found" in r.stderr


def test_sex_chromosome_counts_equal_pooled_qc(tmp_path):
    """chrX (males one allele), chrY (males only) and MT (haploid) in the pooled frequency panel
    and filters (chrX's --hwe by Graffelman and Weir's test) as popgen qc on the pooled cohort,
    and so as PLINK 2 (tests/data/plink2/sexchrom.afreq, .gcount with haploid calls apart)."""
    from conftest import DATA
    from popgen import qc
    from popgen.federated import coordinator as C
    from popgen.federated import site as S
    from popgen.io.plink import read_plink
    from popgen.pipeline import subset_samples

    sx = DATA / "sexchrom" / "sexchrom"
    filters = {"geno": 0.012, "hwe": 0.05, "maf": 0.1}
    plan = write_plan(tmp_path / "plan.yaml", variants=f"{sx}.bim", filters=filters, pca=None,
                      gwas={"phenotypes": ["QT"], "covariates": ["AGE"]}, privacy={"min_samples": 100})
    ds = read_plink(sx, chunks=(64, 400))
    iid = np.asarray(ds.sample_id.values).astype(str)
    bundles = []
    for k in range(2):  # two sites: alternate samples
        keep = tmp_path / f"site{k}.keep"
        keep.write_text("".join(f"{i} {i}\n" for i in iid[k::2]))
        st = S.align(subset_samples(ds, keep, None), plan, f"site{k}")
        bundles.append(S.export_counts(st, tmp_path / f"site{k}.pgb"))
    pooled = C.combine_counts(plan, C.read_site_bundles(bundles, plan, "counts"))
    C.write_frequency_panel(tmp_path / "pooled", plan, pooled)
    for ext in ("afreq", "gcount"):
        assert (tmp_path / f"pooled.{ext}").read_bytes() == (DATA / "plink2" / f"sexchrom.{ext}").read_bytes(), ext
    ref, rep = qc.apply_filters(ds, qc.Filters(**filters))
    assert (tmp_path / "pooled.filter.in").read_text().split() == list(np.asarray(ref.variant_id.values).astype(str))
    assert pooled["removed"] == rep.removed and rep.removed["hwe"] > 0
    # the plan's PCA keeps the autosomes (and XY), as popgen pca and plink2 --pca
    with_pca = write_plan(tmp_path / "pca.yaml", variants=f"{sx}.bim", pca={"n_pcs": 3})
    assert set(with_pca.chrom[with_pca.pca_mask].astype(str)) == {"1", "XY", "2"}


def test_counts_bundle_of_an_older_version_is_refused(fed):
    import dataclasses

    from popgen.federated import coordinator as C

    plan = fed["plan"]
    bundles = C.read_site_bundles(fed["bundles"]["counts"], plan, "counts")
    old = dataclasses.replace(bundles[0], arrays={k: v for k, v in bundles[0].arrays.items() if k != "gc_missing"})
    with pytest.raises(PopgenError, match="lacks gc_missing .made by an older popgen"):
        C.combine_counts(plan, [old, *bundles[1:]])
    bundles = C.read_site_bundles(fed["bundles"]["linear"], plan, "linear")
    arrays = {k: v for k, v in bundles[1].arrays.items() if not k.startswith(("x_", "y_"))}
    old = dataclasses.replace(bundles[1], arrays=arrays)
    with pytest.raises(PopgenError, match="site north lacks the chrX/chrY statistics .made by an older popgen"):
        C.combine_linear(plan, [bundles[0], old, bundles[2]])


# ------------------------------------------------------------------ sex chromosomes in the GWAS


def _sexchrom_sites(tmp_path, covariates, *, privacy=None, unknown_site=None):
    """The sex-chromosome cohort as two sites (alternate samples); ``unknown_site``: that site's
    .fam has no sexes (as a VCF without --update-sex).  Returns the plan, the pooled cohort (the
    same sexes) and the site of each sample."""
    from conftest import DATA
    from popgen.io.plink import read_plink

    sx = DATA / "sexchrom" / "sexchrom"
    plan = write_plan(tmp_path / "plan.yaml", variants=f"{sx}.bim", pca=None,
                      gwas={"phenotypes": ["QT"], "covariates": covariates},
                      privacy={"min_samples": 100, "min_allele_count": 0, "min_missing_count": 0, **(privacy or {})})
    ds = read_plink(sx, chunks=(64, 400))
    site_of = np.arange(ds.sizes["samples"]) % 2
    if unknown_site is not None:
        sex = np.asarray(ds.sample_sex.values).copy()
        sex[site_of == unknown_site] = 0
        ds = ds.assign(sample_sex=(("samples",), sex))
    iid = np.asarray(ds.sample_id.values).astype(str)
    return plan, ds, site_of, [(f"site{k}", iid[site_of == k]) for k in range(2)], sx


def _sexchrom_federated(tmp_path, covariates, kind="linear", **kw):
    from popgen import association as A
    from popgen.federated import coordinator as C
    from popgen.federated import site as S
    from popgen.pipeline import subset_samples

    plan, ds, site_of, sites, sx = _sexchrom_sites(tmp_path, covariates, **kw)
    bundles = []
    for name, ids in sites:
        keep = tmp_path / f"{name}.keep"
        keep.write_text("".join(f"{i} {i}\n" for i in ids))
        st = S.align(subset_samples(ds, keep, None), plan, name)
        ph = A.load_phenotypes(st.ds, f"{sx}.pheno", ["QT"], f"{sx}.covar", covariates)
        export = S.export_linear if kind == "linear" else S.export_sumstats
        bundles.append(export(st, ph, tmp_path / f"{name}.{kind}.pgb"))
    return plan, ds, site_of, sx, C.read_site_bundles(bundles, plan, kind)


def _read_tsv(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", keep_default_na=False)


@pytest.mark.parametrize("covariates, kw", [
    (["AGE"], {}),                      # the sex added on chrX
    (["AGE", "SEX"], {}),               # already a covariate: not added; chrY drops it (constant among males)
    (["AGE"], {"unknown_site": 1}),     # one site knows no sexes: its samples leave chrX and chrY
], ids=["sex-added", "sex-covariate", "site-without-sexes"])
def test_sex_chromosome_linear_gwas_equals_pooled(tmp_path, covariates, kw):
    """chrX (the sex as a covariate where popgen gwas adds it, A1 and GWAS-SSF's allele frequency
    with a male's call one allele), chrY (males; haploid) and MT (haploid) of the federated linear
    GWAS: the .glm.linear and GWAS-SSF files equal popgen gwas's on the pooled cohort with the site
    indicator as a covariate (numbers within 1e-6 relative as printed, everything else identical)."""
    import dataclasses

    from popgen import association as A
    from popgen.federated import coordinator as C

    plan, ds, site_of, sx, bundles = _sexchrom_federated(tmp_path, covariates, **kw)
    res = C.combine_linear(plan, bundles)
    assert res["untested"] == {"x": {}, "y": {}}
    # chrX: AGE and the added sex, or the plan's own SEX; chrY: SEX is constant among males
    assert res["models"]["x"] == ["AGE", "SEX"] and res["models"]["y"] == ["AGE"]
    C.write_linear(tmp_path / "fed", plan, res, plots=False)
    ph = A.load_phenotypes(ds, f"{sx}.pheno", ["QT"], f"{sx}.covar", covariates)
    ph = dataclasses.replace(ph, covariates=np.column_stack([ph.covariates, site_of == 1]).astype(float),
                             covariate_names=covariates + ["SITE=site1"])
    A.gwas(ds, ph, tmp_path / "pooled", plots=False)
    no_site = kw.get("unknown_site") == 1
    if no_site:  # chrX: only site0's samples have a sex, so the site indicator is constant there and the
        # pooled reference for chrX is the scan without it (popgen gwas would stop on a constant covariate)
        A.gwas(ds, A.load_phenotypes(ds, f"{sx}.pheno", ["QT"], f"{sx}.covar", covariates), tmp_path / "nosite",
               plots=False)
    for ext in ("glm.linear", "ssf.tsv"):
        got, ref = _read_tsv(tmp_path / f"fed.QT.{ext}"), _read_tsv(tmp_path / f"pooled.QT.{ext}")
        if no_site:
            import pandas as pd

            # rows by the .glm IDs (GWAS-SSF codes X and XY alike; its rows are those with an estimate)
            glm = {f: _read_tsv(tmp_path / f"{f}.QT.glm.linear") for f in ("fed", "pooled", "nosite")}
            rows = {f: t[t["ERRCODE"] == "."] if ext == "ssf.tsv" else t for f, t in glm.items()}
            x = (rows["nosite"]["#CHROM"].astype(str) == "X").to_numpy()
            ref = pd.concat([ref, _read_tsv(tmp_path / f"nosite.QT.{ext}")[x]])
            ids = pd.concat([rows["pooled"]["ID"], rows["nosite"]["ID"][x]])
            ref = ref.iloc[np.argsort(pd.Index(rows["fed"]["ID"]).get_indexer(ids))].reset_index(drop=True)
        assert list(got.columns) == list(ref.columns) and len(got) == len(ref)
        assert len(got) == plan.n_variants if ext == "glm.linear" else len(got) > 0.9 * plan.n_variants
        for col in ref.columns:
            if ref[col].dtype.kind == "f":
                np.testing.assert_allclose(got[col], ref[col], rtol=1e-6, err_msg=f"{ext} {col}")
            else:
                assert (got[col] == ref[col]).all(), f"{ext} {col}"
    meta = [yaml.safe_load((tmp_path / f"{p}.QT.ssf.tsv-meta.yaml").read_text()) for p in ("fed", "pooled")]
    for m in meta:
        del m["data_file_name"], m["data_file_md5sum"], m["file_type"], m["date_metadata_last_modified"]
    assert meta[0] == meta[1]
    assert set(_read_tsv(tmp_path / "fed.QT.glm.linear")["#CHROM"].astype(str)) == {"1", "X", "XY", "Y", "MT", "2"}


def test_chrx_with_the_sex_is_withheld_where_few_samples_have_no_sex(tmp_path, caplog):
    """Each site has 6 samples of unknown sex: with min_missing_count 10 the statistics with the sex
    covariate would let them be told apart, so the sites withhold them and the coordinator does not
    test chrX (everything else as pooled)."""
    from popgen.federated import coordinator as C
    from popgen.federated import site as S

    plan, ds, site_of, sx, bundles = _sexchrom_federated(tmp_path, ["AGE"], privacy={"min_missing_count": 10})
    assert all((b.arrays["x_status"] == S.X_WITHHELD).all() and not b.arrays["x_xtx"].any() for b in bundles)
    res = C.combine_linear(plan, bundles)
    assert set(res["untested"]["x"]) == {"QT"} and "withheld" in res["untested"]["x"]["QT"]
    C.write_linear(tmp_path / "fed", plan, res, plots=False)
    chrom = _read_tsv(tmp_path / "fed.QT.glm.linear")["#CHROM"].astype(str)
    assert "X" not in set(chrom) and len(chrom) == plan.n_variants - 120
    assert "120 variants on chrX not tested" in caplog.text


def test_sex_chromosome_meta_analysis_uses_each_sites_popgen_gwas(tmp_path):
    """The meta-analysis bundles carry each site's own popgen gwas results on chrX (with the sex),
    chrY (males) and MT, per ALT allele (haploid contigs per haploid allele, as the .glm files)."""
    from popgen import association as A
    from popgen.genotypes import model_runs, sample_sex
    from popgen.io.plink import read_plink
    from popgen.pipeline import subset_samples

    plan, ds, site_of, sx, bundles = _sexchrom_federated(tmp_path, ["AGE"], kind="sumstats")
    site_ds = subset_samples(read_plink(sx, chunks=(64, 400)), tmp_path / "site0.keep", None)
    ph = A.load_phenotypes(site_ds, f"{sx}.pheno", ["QT"], f"{sx}.covar", ["AGE"])
    A.gwas(site_ds, ph, tmp_path / "site0", plots=False, ssf=False)
    import pandas as pd

    ref = pd.read_csv(tmp_path / "site0.QT.glm.linear", sep="\t")
    b = bundles[0].arrays
    beta = np.where(ref["A1"] == ref["REF"], -ref["BETA"], ref["BETA"])
    assert np.isfinite(beta).sum() > 300
    np.testing.assert_allclose(b["beta"][:, 0], beta, rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(b["se"][:, 0], ref["SE"], rtol=2e-5)
    np.testing.assert_array_equal(b["obs_ct"][:, 0], ref["OBS_CT"])
    runs = {m for *_, m in model_runs(site_ds)}
    assert runs == {"autosome", "x", "y", "mt"} and (sample_sex(site_ds) == 1).sum() > 100


# ------------------------------------------------------------------ statistics on disk


def test_disk_arrays_round_trip_through_bundles_by_rows(fed, tmp_path):
    """Per-variant statistics are written by rows (in any order) to files and copied into bundles
    in pieces; large members are stored uncompressed and read back by rows (DiskArray), small ones
    whole; a changed byte in a stored member is still caught."""
    import zipfile

    from popgen.federated.arrays import DiskArray, RowView, Scratch
    from popgen.federated.bundle import read_bundle, write_bundle

    rng = np.random.default_rng(3)
    ref = rng.normal(size=(5000, 1, 60))
    with Scratch(tmp_path) as scratch:
        arr = scratch.zeros(ref.shape)
        assert isinstance(arr, DiskArray) and not np.asarray(arr).any()
        order = rng.permutation(5000)
        for i in range(0, 5000, 700):           # scattered rows, as a site's variants onto the plan's
            rows = np.sort(order[i:i + 700])
            arr[rows] = ref[rows]
        arr[7] = ref[7]
        np.testing.assert_array_equal(np.asarray(arr), ref)
        rows = np.array([4999, 3, 4, 5, 17, 0])
        np.testing.assert_array_equal(arr[rows], ref[rows])
        rows = np.sort(rng.choice(5000, 400, replace=False))  # a few rows apart (read with those between)
        np.testing.assert_array_equal(arr[rows], ref[rows])
        np.testing.assert_array_equal(arr[np.r_[rows, rows[::-1], 3, 3]], ref[np.r_[rows, rows[::-1], 3, 3]])
        np.testing.assert_array_equal(arr[np.r_[0, 4999, 2500]], ref[np.r_[0, 4999, 2500]])
        # pickled (a Dask worker process reading rows): the copy opens the file itself
        import pickle

        blob = pickle.dumps(RowView(arr, np.arange(10, 20)))
        assert pickle.loads(blob).arr._fd is None
        child = subprocess.run([sys.executable, "-c", "import pickle, sys, numpy as np; "
                                "v = pickle.loads(sys.stdin.buffer.read()); sys.stdout.buffer.write(v[2:5].tobytes())"],
                               input=blob, capture_output=True, check=True)
        np.testing.assert_array_equal(np.frombuffer(child.stdout).reshape(3, 1, 60), ref[12:15])
        np.testing.assert_array_equal(arr[10:2000:7], ref[10:2000:7])
        np.testing.assert_array_equal(arr[-1], ref[-1])
        np.testing.assert_array_equal(arr[100:300, 0, 5:9], ref[100:300, 0, 5:9])
        small = np.arange(5000, dtype=np.int64)
        dims = {"variants": 5000, "phenotypes": 1, "predictors2": 60}
        path = write_bundle(tmp_path / "b.pgb", fed["plan"], kind="linear", site="s", dims=dims,
                            arrays={"xtx": (arr, ("variants", "phenotypes", "predictors2"), "test"),
                                    "n": (small, ("variants",), "test")})
        scratch_dir = Path(scratch.dir)
    assert not scratch_dir.exists()
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("arrays/xtx.npy").compress_type == zipfile.ZIP_STORED
        assert z.getinfo("arrays/n.npy").compress_type == zipfile.ZIP_DEFLATED
    b = read_bundle(path, fed["plan"], lazy={"xtx", "n"})
    assert isinstance(b.arrays["xtx"], DiskArray) and isinstance(b.arrays["n"], np.ndarray)
    np.testing.assert_array_equal(b.arrays["xtx"][1000:1100], ref[1000:1100])
    np.testing.assert_array_equal(b.arrays["n"], small)
    assert isinstance(read_bundle(path, fed["plan"]).arrays["xtx"], np.ndarray)   # not asked: whole
    data = bytearray(path.read_bytes())
    at = data.find(ref[2500].tobytes())
    data[at] ^= 1
    (tmp_path / "bad.pgb").write_bytes(bytes(data))
    with pytest.raises(PopgenError, match="checksum mismatch in array xtx"):
        read_bundle(tmp_path / "bad.pgb", fed["plan"], lazy={"xtx"})


def stored_copies(bundles, plan, directory, monkeypatch) -> list:
    """The bundles written again with every array stored uncompressed (read by rows, as large
    arrays are); returns their paths."""
    from popgen.federated import bundle as BM

    monkeypatch.setattr(BM, "_STORED_BYTES", 1)
    paths = []
    for b in bundles:
        specs = b.manifest["arrays"]
        arrays = {n: (a, tuple(specs[n]["dims"]), specs[n]["meaning"]) for n, a in b.arrays.items()}
        paths.append(BM.write_bundle(directory / f"{b.site}.pgb", plan, kind=b.kind, site=b.site, arrays=arrays,
                                     dims=b.manifest["dims"], attrs=b.attrs))
    return paths


def test_combine_reads_site_statistics_by_rows(fed, tmp_path, monkeypatch):
    """Bundles whose statistics are stored uncompressed are combined by rows (DiskArray), with the
    pooled fields on disk: the same fields and the same .glm.linear as from arrays in memory."""
    from popgen.federated import coordinator as C
    from popgen.federated.arrays import DiskArray, Scratch

    plan = fed["plan"]
    eager = C.read_site_bundles(fed["bundles"]["linear"], plan, "linear")
    assert not any(isinstance(a, DiskArray) for b in eager for a in b.arrays.values())  # small: deflated
    lazy = C.read_site_bundles(stored_copies(eager, plan, tmp_path, monkeypatch), plan, "linear")
    assert isinstance(lazy[0].arrays["xtx"], DiskArray) and isinstance(lazy[0].arrays["freq_alt"], np.ndarray)
    ref = C.combine_linear(plan, eager)
    with Scratch(tmp_path) as scratch:
        got = C.combine_linear(plan, lazy, scratch=scratch)
        assert isinstance(got["fields"], DiskArray)
        np.testing.assert_array_equal(np.asarray(got["fields"]), ref["fields"])
        np.testing.assert_array_equal(np.asarray(got["n_predictors"]), ref["n_predictors"])
        C.write_linear(tmp_path / "lazy", plan, got, plots=False)
    C.write_linear(tmp_path / "eager", plan, ref, plots=False)
    assert (tmp_path / "lazy.QT.glm.linear").read_bytes() == (tmp_path / "eager.QT.glm.linear").read_bytes()


def test_combine_counts_reads_one_site_array_at_a_time(fed, tmp_path, monkeypatch):
    """Counts bundles stored uncompressed are summed one site's array at a time from disk, each
    file closed after: the pooled counts equal those of arrays in memory, and no file stays open."""
    from popgen.federated import coordinator as C
    from popgen.federated.arrays import DiskArray

    plan = fed["plan"]
    eager = C.read_site_bundles(fed["bundles"]["counts"], plan, "counts")
    paths = stored_copies(eager, plan, tmp_path, monkeypatch)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    lazy = C.read_site_bundles(paths, plan, "counts")
    assert all(isinstance(a, DiskArray) for b in lazy for a in b.arrays.values())
    got, ref = C.combine_counts(plan, lazy), C.combine_counts(plan, eager)
    assert set(got) == set(ref)
    for k, v in ref.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(got[k], v)
        else:
            assert got[k] == v
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds


def test_site_contigs_disagreeing_with_the_plan_are_a_one_line_error(tmp_path):
    """A site whose chrX variants the plan lists on another contig: one line, exit 2, no bundle
    and no scratch files left (the statistics' rows would land in the wrong places)."""
    from conftest import DATA

    sx = DATA / "sexchrom" / "sexchrom"
    lines = [line.split("\t") for line in Path(f"{sx}.bim").read_text().splitlines()]
    (tmp_path / "plan.bim").write_text("".join("\t".join(["1" if f[0] == "X" else f[0]] + f[1:]) + "\n"
                                               for f in lines))
    (tmp_path / "plan.yaml").write_text("name: t\nvariants: plan.bim\nprivacy: {min_samples: 100}\n"
                                        "gwas: {phenotypes: [QT], covariates: [AGE]}\n")
    r = _popgen("federated", "export", tmp_path / "plan.yaml", "--site", "s", "--bfile", sx, "--kind", "linear",
                "--pheno", f"{sx}.pheno", "--covar", f"{sx}.covar", "--out", tmp_path / "s", "--cluster", "none",
                "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("popgen: error: site s: 120 variants on chrX, but the plan has "
                                                 "some of them on another contig (the site's contig names must "
                                                 "say what the plan's do)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.bim", "plan.yaml", "s.log"]
