"""Readers and writers.

=================  ===========================================================
``read_plink``     PLINK 1 .bed/.bim/.fam, lazy and memory-mapped
``read_vcf``       VCF/BCF, converted once with bio2zarr to a cached VCF Zarr store
``read_vcz``       VCF Zarr stores (bio2zarr, sgkit)
``write_plink``    PLINK 1 fileset, streamed one variant chunk at a time
``write_vcz``      VCF Zarr store
``read_table``     PLINK 2 style phenotype/covariate tables
=================  ===========================================================
"""

from __future__ import annotations

from popgen.errors import PopgenError


def open_dataset(*, bfile=None, vcf=None, vcz=None, chunks=(None, None), device: str = "cpu"):
    """Open exactly one of ``bfile``/``vcf``/``vcz`` as a popgen cohort Dataset.

    ``chunks`` are (variants, samples), None for automatic (PLINK: all samples in one
    chunk, see :func:`popgen.io.plink.auto_chunks`; VCF Zarr: 8192); ``device`` is
    where decoding and all downstream computation run ("cpu" or "gpu").
    """
    given = [(k, v) for k, v in (("bfile", bfile), ("vcf", vcf), ("vcz", vcz)) if v]
    if len(given) != 1:
        raise PopgenError("give exactly one input: --bfile PREFIX, --vcf FILE or --vcz DIR")
    kind, path = given[0]
    if kind == "bfile":
        from popgen.io.plink import read_plink

        return read_plink(path, chunks=chunks, device=device)
    from popgen.io import vcz as _vcz

    read = _vcz.read_vcf if kind == "vcf" else _vcz.read_vcz
    v, s = (8192 if c is None else c for c in chunks)
    return read(path, chunks={"variants": v, "samples": s}, device=device)


def read_plink(prefix, **kwargs):
    from popgen.io.plink import read_plink as _read

    return _read(prefix, **kwargs)


def write_plink(ds, prefix, **kwargs):
    from popgen.io.plink import write_plink as _write

    return _write(ds, prefix, **kwargs)


def read_vcf(path, **kwargs):
    from popgen.io.vcz import read_vcf as _read

    return _read(path, **kwargs)


def read_vcz(path, **kwargs):
    from popgen.io.vcz import read_vcz as _read

    return _read(path, **kwargs)


def write_vcz(ds, path, **kwargs):
    from popgen.io.vcz import write_vcz as _write

    return _write(ds, path, **kwargs)


def read_table(path, **kwargs):
    from popgen.io.pheno import read_table as _read

    return _read(path, **kwargs)
