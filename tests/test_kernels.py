"""Kernel registry: CPU twins vs NumPy oracles, CUDA sources compiled with nvcc, GPU vs CPU."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from popgen import kernels

REPO = Path(__file__).parents[1]


def decode_bed_oracle(packed, n_samples):
    """Plain NumPy: unpack 2-bit codes and map 00->2, 01->-1, 10->1, 11->0."""
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    codes = (packed[:, :, None] >> shifts) & 3
    codes = codes.reshape(packed.shape[0], -1)[:, :n_samples]
    return np.array([2, -1, 1, 0], dtype=np.int8)[codes]


@pytest.mark.parametrize("n_samples", [1, 3, 4, 5, 17, 64])
def test_decode_bed_cpu_twin_matches_oracle(rng, n_samples):
    packed = rng.integers(0, 256, size=(11, (n_samples + 3) // 4), dtype=np.uint8)
    got = kernels.get("decode_bed")(packed, n_samples)
    np.testing.assert_array_equal(got, decode_bed_oracle(packed, n_samples))
    assert got.dtype == np.int8 and (got == -1).any() or n_samples < 4


def test_decode_inverts_encode(rng):
    from conftest import random_alt

    from popgen.io.plink import encode_bed

    g = random_alt(rng, 13, 23, missing=0.1)
    np.testing.assert_array_equal(kernels.get("decode_bed")(encode_bed(g), 23), g)


def test_decode_rejects_short_rows():
    with pytest.raises(ValueError):
        kernels.get("decode_bed")(np.zeros((2, 1), np.uint8), 5)


def test_registry():
    names = [k.name for k in kernels.all_kernels()]
    assert "decode_bed" in names
    with pytest.raises(KeyError, match="no kernel named"):
        kernels.get("no_such_kernel")
    for k in kernels.all_kernels():
        assert k.cuda_path.is_file()
        assert re.search(rf'extern\s+"C"\s+__global__\s+void\s+{k.cuda_function}\b', k.cuda_source())


def test_every_kernel_family_is_packaged():
    """A kernels/<family>/ folder not listed in pyproject would be missing from installs."""
    text = (REPO / "pyproject.toml").read_text()
    for family in (REPO / "kernels").iterdir():
        if family.is_dir() and (family / "__init__.py").exists():
            assert f'"popgen.kernels.{family.name}"' in text, family.name


NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: CUDA sources not compiled here")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("kernel", [k.name for k in kernels.all_kernels()])
def test_cuda_source_compiles(tmp_path, kernel, arch):
    k = kernels.get(kernel)
    out = tmp_path / f"{kernel}.ptx"
    res = subprocess.run(
        [NVCC, "-ptx", f"-arch={arch}", "-std=c++14", "-Werror", "all-warnings", str(k.cuda_path), "-o", str(out)],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    assert f".entry {k.cuda_function}" in out.read_text()


@pytest.mark.gpu
@pytest.mark.parametrize("n_samples", [1, 5, 1000, 4099])
def test_decode_bed_gpu_equals_cpu(rng, n_samples):
    import cupy

    packed = rng.integers(0, 256, size=(37, (n_samples + 3) // 4), dtype=np.uint8)
    k = kernels.get("decode_bed")
    got = k(cupy.asarray(packed), n_samples)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), k(packed, n_samples))


def test_standardize_alt_cpu_twin_matches_oracle(rng):
    alt = rng.integers(-1, 3, size=(17, 33)).astype(np.int8)
    table = rng.standard_normal((17, 4)).astype(np.float32)
    oracle = table[np.arange(17)[:, None], np.where(alt < 0, 3, alt)]
    np.testing.assert_array_equal(kernels.get("standardize_alt")(alt, table), oracle)
    with pytest.raises(ValueError):
        kernels.get("standardize_alt")(alt, table[:3])


@pytest.mark.gpu
def test_standardize_alt_gpu_equals_cpu(rng):
    import cupy

    alt = rng.integers(-1, 3, size=(129, 1031)).astype(np.int8)
    table = rng.standard_normal((129, 4)).astype(np.float32)
    k = kernels.get("standardize_alt")
    np.testing.assert_array_equal(k(cupy.asarray(alt), cupy.asarray(table)).get(), k(alt, table))


def linear_sums_oracle(alt, wg, wg2, wo):
    """The three GEMMs: [G @ wg, G^2 @ wg2, Missing @ wo], missing calls as 0 in G."""
    g = np.where(alt >= 0, alt, 0).astype(np.float64)
    return np.concatenate([g @ wg, (g * g) @ wg2, (alt < 0).astype(np.float64) @ wo], axis=1)


def test_linear_sums_cpu_twin_matches_oracle(rng):
    alt = rng.integers(-1, 3, size=(45, 41)).astype(np.int8)  # sub-blocks of 32 variants: two
    alt[0] = 2                              # every call 2: summed as the complement of the others
    alt[1] = -1                             # every call missing
    alt[2] = 0
    alt[3] = np.where(rng.random(41) < 0.9, 2, 1)  # mostly 2s, no 0
    alt[4, :5] = -1
    wg, wg2, wo = rng.normal(size=(41, 5)), rng.normal(size=(41, 2)), rng.normal(size=(41, 9))
    got = kernels.get("linear_sums")(alt, wg, wg2, wo)
    np.testing.assert_allclose(got, linear_sums_oracle(alt, wg, wg2, wo), rtol=1e-12, atol=1e-12)
    assert got.shape == (45, 16)
    with pytest.raises(ValueError):
        kernels.get("linear_sums")(alt, wg[:3], wg2, wo)


def test_decode_row_lists_every_missing_call(rng):
    """The linear scan's row decoder: G, G^2 and the missing calls found by 64-bit words
    (lengths below, at and off multiples of 8; all, none and single missing calls)."""
    from popgen.kernels.assoc._linear_sums_numba import decode_row

    rows = [rng.integers(-1, 3, size=n).astype(np.int8) for n in (1, 7, 8, 9, 64, 1001)]
    rows += [np.full(17, -1, np.int8), np.zeros(16, np.int8), np.eye(1, 24, 23, dtype=np.int8)[0] * -1]
    for row in rows:
        g, g2, idx = np.empty(row.size), np.empty(row.size), np.empty(row.size, np.int64)
        m = decode_row(row, g, g2, idx)
        np.testing.assert_array_equal(idx[:m], np.flatnonzero(row < 0))
        np.testing.assert_array_equal(g, np.maximum(row, 0))
        np.testing.assert_array_equal(g2, np.maximum(row, 0) ** 2)


@pytest.mark.parametrize("sizes", [[3, 1], [30]])
def test_linear_sums_grouped_equals_oracle_on_formed_columns(rng, sizes):
    """The grouped CPU twin forms the missing calls' products on the fly: the same sums as the
    oracle on the ``wo`` matrix ``association._grouped_columns`` would form (two groups of
    unequal size, one of a single phenotype; one group of many phenotypes)."""
    import array_api_compat.numpy as xnp

    from popgen.association import _grouped_columns
    from popgen.kernels.assoc import linear_sums_grouped_cpu

    n, k = 57, 4
    # sub-blocks of 32 variants (few weight columns) or 256 (30 phenotypes), the last partial
    alt = rng.integers(-1, 3, size=(300, n)).astype(np.int8)
    alt[0] = -1
    c, y, f = rng.normal(size=(n, len(sizes), k)), rng.normal(size=(n, sum(sizes))), (rng.random(n) < 0.8) * 1.0
    wg, wg2, wo = (np.asarray(a) for a in _grouped_columns(xnp, c, y, sizes, f))
    got = linear_sums_grouped_cpu(alt, wg, wg2, c, y, f, sizes)
    np.testing.assert_allclose(got, linear_sums_oracle(alt, wg, wg2, wo), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        linear_sums_grouped_cpu(alt, wg, wg2, c, y, f, [2, 1] if sizes == [3, 1] else [29])


@pytest.mark.gpu
def test_linear_sums_gpu_equals_cpu(rng):
    import cupy

    alt = rng.integers(-1, 3, size=(67, 301)).astype(np.int8)
    w = [rng.normal(size=(301, k)) for k in (7, 2, 30)]
    k = kernels.get("linear_sums")
    np.testing.assert_allclose(k(cupy.asarray(alt), *map(cupy.asarray, w)).get(), k(alt, *w), rtol=1e-10)
