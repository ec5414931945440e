"""Analysis steps shared by the CLI commands and ``popgen run CONFIG.yaml``.

A step is a function ``step(run, ds, out, **params) -> ds`` registered in
:data:`STEPS` together with the pydantic model of its parameters; the config
schema and the CLI both come from these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from popgen.errors import PopgenError

log = logging.getLogger("popgen")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- QC step

class QCParams(_Strict):
    """Parameters of the ``qc`` step (PLINK 2 flags of the same names)."""

    maf: Optional[float] = Field(None, ge=0, le=0.5, description="remove variants with minor allele frequency < MAF")
    mac: Optional[int] = Field(None, ge=0, description="remove variants with minor allele count < MAC")
    geno: Optional[float] = Field(None, ge=0, le=1, description="remove variants with missing call rate > GENO")
    mind: Optional[float] = Field(None, ge=0, le=1, description="remove samples with missing call rate > MIND")
    hwe: Optional[float] = Field(None, ge=0, le=1, description="remove variants with HWE exact p < HWE")
    nonfounders: bool = Field(False, description="use all samples (not only founders) for frequencies and HWE")
    make_bed: bool = Field(False, description="write the filtered cohort as OUT.bed/.bim/.fam")
    make_vcz: bool = Field(False, description="write the filtered cohort as OUT.vcz")


def qc_step(run, ds, out: str, params: QCParams):
    """Write OUT.afreq/.hardy/.vmiss/.smiss/.het for ``ds``; apply filters; optionally write the filtered cohort.

    The reports describe the input cohort (as ``plink2 --freq --hardy
    --missing`` without filters); filters are then applied in PLINK 2's order
    and the filtered cohort is returned (and written with make_bed/make_vcz).
    """
    import numpy as np

    from popgen import qc
    from popgen.genotypes import founder_mask
    from popgen.io import reports

    with run.step("qc statistics"):
        founders = None if params.nonfounders else founder_mask(ds)
        all_v = qc.variant_stats(ds, merge=False)
        f_v = qc.variant_stats(ds, samples=founders, merge=False)
        hwe = qc.hardy_weinberg_test(f_v, merge=False)
        s = qc.sample_stats(ds, merge=False)
        n_called, ac, af, hom_ref, het, hom_alt, p, s_called = run.compute(
            all_v["variant_n_called"].data, f_v["variant_allele_count"].data,
            f_v["variant_allele_frequency"].data[:, 1],
            f_v["variant_n_hom_ref"].data, f_v["variant_n_het"].data, f_v["variant_n_hom_alt"].data,
            hwe["variant_hwe_p_value"].data, s["sample_n_called"].data,
            label="QC statistics",
        )
        # heterozygosity needs the frequencies first: a second pass
        inb = qc.sample_inbreeding(ds, np.where((ac[:, 0] > 0) & (ac[:, 1] > 0), af, 0.0), merge=False)
        hom_o, hom_e, n_poly, f_inb = run.compute(
            inb["sample_n_hom_observed"].data, inb["sample_n_hom_expected"].data,
            inb["sample_n_called_polymorphic"].data, inb["sample_inbreeding"].data,
            label="heterozygosity",
        )
        if founders is not None and founders.sum() < ds.sizes["samples"]:
            log.info("frequencies and HWE on %d founders of %d samples (--nonfounders to use all)",
                     founders.sum(), ds.sizes["samples"])
        for ext, write, args in (
            ("afreq", reports.write_afreq, (ac,)),
            ("hardy", reports.write_hardy, (hom_ref, het, hom_alt, p)),
            ("vmiss", reports.write_vmiss, (n_called,)),
            ("smiss", reports.write_smiss, (s_called,)),
            ("het", reports.write_het, (hom_o, hom_e, n_poly, f_inb)),
        ):
            write(f"{out}.{ext}", ds, *args)
            run.wrote(f"{out}.{ext}")
    filters = qc.Filters(params.maf, params.mac, params.geno, params.mind, params.hwe)
    if filters.any:
        with run.step("qc filters"):
            ds, report = qc.apply_filters(
                ds, filters, founders_only=not params.nonfounders,
                compute=lambda *c: run.compute(*c, label="QC filters"),
            )
            for line in report.lines():
                log.info("%s", line)
    if params.make_bed:
        from popgen.io.plink import write_plink

        with run.step("write bed"):
            write_plink(ds, out, compute=lambda *c: run.compute(*c, label="writing .bed"))
            run.wrote(f"{out}.bed")
    if params.make_vcz:
        from popgen.io import write_vcz

        with run.step("write vcz"):
            write_vcz(ds, f"{out}.vcz")
            run.wrote(f"{out}.vcz")
    return ds


#: step name -> (parameter model, function)
STEPS = {"qc": (QCParams, qc_step)}


# ---------------------------------------------------------------- config

class InputSpec(_Strict):
    bfile: Optional[str] = None
    vcf: Optional[str] = None
    vcz: Optional[str] = None

    @model_validator(mode="after")
    def _one(self):
        if sum(v is not None for v in (self.bfile, self.vcf, self.vcz)) != 1:
            raise ValueError("give exactly one of bfile, vcf, vcz")
        return self


class Chunks(_Strict):
    variants: int = Field(8192, gt=0)
    samples: int = Field(8192, gt=0)


class Pipeline(_Strict):
    """A pipeline config (``popgen run CONFIG.yaml``).

    Input paths are relative to the config file; ``out`` is relative to the
    working directory.
    """

    input: InputSpec
    out: str
    device: Literal["cpu", "gpu", "auto"] = "auto"
    cluster: str = "local"
    chunks: Chunks = Chunks()
    keep: Optional[str] = None
    remove: Optional[str] = None
    steps: list[dict[str, dict]] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps(self):
        for i, step in enumerate(self.steps):
            if len(step) != 1:
                raise ValueError(f"steps[{i}] must have exactly one key (the step name)")
            (name, params), = step.items()
            if name not in STEPS:
                raise ValueError(f"steps[{i}]: unknown step {name!r}; known: {', '.join(STEPS)}")
        return self

    def parsed_steps(self):
        return [(name, STEPS[name][0].model_validate(params or {})) for step in self.steps for name, params in step.items()]


def _pydantic_message(e) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def load_config(path) -> Pipeline:
    """Read and validate a pipeline YAML; errors name the file and the key."""
    import pydantic
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PopgenError("file not found", path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PopgenError(f"invalid YAML{where}: {getattr(e, 'problem', e)}", path) from None
    if not isinstance(raw, dict):
        raise PopgenError("config must be a mapping of keys (input, out, steps, ...)", path)
    try:
        cfg = Pipeline.model_validate(raw)
        cfg.parsed_steps()  # validates each step's parameters
    except pydantic.ValidationError as e:
        raise PopgenError(f"invalid config: {_pydantic_message(e)}", path) from None
    base = path.parent
    for key in ("bfile", "vcf", "vcz"):
        value = getattr(cfg.input, key)
        if value is not None and not Path(value).is_absolute():
            setattr(cfg.input, key, str(base / value))
    for key in ("keep", "remove"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).is_absolute():
            setattr(cfg, key, str(base / value))
    return cfg


def subset_samples(ds, keep=None, remove=None):
    """Apply PLINK-style ``--keep``/``--remove`` sample lists."""
    from popgen.io.pheno import read_sample_list

    import numpy as np

    mask = np.ones(ds.sizes["samples"], dtype=bool)
    if keep:
        mask &= read_sample_list(keep, ds)
    if remove:
        mask &= ~read_sample_list(remove, ds)
    if mask.all():
        return ds
    if not mask.any():
        raise PopgenError("--keep/--remove left no samples")
    log.info("--keep/--remove: %d of %d samples kept", mask.sum(), len(mask))
    return ds.isel(samples=np.flatnonzero(mask))


def run_pipeline(run, cfg: Pipeline):
    """Open the config's input and run its steps in order."""
    from popgen.io import open_dataset

    with run.step("open input"):
        ds = open_dataset(bfile=cfg.input.bfile, vcf=cfg.input.vcf, vcz=cfg.input.vcz,
                          chunks=(cfg.chunks.variants, cfg.chunks.samples), device=run.device)
        ds = subset_samples(ds, cfg.keep, cfg.remove)
        log.info("input: %d samples, %d variants", ds.sizes["samples"], ds.sizes["variants"])
    for name, params in cfg.parsed_steps():
        ds = STEPS[name][1](run, ds, cfg.out, params)
    return ds
