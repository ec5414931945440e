"""Tests for popgen.simulate: shapes, determinism, planted relatives, structure, phenotypes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from popgen.errors import PopgenError
from popgen.simulate import SimulatedCohort, simulate_cohort, write_truth


@pytest.fixture(scope="module")
def cohort() -> SimulatedCohort:
    return simulate_cohort()  # the defaults: 600 samples x 5,000 variants, 3 populations


@pytest.fixture(scope="module")
def small() -> SimulatedCohort:
    return simulate_cohort(150, 600, n_contigs=3, seed=5)


def king_robust(g: np.ndarray, i: int, j: int) -> float:
    """PLINK2 --make-king kinship: (HETHET - 2 IBS0) / (HET_i + HET_j) over jointly called variants."""
    a, b = g[:, i], g[:, j]
    called = (a >= 0) & (b >= 0)
    a, b = a[called].astype(np.int64), b[called].astype(np.int64)
    hethet = np.count_nonzero((a == 1) & (b == 1))
    ibs0 = np.count_nonzero(np.abs(a - b) == 2)
    return (hethet - 2 * ibs0) / (np.count_nonzero(a == 1) + np.count_nonzero(b == 1))


# ---------------------------------------------------------------------------
# shapes, dtypes, identifiers


def test_shapes_and_dtypes(cohort):
    m, n = 5000, 600
    assert cohort.alt_count.shape == (m, n)
    assert cohort.alt_count.dtype == np.int8
    assert set(np.unique(cohort.alt_count)) <= {-1, 0, 1, 2}
    for name in ("contig", "variant_id", "ref", "alt"):
        arr = getattr(cohort, name)
        assert arr.shape == (m,) and arr.dtype.kind in "OU", name
    assert cohort.position.shape == (m,) and cohort.position.dtype == np.int64
    assert cohort.cm_position.shape == (m,) and cohort.cm_position.dtype == np.float64
    for name in ("family_id", "sample_id", "population"):
        arr = getattr(cohort, name)
        assert arr.shape == (n,) and arr.dtype.kind in "OU", name
    assert cohort.sex.shape == (n,) and cohort.sex.dtype == np.int8
    assert set(np.unique(cohort.sex)) == {1, 2}


def test_variants(cohort):
    assert list(np.unique(cohort.contig)) == ["1", "2"]
    assert np.all(cohort.contig[:-1] <= cohort.contig[1:])  # sorted by contig
    for c in np.unique(cohort.contig):
        pos = cohort.position[cohort.contig == c]
        cm = cohort.cm_position[cohort.contig == c]
        assert pos.min() >= 1
        assert np.all(np.diff(pos) > 0)
        assert np.all(np.diff(cm) > 0)
    assert len(set(cohort.variant_id)) == len(cohort.variant_id)
    expected = [f"{c}:{p}" for c, p in zip(cohort.contig, cohort.position)]
    assert list(cohort.variant_id) == expected
    assert set(cohort.ref) <= set("ACGT") and set(cohort.alt) <= set("ACGT")
    assert np.all(cohort.ref != cohort.alt)
    # an array-like frequency spectrum: mostly common SNPs, some rare ones, all segregating in founders
    freq = np.where(cohort.alt_count >= 0, cohort.alt_count, 0).sum(1) / (2 * (cohort.alt_count >= 0).sum(1))
    maf = np.minimum(freq, 1 - freq)
    assert 0.7 < np.mean(maf >= 0.05) < 0.95
    assert np.mean(maf < 0.01) > 0.02


def test_samples_and_families(cohort):
    iids = list(cohort.sample_id)
    assert len(set(iids)) == len(iids)
    assert all(not any(ch.isspace() for ch in iid) for iid in iids)
    assert all(iid.startswith(pop + "_") for iid, pop in zip(iids, cohort.population))
    pops, counts = np.unique(cohort.population, return_counts=True)
    assert list(pops) == ["POP1", "POP2", "POP3"]
    assert cohort.truth["populations"] == dict(zip(pops, counts.tolist()))
    # relatives share a FID; everybody else has FID == IID
    fid = dict(zip(cohort.sample_id, cohort.family_id))
    related = set()
    for r in cohort.truth["relatives"]:
        assert fid[r["iid1"]] == fid[r["iid2"]] != r["iid1"]
        related |= {r["iid1"], r["iid2"]}
    for iid in set(iids) - related:
        assert fid[iid] == iid
    assert 0.07 * len(iids) <= len(related) <= 0.13 * len(iids)


def test_missing_rate(cohort):
    missing = np.mean(cohort.alt_count == -1)
    assert 0.008 < missing < 0.012
    none = simulate_cohort(100, 300, missing_rate=0.0, seed=2)
    assert not np.any(none.alt_count == -1)
    many = simulate_cohort(100, 300, missing_rate=0.2, seed=2)
    assert 0.18 < np.mean(many.alt_count == -1) < 0.22


def test_other_shapes(small):
    assert small.alt_count.shape == (600, 150)
    assert list(np.unique(small.contig)) == ["1", "2", "3"]
    one = simulate_cohort(40, 101, n_populations=1, n_contigs=1, seed=3)
    assert one.alt_count.shape == (101, 40)
    assert set(one.population) == {"POP1"}
    assert one.position.max() < 2**31


# ---------------------------------------------------------------------------
# determinism


def _same(a: SimulatedCohort, b: SimulatedCohort) -> bool:
    arrays = ("alt_count", "contig", "position", "variant_id", "ref", "alt", "cm_position",
              "family_id", "sample_id", "sex", "population")
    return (
        all(np.array_equal(getattr(a, x), getattr(b, x)) for x in arrays)
        and a.pheno.equals(b.pheno)
        and a.covar.equals(b.covar)
        and a.truth == b.truth
    )


def test_deterministic(small):
    again = simulate_cohort(150, 600, n_contigs=3, seed=5)
    assert _same(small, again)
    other = simulate_cohort(150, 600, n_contigs=3, seed=6)
    assert not np.array_equal(small.alt_count, other.alt_count)
    assert not np.array_equal(small.position, other.position)
    assert not _same(small, other)


# ---------------------------------------------------------------------------
# relatives

EXPECTED = {"duplicate": (0.5, 0), "parent-offspring": (0.25, 1), "full-sibling": (0.25, 1),
            "half-sibling": (0.125, 2), "grandparent": (0.125, 2), "avuncular": (0.125, 2)}


def test_truth_relatives(cohort):
    rels = cohort.truth["relatives"]
    kinds = {r["relationship"] for r in rels}
    assert kinds == set(EXPECTED)
    assert sum(r["relationship"] == "duplicate" for r in rels) == 1
    ids = set(cohort.sample_id)
    for r in rels:
        assert r["iid1"] in ids and r["iid2"] in ids and r["iid1"] != r["iid2"]
        assert (r["kinship"], r["degree"]) == EXPECTED[r["relationship"]]
    po = [r for r in rels if r["relationship"] in ("parent-offspring", "duplicate")]
    assert all(r["kinship_realized"] == r["kinship"] for r in po)  # no meiosis variance there


def test_planted_relatives_king(cohort):
    """KING-robust recovers the planted pairs: tightly against the realised (gene-drop IBD) kinship,
    and within a degree-preserving margin of the expected kinship (realised kinship of siblings and
    second-degree relatives scatters around its expectation, sd ~0.02 on a 30 M genome)."""
    col = {iid: k for k, iid in enumerate(cohort.sample_id)}
    by_kind: dict[str, list[float]] = {}
    for r in cohort.truth["relatives"]:
        phi = king_robust(cohort.alt_count, col[r["iid1"]], col[r["iid2"]])
        assert abs(phi - r["kinship_realized"]) < 0.07, r
        assert abs(phi - r["kinship"]) < 0.1, (r, phi)
        by_kind.setdefault(r["relationship"], []).append(phi)
    assert by_kind["duplicate"][0] > 0.48
    for kind, phis in by_kind.items():
        assert abs(np.mean(phis) - EXPECTED[kind][0]) < 0.04, (kind, phis)


def test_unrelated_pairs_near_zero(cohort):
    related = {x for r in cohort.truth["relatives"] for x in (r["iid1"], r["iid2"])}
    rng = np.random.default_rng(0)
    phis = []
    for pop in ("POP1", "POP2", "POP3"):
        cand = [k for k, iid in enumerate(cohort.sample_id) if cohort.population[k] == pop and iid not in related]
        for _ in range(60):
            i, j = rng.choice(cand, size=2, replace=False)
            phis.append(king_robust(cohort.alt_count, i, j))
    phis = np.array(phis)
    assert abs(phis.mean()) < 0.01
    assert np.mean(np.abs(phis)) < 0.06


def test_pedigree(cohort):
    ped = cohort.truth["pedigree"]
    ids = set(cohort.sample_id)
    children = {p["iid"] for p in ped}
    assert all(p["father"] != p["mother"] for p in ped)
    assert {p["iid"] for p in ped if p["sampled"]} <= ids
    assert all(p["iid"] not in ids for p in ped if not p["sampled"])
    parents = {(p["iid"], q) for p in ped for q in (p["father"], p["mother"])}
    for r in cohort.truth["relatives"]:
        if r["relationship"] == "parent-offspring":
            assert (r["iid2"], r["iid1"]) in parents or (r["iid1"], r["iid2"]) in parents
        if r["relationship"] in ("full-sibling", "half-sibling"):
            assert {r["iid1"], r["iid2"]} <= children


# ---------------------------------------------------------------------------
# populations


def test_population_structure(cohort):
    g = cohort.alt_count.astype(np.float64)
    g[g < 0] = np.nan
    freq = {p: np.nanmean(g[:, cohort.population == p], axis=1) / 2 for p in ("POP1", "POP2", "POP3")}

    def fst(a, b):  # Hudson's Fst, ratio of averages
        pa, pb = freq[a], freq[b]
        num = (pa - pb) ** 2
        den = pa * (1 - pb) + pb * (1 - pa)
        return np.nansum(num) / np.nansum(den)

    assert fst("POP1", "POP2") > 0.005
    assert fst("POP1", "POP3") > 0.03
    assert fst("POP1", "POP3") > 2 * fst("POP1", "POP2")  # the tree ((POP1, POP2), POP3)

    # top PCs separate the populations
    mean = np.nanmean(g, axis=1, keepdims=True)
    keep = (mean[:, 0] > 0.05) & (mean[:, 0] < 1.95)
    z = np.where(np.isnan(g[keep]), mean[keep], g[keep]) - mean[keep]
    z /= np.sqrt(mean[keep] / 2 * (1 - mean[keep] / 2))
    _, _, vt = np.linalg.svd(z, full_matrices=False)

    def separation(pc, a, b):
        x, y = vt[pc][cohort.population == a], vt[pc][cohort.population == b]
        return abs(x.mean() - y.mean()) / np.sqrt((x.var() + y.var()) / 2)

    assert separation(0, "POP3", "POP1") > 8
    assert separation(0, "POP3", "POP2") > 8
    assert separation(1, "POP1", "POP2") > 3


# ---------------------------------------------------------------------------
# phenotypes


def test_causal_variants(cohort):
    causal = cohort.truth["causal_variants"]
    assert len(causal) == 20
    vid = {v: k for k, v in enumerate(cohort.variant_id)}
    assert all(c["variant_id"] in vid for c in causal)
    assert len({c["variant_id"] for c in causal}) == 20
    assert all(np.isfinite(c["effect_qt"]) and np.isfinite(c["effect_bt"]) for c in causal)
    # after removing the documented fixed effects, the genetic value explains about h2 of QT
    rows = [vid[c["variant_id"]] for c in causal]
    x = cohort.alt_count[rows].astype(np.float64)
    x[x < 0] = np.nan
    x = np.where(np.isnan(x), np.nanmean(x, axis=1, keepdims=True), x)
    gv = np.array([c["effect_qt"] for c in causal]) @ x
    model = cohort.truth["phenotype_model"]
    shift = np.array([model["population_shift"][p] for p in cohort.population])
    resid = (cohort.pheno["QT"].to_numpy() - model["sex_effect"] * (cohort.sex == 2)
             - model["age_effect"] * (cohort.covar["AGE"].to_numpy() - 50) - shift)
    ok = ~np.isnan(resid)
    r = np.corrcoef(gv[ok], resid[ok])[0, 1]
    assert 0.4 < r**2 < 0.6
    assert abs(np.nanvar(resid) - 1.0) < 0.15


def test_phenotypes_and_covariates(cohort):
    pheno, covar = cohort.pheno, cohort.covar
    assert list(pheno.columns) == ["FID", "IID", "QT", "BT"]
    assert list(covar.columns) == ["FID", "IID", "SEX", "AGE"]
    for df in (pheno, covar):
        assert list(df["IID"]) == list(cohort.sample_id)
        assert list(df["FID"]) == list(cohort.family_id)
    assert pheno["QT"].dtype == np.float64 and pheno["BT"].dtype == np.float64
    for col in ("QT", "BT"):
        assert 0.003 < pheno[col].isna().mean() < 0.05
    bt = pheno["BT"].dropna()
    assert set(bt.unique()) == {1.0, 2.0}
    assert abs((bt == 2).mean() - 0.3) < 0.03
    assert list(covar["SEX"]) == list(cohort.sex)
    assert covar["AGE"].between(18, 95).all() and not covar["AGE"].isna().any()
    model = cohort.truth["phenotype_model"]
    assert set(model["population_shift"]) == {"POP1", "POP2", "POP3"}


# ---------------------------------------------------------------------------
# truth file and parameters


def test_write_truth(small, tmp_path):
    path = tmp_path / "truth.json"
    write_truth(small, path)
    assert json.loads(path.read_text()) == small.truth
    assert os.listdir(tmp_path) == ["truth.json"]
    params = small.truth["params"]
    assert params == dict(n_samples=150, n_variants=600, n_populations=3, n_contigs=3, missing_rate=0.01,
                          relative_fraction=0.1, n_causal=20, h2=0.5, prevalence=0.3, seed=5)


def test_no_relatives():
    c = simulate_cohort(60, 200, relative_fraction=0.0, n_causal=0, seed=4)
    assert c.truth["relatives"] == [] and c.truth["pedigree"] == []
    assert list(c.family_id) == list(c.sample_id)
    assert c.truth["causal_variants"] == []


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_samples=3), dict(n_variants=1), dict(missing_rate=1.0), dict(prevalence=0.0),
     dict(h2=1.5), dict(relative_fraction=-0.1), dict(n_populations=0), dict(n_causal=-1)],
)
def test_bad_parameters(kwargs):
    with pytest.raises(PopgenError):
        simulate_cohort(**{"n_samples": 60, "n_variants": 100, **kwargs})
