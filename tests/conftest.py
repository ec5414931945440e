"""Shared fixtures.  GPU tests carry the ``gpu`` marker: ``pytest -m gpu`` on a GPU host."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("POPGEN_PROGRESS", "0")

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).parents[1] / "popgen" / "data" / "example" / "example"


def pytest_collection_modifyitems(config, items):
    """GPU tests without a usable GPU: ``pytest -m gpu`` is an error (never a silent pass);
    in a wider selection they are skipped with the reason shown."""
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if not gpu_items:
        return
    from popgen.backend import gpu_status

    ok, why = gpu_status()
    if ok:
        return
    if config.option.markexpr.strip() == "gpu":
        raise pytest.UsageError(f"pytest -m gpu needs a CUDA GPU and CuPy: {why}")
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=f"gpu test on a host without a GPU: {why}"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def random_alt(rng, n_variants, n_samples, missing=0.05):
    """Random ALT allele counts (int8, -1 missing) with a spread of frequencies."""
    p = rng.uniform(0.02, 0.98, size=(n_variants, 1))
    g = rng.binomial(2, p, size=(n_variants, n_samples)).astype(np.int8)
    g[rng.random(g.shape) < missing] = -1
    return g


def make_dataset(g, chunks=(7, 5), **kwargs):
    from popgen.io.memory import dataset_from_alt_count

    n_variants, n_samples = g.shape
    return dataset_from_alt_count(
        g,
        contig=np.where(np.arange(n_variants) < n_variants // 2, "1", "2"),
        position=np.arange(n_variants) * 100 + 1,
        ref=np.full(n_variants, "A"),
        alt=np.full(n_variants, "G"),
        variant_id=[f"v{i}" for i in range(n_variants)],
        sample_id=[f"s{j}" for j in range(n_samples)],
        chunks=chunks,
        **kwargs,
    )
