"""Write a simulated cohort to disk: PLINK 1, VCF Zarr, phenotype/covariate tables, truth."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("popgen")


def cohort_dataset(cohort, *, chunks=(8192, 8192), parents_in_fam: bool = True):
    """A :class:`popgen.simulate.SimulatedCohort` as a popgen Dataset.

    With ``parents_in_fam`` the simulated children carry their father and
    mother IDs (``sample_paternal_id``/``sample_maternal_id``), as a family
    study's .fam would; their parents, when sampled, are then the founders
    PLINK 2 uses for frequencies.
    """
    from popgen.io.memory import dataset_from_alt_count

    n = len(cohort.sample_id)
    pat = np.full(n, "0", dtype=object)
    mat = np.full(n, "0", dtype=object)
    if parents_in_fam:
        index = {iid: i for i, iid in enumerate(cohort.sample_id.tolist())}
        for rec in cohort.truth.get("pedigree", []):
            i = index.get(rec["iid"])
            if i is None:
                continue
            if rec.get("father") in index:
                pat[i] = rec["father"]
            if rec.get("mother") in index:
                mat[i] = rec["mother"]
    return dataset_from_alt_count(
        cohort.alt_count,
        contig=cohort.contig,
        position=cohort.position,
        ref=cohort.ref,
        alt=cohort.alt,
        variant_id=cohort.variant_id,
        cm_position=cohort.cm_position,
        sample_id=cohort.sample_id,
        family_id=cohort.family_id,
        paternal_id=pat,
        maternal_id=mat,
        sex=cohort.sex,
        population=cohort.population,
        chunks=chunks,
    )


def write_simulated(out, *, make_vcz: bool = True, **params) -> None:
    """Simulate (``popgen.simulate.simulate_cohort(**params)``) and write every file under ``out``."""
    from popgen.io.files import atomic_write, ensure_parent
    from popgen.io.plink import write_plink
    from popgen.simulate import simulate_cohort, write_truth

    out = str(out)
    ensure_parent(out)
    cohort = simulate_cohort(**params)
    ds = cohort_dataset(cohort)
    write_plink(ds, out)
    if make_vcz:
        from popgen.io.vcz import write_vcz

        write_vcz(ds, f"{out}.vcz")
    for name, table in (("pheno", cohort.pheno), ("covar", cohort.covar)):
        table = table.rename(columns={"FID": "#FID"})
        for col in table.columns[2:]:
            values = table[col].to_numpy(dtype=float)
            whole = np.isnan(values) | (values == np.round(values))
            table[col] = [("NA" if np.isnan(v) else (f"{int(v)}" if whole.all() else f"{v:.6g}")) for v in values]
        with atomic_write(f"{out}.{name}") as f:
            table.to_csv(f, sep="\t", index=False)
    with atomic_write(f"{out}.pop") as f:
        f.write("#FID\tIID\tPOPULATION\n")
        for fid, iid, pop in zip(cohort.family_id, cohort.sample_id, cohort.population):
            f.write(f"{fid}\t{iid}\t{pop}\n")
    write_truth(cohort, f"{out}.truth.json")
    log.info("simulated %d samples x %d variants -> %s.*", len(cohort.sample_id), len(cohort.variant_id), out)
