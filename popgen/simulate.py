"""Simulated cohorts with known truth: structure, relatives, causal variants.

:func:`simulate_cohort` builds a realistic cohort for tests, the quickstart
example and benchmarks, and records everything a method should recover in
``SimulatedCohort.truth`` (written by :func:`write_truth`).

The model, in the order it is simulated:

1. **Ancestry** (msprime, Hudson coalescent with recombination).  ``k``
   populations of size ``Ne = 10,000`` split from a common ancestor along a
   ladder tree ``(((POP1, POP2), POP3), POP4) ...``: POP1/POP2 split 300
   generations ago, POP3 joins 1,500 generations ago, each further population
   1,000 generations earlier than the last (Fst about 0.015 between POP1 and
   POP2, about 0.07 between POP3 and the others; the top two PCs separate the
   three populations at 600 samples x 5,000 variants).  Population sizes in
   the sample are unequal (weights ``1 / (1 + i/4)``).
2. **Sites.**  Each contig is simulated independently with recombination and
   mutation rates of 1e-8 per bp per generation (JC69 nucleotides), with a
   length chosen so that the expected number of segregating sites,
   ``4 Ne mu L a(2n)``, exceeds the contig's share of ``n_variants``.  Sites
   with one mutation (biallelic SNPs) are kept, and exactly the contig's share
   is drawn from them at random (positions stay sorted).  REF is the ancestral
   allele, ALT the derived one.
3. **Relatives** (gene dropping).  About ``relative_fraction * n_samples`` of
   the sampled individuals belong to small pedigrees whose founders are
   msprime individuals of one population: one duplicate (MZ twin) pair, then
   repeated trios (two parent-offspring pairs), full-sibling pairs,
   half-sibling pairs, grandparent-grandchild pairs and avuncular pairs.
   Founders that are only parents of sampled relatives are simulated but not
   sampled.  Each child receives one recombinant haplotype from each parent;
   crossovers are a Poisson process along each contig.  The meiosis map is
   :data:`MEIOSIS_MORGANS` (35 M, a human autosomal genome) shared among the
   contigs in proportion to their length, so the contigs together stand for a
   whole genome at array density and relatives' realised kinship scatters
   around its expectation as much as real relatives' does (full siblings: sd
   about 0.02).  At the msprime rate a simulated contig is under a centimorgan
   long, and with no crossovers siblings would share whole contigs or nothing.
4. **Phenotypes.**  ``n_causal`` variants with minor allele frequency >= 0.05
   get standardised normal effects, scaled so that the genetic value has
   variance ``h2`` and the noise ``1 - h2``; SEX, AGE and a population mean
   shift are added on top (see ``truth["phenotype_model"]``).  BT uses
   independent effects on the same variants and a liability threshold at the
   ``1 - prevalence`` quantile.  Genetic values use the true genotypes.  About
   2 % of QT and of BT are set to NaN.
5. **Missing calls** at rate ``missing_rate``, completely at random, last.

References
----------
Baumdicker F. et al. (2022) Efficient ancestry and mutation simulation with
msprime 1.0. *Genetics* 220(3):iyab229.
Manichaikul A. et al. (2010) Robust relationship inference in genome-wide
association studies. *Bioinformatics* 26(22):2867-2873.
Falconer D. S. (1965) The inheritance of liability to certain diseases,
estimated from the incidence among relatives. *Ann. Hum. Genet.* 29:51-76.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from popgen.errors import PopgenError

if TYPE_CHECKING:  # pandas is imported lazily, when a cohort is simulated
    import pandas

#: effective population size of every population and ancestor
NE = 10_000
#: per bp per generation, for msprime and for ``cm_position``
RECOMBINATION_RATE = 1e-8
#: per bp per generation
MUTATION_RATE = 1e-8
#: total genetic length of the meiosis map used for gene dropping (Morgans)
MEIOSIS_MORGANS = 35.0
#: fraction of QT and of BT values set to NaN
PHENO_MISSING = 0.02
#: minimum minor allele frequency of a causal variant (relaxed if too few)
CAUSAL_MIN_MAF = 0.05

# Fixed effects on QT and on the BT liability (in phenotype sd units)
_SEX_EFFECT = 0.2  # female vs male
_AGE_EFFECT = 0.01  # per year, centred at 50
_POP_SHIFT_STEP = 0.3  # POP(i+1) mean - POP(i) mean


@dataclasses.dataclass
class SimulatedCohort:
    """A simulated cohort: genotypes, variant and sample tables, phenotypes and truth.

    Attributes
    ----------
    alt_count : ndarray, int8, shape (n_variants, n_samples)
        ALT allele count per call (0, 1 or 2); -1 is a missing call.
    contig : ndarray, str, shape (n_variants,)
        Contig name ("1", "2", ...); variants are sorted by contig then position.
    position : ndarray, int64, shape (n_variants,)
        1-based base-pair position, strictly increasing within a contig.
    variant_id : ndarray, str, shape (n_variants,)
        Unique identifier ``"<contig>:<position>"``.
    ref, alt : ndarray, str, shape (n_variants,)
        Single-base REF (ancestral) and ALT (derived) alleles, ``ref != alt``.
    cm_position : ndarray, float64, shape (n_variants,)
        Genetic position in cM at :data:`RECOMBINATION_RATE` (1 cM per Mb), the
        scale of the LD in the data.
    family_id : ndarray, str, shape (n_samples,)
        PLINK FID: ``"FAM00001"``... shared by relatives, the IID otherwise.
    sample_id : ndarray, str, shape (n_samples,)
        Unique IID ``"<population>_<index>"``, e.g. ``"POP1_000123"``.
    sex : ndarray, int8, shape (n_samples,)
        1 male, 2 female.
    population : ndarray, str, shape (n_samples,)
        Population label ("POP1", "POP2", ...).
    pheno : pandas.DataFrame
        Columns FID, IID (str), QT (float64, about 2 % NaN) and BT (float64:
        1 control, 2 case, about 2 % NaN); one row per sample, in sample order.
    covar : pandas.DataFrame
        Columns FID, IID (str), SEX (int64, 1/2) and AGE (float64, years).
    truth : dict
        JSON-serialisable record of the simulation: ``params`` (the arguments),
        ``populations`` (sample count per population), ``relatives`` (one entry
        per related sampled pair: iid1, iid2, relationship, expected
        ``kinship``, ``degree`` and ``kinship_realized``, the IBD-based kinship
        of the simulated genotypes), ``causal_variants`` (variant_id,
        effect_qt, effect_bt per ALT allele), ``pedigree`` (iid, father,
        mother, sampled for every simulated child), ``demography``,
        ``meiosis_morgans`` and ``phenotype_model``.
    """

    alt_count: np.ndarray
    contig: np.ndarray
    position: np.ndarray
    variant_id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    cm_position: np.ndarray
    family_id: np.ndarray
    sample_id: np.ndarray
    sex: np.ndarray
    population: np.ndarray
    pheno: pandas.DataFrame
    covar: pandas.DataFrame
    truth: dict

    @property
    def n_variants(self) -> int:
        return self.alt_count.shape[0]

    @property
    def n_samples(self) -> int:
        return self.alt_count.shape[1]


# ---------------------------------------------------------------------------
# public API


def simulate_cohort(
    n_samples: int = 600,
    n_variants: int = 5000,
    *,
    n_populations: int = 3,
    n_contigs: int = 2,
    missing_rate: float = 0.01,
    relative_fraction: float = 0.1,
    n_causal: int = 20,
    h2: float = 0.5,
    prevalence: float = 0.3,
    seed: int = 1,
) -> SimulatedCohort:
    """Simulate a structured cohort with relatives, phenotypes and known truth.

    See the module docstring for the model.  600 samples x 5,000 variants take
    well under a second; 10,000 x 100,000 take about half a minute and 1.5 GB.

    Parameters
    ----------
    n_samples : int
        Number of sampled individuals (columns of ``alt_count``).
    n_variants : int
        Number of biallelic SNPs (rows of ``alt_count``), split as evenly as
        possible across contigs.
    n_populations : int
        Number of populations, ``POP1`` ... ``POP<n>``.
    n_contigs : int
        Number of independently simulated contigs, named "1", "2", ...
    missing_rate : float
        Fraction of calls set to -1, completely at random.
    relative_fraction : float
        Approximate fraction of samples that belong to a planted family.
    n_causal : int
        Number of causal variants for QT and BT (capped at the number of
        variants with MAF >= 0.05, then >= 0.01, then > 0).
    h2 : float
        Share of genetic variance in the non-covariate part of QT and of the
        BT liability, in [0, 1].
    prevalence : float
        Fraction of cases among samples with a BT value, in (0, 1).
    seed : int
        Seed; the same seed gives the same cohort.

    Returns
    -------
    SimulatedCohort
        ``alt_count`` is int8 of shape (n_variants, n_samples), -1 missing.
    """
    params = dict(
        n_samples=int(n_samples),
        n_variants=int(n_variants),
        n_populations=int(n_populations),
        n_contigs=int(n_contigs),
        missing_rate=float(missing_rate),
        relative_fraction=float(relative_fraction),
        n_causal=int(n_causal),
        h2=float(h2),
        prevalence=float(prevalence),
        seed=int(seed),
    )
    _check_params(**params)
    import pandas as pd

    streams = np.random.SeedSequence(int(seed)).spawn(6)
    rng_plan, rng_msp, rng_sites, rng_drop, rng_pheno, rng_miss = (np.random.default_rng(s) for s in streams)

    pop_names = [f"POP{i + 1}" for i in range(n_populations)]
    pop_sizes = _population_sizes(n_samples, n_populations)
    ped = _plan_pedigree(pop_sizes, relative_fraction, rng_plan)
    demography, demography_truth = _demography(pop_names)

    # founders per population, in msprime individual order
    founders = [i for i in range(ped.n) if ped.is_founder(i)]
    founders.sort(key=lambda i: ped.pop[i])  # stable: keeps order within a population
    founders_per_pop = np.bincount([ped.pop[i] for i in founders], minlength=n_populations)
    msp_index = {person: k for k, person in enumerate(founders)}

    # final sample order: a random permutation of the sampled people
    sampled = [i for i in range(ped.n) if ped.sampled[i]]
    assert len(sampled) == n_samples
    col = dict(zip(sampled, rng_plan.permutation(n_samples).tolist()))

    per_contig = [n_variants // n_contigs + (c < n_variants % n_contigs) for c in range(n_contigs)]
    alt_count = np.empty((n_variants, n_samples), dtype=np.int8)
    alt_total = np.zeros(n_variants, dtype=np.int64)
    contigs, positions, refs, alts, lengths = [], [], [], [], []
    realized = np.zeros(len(ped.pairs))
    hap_labels_per_contig = []
    row = 0
    for c, n_c in enumerate(per_contig):
        ts, pos, ref, alt, length = _simulate_contig(
            demography, pop_names, founders_per_pop, n_c, rng_msp, rng_sites
        )
        contigs.append(np.full(n_c, str(c + 1)))
        positions.append(pos)
        refs.append(ref)
        alts.append(alt)
        lengths.append(length)
        hap_labels_per_contig.append((ts, pos, length, row, n_c))
        row += n_c

    total_length = float(sum(lengths))
    for c, (ts, pos, length, r0, n_c) in enumerate(hap_labels_per_contig):
        morgans = MEIOSIS_MORGANS * length / total_length
        founder_haps = _founder_haplotypes(ts, founders, msp_index)
        segments = _gene_drop(ped, founder_haps, pos - 1, length, morgans, rng_drop)
        _fill_genotypes(ts, ped, segments, col, alt_count, alt_total, r0, n_c)
        for k, (a, b, *_rest) in enumerate(ped.pairs):
            realized[k] += _shared_ibd(segments[a], segments[b], n_c)
        hap_labels_per_contig[c] = None  # free the tree sequence
    realized /= 4.0 * n_variants

    contig = np.concatenate(contigs)
    position = np.concatenate(positions).astype(np.int64)
    variant_id = np.char.add(np.char.add(contig, ":"), position.astype(str))
    ref = np.concatenate(refs)
    alt = np.concatenate(alts)
    cm_position = position * RECOMBINATION_RATE * 100.0

    # sample table, in final column order
    order = sorted(sampled, key=col.__getitem__)
    sample_id = np.array([_iid(ped, i, col) for i in order])
    population = np.array([pop_names[ped.pop[i]] for i in order])
    sex = np.array([ped.sex[i] for i in order], dtype=np.int8)
    family_id = np.array(
        [f"FAM{ped.family[i] + 1:05d}" if ped.family[i] >= 0 else sample_id[k] for k, i in enumerate(order)]
    )
    age = np.array([ped.age[i] for i in order])
    pop_index = np.array([ped.pop[i] for i in order])

    pheno_cols, causal, pheno_model = _phenotypes(
        alt_count, alt_total, sex, age, pop_index, pop_names, n_causal, h2, prevalence, rng_pheno
    )
    pheno = pd.DataFrame({"FID": family_id, "IID": sample_id, **pheno_cols})
    covar = pd.DataFrame({"FID": family_id, "IID": sample_id, "SEX": sex.astype(np.int64), "AGE": age})

    _apply_missing(alt_count, missing_rate, rng_miss)

    names = {i: (_iid(ped, i, col) if ped.sampled[i] else _unsampled_iid(ped, i, pop_names)) for i in range(ped.n)}
    truth = {
        "params": params,
        "populations": {name: int(np.sum(population == name)) for name in pop_names},
        "relatives": [
            {
                "iid1": names[a],
                "iid2": names[b],
                "relationship": rel,
                "kinship": kin,
                "degree": _DEGREE[kin],
                "kinship_realized": round(float(realized[k]), 6),
            }
            for k, (a, b, rel, kin) in enumerate(ped.pairs)
        ],
        "causal_variants": [
            {"variant_id": str(variant_id[v]), "effect_qt": float(eq), "effect_bt": float(eb)}
            for v, eq, eb in causal
        ],
        "pedigree": [
            {
                "iid": names[i],
                "father": names[ped.father[i]],
                "mother": names[ped.mother[i]],
                "sampled": bool(ped.sampled[i]),
            }
            for i in range(ped.n)
            if ped.father[i] >= 0
        ],
        "demography": demography_truth,
        "meiosis_morgans": {str(c + 1): MEIOSIS_MORGANS * lengths[c] / total_length for c in range(n_contigs)},
        "contig_length_bp": {str(c + 1): int(lengths[c]) for c in range(n_contigs)},
        "phenotype_model": pheno_model,
    }
    return SimulatedCohort(
        alt_count=alt_count,
        contig=contig,
        position=position,
        variant_id=variant_id,
        ref=ref,
        alt=alt,
        cm_position=cm_position,
        family_id=family_id,
        sample_id=sample_id,
        sex=sex,
        population=population,
        pheno=pheno,
        covar=covar,
        truth=truth,
    )


def write_truth(cohort: SimulatedCohort, path: str | os.PathLike) -> None:
    """Write ``cohort.truth`` as JSON, atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    cohort : SimulatedCohort
        The cohort whose truth to write.
    path : str or PathLike
        Destination file; its directory must exist.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".truth-", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(cohort.truth, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# parameters and demography


def _check_params(*, n_samples, n_variants, n_populations, n_contigs, missing_rate, relative_fraction,
                  n_causal, h2, prevalence, seed) -> None:
    if n_populations < 1:
        raise PopgenError(f"n_populations must be >= 1, got {n_populations}")
    if n_samples < 2 * n_populations:
        raise PopgenError(f"n_samples must be >= 2 * n_populations ({2 * n_populations}), got {n_samples}")
    if n_contigs < 1:
        raise PopgenError(f"n_contigs must be >= 1, got {n_contigs}")
    if n_variants < n_contigs:
        raise PopgenError(f"n_variants must be >= n_contigs ({n_contigs}), got {n_variants}")
    if not 0.0 <= missing_rate < 1.0:
        raise PopgenError(f"missing_rate must be in [0, 1), got {missing_rate}")
    if not 0.0 <= relative_fraction <= 1.0:
        raise PopgenError(f"relative_fraction must be in [0, 1], got {relative_fraction}")
    if n_causal < 0:
        raise PopgenError(f"n_causal must be >= 0, got {n_causal}")
    if not 0.0 <= h2 <= 1.0:
        raise PopgenError(f"h2 must be in [0, 1], got {h2}")
    if not 0.0 < prevalence < 1.0:
        raise PopgenError(f"prevalence must be in (0, 1), got {prevalence}")
    if seed < 0:
        raise PopgenError(f"seed must be >= 0, got {seed}")


def _population_sizes(n_samples: int, k: int) -> list[int]:
    """Unequal sample sizes per population (weights 1 / (1 + i/4)), summing to n_samples."""
    w = 1.0 / (1.0 + 0.25 * np.arange(k))
    raw = n_samples * w / w.sum()
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes))[: n_samples - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def _split_times(k: int) -> list[float]:
    """Time (generations ago) at which POP(i+1) joins the ancestor of POP1..POPi, i = 1..k-1."""
    return [300.0, 1500.0, *(1500.0 + 1000.0 * j for j in range(1, k - 2))][: k - 1]


def _demography(pop_names: list[str]):
    import msprime

    d = msprime.Demography()
    for name in pop_names:
        d.add_population(name=name, initial_size=NE)
    times = _split_times(len(pop_names))
    splits = []
    current = pop_names[0]
    for i, t in enumerate(times):
        anc = f"ANC{i + 1}"
        d.add_population(name=anc, initial_size=NE)
        d.add_population_split(time=t, derived=[current, pop_names[i + 1]], ancestral=anc)
        splits.append({"time": t, "derived": [current, pop_names[i + 1]], "ancestral": anc})
        current = anc
    return d, {"Ne": NE, "splits": splits, "recombination_rate": RECOMBINATION_RATE,
               "mutation_rate": MUTATION_RATE}


# ---------------------------------------------------------------------------
# pedigree planning

_DEGREE = {0.5: 0, 0.25: 1, 0.125: 2}


class _Pedigree:
    """People in topological order (parents before children), sampled or not."""

    def __init__(self):
        self.pop: list[int] = []
        self.sex: list[int] = []
        self.father: list[int] = []
        self.mother: list[int] = []
        self.clone_of: list[int] = []
        self.sampled: list[bool] = []
        self.family: list[int] = []
        self.age: list[float] = []
        self.pairs: list[tuple[int, int, str, float]] = []  # (a, b, relationship, expected kinship)
        self.n_families = 0

    @property
    def n(self) -> int:
        return len(self.pop)

    def add(self, pop, sex, *, father=-1, mother=-1, clone_of=-1, sampled=True, family=-1, age=np.nan) -> int:
        self.pop.append(pop)
        self.sex.append(sex)
        self.father.append(father)
        self.mother.append(mother)
        self.clone_of.append(clone_of)
        self.sampled.append(sampled)
        self.family.append(family)
        self.age.append(float(age))
        return self.n - 1

    def is_founder(self, i: int) -> bool:
        return self.father[i] < 0 and self.clone_of[i] < 0

    def kinship(self, a: int, b: int) -> float:
        """Expected kinship coefficient relative to the (unrelated, non-inbred) founders."""
        a = a if self.clone_of[a] < 0 else self.clone_of[a]
        b = b if self.clone_of[b] < 0 else self.clone_of[b]
        if a == b:
            return 0.5
        if a < b:
            a, b = b, a
        if self.father[a] < 0:  # the younger is a founder: nobody older descends from it
            return 0.0
        return 0.5 * (self.kinship(self.father[a], b) + self.kinship(self.mother[a], b))


def _age(rng, base, generations_up):
    return float(np.clip(round(base + 28.0 * generations_up + rng.normal(0.0, 3.0), 1), 18.0, 95.0))


def _family_trio(ped, pop, fam, rng):
    base = rng.uniform(18, 40)
    f = ped.add(pop, 1, family=fam, age=_age(rng, base, 1))
    m = ped.add(pop, 2, family=fam, age=_age(rng, base, 1))
    c = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(f, c, "parent-offspring"), (m, c, "parent-offspring")]


def _family_full_sibs(ped, pop, fam, rng):
    base = rng.uniform(18, 50)
    f = ped.add(pop, 1, sampled=False, family=fam)
    m = ped.add(pop, 2, sampled=False, family=fam)
    s1 = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    s2 = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(s1, s2, "full-sibling")]


def _family_half_sibs(ped, pop, fam, rng):
    base = rng.uniform(18, 50)
    shared_sex = int(rng.integers(1, 3))
    shared = ped.add(pop, shared_sex, sampled=False, family=fam)
    kids = []
    for _ in range(2):
        other = ped.add(pop, 3 - shared_sex, sampled=False, family=fam)
        f, m = (shared, other) if shared_sex == 1 else (other, shared)
        kids.append(ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0)))
    return [(kids[0], kids[1], "half-sibling")]


def _family_grandparent(ped, pop, fam, rng):
    base = rng.uniform(18, 35)
    g_sex = int(rng.integers(1, 3))
    g1 = ped.add(pop, g_sex, family=fam, age=_age(rng, base, 2))
    g2 = ped.add(pop, 3 - g_sex, sampled=False, family=fam)
    f, m = (g1, g2) if g_sex == 1 else (g2, g1)
    p_sex = int(rng.integers(1, 3))
    p = ped.add(pop, p_sex, father=f, mother=m, sampled=False, family=fam)
    s = ped.add(pop, 3 - p_sex, sampled=False, family=fam)
    f, m = (p, s) if p_sex == 1 else (s, p)
    k = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(g1, k, "grandparent")]


def _family_avuncular(ped, pop, fam, rng):
    base = rng.uniform(18, 40)
    g1 = ped.add(pop, 1, sampled=False, family=fam)
    g2 = ped.add(pop, 2, sampled=False, family=fam)
    p_sex = int(rng.integers(1, 3))
    p = ped.add(pop, p_sex, father=g1, mother=g2, sampled=False, family=fam)
    u = ped.add(pop, int(rng.integers(1, 3)), father=g1, mother=g2, family=fam, age=_age(rng, base, 1))
    s = ped.add(pop, 3 - p_sex, sampled=False, family=fam)
    f, m = (p, s) if p_sex == 1 else (s, p)
    n = ped.add(pop, int(rng.integers(1, 3)), father=f, mother=m, family=fam, age=_age(rng, base, 0))
    return [(u, n, "avuncular")]


def _family_duplicate(ped, pop, fam, rng):
    age = _age(rng, rng.uniform(18, 70), 0)
    x = ped.add(pop, int(rng.integers(1, 3)), family=fam, age=age)
    y = ped.add(pop, ped.sex[x], clone_of=x, family=fam, age=age)
    return [(x, y, "duplicate")]


# (builder, number of sampled members)
_ROUND = [(_family_trio, 3), (_family_full_sibs, 2), (_family_half_sibs, 2),
          (_family_grandparent, 2), (_family_avuncular, 2)]


def _plan_pedigree(pop_sizes: list[int], relative_fraction: float, rng) -> _Pedigree:
    """Plant families (one duplicate pair, then rounds of trio, FS, HS, GP, AV), then unrelated founders."""
    ped = _Pedigree()
    k = len(pop_sizes)
    room = list(pop_sizes)
    budget = int(round(relative_fraction * sum(pop_sizes)))
    plan = [(_family_duplicate, 2)]
    while sum(size for _, size in plan) < budget:
        plan.extend(_ROUND)
    turn = 0
    for builder, size in plan:
        if size > budget:
            continue
        pop = turn % k
        if room[pop] < size:
            pop = int(np.argmax(room))
            if room[pop] < size:
                continue
        turn += 1
        pairs = builder(ped, pop, ped.n_families, rng)
        ped.n_families += 1
        budget -= size
        room[pop] -= size
        for a, b, rel in pairs:
            ped.pairs.append((a, b, rel, ped.kinship(a, b)))
    # every related sampled pair within a family is declared
    fams: dict[int, list[int]] = {}
    for i in range(ped.n):
        if ped.sampled[i]:
            fams.setdefault(ped.family[i], []).append(i)
    declared = {(a, b) for a, b, *_ in ped.pairs}
    for members in fams.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                a, b = members[x], members[y]
                kin = ped.kinship(a, b)
                assert kin == 0.0 or (a, b) in declared or (b, a) in declared, (a, b, kin)
    for a, b, rel, kin in ped.pairs:
        assert kin in _DEGREE, (rel, kin)
    # unrelated founders fill each population
    for pop in range(k):
        for _ in range(room[pop]):
            age = float(np.clip(round(rng.normal(50.0, 12.0), 1), 18.0, 90.0))
            ped.add(pop, int(rng.integers(1, 3)), age=age)
    return ped


def _iid(ped: _Pedigree, i: int, col: dict) -> str:
    return f"POP{ped.pop[i] + 1}_{col[i]:06d}"


def _unsampled_iid(ped: _Pedigree, i: int, pop_names: list[str]) -> str:
    return f"{pop_names[ped.pop[i]]}_U{i:06d}"


# ---------------------------------------------------------------------------
# ancestry and sites


def _harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n)))


def _simulate_contig(demography, pop_names, founders_per_pop, n_sites, rng_msp, rng_sites):
    """Simulate one contig; return (ts with exactly ``n_sites`` biallelic sites, 1-based positions, ref, alt, length)."""
    import msprime
    import tskit

    n_haps = 2 * int(np.sum(founders_per_pop))
    theta = 4.0 * NE * MUTATION_RATE
    length = max(1_000, int(np.ceil(1.25 * n_sites / (theta * _harmonic(n_haps)))))
    samples = [msprime.SampleSet(int(n), population=name, ploidy=2)
               for name, n in zip(pop_names, founders_per_pop) if n > 0]
    for _attempt in range(20):
        s1, s2 = (int(x) for x in rng_msp.integers(1, 2**31 - 1, size=2))
        ts = msprime.sim_ancestry(
            samples=samples, demography=demography, sequence_length=length,
            recombination_rate=RECOMBINATION_RATE, random_seed=s1,
        )
        ts = msprime.sim_mutations(ts, rate=MUTATION_RATE, random_seed=s2)
        tables = ts.tables
        n_mut = np.bincount(tables.mutations.site, minlength=ts.num_sites)
        anc = np.array(tskit.unpack_strings(tables.sites.ancestral_state, tables.sites.ancestral_state_offset))
        der_all = np.array(tskit.unpack_strings(tables.mutations.derived_state, tables.mutations.derived_state_offset))
        der = np.full(ts.num_sites, "", dtype=object)
        der[tables.mutations.site[::-1]] = der_all[::-1]  # first mutation per site (only used where n_mut == 1)
        der = der.astype(str) if ts.num_sites else np.array([], dtype=str)
        ok = np.flatnonzero((n_mut == 1) & (anc != der))
        if len(ok) >= n_sites:
            break
        length = int(np.ceil(length * 1.3 * n_sites / max(len(ok), 1)))
    else:  # pragma: no cover - 20 attempts each 1.3x longer always suffice
        raise PopgenError(f"could not simulate {n_sites} biallelic sites")
    keep = np.sort(rng_sites.choice(ok, size=n_sites, replace=False))
    drop = np.setdiff1d(np.arange(ts.num_sites), keep)
    ts = ts.delete_sites(drop)
    pos = ts.tables.sites.position.astype(np.int64) + 1
    return ts, pos, anc[keep], der[keep], length


def _founder_haplotypes(ts, founders, msp_index) -> dict[int, tuple[int, int]]:
    """Person -> (hap column, hap column) in the genotype rows of ``ts.variants()``."""
    sample_nodes = ts.samples()
    column_of_node = np.empty(ts.num_nodes, dtype=np.int64)
    column_of_node[sample_nodes] = np.arange(len(sample_nodes))
    out = {}
    for person in founders:
        nodes = ts.individual(msp_index[person]).nodes
        out[person] = (int(column_of_node[nodes[0]]), int(column_of_node[nodes[1]]))
    return out


# ---------------------------------------------------------------------------
# gene dropping
#
# A haplotype of a pedigree member on one contig is piecewise constant in the
# founder haplotype it copies: (breaks, labels), where breaks[0] == 0 and site
# s copies founder haplotype column labels[searchsorted(breaks, s, "right") - 1].


def _label_at(hap, sites):
    breaks, labels = hap
    return labels[np.searchsorted(breaks, sites, side="right") - 1]


def _meiosis(haps, site_pos0, length, morgans, rng):
    """One recombinant gamete of a parent with haplotypes ``haps`` (a pair of (breaks, labels))."""
    n_x = rng.poisson(morgans)
    cross = np.sort(np.searchsorted(site_pos0, rng.uniform(0.0, length, size=n_x)))
    start = int(rng.integers(0, 2))
    points = np.unique(np.concatenate([[0], haps[0][0], haps[1][0], cross[cross < len(site_pos0)]]))
    parity = (start + np.searchsorted(cross, points, side="right")) % 2
    labels = np.where(parity == 0, _label_at(haps[0], points), _label_at(haps[1], points))
    keep = np.concatenate([[True], labels[1:] != labels[:-1]])
    return points[keep], labels[keep]


def _gene_drop(ped, founder_haps, site_pos0, length, morgans, rng):
    """Haplotype segments of every person on one contig (list indexed by person)."""
    zero = np.zeros(1, dtype=np.int64)
    segments: list = [None] * ped.n
    for i in range(ped.n):
        if ped.clone_of[i] >= 0:
            segments[i] = segments[ped.clone_of[i]]
        elif ped.father[i] < 0:
            h0, h1 = founder_haps[i]
            segments[i] = ((zero, np.array([h0])), (zero, np.array([h1])))
        else:
            segments[i] = (
                _meiosis(segments[ped.father[i]], site_pos0, length, morgans, rng),
                _meiosis(segments[ped.mother[i]], site_pos0, length, morgans, rng),
            )
    return segments


def _shared_ibd(seg_a, seg_b, n_sites) -> float:
    """Sum over the four haplotype pairs of the number of sites that copy the same founder haplotype."""
    sites = np.arange(n_sites)
    la = [_label_at(h, sites) for h in seg_a]
    lb = [_label_at(h, sites) for h in seg_b]
    return float(sum(np.count_nonzero(x == y) for x in la for y in lb))


def _fill_genotypes(ts, ped, segments, col, alt_count, alt_total, r0, n_sites):
    """Decode ``ts`` block by block into ``alt_count[r0:r0+n_sites]`` and ALT totals per variant."""
    n_haps = ts.num_samples
    block = int(max(256, min(n_sites, 64_000_000 // max(n_haps, 1))))
    direct = [i for i in range(ped.n) if ped.sampled[i] and len(segments[i][0][0]) == 1 and len(segments[i][1][0]) == 1]
    direct_cols = np.array([col[i] for i in direct], dtype=np.int64)
    h0 = np.array([segments[i][0][1][0] for i in direct], dtype=np.int64)
    h1 = np.array([segments[i][1][1][0] for i in direct], dtype=np.int64)
    mosaic = [i for i in range(ped.n) if ped.sampled[i] and not (len(segments[i][0][0]) == 1 and len(segments[i][1][0]) == 1)]
    mosaic_cols = np.array([col[i] for i in mosaic], dtype=np.int64)
    mosaic_haps = [h for i in mosaic for h in segments[i]]

    buf = np.empty((block, n_haps), dtype=np.int8)
    filled = 0
    start = 0
    for var in ts.variants(copy=False):
        buf[filled] = var.genotypes
        filled += 1
        if filled == block or start + filled == n_sites:
            h = buf[:filled]
            rows = slice(r0 + start, r0 + start + filled)
            out = alt_count[rows]
            out[:, direct_cols] = h[:, h0] + h[:, h1]
            if mosaic:
                sites = np.arange(start, start + filled)
                labels = np.stack([_label_at(hap, sites) for hap in mosaic_haps], axis=1)  # (filled, 2 * n_mosaic)
                g = np.take_along_axis(h, labels, axis=1)
                out[:, mosaic_cols] = g[:, 0::2] + g[:, 1::2]
            alt_total[rows] = out.sum(axis=1, dtype=np.int64)
            start += filled
            filled = 0
    assert start == n_sites


# ---------------------------------------------------------------------------
# phenotypes and missingness


def _phenotypes(alt_count, alt_total, sex, age, pop_index, pop_names, n_causal, h2, prevalence, rng):
    n_variants, n_samples = alt_count.shape
    freq = alt_total / (2.0 * n_samples)
    maf = np.minimum(freq, 1.0 - freq)
    candidates = np.array([], dtype=np.int64)
    for threshold in (CAUSAL_MIN_MAF, 0.01, 1e-12):
        candidates = np.flatnonzero(maf >= threshold)
        if len(candidates) >= n_causal:
            break
    n_causal = min(n_causal, len(candidates))
    causal = np.sort(rng.choice(candidates, size=n_causal, replace=False)) if n_causal else candidates[:0]
    x = alt_count[causal].astype(np.float64)  # true genotypes: missingness comes later
    scale = 1.0 / np.sqrt(2.0 * freq[causal] * (1.0 - freq[causal]))

    def genetic(z):
        beta = z * scale
        g = beta @ x
        v = g.var()
        c = np.sqrt(h2 / v) if v > 0 else 0.0
        return beta * c, (g - g.mean()) * c

    shift = _POP_SHIFT_STEP * np.arange(len(pop_names))
    fixed = _SEX_EFFECT * (sex == 2) + _AGE_EFFECT * (age - 50.0) + shift[pop_index]
    noise_sd = np.sqrt(1.0 - h2)
    effect_qt, g_qt = genetic(rng.standard_normal(n_causal))
    qt = g_qt + fixed + rng.normal(0.0, noise_sd, n_samples)
    effect_bt, g_bt = genetic(rng.standard_normal(n_causal))
    liability = g_bt + fixed + rng.normal(0.0, noise_sd, n_samples)
    threshold = np.quantile(liability, 1.0 - prevalence)
    bt = np.where(liability > threshold, 2.0, 1.0)
    qt[rng.random(n_samples) < PHENO_MISSING] = np.nan
    bt[rng.random(n_samples) < PHENO_MISSING] = np.nan
    model = {
        "qt": "genetic + SEX_EFFECT*(SEX==2) + AGE_EFFECT*(AGE-50) + population_shift + noise",
        "bt": "2 (case) if liability > threshold else 1; liability built like QT with effect_bt and its own noise",
        "genetic_variance": h2,
        "noise_variance": 1.0 - h2,
        "sex_effect": _SEX_EFFECT,
        "age_effect": _AGE_EFFECT,
        "population_shift": {name: float(s) for name, s in zip(pop_names, shift)},
        "liability_threshold": float(threshold),
        "causal_min_maf": CAUSAL_MIN_MAF,
        "pheno_missing": PHENO_MISSING,
    }
    return {"QT": qt, "BT": bt}, list(zip(causal.tolist(), effect_qt, effect_bt)), model


def _apply_missing(alt_count, missing_rate, rng, calls_per_block=10_000_000):
    """Set about ``missing_rate`` of the calls to -1, completely at random, block by block."""
    if missing_rate <= 0:
        return
    n_variants, n_samples = alt_count.shape
    rows = max(1, calls_per_block // max(n_samples, 1))
    for r0 in range(0, n_variants, rows):
        block = alt_count[r0:r0 + rows].reshape(-1)
        n_missing = rng.binomial(block.size, missing_rate)
        block[rng.choice(block.size, size=n_missing, replace=False)] = -1
