"""QC statistics: sgkit and scikit-allel as oracles, chunking invariance, founders, filters."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_dataset, random_alt
from popgen import qc
from popgen.errors import PopgenError
from popgen.genotypes import alt_allele_count, founder_mask
from popgen.hwe import hwe_exact_p


@pytest.fixture
def sg_ds():
    """A dataset made by sgkit itself (its variable names and encodings)."""
    import sgkit

    ds = sgkit.simulate_genotype_call_dataset(n_variant=57, n_sample=33, missing_pct=0.07, seed=3)
    # popgen (like PLINK) treats a call with any missing allele as missing;
    # sgkit counts the called half of a half-call, so make calls whole
    gt = ds.call_genotype.values
    gt[(gt < 0).any(-1)] = -1
    ds["call_genotype"] = (ds.call_genotype.dims, gt)
    ds["call_genotype_mask"] = (ds.call_genotype.dims, gt < 0)
    return ds.chunk({"variants": 10, "samples": 9})


def test_variant_stats_equal_sgkit(sg_ds):
    import sgkit

    ours = qc.variant_stats(sg_ds, merge=False).compute()
    theirs = sgkit.variant_stats(sg_ds, merge=False).compute()
    for name in ("variant_n_called", "variant_call_rate", "variant_n_het", "variant_n_hom_ref",
                 "variant_n_hom_alt", "variant_n_non_ref", "variant_allele_count", "variant_allele_total",
                 "variant_allele_frequency"):
        np.testing.assert_allclose(ours[name].values, theirs[name].values, rtol=1e-12, err_msg=name)


def test_sample_stats_equal_sgkit(sg_ds):
    import sgkit

    ours = qc.sample_stats(sg_ds, merge=False).compute()
    theirs = sgkit.sample_stats(sg_ds, merge=False).compute()
    for name in ("sample_n_called", "sample_call_rate", "sample_n_het", "sample_n_hom_ref", "sample_n_hom_alt"):
        np.testing.assert_allclose(ours[name].values, theirs[name].values, rtol=1e-12, err_msg=name)


def test_heterozygosity_and_counts_equal_scikit_allel(rng):
    import allel

    g = random_alt(rng, 40, 25, missing=0.1)
    ds = make_dataset(g, chunks=(9, 7))
    gt = allel.GenotypeArray(ds.call_genotype.values)
    s = qc.sample_stats(ds, merge=False).compute()
    np.testing.assert_allclose(s.sample_heterozygosity.values, gt.count_het(axis=0) / gt.count_called(axis=0))
    v = qc.variant_stats(ds, merge=False).compute()
    np.testing.assert_array_equal(v.variant_allele_count.values, gt.count_alleles(max_allele=1))


def test_hwe_equals_sgkit(sg_ds):
    import sgkit

    ours = qc.hardy_weinberg_test(sg_ds, merge=False).variant_hwe_p_value.values
    theirs = sgkit.hardy_weinberg_test(sg_ds, merge=False).variant_hwe_p_value.values
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_hwe_summed_from_the_observation_equals_full_enumeration():
    """The fast p-value (terms summed outwards from the observed count, stopped where they
    cannot change the tail) against Wigginton et al.'s full enumeration, on counts near and far
    from equilibrium, tiny to 200,000 samples, ties and all-heterozygote extremes."""
    from popgen._hwe_numba import p_values_full

    rng = np.random.default_rng(1)
    cases = []
    for n in (1, 2, 3, 5, 10, 50, 100, 1000, 10_000, 200_000):
        for _ in range(400 if n < 100_000 else 60):
            p = rng.uniform(0, 0.5) if rng.random() < 0.8 else rng.uniform(0, 0.01)
            f = rng.choice([0.0, rng.uniform(-0.05, 0.05), rng.uniform(-1, 1)])
            pr = np.clip([(1 - p) ** 2 + f * p * (1 - p), 2 * p * (1 - p) * (1 - f), p * p + f * p * (1 - p)], 0, None)
            cases.append(rng.multinomial(n, pr / pr.sum()))
        cases += [[0, n // 2, n - n // 2], [n, 0, 0], [0, n, 0], [1, n - 1, 0], [max(n - 2, 0), 1, 1]]
    c = np.array(cases, dtype=np.int64)
    fast = hwe_exact_p(c[:, 1], c[:, 0], c[:, 2])
    full = np.empty(len(c))
    p_values_full(c[:, 1].copy(), c[:, 0].copy(), c[:, 2].copy(), full)
    assert (np.isnan(fast) == np.isnan(full)).all()
    ok = full > 1e-280
    assert ok.sum() > 3000 and (full < 1e-20).sum() > 100
    np.testing.assert_allclose(fast[ok], full[ok], rtol=1e-12)
    assert (fast[~ok & np.isfinite(full)] < 1e-270).all()


def test_hwe_known_values():
    # n=100, 50 het, 25/25 hom: in equilibrium; all heterozygous: extreme excess
    p = hwe_exact_p([50, 100, 0, 10], [25, 0, 50, 45], [25, 0, 50, 45])
    assert p[0] > 0.5
    assert p[1] < 1e-25
    assert p[2] < 1e-25
    assert p[3] < 1e-10
    assert np.isnan(hwe_exact_p([0], [0], [0])[0])
    assert hwe_exact_p([0], [10], [0])[0] == 1.0


@pytest.mark.parametrize("chunks", [(5, 4), (13, 100), (200, 3)])
def test_chunking_invariance_and_laziness(rng, chunks):
    import dask.array as da

    g = random_alt(rng, 31, 22, missing=0.05)
    ref = qc.variant_stats(make_dataset(g, chunks=(31, 22)), merge=False).compute()
    ds = make_dataset(g, chunks=chunks)
    lazy = qc.variant_stats(ds, merge=False)
    assert isinstance(lazy.variant_allele_count.data, da.Array)
    np.testing.assert_array_equal(lazy.variant_allele_count.values, ref.variant_allele_count.values)
    s = qc.sample_stats(ds, merge=False)
    np.testing.assert_array_equal(s.sample_n_called.values, (g >= 0).sum(0))


def test_founders_follow_plink():
    g = np.zeros((3, 4), np.int8)
    ds = make_dataset(g, chunks=(3, 4), paternal_id=["0", "s0", "nobody", "0"], maternal_id=["0", "s1", "0", "s0"])
    assert founder_mask(ds).tolist() == [True, False, True, False]


def test_variant_stats_on_founders(rng):
    g = random_alt(rng, 20, 10)
    ds = make_dataset(g, chunks=(6, 4))
    mask = np.arange(10) % 3 != 0
    v = qc.variant_stats(ds, samples=mask, merge=False).compute()
    np.testing.assert_array_equal(v.variant_n_called.values, (g[:, mask] >= 0).sum(1))


def test_filters_remove_what_they_say(rng):
    g = random_alt(rng, 50, 30, missing=0.02)
    g[0, :] = -1  # all missing: removed by --geno
    g[1, :] = 0  # monomorphic: removed by --maf
    g[2, :10] = -1  # 1/3 missing
    g[:, 5] = -1  # sample 5 missing everywhere: removed by --mind
    ds = make_dataset(g, chunks=(8, 8))
    out, report = qc.apply_filters(ds, qc.Filters(mind=0.5, geno=0.2, maf=0.01))
    assert report.removed["mind"] == 1 and "s5" not in out.sample_id.values
    assert {"v0", "v1", "v2"}.isdisjoint(out.variant_id.values)
    np.testing.assert_array_equal(alt_allele_count(out).compute(), g[np.isin(np.arange(50), [int(v[1:]) for v in out.variant_id.values])][:, np.arange(30) != 5])


def test_filter_validation_and_empty_result(rng):
    with pytest.raises(PopgenError, match="--maf"):
        qc.Filters(maf=0.8)
    with pytest.raises(PopgenError, match="--geno"):
        qc.Filters(geno=2)
    ds = make_dataset(random_alt(rng, 10, 10), chunks=(5, 5))
    with pytest.raises(PopgenError, match="removed every variant"):
        qc.apply_filters(ds, qc.Filters(maf=0.5))


def _x_test_by_enumeration(f1, fh, f2, m1, m2):
    """Graffelman-Weir's chrX exact test summed over every configuration (the oracle)."""
    import math

    nf, nm = f1 + fh + f2, m1 + m2
    na, nt = 2 * f1 + fh + m1, 2 * nf + nm
    lc = lambda n, k: math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)  # noqa: E731

    def log_p(m, h):
        aa = (na - m - h) // 2
        return (lc(nm, m) + math.lgamma(nf + 1) - math.lgamma(aa + 1) - math.lgamma(h + 1)
                - math.lgamma(nf - aa - h + 1) + h * math.log(2) - lc(nt, na))

    obs = log_p(m1, fh)
    terms = [log_p(m, h) for m in range(max(0, na - 2 * nf), min(nm, na) + 1)
             for h in range((na - m) % 2, min(na - m, 2 * nf - na + m) + 1, 2)]
    return sum(math.exp(t) for t in terms if t <= obs + 1e-9) / sum(math.exp(t) for t in terms)


def test_chrx_hwe_exact_test_equals_enumeration(rng):
    from popgen.hwe import hwe_x_exact_p

    cases = [(5, 0, 0, 0, 0), (0, 0, 0, 3, 4), (10, 0, 10, 0, 0), (0, 20, 0, 5, 5), (3, 2, 1, 0, 7), (50, 0, 50, 40, 0)]
    for _ in range(150):
        nf, nm = rng.integers(0, 50, 2)
        g = rng.multinomial(nf, rng.dirichlet([1, 1, 1]))
        m1 = rng.binomial(nm, rng.uniform())
        cases.append((*g, m1, nm - m1))
    c = np.array(cases)
    got = hwe_x_exact_p(*c.T)
    want = np.array([_x_test_by_enumeration(*map(int, row)) for row in c])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.isnan(hwe_x_exact_p([0], [0], [0], [0], [0])).all()
    # extreme departures at biobank scale: no enumeration of the whole space
    assert hwe_x_exact_p([100000], [80000], [20000], [150000], [100000])[0] == 0.0


def test_chrx_hwe_exact_test_on_larger_tables(rng):
    """Hundreds of samples (where the row sums take their shortcuts): within 1e-9 of the sum
    over every configuration (vectorized per row)."""
    import math

    from scipy.special import gammaln

    from popgen.hwe import hwe_x_exact_p

    def enumerated(f1, fh, f2, m1, m2):
        nf, nm = f1 + fh + f2, m1 + m2
        na, nt = 2 * f1 + fh + m1, 2 * nf + nm
        lc = lambda n, k: gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)  # noqa: E731

        def row(m, h):
            aa = (na - m - h) // 2
            return lc(nm, m) + gammaln(nf + 1) - gammaln(aa + 1) - gammaln(h + 1) - gammaln(nf - aa - h + 1) + \
                h * math.log(2) - lc(nt, na)

        obs = row(m1, np.array([fh]))[0]
        terms = np.concatenate([row(m, np.arange((na - m) % 2, min(na - m, 2 * nf - na + m) + 1, 2))
                                for m in range(max(0, na - 2 * nf), min(nm, na) + 1)])
        w = np.exp(terms - terms.max())
        return w[terms <= obs + 1e-9].sum() / w.sum()

    cases = []
    for i in range(6):
        nf, nm = (int(x) for x in rng.integers(200, 900, 2))
        q = rng.uniform(0.1, 0.9)
        het = 2 * q * (1 - q) * (1.0 if i % 2 else 0.85)  # some tables out of equilibrium
        g = rng.multinomial(nf, [q * q + (2 * q * (1 - q) - het) / 2, het, (1 - q) ** 2 + (2 * q * (1 - q) - het) / 2])
        m1 = rng.binomial(nm, q)
        cases.append((*g, m1, nm - m1))
    got = hwe_x_exact_p(*np.array(cases).T)
    np.testing.assert_allclose(got, [enumerated(*map(int, c)) for c in cases], rtol=1e-9)
    assert (got < 1e-3).any() and (got > 0.05).any()
