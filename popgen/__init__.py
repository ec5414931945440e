"""popgen: GPU-accelerated population genomics on sgkit/xarray, Dask, NumPy and CuPy.

Importing :mod:`popgen` is cheap on purpose: heavy libraries (sgkit, dask,
xarray, numba, cupy) are imported inside the functions that need them, so
that ``popgen --help`` and batch-job start-up stay well under a second.

Public modules
--------------
popgen.io        readers and writers (PLINK 1, VCF via bio2zarr, VCF Zarr, phenotype tables)
popgen.qc        allele frequency, call rate, heterozygosity, Hardy-Weinberg, filters
popgen.backend   numpy/cupy helpers: namespace, device, to_gpu/to_cpu
popgen.kernels   kernel registry (CUDA source + CPU twin per kernel)
popgen.cluster   Dask cluster set-up for the CLI and pipelines (never used by library code)
"""

__version__ = "0.1.0"

from popgen.errors import PopgenError  # noqa: E402  (light: no heavy imports)

__all__ = ["PopgenError", "__version__"]
