"""Build a popgen cohort Dataset from in-memory arrays (simulations, tests)."""

from __future__ import annotations

import numpy as np


def dataset_from_alt_count(
    alt_count,
    *,
    contig,
    position,
    ref,
    alt,
    sample_id,
    variant_id=None,
    cm_position=None,
    family_id=None,
    paternal_id=None,
    maternal_id=None,
    sex=None,
    population=None,
    chunks=(8192, 8192),
):
    """Dataset with sgkit's variables from ALT allele counts.

    Parameters
    ----------
    alt_count : array_like, int8, shape (variants, samples)
        0/1/2 ALT alleles, -1 missing.
    contig : array_like, str, shape (variants,)
        Contig name per variant (contigs keep their order of first appearance).
    position : array_like, int, shape (variants,)
    ref, alt : array_like, str, shape (variants,)
    sample_id : array_like, str, shape (samples,)
    chunks : (int, int)
        Dask chunk sizes along variants and samples.
    """
    import dask.array as da
    import xarray as xr

    from popgen.io.plink import genotype_from_alt_count

    g = np.asarray(alt_count, dtype=np.int8)
    n_variants, n_samples = g.shape
    contig = np.asarray(contig).astype(str)
    names, first = np.unique(contig, return_index=True)
    order = names[np.argsort(first)]
    index = {c: i for i, c in enumerate(order)}
    gd = da.from_array(g, chunks=chunks)
    gt = gd.map_blocks(genotype_from_alt_count, new_axis=2, chunks=gd.chunks + ((2,),), dtype=np.int8)
    obj = lambda a: np.asarray(a).astype(str).astype(object)  # noqa: E731
    data = {
        "call_genotype": (("variants", "samples", "ploidy"), gt),
        "call_genotype_mask": (("variants", "samples", "ploidy"), gt < 0),
        "contig_id": (("contigs",), order.astype(object)),
        "variant_contig": (("variants",), np.array([index[c] for c in contig], dtype=np.int32)),
        "variant_position": (("variants",), np.asarray(position, dtype=np.int64)),
        "variant_allele": (("variants", "alleles"), np.stack([obj(ref), obj(alt)], axis=1)),
        "variant_id": (("variants",), obj(variant_id) if variant_id is not None else np.full(n_variants, ".", object)),
        "sample_id": (("samples",), obj(sample_id)),
    }
    optional = {
        "variant_cm_position": (cm_position, "variants", np.float64),
        "sample_family_id": (family_id, "samples", None),
        "sample_paternal_id": (paternal_id, "samples", None),
        "sample_maternal_id": (maternal_id, "samples", None),
        "sample_sex": (sex, "samples", np.int8),
        "sample_population": (population, "samples", None),
    }
    for name, (values, dim, dtype) in optional.items():
        if values is not None:
            data[name] = ((dim,), np.asarray(values, dtype=dtype) if dtype else obj(values))
    ds = xr.Dataset(data, attrs={"contigs": list(order)})
    ds["call_genotype"].attrs["mixed_ploidy"] = False
    return ds
