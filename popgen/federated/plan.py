"""The analysis plan every site and the coordinator share, and its identifying hash."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from popgen.errors import PopgenError

#: version of the plan schema and of the bundle format (bundles from another version are rejected)
FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Privacy(_Strict):
    """What a site refuses to share (checked by the code at export)."""

    min_samples: int = Field(50, ge=1, description="a site with fewer samples (after sample filters) refuses to export")
    min_allele_count: int = Field(5, ge=0, description=(
        "a variant whose minor allele count at the site is between 1 and this - 1 is suppressed "
        "(its per-variant statistics are not shared; monomorphic variants reveal nothing and are kept)"))
    min_missing_count: int = Field(5, ge=0, description=(
        "GWAS statistics of a variant with between 1 and this - 1 missing calls at the site are suppressed: "
        "they would differ from a fully called variant's by those few samples' covariates and phenotypes"))


class PlanFilters(_Strict):
    """QC filters with PLINK 2's meaning.  ``mind`` is applied by each site to its samples
    before export; the variant filters by the coordinator on the pooled counts -- together
    exactly the pooled ``popgen qc`` filters."""

    mind: Optional[float] = Field(None, ge=0, le=1, description="remove samples with missing call rate > MIND")
    geno: Optional[float] = Field(None, ge=0, le=1, description="remove variants with missing call rate > GENO")
    hwe: Optional[float] = Field(None, ge=0, le=1, description="remove variants with HWE exact p < HWE "
                                                             "(frequency samples)")
    maf: Optional[float] = Field(None, ge=0, le=0.5, description="remove variants with minor allele frequency < MAF")
    mac: Optional[int] = Field(None, ge=0, description="remove variants with minor allele count < MAC")

    def qc(self, *, samples: bool):
        from popgen.qc import Filters

        if samples:
            return Filters(mind=self.mind)
        return Filters(geno=self.geno, hwe=self.hwe, maf=self.maf, mac=self.mac)

    @property
    def variant_filters(self) -> bool:
        return any(v is not None for v in (self.geno, self.hwe, self.maf, self.mac))


class PCASettings(_Strict):
    n_pcs: int = Field(10, ge=1)
    n_oversamples: int = Field(10, ge=0, description="extra basis vectors per round")
    n_rounds: int = Field(10, ge=1, description="Krylov rounds (one product per site each) before the final round")
    seed: int = 0
    variants: Optional[str] = Field(None, description="IDs of the plan's variants to use for PCA (e.g. LD-pruned); "
                                                      "default: all")


class GWASSettings(_Strict):
    phenotypes: list[str] = Field(min_length=1)
    covariates: list[str] = []
    binary: bool = Field(False, description="case/control phenotypes (meta-analysis of logistic results only)")
    min_samples: int = Field(10, ge=1, description="a phenotype with fewer samples at a site is not exported")


class Plan(_Strict):
    """A federated analysis plan (YAML).  Paths are relative to the plan file."""

    name: str
    format_version: Literal[1] = FORMAT_VERSION
    variants: str = Field(description="the variants, by ID and alleles: a PLINK .bim or a TSV with "
                                      "#CHROM POS ID REF ALT columns")
    frequencies: Literal["founders", "all"] = Field("founders", description="samples whose alleles define "
                                                    "frequencies (PCA standardization, A1 choice)")
    filters: PlanFilters = PlanFilters()
    privacy: Privacy = Privacy()
    gwas: Optional[GWASSettings] = None
    pca: Optional[PCASettings] = None


@dataclasses.dataclass
class LoadedPlan:
    """A validated plan with its variant table and hash."""

    plan: Plan
    path: Path
    chrom: np.ndarray
    pos: np.ndarray
    variant_id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    pca_mask: np.ndarray     # bool (variants,): used by the PCA (autosomes of pca.variants)
    sha256: str

    @property
    def n_variants(self) -> int:
        return len(self.variant_id)

    @property
    def short(self) -> str:
        return self.sha256[:12]

    @functools.cached_property
    def models(self) -> np.ndarray:
        """Each variant's :func:`popgen.genotypes.contig_model` ("autosome", "x", "y", "mt")."""
        return _variant_models(self.chrom)

    def model_index(self, model: str) -> np.ndarray:
        """The plan positions of the variants under ``model``, in plan order."""
        return np.flatnonzero(self.models == model)


def _variant_models(chrom) -> np.ndarray:
    """:func:`popgen.genotypes.contig_model` of each variant (one call per contig name)."""
    from popgen.genotypes import contig_model

    names, index = np.unique(np.asarray(chrom).astype(str), return_inverse=True)
    return np.array([contig_model(c) for c in names], dtype=object)[index].astype(str)


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_variants(path: Path):
    """The plan's variants: ``chrom, pos, id, ref, alt`` arrays (strings compact where short,
    :func:`popgen.io.plink.compact_strings`)."""
    from popgen.io.plink import compact_strings

    chrom, pos, vid, ref, alt = _read_variant_table(path)
    return compact_strings(chrom), pos, compact_strings(vid), compact_strings(ref), compact_strings(alt)


def _read_variant_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise PopgenError("file not found (plan: variants)", path)
    if path.suffix == ".bim":
        from popgen.io.plink import read_bim

        bim = read_bim(path)
        return (bim["CHR"].astype(str).to_numpy(object), bim["POS"].to_numpy(np.int64),
                bim["ID"].astype(str).to_numpy(object), bim["A2"].astype(str).to_numpy(object),
                bim["A1"].astype(str).to_numpy(object))
    try:
        t = pd.read_csv(path, sep="\t", dtype=str)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise PopgenError(f"cannot parse the variant table: {str(e).splitlines()[0]}", path) from None
    need = ["#CHROM", "POS", "ID", "REF", "ALT"]
    if not set(need) <= set(t.columns):
        raise PopgenError(f"a variant table needs the columns {' '.join(need)} (or use a .bim)", path)
    try:
        pos = t["POS"].astype(np.int64).to_numpy()
    except ValueError:
        raise PopgenError("column POS is not an integer", path) from None
    return (t["#CHROM"].to_numpy(object), pos, t["ID"].to_numpy(object), t["REF"].to_numpy(object),
            t["ALT"].to_numpy(object))


def load_plan(path) -> LoadedPlan:
    """Read, validate and hash a plan.  The hash covers the plan's settings and the
    contents (not the names) of the files it refers to, so every party computes the same one."""
    from popgen.yamlfile import load_model

    path = Path(path)
    plan = load_model(path, Plan, kind="plan", what="name, variants, filters, privacy, gwas, pca")
    base = path.parent
    vpath = _resolve(base, plan.variants)
    chrom, pos, vid, ref, alt = _read_variants(vpath)
    if len(vid) == 0:
        raise PopgenError("the plan lists no variants", vpath)
    if len(set(vid.tolist())) != len(vid):
        raise PopgenError("variant IDs must be unique in a plan", vpath)
    content = plan.model_dump(mode="json")
    content["variants"] = _file_sha256(vpath)
    pca_mask = np.ones(len(vid), dtype=bool)
    if plan.pca is not None and plan.pca.variants:
        from popgen.io.pheno import read_id_list

        ppath = _resolve(base, plan.pca.variants)
        if not ppath.is_file():
            raise PopgenError("file not found (plan: pca.variants)", ppath)
        pca_mask = np.isin(vid, list(read_id_list(ppath)))
        if not pca_mask.any():
            raise PopgenError("none of the listed IDs are variants of the plan", ppath)
        content["pca"]["variants"] = _file_sha256(ppath)
    if plan.pca is not None:  # autosomes only, as popgen pca and plink2 --pca
        pca_mask &= _variant_models(chrom) == "autosome"
    if plan.pca is not None and plan.pca.n_pcs >= int(pca_mask.sum()):
        raise PopgenError(f"pca.n_pcs {plan.pca.n_pcs} needs more than that many PCA variants "
                          f"({int(pca_mask.sum())})", path)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return LoadedPlan(plan, path, chrom, pos, vid, ref, alt, pca_mask, digest)


def plan_dataset(plan: LoadedPlan, mask=None):
    """The plan's variants as a genotype-free sgkit-style dataset (for the report writers)."""
    import xarray as xr

    sel = slice(None) if mask is None else np.asarray(mask, dtype=bool)
    chrom = plan.chrom[sel].astype(str)
    contigs, index = np.unique(chrom, return_inverse=True)
    return xr.Dataset(
        {
            "variant_contig": (("variants",), index.astype(np.int64)),
            "variant_position": (("variants",), plan.pos[sel]),
            "variant_id": (("variants",), plan.variant_id[sel].astype(str)),
            "variant_allele": (("variants", "alleles"), np.stack([plan.ref[sel], plan.alt[sel]], axis=1).astype(str)),
            "contig_id": (("contigs",), contigs),
        },
        attrs={"contigs": contigs.tolist()},
    )
