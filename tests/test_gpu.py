"""CPU-vs-GPU equivalence of whole computations (run on a GPU host: ``pytest -m gpu``).

Kernel-level GPU tests live beside their CPU twins (tests/test_kernels.py);
these check that the device path of the readers and statistics gives the same
numbers, and that blocks stay on the device until aggregates are reduced.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import EXAMPLE
from popgen.cli import main

pytestmark = pytest.mark.gpu


def test_plink_decoding_on_device_equals_cpu():
    import cupy

    from popgen.genotypes import alt_allele_count
    from popgen.io.plink import read_plink

    cpu = read_plink(EXAMPLE, chunks=(999, 256), device="cpu")
    gpu = read_plink(EXAMPLE, chunks=(999, 256), device="gpu")
    g_alt = alt_allele_count(gpu)
    assert isinstance(g_alt._meta, cupy.ndarray)
    block = g_alt.blocks[0, 0].compute()
    assert isinstance(block, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(g_alt.compute()), alt_allele_count(cpu).compute())


def test_qc_statistics_on_device_equal_cpu():
    from popgen import qc
    from popgen.genotypes import founder_mask
    from popgen.io.plink import read_plink

    out = {}
    for device in ("cpu", "gpu"):
        ds = read_plink(EXAMPLE, chunks=(1500, 200), device=device)
        v = qc.variant_stats(ds, samples=founder_mask(ds), merge=False)
        s = qc.sample_stats(ds, merge=False)
        h = qc.hardy_weinberg_test(v, merge=False)
        f = qc.sample_inbreeding(ds, samples=founder_mask(ds), merge=False)
        out[device] = [x.values for x in (v.variant_allele_count, s.sample_n_het, h.variant_hwe_p_value,
                                          f.sample_n_hom_expected)]
    for a, b in zip(out["cpu"], out["gpu"]):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_qc_command_on_gpu_writes_the_same_files(tmp_path):
    for device in ("cpu", "gpu"):
        assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(tmp_path / device), "--device", device,
                     "--cluster", "none", "--maf", "0.01", "--make-bed"]) == 0
    for ext in ("afreq", "hardy", "vmiss", "smiss", "het", "bed", "bim", "fam"):
        assert (tmp_path / f"gpu.{ext}").read_bytes() == (tmp_path / f"cpu.{ext}").read_bytes(), ext


def test_local_cuda_cluster_equals_in_process(tmp_path):
    assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(tmp_path / "a"), "--device", "gpu",
                 "--cluster", "local-cuda"]) == 0
    assert main(["qc", "--bfile", str(EXAMPLE), "--out", str(tmp_path / "b"), "--device", "cpu",
                 "--cluster", "none"]) == 0
    assert (tmp_path / "a.afreq").read_bytes() == (tmp_path / "b.afreq").read_bytes()


@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_pca_on_device_equals_cpu(solver):
    from popgen import pca
    from popgen.genotypes import founder_mask
    from popgen.io.plink import read_plink

    res = {}
    for device in ("cpu", "gpu"):
        ds = read_plink(EXAMPLE, chunks=(1300, 256), device=device)
        res[device] = pca.pca(ds, n_components=10, solver=solver, samples=founder_mask(ds), seed=3)
        scores, _ = pca.project(ds, pca.reference_from_result(ds, res[device]))
        res[device + "_proj"] = scores
    np.testing.assert_allclose(res["gpu"].eigenvalues, res["cpu"].eigenvalues, rtol=1e-5)
    np.testing.assert_allclose(res["gpu"].eigenvectors, res["cpu"].eigenvectors, atol=1e-4)
    np.testing.assert_allclose(res["gpu"].loadings, res["cpu"].loadings, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(res["gpu_proj"], res["cpu_proj"], atol=1e-4)


def test_federated_site_exports_on_device_equal_cpu(tmp_path):
    """A GPU site's linear statistics and PCA products equal a CPU site's."""
    from test_federated import CONFIGS, site_pheno, write_plan

    from popgen.federated import site as S
    from popgen.io.plink import read_plink
    from popgen.pipeline import subset_samples

    plan = write_plan(tmp_path / "plan.yaml")
    out = []
    for device in ("cpu", "gpu"):
        ds = subset_samples(read_plink(EXAMPLE, chunks=(999, 256), device=device), CONFIGS / "north.keep", None)
        st = S.align(ds, plan, "north")
        lin = S.linear_statistics(st, site_pheno(st.ds))
        basis = np.random.default_rng(0).standard_normal((plan.n_variants, 6))
        prod = S.pca_product(st, np.full(plan.n_variants, 0.3), basis)
        out.append((lin["xtx"], lin["xty"], prod))
    for a, b in zip(*out):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_federated_sex_chromosome_statistics_on_device_equal_cpu(tmp_path):
    """chrX (with the sex covariate, male-once allele counts) and chrY (males) statistics of a
    GPU site equal a CPU site's."""
    from conftest import DATA
    from test_federated import write_plan

    from popgen.association import load_phenotypes
    from popgen.federated import site as S
    from popgen.io.plink import read_plink

    sx = DATA / "sexchrom" / "sexchrom"
    plan = write_plan(tmp_path / "plan.yaml", variants=f"{sx}.bim", pca=None,
                      gwas={"phenotypes": ["QT"], "covariates": ["AGE"]},
                      privacy={"min_samples": 100, "min_allele_count": 0, "min_missing_count": 0})
    out = []
    for device in ("cpu", "gpu"):
        st = S.align(read_plink(sx, chunks=(64, 400), device=device), plan, "s")
        ph = load_phenotypes(st.ds, f"{sx}.pheno", ["QT"], f"{sx}.covar", ["AGE"])
        lin = S.linear_statistics(st, ph)
        out.append([lin[k] for k in ("xtx", "x_xtx", "x_xty", "y_xtx", "y_xty", "xa_alt", "x_alt", "freq_alt")])
    for a, b in zip(*out):
        assert np.asarray(a).any()
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
