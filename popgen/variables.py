"""The genotype data model: sgkit's variable names, declared once.

A popgen cohort is an :class:`xarray.Dataset` that sgkit can open, with sgkit's
names and dims.  Genotype arrays are Dask arrays chunked along ``variants`` and
``samples``; their chunks are NumPy or CuPy arrays (the backend follows the
data).  ``validate`` checks a dataset against these specs with a fix-it message.

=========================  ==========================  =====  ==============================================
variable                   dims                        kind   meaning
=========================  ==========================  =====  ==============================================
call_genotype              (variants, samples, ploidy)  i     allele index per haplotype, int8, -1 missing
call_genotype_mask         (variants, samples, ploidy)  b     True where call_genotype < 0
variant_contig             (variants,)                  i     index into ``contig_id``
contig_id                  (contigs,)                   O/U   contig names ("1", "2", ..., "X")
variant_position           (variants,)                  i     1-based base-pair position
variant_allele             (variants, alleles)          O/U/S alleles; index 0 is REF, index 1 ALT
variant_id                 (variants,)                  O/U/S variant identifier ("." if none)
sample_id                  (samples,)                   O/U/S sample identifier (PLINK IID)
=========================  ==========================  =====  ==============================================

``call_alt_count`` (variants, samples) int8 is an optional derived view: the
ALT allele count per call, -1 missing.  The PLINK reader provides it (it is
what the .bed decodes to), and :func:`popgen.genotypes.alt_allele_count`
uses it when present instead of reducing ``call_genotype``; it must agree
with ``call_genotype`` (drop it after editing ``call_genotype``).

Optional, written by the PLINK reader and used by the writers when present:
``sample_family_id``, ``sample_paternal_id``, ``sample_maternal_id`` (str,
"0" unknown), ``sample_sex`` (int8: 1 male, 2 female, 0 unknown),
``variant_cm_position`` (float64, .bim column 3), ``sample_population`` (str).
"""

from __future__ import annotations

import dataclasses

from popgen.errors import PopgenError


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    dims: tuple[str, ...]
    kinds: str  # numpy dtype kinds accepted
    doc: str


SPECS = {
    s.name: s
    for s in [
        Spec("call_genotype", ("variants", "samples", "ploidy"), "i", "allele index per haplotype, -1 missing"),
        Spec("call_genotype_mask", ("variants", "samples", "ploidy"), "b", "True where the call is missing"),
        Spec("call_alt_count", ("variants", "samples"), "i", "ALT allele count, -1 missing (derived view)"),
        Spec("variant_contig", ("variants",), "iu", "index into contig_id"),
        Spec("contig_id", ("contigs",), "OUS", "contig names"),
        Spec("variant_position", ("variants",), "iu", "1-based position"),
        Spec("variant_allele", ("variants", "alleles"), "OUS", "alleles, REF first"),
        Spec("variant_id", ("variants",), "OUS", "variant identifier"),
        Spec("sample_id", ("samples",), "OUS", "sample identifier"),
        Spec("sample_family_id", ("samples",), "OUS", "PLINK FID"),
        Spec("sample_paternal_id", ("samples",), "OUS", "father's IID, '0' unknown"),
        Spec("sample_maternal_id", ("samples",), "OUS", "mother's IID, '0' unknown"),
        Spec("sample_sex", ("samples",), "iu", "1 male, 2 female, 0 unknown"),
        Spec("variant_cm_position", ("variants",), "f", "genetic position in cM"),
        Spec("sample_population", ("samples",), "OUS", "population label"),
    ]
}

#: variables every popgen cohort has
REQUIRED = ("call_genotype", "variant_contig", "variant_position", "variant_allele", "sample_id")


def validate(ds, *names: str, source: str | None = None) -> None:
    """Check that ``ds`` has ``names`` (default: :data:`REQUIRED`) with the right dims and kinds."""
    for name in names or REQUIRED:
        spec = SPECS[name]
        if name not in ds:
            raise PopgenError(f"dataset has no variable {name!r} ({spec.doc})", source)
        var = ds[name]
        if tuple(var.dims) != spec.dims:
            raise PopgenError(f"{name} has dims {tuple(var.dims)}, expected {spec.dims}", source)
        if var.dtype.kind not in spec.kinds:
            raise PopgenError(f"{name} has dtype {var.dtype}, expected kind {spec.kinds!r}", source)


def require_single_chunk(ds, dim: str, why: str) -> None:
    """Enforce a chunking contract with a fix-it message."""
    chunks = ds.chunks.get(dim) if hasattr(ds, "chunks") else None
    if chunks is not None and len(chunks) > 1:
        raise PopgenError(f"{why} needs one chunk along {dim!r}; call ds.chunk({{{dim!r}: -1}})")
