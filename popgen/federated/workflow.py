"""The federated steps as the command line runs them: a site's export, the coordinator's
combine, and a whole multi-site analysis run on one machine through the same files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from popgen.errors import PopgenError

log = logging.getLogger("popgen")

EXPORT_KINDS = ("counts", "linear", "sumstats", "pca-product")


def export(run, ds, plan, site_name: str, kinds, out: str, *, pheno: Optional[str] = None,
           covar: Optional[list] = None, basis: Optional[str] = None, case_control_01: bool = False) -> list[Path]:
    """Write the site's bundles of the given kinds: ``OUT.KIND.pgb`` (``OUT.pca-product.rN.pgb``)."""
    from popgen.federated import site as site_mod
    from popgen.io.files import ensure_parent

    kinds = list(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in EXPORT_KINDS]
    if bad:
        raise PopgenError(f"unknown bundle kind {bad[0]!r}: use {', '.join(EXPORT_KINDS)}")
    if "pca-product" in kinds and not basis:
        raise PopgenError("--kind pca-product needs --basis (the coordinator's pca-basis bundle for this round)")
    ensure_parent(out)
    with run.step("align to plan"):
        st = site_mod.align(ds, plan, site_name)
    ph = None
    if {"linear", "sumstats"} & set(kinds):
        if plan.plan.gwas is None:
            raise PopgenError("the plan has no gwas section: nothing to export for linear or sumstats", plan.path)
        if not pheno:
            raise PopgenError("--kind linear/sumstats needs --pheno (and --covar when the plan names covariates)")
        from popgen.association import load_phenotypes

        g = plan.plan.gwas
        ph = load_phenotypes(st.ds, pheno, g.phenotypes, list(covar) if covar else None,
                             g.covariates or None, case_control_01=case_control_01,
                             min_samples=max(g.min_samples, plan.plan.privacy.min_samples))
    written = []
    for kind in kinds:
        with run.step(f"export {kind}"):
            if kind == "counts":
                path = site_mod.export_counts(st, f"{out}.counts.pgb", compute=run.compute)
            elif kind == "linear":
                path = site_mod.export_linear(st, ph, f"{out}.linear.pgb", compute=run.compute)
            elif kind == "sumstats":
                path = site_mod.export_sumstats(st, ph, f"{out}.sumstats.pgb", compute=run.compute)
            else:
                from popgen.federated.bundle import read_manifest

                # the manifest only: export_pca_product verifies the arrays and reads the basis by rows
                r = read_manifest(basis, plan, kind="pca-basis")["round"]
                path = site_mod.export_pca_product(st, basis, f"{out}.pca-product.r{r}.pgb", compute=run.compute)
        run.wrote(path)
        written.append(Path(path))
    return written


def combine(run, plan, paths, out: str, *, plots: bool = True) -> dict:
    """Combine bundles (any mix of kinds, one per site and kind) at the coordinator."""
    from popgen.federated import coordinator as co
    from popgen.federated.bundle import read_manifest
    from popgen.io.files import ensure_parent

    ensure_parent(out)
    by_kind: dict = {}
    for p in paths:  # manifests only: the arrays are read (and verified) by kind below
        kind = read_manifest(p, plan)["kind"]
        if kind == "pca-basis":
            raise PopgenError("a pca-basis bundle goes to the sites, not to combine", p)
        by_kind.setdefault(kind, []).append(p)
    report = {}
    for kind in ("counts", "linear", "sumstats", "pca-product"):
        if kind not in by_kind:
            continue
        with run.step(f"combine {kind}"):
            bundles = co.read_site_bundles(by_kind[kind], plan, kind)
            sites = ", ".join(b.site for b in bundles)
            log.info("%s bundles from %d sites: %s", kind, len(bundles), sites)
            if kind == "counts":
                pooled = co.combine_counts(plan, bundles)
                files = co.write_frequency_panel(out, plan, pooled)
                log.info("pooled: %d samples; %d variants suppressed at one site or more", sum(
                    pooled["site_samples"].values()), int((pooled["n_sites"] < len(bundles)).sum()))
                for f, n in pooled["removed"].items():
                    log.info("--%s: removed %d variants (pooled counts)", f, n)
                log.info("%d of %d variants pass the plan's filters", int(pooled["keep"].sum()), plan.n_variants)
                if plan.plan.pca is not None:
                    files.append(str(co.start_pca(out, plan, pooled)))
                report["counts"] = {"files": files}
            elif kind == "linear":
                from popgen.federated.arrays import Scratch

                with Scratch.beside(out) as scratch:  # the pooled fields, on disk
                    res = co.combine_linear(plan, bundles, scratch=scratch)
                    rep = co.write_linear(out, plan, res, plots=plots)
                for name, r in rep.items():
                    log.info("%s: %d samples, %d variants tested, lambda_GC %.4f", name, r["n_samples"],
                             r["n_tested"], r["lambda_gc"])
                files = [f for r in rep.values() for f in r["files"]]
                report["linear"] = {"files": files, "phenotypes": rep}
            elif kind == "sumstats":
                files = co.write_meta(out, plan, bundles)
                report["sumstats"] = {"files": files}
            else:
                res = co.pca_round(out, plan, bundles)
                files = [str(res["basis"])] if "basis" in res else res["files"]
                report["pca"] = res
        for f in files:
            run.wrote(f)
    return report


# ------------------------------------------------------------------ all sites on one machine


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSpec(_Strict):
    name: str
    bfile: Optional[str] = None
    vcf: Optional[str] = None
    vcz: Optional[str] = None
    keep: Optional[str] = None
    remove: Optional[str] = None
    pheno: Optional[str] = None
    covar: list[str] = []


class Federation(_Strict):
    """Sites of a federated analysis run on one machine (``popgen federated simulate``);
    paths relative to this file."""

    plan: str
    sites: list[SiteSpec] = Field(min_length=1)
    out: str = "results/federated"


def load_federation(path):
    from popgen.yamlfile import load_model

    path = Path(path)
    fed = load_model(path, Federation, kind="sites file", what="plan, sites, out")
    base = path.parent

    def rel(p):
        return None if p is None else str(p if Path(p).is_absolute() else base / p)

    fed.plan = rel(fed.plan)
    for s in fed.sites:
        s.bfile, s.vcf, s.vcz, s.keep, s.remove, s.pheno = map(rel, (s.bfile, s.vcf, s.vcz, s.keep, s.remove, s.pheno))
        s.covar = [rel(c) for c in s.covar]
    if len({s.name for s in fed.sites}) != len(fed.sites):
        raise PopgenError("site names must be unique", path)
    return fed


def simulate(run, fed: Federation, out: Optional[str] = None) -> dict:
    """Run every step of a federated analysis with all sites on this machine, exchanging the
    same bundle files the real thing would: counts (+ linear, sumstats when the plan has a
    GWAS) from every site, the coordinator's combine, each PCA round, and finally each site's
    projection onto the federated PCA.  Layout: ``OUT/SITE/SITE.*`` and ``OUT/coordinator/pooled.*``."""
    from popgen.federated.plan import load_plan
    from popgen.pipeline import open_cohort

    plan = load_plan(fed.plan)
    root = Path(out or fed.out)
    coord = str(root / "coordinator" / "pooled")
    kinds = ["counts"] + (["linear", "sumstats"] if plan.plan.gwas is not None else [])
    cohorts = {}
    bundles = []
    for s in fed.sites:
        log.info("site %s: exporting %s", s.name, ", ".join(kinds))
        ds = open_cohort(run, bfile=s.bfile, vcf=s.vcf, vcz=s.vcz, keep=s.keep, remove=s.remove)
        cohorts[s.name] = ds
        prefix = str(root / s.name / s.name)
        bundles += export(run, ds, plan, s.name, kinds, prefix, pheno=s.pheno, covar=s.covar)
    report = combine(run, plan, bundles, coord)
    if plan.plan.pca is not None:
        basis = report["counts"]["files"][-1]
        while True:
            products = []
            for s in fed.sites:
                products += export(run, cohorts[s.name], plan, s.name, ["pca-product"], str(root / s.name / s.name),
                                   basis=basis)
            rep = combine(run, plan, products, coord)["pca"]
            if "files" in rep:
                break
            basis = rep["basis"]
        from popgen.pca import project, read_reference, write_projection

        ref = read_reference(coord)
        for s in fed.sites:
            with run.step(f"project {s.name}"):
                scores, match = project(cohorts[s.name], ref, compute=run.compute)
                prefix = str(root / s.name / s.name)
                write_projection(prefix, cohorts[s.name], scores)
                run.wrote(f"{prefix}.eigenvec")
        report["pca"] = rep
    return report
